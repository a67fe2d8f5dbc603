"""Safetensors headers: real files written by safetensors, and corrupt ones written by hand."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from safetensors.torch import save_file as save_torch

from hfdeploy.errors import (
    CorruptSafetensorsError,
    SafetensorsHeaderTooLargeError,
    UnknownDtypeError,
)
from hfdeploy.model.safetensors import read_local_header
from hfdeploy.model.weights import weight_stats
from tests._synthetic import write_safetensors_header


def test_reads_a_real_file_written_by_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_file(
        {"a.weight": np.zeros((3, 5), np.float16), "b.bias": np.zeros(7, np.float32)},
        str(path),
        metadata={"format": "np"},
    )
    header, read = read_local_header(path)
    by_name = {t.name: t for t in header.tensors}
    assert by_name["a.weight"].shape == (3, 5)
    assert by_name["a.weight"].nbytes == 30
    assert by_name["b.bias"].dtype == "F32"
    assert header.metadata == {"format": "np"}
    assert read == 8 + header.header_len  # the data region is never read


def test_mixed_dtypes_are_counted_by_bytes(tmp_path: Path) -> None:
    path = tmp_path / "mixed.safetensors"
    save_torch(
        {
            "layers.0.mlp.weight": torch.zeros(16, 32, dtype=torch.float8_e4m3fn),
            "layers.0.mlp.weight_scale_inv": torch.zeros(1, 1, dtype=torch.float32),
            "layers.0.norm.weight": torch.zeros(32, dtype=torch.bfloat16),
            "embed_tokens.weight": torch.zeros(10, 32, dtype=torch.float16),
            "position_ids": torch.zeros(1, 8, dtype=torch.int64),
        },
        str(path),
    )
    header, _ = read_local_header(path)
    stats = weight_stats(header.tensors, quantization_config={"quant_method": "fp8"})
    assert stats.by_dtype["F8_E4M3"].bytes == 16 * 32
    assert stats.by_dtype["F8_E4M3"].parameters == 16 * 32
    assert stats.by_dtype["BF16"].bytes == 64
    assert stats.by_dtype["F16"].bytes == 640
    # the fp8 block scale and the int64 buffer are bytes, not parameters
    assert stats.parameters == 16 * 32 + 32 + 320
    assert stats.quant_aux_bytes == 4
    assert stats.buffer_bytes == 64
    assert stats.bytes == 512 + 4 + 64 + 640 + 64


def test_packed_4bit_and_gptq_count_logical_parameters(tmp_path: Path) -> None:
    path = tmp_path / "packed.safetensors"
    write_safetensors_header(
        path,
        {
            # MXFP4 (gpt-oss): 2 values per byte in *_blocks, E8M0 scales per 32 values
            "mlp.experts.down_proj_blocks": {
                "dtype": "U8",
                "shape": [4, 64, 2, 16],
                "nbytes": 8192,
            },
            "mlp.experts.down_proj_scales": {"dtype": "U8", "shape": [4, 64, 2], "nbytes": 512},
            # GPTQ 4-bit: 8 values per int32
            "q_proj.qweight": {"dtype": "I32", "shape": [8, 64], "nbytes": 2048},
            "q_proj.qzeros": {"dtype": "I32", "shape": [1, 8], "nbytes": 32},
            "q_proj.scales": {"dtype": "F16", "shape": [1, 64], "nbytes": 128},
        },
    )
    header, _ = read_local_header(path)
    mx = weight_stats(
        [t for t in header.tensors if "experts" in t.name],
        quantization_config={"quant_method": "mxfp4"},
    )
    assert mx.parameters == 8192 * 2
    assert mx.expert_parameters == 8192 * 2
    assert mx.quant_aux_bytes == 512
    gptq = weight_stats(
        [t for t in header.tensors if "q_proj" in t.name],
        quantization_config={"quant_method": "gptq", "bits": 4},
    )
    assert gptq.parameters == 8 * 64 * 8
    assert gptq.quant_aux_bytes == 32 + 128


def _raw(path: Path, header: bytes, *, declared: int | None = None, data: bytes = b"") -> None:
    n = len(header) if declared is None else declared
    path.write_bytes(struct.pack("<Q", n) + header + data)


def test_header_length_beyond_file_size(tmp_path: Path) -> None:
    path = tmp_path / "big.safetensors"
    _raw(path, b"{}", declared=10**9)
    with pytest.raises(SafetensorsHeaderTooLargeError) as e:
        read_local_header(path)
    assert e.value.header_len == 10**9
    assert "exceeds" in e.value.message


def test_too_short_file(tmp_path: Path) -> None:
    path = tmp_path / "short.safetensors"
    path.write_bytes(b"\x01\x02")
    with pytest.raises(CorruptSafetensorsError, match="fewer than 8"):
        read_local_header(path)


def test_header_not_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    _raw(path, b"{not json at all}")
    with pytest.raises(CorruptSafetensorsError, match="not valid JSON"):
        read_local_header(path)


def test_unknown_dtype(tmp_path: Path) -> None:
    path = tmp_path / "dtype.safetensors"
    header = json.dumps({"w": {"dtype": "F12", "shape": [2], "data_offsets": [0, 3]}}).encode()
    _raw(path, header, data=b"\0" * 3)
    with pytest.raises(UnknownDtypeError) as e:
        read_local_header(path)
    assert (e.value.tensor, e.value.dtype) == ("w", "F12")


def test_offsets_disagree_with_shape(tmp_path: Path) -> None:
    path = tmp_path / "shape.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    _raw(path, header, data=b"\0" * 8)
    with pytest.raises(CorruptSafetensorsError, match="its shape needs 16"):
        read_local_header(path)


def test_truncated_data_region(tmp_path: Path) -> None:
    path = tmp_path / "trunc.safetensors"
    size = write_safetensors_header(
        path, {"w": {"dtype": "F32", "shape": [1024], "nbytes": 4096}}, sparse_data=False
    )
    with open(path, "r+b") as f:
        f.truncate(size - 100)
    with pytest.raises(CorruptSafetensorsError, match="truncated"):
        read_local_header(path)
