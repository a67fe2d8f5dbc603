"""Sizing a full-duplex server: LM + codecs as the server loads them, one KV ring buffer per
session, context in frames. Expected bytes computed here from the shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hfdeploy import inspect_model, size_model
from hfdeploy.cli.main import app
from hfdeploy.errors import InvalidSettingError
from tests._synthetic import kyutai_checkpoint

MIMI_BYTES = 96_151_393 * 4  # float32
FRAME_KV = 2 * 32 * 4096 * 2  # K and V, 32 layers, dim 4096 (32 heads x 128), bf16
DEPFORMER_KV = 2 * 6 * 1024 * 2 * 8  # 6 layers, dim 1024, over its 8-step context


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("duplex")
    return {
        "personaplex": kyutai_checkpoint(root / "personaplex", "personaplex", voices=True),
        "moshiko": kyutai_checkpoint(root / "moshiko", "moshiko"),
    }


def _size_json(folder: Path, *args: str) -> dict[str, object]:
    out = CliRunner().invoke(app, ["size", str(folder), "--json", *args])
    assert out.exit_code == 0, out.output
    data: dict[str, object] = json.loads(out.output)
    return data


@pytest.mark.parametrize(
    ("name", "engine", "lm_params", "codecs"),
    [
        ("personaplex", "personaplex", 8_371_408_896, 2),
        ("personaplex", "hfdeploy", 7_687_729_152, 1),  # the user's depth steps: not loaded
        ("moshiko", "hfdeploy", 7_687_729_152, 1),
        ("moshiko", "moshi", 7_687_729_152, 1),
    ],
)
def test_one_session(folders: dict[str, Path], name: str, engine: str, lm_params: int,
                     codecs: int) -> None:  # fmt: skip
    d = _size_json(folders[name], "--engine", engine)
    kv, weights = d["kv_cache"], d["weights"]
    assert isinstance(kv, dict) and isinstance(weights, dict)
    assert d["settings"]["engine"] == engine  # type: ignore[index]
    assert weights["bytes"] == lm_params * 2 + codecs * MIMI_BYTES
    assert kv["bytes_per_token"] == FRAME_KV == 512 * 1024  # per frame
    assert kv["bytes_per_sequence"] == 3000 * FRAME_KV + DEPFORMER_KV  # one session
    assert kv["context"] == 3000


def test_sessions_and_frames(folders: dict[str, Path]) -> None:
    d = _size_json(folders["personaplex"], "--concurrency", "3", "--context", "1500")
    kv = d["kv_cache"]
    assert isinstance(kv, dict)
    assert kv["bytes_per_sequence"] == 1500 * FRAME_KV + DEPFORMER_KV
    assert kv["bytes"] == 3 * kv["bytes_per_sequence"]


def test_fit_t4_no_in_bf16_l4_yes(folders: dict[str, Path]) -> None:
    fits = {f["gpu"]: f["fits"] for f in _size_json(folders["personaplex"])["fits"]}  # type: ignore[attr-defined]
    assert fits["T4"] is False and fits["L4"] is True and fits["H100-SXM"] is True


def test_bad_settings_say_why(folders: dict[str, Path]) -> None:
    profile = inspect_model(str(folders["personaplex"]))
    with pytest.raises(InvalidSettingError, match="frames"):
        size_model(profile, context=3001)
    with pytest.raises(InvalidSettingError, match="does not serve full-duplex"):
        size_model(profile, engine="vllm")
    out = CliRunner().invoke(app, ["size", str(folders["moshiko"]), "--engine", "tgi"])
    assert out.exit_code != 0 and "moshi, personaplex" in out.output
