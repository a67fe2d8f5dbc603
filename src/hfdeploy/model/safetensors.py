"""Safetensors headers: parse and validate, without touching tensor data.

Format (huggingface/safetensors README): 8 bytes little-endian u64 ``N``, then ``N``
bytes of JSON mapping tensor names to ``{"dtype", "shape", "data_offsets"}``, plus an
optional ``"__metadata__"`` of strings. Byte sizes come from the offsets, so they are
exact for every dtype, packed ones included.

Pure: callers pass bytes they read (from disk or by HTTP range request).
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfdeploy.errors import (
    CorruptSafetensorsError,
    SafetensorsHeaderTooLargeError,
    UnknownDtypeError,
)

__all__ = [
    "DTYPE_BITS",
    "FLOAT_DTYPES",
    "MAX_HEADER_BYTES",
    "SafetensorsHeader",
    "TensorInfo",
    "header_length",
    "parse_header",
    "read_local_header",
]

#: Bits per element of every dtype the safetensors format defines (safetensors >= 0.6).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}

#: Dtypes that a serving ``--dtype`` converts (16/32/64-bit floats); 8-bit and smaller
#: floats are quantized storage and stay as they are.
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})

#: The safetensors library refuses headers above 100 MB; so do we.
MAX_HEADER_BYTES = 100_000_000


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One tensor as its header describes it."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int

    @property
    def numel(self) -> int:
        """Stored elements (packed dtypes store several logical values per element)."""
        return math.prod(self.shape)


@dataclass(frozen=True, slots=True)
class SafetensorsHeader:
    """A parsed header: the tensors of one file and its free-form metadata."""

    file: str
    header_len: int
    tensors: tuple[TensorInfo, ...]
    metadata: dict[str, str] = field(default_factory=dict)


def header_length(prefix: bytes, file: str, *, file_size: int | None) -> int:
    """Read the u64 header length from the first 8 bytes and check it fits the file.

    Raises:
        CorruptSafetensorsError: fewer than 8 bytes, or a zero length.
        SafetensorsHeaderTooLargeError: the length points beyond the file or 100 MB.
    """
    if len(prefix) < 8:
        raise CorruptSafetensorsError(file, f"file has {len(prefix)} bytes, fewer than 8")
    (n,) = struct.unpack("<Q", prefix[:8])
    if n < 2:
        raise CorruptSafetensorsError(file, f"header length {n} is too small for JSON")
    limit = MAX_HEADER_BYTES if file_size is None else min(MAX_HEADER_BYTES, file_size - 8)
    if n > limit:
        raise SafetensorsHeaderTooLargeError(file, n, limit)
    return int(n)


def _shape(file: str, name: str, raw: Any) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in raw
    ):
        raise CorruptSafetensorsError(file, f"tensor {name!r} has invalid shape {raw!r}")
    return tuple(raw)


def parse_header(
    file: str, header: bytes, *, header_len: int, file_size: int | None
) -> SafetensorsHeader:
    """Parse and validate the JSON header of a safetensors file.

    Args:
        file: name for messages.
        header: the ``header_len`` bytes that follow the 8-byte length.
        header_len: the length read by :func:`header_length`.
        file_size: total file size when known, to catch truncated data.

    Raises:
        CorruptSafetensorsError: truncated, not JSON, inconsistent sizes or offsets.
        UnknownDtypeError: a dtype the format does not define.
    """
    if len(header) < header_len:
        raise CorruptSafetensorsError(
            file, f"header is truncated: {len(header):,} of {header_len:,} bytes"
        )
    try:
        doc = json.loads(header[:header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptSafetensorsError(file, f"header is not valid JSON ({e})") from e
    if not isinstance(doc, dict):
        raise CorruptSafetensorsError(file, "header is not a JSON object")
    raw_meta = doc.pop("__metadata__", None) or {}
    metadata = {str(k): str(v) for k, v in raw_meta.items()} if isinstance(raw_meta, dict) else {}
    tensors: list[TensorInfo] = []
    data_end = 0
    for name, entry in doc.items():
        if not isinstance(entry, dict):
            raise CorruptSafetensorsError(file, f"tensor {name!r} entry is not an object")
        dtype = entry.get("dtype")
        if not isinstance(dtype, str):
            raise CorruptSafetensorsError(file, f"tensor {name!r} has no dtype")
        bits = DTYPE_BITS.get(dtype)
        if bits is None:
            raise UnknownDtypeError(file, name, dtype)
        shape = _shape(file, name, entry.get("shape"))
        offsets = entry.get("data_offsets")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and o >= 0 for o in offsets)
            or offsets[1] < offsets[0]
        ):
            raise CorruptSafetensorsError(
                file, f"tensor {name!r} has invalid data_offsets {offsets!r}"
            )
        nbytes = offsets[1] - offsets[0]
        expected = math.ceil(math.prod(shape) * bits / 8)
        if nbytes != expected:
            raise CorruptSafetensorsError(
                file,
                f"tensor {name!r} ({dtype}{list(shape)}) spans {nbytes:,} bytes, "
                f"its shape needs {expected:,}",
            )
        data_end = max(data_end, offsets[1])
        tensors.append(TensorInfo(name=name, dtype=dtype, shape=shape, nbytes=nbytes))
    if file_size is not None and 8 + header_len + data_end > file_size:
        raise CorruptSafetensorsError(
            file,
            f"file is truncated: tensors end at byte {8 + header_len + data_end:,}, "
            f"the file has {file_size:,}",
        )
    return SafetensorsHeader(
        file=file,
        header_len=header_len,
        tensors=tuple(tensors),
        metadata=metadata,
    )


def read_local_header(path: Path, *, name: str | None = None) -> tuple[SafetensorsHeader, int]:
    """Read a local file's header: two small reads, whatever the file's size.

    Returns:
        The parsed header and the number of bytes read from disk.
    """
    shown = name or str(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        prefix = f.read(8)
        n = header_length(prefix, shown, file_size=size)
        raw = f.read(n)
    return parse_header(shown, raw, header_len=n, file_size=size), 8 + len(raw)
