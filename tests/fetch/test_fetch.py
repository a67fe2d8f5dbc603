"""``hfdeploy fetch`` against a Hub on loopback; ``--verify`` catches any change."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hfdeploy.cli.main import app
from hfdeploy.errors import (
    LockMismatchError,
    ModelNotFoundError,
    PickleOnlyError,
    RevisionNotFoundError,
)
from hfdeploy.model.fetch import fetch_model, select_files
from hfdeploy.model.lock import verify_folder
from tests.fetch._hub import FakeHub, serve_hub

SHA = "b" * 40
FILES = {
    "config.json": b'{"model_type": "bert", "architectures": ["BertModel"]}',
    "model.safetensors": bytes(range(256)) * 40,
    "pytorch_model.bin": b"pickle" * 100,
    "tokenizer.json": b'{"version": "1.0"}',
    "README.md": b"# tiny",
    "modeling_custom.py": b"print('remote code')",
    "onnx/model.onnx": b"onnx" * 10,
}


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeHub, dict[str, str]]]:
    import huggingface_hub.constants

    # The autouse fixture makes every test offline; this one talks to a loopback Hub.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    fake = FakeHub("org/tiny", dict(FILES), sha=SHA)
    with serve_hub(fake) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        yield fake, {"HF_ENDPOINT": url}


def test_fetch_pins_the_commit_and_locks_every_file(hub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake, env = hub
    lock, plan = fetch_model("org/tiny@main", tmp_path / "m", environ=env)
    assert lock.commit_sha == SHA
    assert lock.revision == "main"
    assert [f.path for f in lock.files] == [
        "README.md",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    for f in lock.files:
        assert f.sha256 == hashlib.sha256(FILES[f.path]).hexdigest()
        assert f.size == len(FILES[f.path])
    assert dict(plan.skipped)["pytorch_model.bin"] == "pickle (unsafe)"
    assert "modeling_custom.py" in dict(plan.skipped)
    assert not (tmp_path / "m" / "pytorch_model.bin").exists()
    # Every file was read at the commit, never at the branch.
    resolves = [r for r in fake.requests if "/resolve/" in r]
    assert resolves
    assert all(f"/resolve/{SHA}/" in r for r in resolves)
    data = json.loads((tmp_path / "m" / "model.lock.json").read_text())
    assert data["commit_sha"] == SHA
    assert verify_folder(tmp_path / "m").commit_sha == SHA
    # Same inputs, same lock bytes.
    fetch_model("org/tiny@main", tmp_path / "again", environ=env)
    assert (tmp_path / "again" / "model.lock.json").read_bytes() == (
        tmp_path / "m" / "model.lock.json"
    ).read_bytes()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: (d / "model.safetensors").write_bytes(bytes([1]) + FILES["model.safetensors"][1:]), "content changed: model.safetensors"),
        (lambda d: (d / "config.json").write_bytes(FILES["config.json"] + b" "), "size changed: config.json"),
        (lambda d: (d / "tokenizer.json").unlink(), "missing: tokenizer.json"),
        (lambda d: (d / "extra.bin").write_bytes(b"x"), "not in the lock: extra.bin"),
    ],
)  # fmt: skip
def test_verify_catches_any_change(hub, tmp_path: Path, change, expected: str) -> None:  # type: ignore[no-untyped-def]
    _, env = hub
    fetch_model("org/tiny", tmp_path / "m", environ=env)
    change(tmp_path / "m")
    with pytest.raises(LockMismatchError) as err:
        verify_folder(tmp_path / "m")
    assert any(d.startswith(expected) for d in err.value.differences), err.value.differences


def test_cli_fetch_and_verify(hub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    dest = tmp_path / "m"
    res = runner.invoke(app, ["fetch", "org/tiny@main", "--to", str(dest)])
    assert res.exit_code == 0, res.output
    assert f"commit {SHA}" in res.stdout
    assert "skipped pytorch_model.bin: pickle (unsafe)" in res.stdout
    ok = runner.invoke(app, ["fetch", "--verify", str(dest), "--json"])
    assert ok.exit_code == 0
    assert json.loads(ok.stdout)["commit_sha"] == SHA
    (dest / "model.safetensors").write_bytes(b"tampered")
    bad = runner.invoke(app, ["fetch", "--verify", str(dest)])
    assert bad.exit_code == 1
    assert "size changed: model.safetensors" in bad.stderr
    assert "next:" in bad.stderr


def test_pickle_only_is_refused_unless_allowed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    fake = FakeHub("org/old", {"config.json": b"{}", "pytorch_model.bin": b"p" * 10}, sha=SHA)
    with serve_hub(fake) as url:
        with pytest.raises(PickleOnlyError) as err:
            fetch_model("org/old", tmp_path / "a", environ={"HF_ENDPOINT": url})
        assert err.value.repo_id == "org/old"
        lock, _ = fetch_model(
            "org/old", tmp_path / "b", environ={"HF_ENDPOINT": url}, allow_pickle=True
        )
        assert [f.path for f in lock.files] == ["config.json", "pytorch_model.bin"]


def test_unknown_revision_and_repo(hub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, env = hub
    with pytest.raises(RevisionNotFoundError):
        fetch_model("org/tiny@v9", tmp_path / "a", environ=env)
    with pytest.raises(ModelNotFoundError):
        fetch_model("org/absent", tmp_path / "b", environ=env)


def test_a_file_that_differs_from_the_hubs_hash_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    class LyingHub(FakeHub):
        def info(self, rev: str) -> dict[str, object]:
            info = super().info(rev)
            for s in info["siblings"]:  # type: ignore[attr-defined]
                if "lfs" in s:
                    s["lfs"]["sha256"] = "0" * 64
            return info

    with (
        serve_hub(LyingHub("org/tiny", dict(FILES), sha=SHA)) as url,
        pytest.raises(LockMismatchError),
    ):
        fetch_model("org/tiny", tmp_path / "m", environ={"HF_ENDPOINT": url})


def test_offline_is_a_clear_error(tmp_path: Path) -> None:
    from hfdeploy.errors import HubUnavailableError

    with pytest.raises(HubUnavailableError, match="HF_HUB_OFFLINE"):
        fetch_model("org/tiny", tmp_path, environ={"HF_HUB_OFFLINE": "1"})


def test_select_files() -> None:
    gguf = ["config.json", "m-Q4_K_M.gguf", "m-Q8_0.gguf", "m-f16.gguf"]
    assert select_files(gguf, include=["*Q4_K_M.gguf"]).files == ("config.json", "m-Q4_K_M.gguf")
    both = [
        "model.safetensors",
        "pytorch_model.bin",
        "tf_model.h5",
        "flax_model.msgpack",
        "vocab.txt",
    ]
    assert select_files(both).files == ("model.safetensors", "vocab.txt")
    with pytest.raises(PickleOnlyError):
        select_files(["pytorch_model.bin", "config.json"])
    code = select_files(["model.safetensors", "modeling.py"], include=["*.py"]).files
    assert code == ("model.safetensors", "modeling.py")
