"""``hfdeploy serve`` as a process: SIGTERM drains, JSON logs, refusals at start."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from hfdeploy.errors import InvalidSettingError, MissingDependencyError
from hfdeploy.serve.server import serve_model
from hfdeploy.serve.settings import ServeSettings, resolve_serve_settings
from tests.serve._fixtures import free_port, wait_ready

HFDEPLOY = str(Path(sys.executable).with_name("hfdeploy"))


def _metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def test_sigterm_drains_in_flight_requests_and_exits_0(minilm_dir: Path) -> None:
    port = free_port()
    # Batches of one input: the 128 inputs below take a while, so they are surely in flight.
    proc = subprocess.Popen(
        [
            HFDEPLOY,
            "serve",
            str(minilm_dir),
            "--port",
            str(port),
            "--json",
            "--max-batch-size",
            "1",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        texts = [f"sentence number {i} with a few more words in it" for i in range(8)]
        with ThreadPoolExecutor(16) as pool:
            futures = [
                pool.submit(
                    httpx.post,
                    url + "/embed",
                    json={"inputs": texts},
                    headers={"x-request-id": f"req-{i}"},
                    timeout=60,
                )
                for i in range(16)
            ]
            # Every input is queued or done: all 16 requests are in flight.
            deadline = time.monotonic() + 30
            while (
                _metric(url, "hfdeploy_queue_depth") + _metric(url, "hfdeploy_batch_size_sum") < 128
            ):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert _metric(url, "hfdeploy_queue_depth") > 0  # and some are still waiting
            proc.send_signal(signal.SIGTERM)
            responses = [f.result() for f in futures]
        assert [r.status_code for r in responses] == [200] * 16
        assert proc.wait(timeout=60) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/health")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            assert proc.stderr is not None
            proc.stderr.close()
    assert proc.stderr is not None
    with proc.stderr:
        log = proc.stderr.read()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = [r for r in records if r["logger"] == "hfdeploy.access"]
    assert {f"req-{i}" for i in range(16)} <= {r.get("request_id") for r in access}
    assert all({"time", "level", "message", "status", "duration_ms"} <= r.keys() for r in access)
    assert any("warmup done" in r["message"] for r in records)
    # Its OpenMP threads sleep when idle instead of spinning on CPUs others need.
    assert any("OMP_WAIT_POLICY=PASSIVE" in r["message"] for r in records)


def _serve_fails(folder: str) -> subprocess.CompletedProcess[str]:
    """Run ``hfdeploy serve`` on a folder it must refuse; it exits 1 by itself."""
    res = subprocess.run(
        [HFDEPLOY, "serve", folder, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 1, res.stderr
    return res


def test_missing_folder_fails_with_next_step(tmp_path: Path) -> None:
    res = _serve_fails(str(tmp_path / "nope"))
    assert "error:" in res.stderr
    assert "not a folder" in res.stderr
    assert "next:" in res.stderr
    assert "Traceback" not in res.stderr


def test_pickle_only_weights_are_refused(tmp_path: Path, minilm_dir: Path) -> None:
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(minilm_dir, folder)
    state = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    res = _serve_fails(str(folder))
    assert "pickle" in res.stderr
    assert "--allow-pickle" in res.stderr


def test_a_missing_extra_is_named_before_the_settings_are_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # its import now fails
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(MissingDependencyError) as e:
        serve_model("/m", max_batch_size=0)  # an invalid setting too: the extra comes first
    assert (e.value.package, e.value.extra) == ("prometheus_client", "serve")
    assert "pip install 'hfdeploy[serve]'" in (e.value.hint or "")
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # set before the extra is imported


def test_settings_flag_beats_environment_beats_default() -> None:
    env = {"HFDEPLOY_MAX_BATCH_SIZE": "16", "HFDEPLOY_PORT": "9000", "HFDEPLOY_WARMUP": "false"}
    s = resolve_serve_settings("/m", environ=env, max_batch_size=8)
    assert (s.max_batch_size, s.port, s.warmup) == (8, 9000, False)
    assert s.host == "127.0.0.1"  # loopback unless told otherwise
    assert ServeSettings(model="/m", api_key="k").public()["api_key"] == "***"


@pytest.mark.parametrize(
    ("kwargs", "env", "name"),
    [
        ({"max_batch_size": 0}, {}, "max_batch_size"),
        ({"max_batch_size": 64, "max_queue": 32}, {}, "max_queue"),
        ({}, {"HFDEPLOY_MAX_WAIT_MS": "soon"}, "HFDEPLOY_MAX_WAIT_MS"),
        ({"device": "tpu"}, {}, "device"),
        ({"task": "translation"}, {}, "task"),
        ({}, {"HFDEPLOY_ALLOW_PICKLE": "perhaps"}, "HFDEPLOY_ALLOW_PICKLE"),
    ],
)
def test_bad_settings_name_the_setting(kwargs: dict, env: dict, name: str) -> None:
    with pytest.raises(InvalidSettingError) as err:
        resolve_serve_settings("/m", environ=env, **kwargs)
    assert err.value.name == name


def test_a_load_failure_after_start_exits_1(tmp_path: Path, minilm_dir: Path) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(minilm_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["hidden_size"] = 500  # not a multiple of the heads: transformers refuses
    (folder / "config.json").write_text(json.dumps(config))
    res = _serve_fails(str(folder))
    assert "error: cannot serve" in res.stderr
    assert "not a multiple" in res.stderr
    assert "next:" in res.stderr
    assert "Traceback" not in res.stderr
