"""The Hub source against httpx.MockTransport, and the Hugging Face cache layout."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from hfdeploy import inspect_model
from hfdeploy.errors import (
    GatedRepoError,
    HubAuthError,
    HubUnavailableError,
    ModelNotFoundError,
    RevisionNotFoundError,
)

SHA = "a" * 40
REPO = "acme/tiny-llama"


class FakeHub:
    """Serves one repo like the Hub's API and resolve routes, honouring Range."""

    def __init__(self, folder: Path, *, gated: bool = False, token: str | None = None) -> None:
        self.folder = folder
        self.gated = gated
        self.token = token
        self.bytes_sent = 0
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        auth = request.headers.get("authorization")
        if self.gated and auth != f"Bearer {self.token}":
            return httpx.Response(
                401 if auth is None else 403, headers={"x-error-code": "GatedRepo"}
            )
        path = request.url.path
        if m := re.fullmatch(rf"/api/models/{REPO}/revision/([^/]+)", path):
            if m.group(1) not in {"main", SHA}:
                return httpx.Response(404, headers={"x-error-code": "RevisionNotFound"})
            siblings = [
                {"rfilename": p.relative_to(self.folder).as_posix(), "size": p.stat().st_size}
                for p in sorted(self.folder.rglob("*")) if p.is_file()
            ]  # fmt: skip
            body = {"id": REPO, "sha": SHA, "siblings": siblings, "pipeline_tag": "text-generation",
                    "library_name": "transformers", "cardData": {"license": "apache-2.0"},
                    "gated": "manual" if self.gated else False}  # fmt: skip
            return httpx.Response(200, json=body)
        if m := re.fullmatch(rf"/{REPO}/resolve/([^/]+)/(.+)", path):
            if m.group(1) != SHA:
                return httpx.Response(404)
            file = self.folder / m.group(2)
            if not file.is_file():
                return httpx.Response(404, headers={"x-error-code": "EntryNotFound"})
            data = file.read_bytes()
            rng = request.headers.get("range")
            if rng:
                start, end = (int(x) for x in rng.removeprefix("bytes=").split("-"))
                data = data[start : end + 1]
                self.bytes_sent += len(data)
                return httpx.Response(206, content=data)
            self.bytes_sent += len(data)
            return httpx.Response(200, content=data)
        return httpx.Response(404, headers={"x-error-code": "RepoNotFound"})


def _env(**extra: str) -> dict[str, str]:
    # HF_TOKEN_PATH: never read the developer's stored login token
    return {"HF_ENDPOINT": "https://hub.test", "HF_TOKEN_PATH": "/nonexistent/token", **extra}


def _client(handler: Any) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler), follow_redirects=True)


def test_hub_profile_reads_headers_only(tiny_models: dict[str, Path]) -> None:
    folder = tiny_models["llama"]
    hub = FakeHub(folder)
    with _client(hub) as client:
        p = inspect_model(REPO, environ=_env(), client=client)
    assert p.source == "hub"
    assert p.commit_sha == SHA
    assert p.parameters == int((folder / "params.txt").read_text())
    assert p.hub is not None and p.hub.license == "apache-2.0"
    weights = (folder / "model.safetensors").stat().st_size
    assert hub.bytes_sent < weights  # a range read, not the file
    ranges = [r.headers["range"] for r in hub.requests if "range" in r.headers]
    assert ranges == ["bytes=0-99999"]
    # every file request was pinned to the resolved commit
    resolves = [r for r in hub.requests if "/resolve/" in r.url.path]
    assert resolves and all(f"/resolve/{SHA}/" in r.url.path for r in resolves)


def test_large_header_needs_a_second_range_request(tmp_path: Path) -> None:
    from tests._synthetic import write_safetensors_header

    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "architectures": ["LlamaForCausalLM"],
                "num_hidden_layers": 1,
                "num_attention_heads": 1,
                "hidden_size": 8,
            }
        )
    )
    tensors = {f"layers.{i}.weight_with_a_long_name": {"dtype": "BF16", "shape": [8, 8],
               "nbytes": 128} for i in range(2000)}  # fmt: skip
    write_safetensors_header(folder / "model.safetensors", tensors, sparse_data=False)
    hub = FakeHub(folder)
    with _client(hub) as client:
        p = inspect_model(REPO, environ=_env(), client=client)
    assert p.parameters == 2000 * 64
    ranges = [r for r in hub.requests if "range" in r.headers]
    assert len(ranges) == 2


def test_revision_not_found(tiny_models: dict[str, Path]) -> None:
    with _client(FakeHub(tiny_models["llama"])) as client, pytest.raises(RevisionNotFoundError):
        inspect_model(f"{REPO}@nope", environ=_env(), client=client)


def test_missing_repo(tiny_models: dict[str, Path]) -> None:
    with _client(FakeHub(tiny_models["llama"])) as client, pytest.raises(ModelNotFoundError):
        inspect_model("acme/other", environ=_env(), client=client)


def test_gated_repo_without_and_with_a_wrong_token(tiny_models: dict[str, Path]) -> None:
    hub = FakeHub(tiny_models["llama"], gated=True, token="hf_right")
    with _client(hub) as client:
        with pytest.raises(GatedRepoError) as e:
            inspect_model(REPO, environ=_env(), client=client)
        assert e.value.has_token is False
        with pytest.raises(GatedRepoError):
            inspect_model(REPO, environ=_env(HF_TOKEN="hf_wrong"), client=client)
        p = inspect_model(REPO, environ=_env(HF_TOKEN="hf_right"), client=client)
    assert p.parameters > 0


def test_private_repo_without_token() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"x-error-code": "RepoNotFound"})

    with _client(handler) as client, pytest.raises(HubAuthError) as e:
        inspect_model(REPO, environ=_env(), client=client)
    assert "HF_TOKEN" in e.value.hint


def test_network_failure() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with _client(handler) as client, pytest.raises(HubUnavailableError) as e:
        inspect_model(REPO, environ=_env(), client=client)
    assert e.value.endpoint == "https://hub.test"


def _cache_repo(cache: Path, folder: Path, *, files: list[str] | None = None) -> Path:
    """Lay a model out as huggingface_hub does: blobs, snapshots/<sha>/ symlinks, refs/main."""
    repo = cache / f"models--{REPO.replace('/', '--')}"
    snap = repo / "snapshots" / SHA
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)
    for i, src in enumerate(sorted(folder.iterdir())):
        if files is not None and src.name not in files:
            continue
        blob = repo / "blobs" / f"blob{i}"
        shutil.copy(src, blob)
        (snap / src.name).symlink_to(blob)
    return snap


def test_offline_cache_records_the_commit(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _cache_repo(cache, tiny_models["llama"])
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    p = inspect_model(REPO, environ=env)
    assert (p.source, p.repo_id, p.commit_sha) == ("cache", REPO, SHA)
    assert p.parameters == int((tiny_models["llama"] / "params.txt").read_text())
    assert inspect_model(f"{REPO}@{SHA}", environ=env).commit_sha == SHA


def test_offline_cache_with_config_only(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _cache_repo(cache, tiny_models["llama"], files=["config.json"])
    p = inspect_model(REPO, environ={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)})
    assert p.weights_source == "config (meta device)"
    assert p.parameters == int((tiny_models["llama"] / "params.txt").read_text())


def test_offline_not_cached(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as e:
        inspect_model(REPO, environ={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path)})
    assert "HF_HUB_OFFLINE" in e.value.where


def test_snapshot_folder_given_as_a_path_keeps_its_commit(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    snap = _cache_repo(tmp_path / "cache", tiny_models["llama"])
    p = inspect_model(str(snap))
    assert (p.repo_id, p.commit_sha) == (REPO, SHA)


def test_hub_unreachable_falls_back_to_cache(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _cache_repo(cache, tiny_models["llama"])

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    with _client(handler) as client:
        p = inspect_model(REPO, environ=_env(HF_HUB_CACHE=str(cache)), client=client)
    assert p.source == "cache"
    assert any("could not be reached" in n for n in p.notes)


def test_stored_login_token_is_used(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "token").write_text("hf_right\n")
    hub = FakeHub(tiny_models["llama"], gated=True, token="hf_right")
    with _client(hub) as client:
        p = inspect_model(REPO, environ=_env(HF_TOKEN_PATH=str(tmp_path / "token")), client=client)
    assert p.parameters > 0
