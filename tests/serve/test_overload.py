"""Overload, timeouts, failing batches, start-up phases and the API key.

A runner that sleeps (or raises) on purpose stands in for the model, so that the
server's own behaviour is what is tested, against a real uvicorn.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from hfdeploy.errors import ModelLoadError
from hfdeploy.model.resolve import inspect_model
from hfdeploy.serve.app import create_app
from hfdeploy.serve.embed import Embedding, EmbedRunner
from hfdeploy.serve.runtime import LoadedModel, WarmupShape
from hfdeploy.serve.settings import ServeSettings
from tests.serve._fixtures import running, wait_ready


class FakeEmbedder(EmbedRunner):
    """Sleeps ``delay`` per batch; ``boom`` fails the batch, ``bad`` fails its own input."""

    def __init__(self, delay: float = 0.0) -> None:  # no super(): nothing to load
        self.delay = delay
        self.max_input_tokens = 16
        self.dimension = 4
        self.prompts = {}
        self.pooling = ["mean"]
        self.dense = []
        self.has_normalize = False
        self.batches: list[int] = []

    def run(self, payloads: list[Any]) -> list[Any]:
        self.batches.append(len(payloads))
        time.sleep(self.delay)
        if any(p.text == "boom" for p in payloads):
            raise RuntimeError("the batch blew up")
        return [
            ValueError("bad input") if p.text == "bad" else Embedding(np.ones(4, np.float32), 1)
            for p in payloads
        ]

    def warmup_shapes(self, settings: ServeSettings) -> list[WarmupShape]:
        return [WarmupShape(1, 1)]

    def warm(self, shape: WarmupShape) -> None:
        return None


def _loader(runner: FakeEmbedder, minilm_dir: Path, gate: threading.Event | None = None) -> Any:
    profile = inspect_model(str(minilm_dir))

    def load(settings: ServeSettings) -> LoadedModel:
        if gate is not None and not gate.wait(30):
            raise TimeoutError("test gate never opened")
        return LoadedModel(runner=runner, profile=profile, name="fake", load_seconds=0.01)

    return load


def _settings(minilm_dir: Path, **kw: Any) -> ServeSettings:
    return ServeSettings(model=str(minilm_dir), **kw)


def test_queue_full_is_503_with_retry_after(minilm_dir: Path) -> None:
    runner = FakeEmbedder(delay=0.4)
    settings = _settings(minilm_dir, max_batch_size=2, max_queue=4, max_client_batch_size=2)
    with running(create_app(settings, loader=_loader(runner, minilm_dir))) as url:
        with ThreadPoolExecutor(12) as pool:
            responses = list(
                pool.map(
                    lambda _: httpx.post(url + "/embed", json={"inputs": "x"}, timeout=30),
                    range(12),
                )
            )
        codes = sorted(r.status_code for r in responses)
        assert set(codes) == {200, 503}
        assert codes.count(200) >= 4
        shed = [r for r in responses if r.status_code == 503]
        assert all(r.headers["retry-after"] == "1" for r in shed)
        assert shed[0].json()["error"]["code"] == "overloaded"
        assert max(runner.batches) <= 2
        # Once the load is gone, the server serves again.
        assert httpx.post(url + "/embed", json={"inputs": "x"}).status_code == 200


def test_timeout_is_504_and_frees_the_slot(minilm_dir: Path) -> None:
    runner = FakeEmbedder(delay=0.6)
    settings = _settings(
        minilm_dir, max_batch_size=1, max_queue=2, max_client_batch_size=1, request_timeout=0.3
    )
    app = create_app(settings, loader=_loader(runner, minilm_dir))
    with running(app) as url, ThreadPoolExecutor(2) as pool:
        # The first runs past its timeout; the second times out while still queued.
        futures = [pool.submit(httpx.post, url + "/embed", json={"inputs": "x"}) for _ in range(2)]
        responses = [f.result() for f in futures]
        assert [r.status_code for r in responses] == [504, 504]
        assert responses[0].json()["error"]["code"] == "timeout"
        time.sleep(0.8)  # the running batch ends; the queued one never ran
        assert app.app.state.hfd.batcher.in_use == 0
        assert sum(runner.batches) == 1


def _assert_internal_error(r: httpx.Response, caplog: pytest.LogCaptureFixture) -> None:
    """500 with the JSON error body and the request id, which the error's log line carries."""
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"
    err = r.json()["error"]
    assert err["code"] == "internal_error"
    rid = r.headers["x-request-id"]
    assert rid in err["message"]
    logged = [x for x in caplog.records if x.levelno == logging.ERROR and x.exc_info]
    assert rid in [getattr(x, "request_id", None) for x in logged]


def test_a_failing_batch_fails_only_its_requests(
    minilm_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runner = FakeEmbedder()
    settings = _settings(minilm_dir, max_wait_ms=0)
    with running(create_app(settings, loader=_loader(runner, minilm_dir))) as url:
        boom = httpx.post(url + "/embed", json={"inputs": "boom"})
        _assert_internal_error(boom, caplog)
        bad = httpx.post(url + "/embed", json={"inputs": "bad"})
        _assert_internal_error(bad, caplog)
        assert "bad input" not in bad.text  # internals are logged, not leaked
        ok = httpx.post(url + "/embed", json={"inputs": ["fine", "also fine"]})
        assert ok.status_code == 200
        assert len(ok.json()) == 2


def test_a_route_that_raises_answers_500_json_with_its_request_id(
    minilm_dir: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not Starlette's plain-text "Internal Server Error": the error body, logged with the id."""
    runner = FakeEmbedder()

    def encode_fails(name: str | None) -> str | None:
        raise RuntimeError("the route blew up")

    monkeypatch.setattr(runner, "prompt_text", encode_fails)  # called on the event loop
    with running(create_app(_settings(minilm_dir), loader=_loader(runner, minilm_dir))) as url:
        r = httpx.post(url + "/embed", json={"inputs": "x"}, headers={"x-request-id": "rid-500"})
        _assert_internal_error(r, caplog)
        assert r.headers["x-request-id"] == "rid-500"
        assert "blew up" not in r.text
        assert httpx.get(url + "/health").status_code == 200  # and it serves on


def test_not_ready_until_loaded_and_warm(minilm_dir: Path) -> None:
    gate = threading.Event()
    app = create_app(_settings(minilm_dir), loader=_loader(FakeEmbedder(), minilm_dir, gate))
    with running(app, ready=False) as url:
        assert httpx.get(url + "/health").status_code == 200
        assert httpx.get(url + "/v2/health/live").status_code == 200
        r = httpx.get(url + "/ready")
        assert r.status_code == 503
        assert r.json()["status"] == "loading"
        assert httpx.get(url + "/v2/health/ready").status_code == 503
        early = httpx.post(url + "/embed", json={"inputs": "x"})
        assert early.status_code == 503
        assert early.headers["retry-after"] == "5"
        gate.set()
        wait_ready(url, timeout=10)
        assert httpx.get(url + "/v2/health/ready").status_code == 200
        assert httpx.post(url + "/embed", json={"inputs": "x"}).status_code == 200


def test_failed_load_reports_on_ready_and_health(minilm_dir: Path) -> None:
    def load(settings: ServeSettings) -> LoadedModel:
        raise ModelLoadError(settings.model, "weights are pickle files only")

    with running(create_app(_settings(minilm_dir), loader=load), ready=False) as url:
        deadline = time.monotonic() + 10
        while httpx.get(url + "/ready").json()["status"] != "failed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        r = httpx.get(url + "/ready")
        assert r.status_code == 503
        assert "pickle" in r.json()["error"]
        assert httpx.get(url + "/health").status_code == 503


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"authorization": "Bearer wrong"}, 401),
        ({"authorization": "Bearer s3cret"}, 200),
    ],
)
def test_api_key(minilm_dir: Path, headers: dict[str, str], status: int) -> None:
    settings = _settings(minilm_dir, api_key="s3cret")
    with running(create_app(settings, loader=_loader(FakeEmbedder(), minilm_dir))) as url:
        r = httpx.post(url + "/embed", json={"inputs": "x"}, headers=headers)
        assert r.status_code == status
        if status == 401:
            assert r.headers["www-authenticate"] == "Bearer"
            assert httpx.get(url + "/metrics", headers=headers).status_code == 401
        # Probes never need the key.
        assert httpx.get(url + "/health").status_code == 200
        assert httpx.get(url + "/ready").status_code == 200
