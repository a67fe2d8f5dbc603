"""GGUF metadata through the ``gguf`` package: architecture keys, quant types, tensor bytes.

The ``gguf`` import is deferred to the call: it costs about 0.3 s, which folders of
safetensors files must not pay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfdeploy.errors import GGUFError

__all__ = ["GGUFInfo", "gguf_config", "read_gguf"]


@dataclass(frozen=True, slots=True)
class GGUFInfo:
    """What a GGUF file says of itself."""

    file: str
    architecture: str | None
    file_type: str | None
    #: ``{tensor type name: {"tensors", "parameters", "bytes"}}``
    tensor_types: dict[str, dict[str, int]]
    parameters: int
    bytes: int
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "architecture": self.architecture,
            "file_type": self.file_type,
            "tensor_types": self.tensor_types,
            "parameters": self.parameters,
            "bytes": self.bytes,
        }


def _scalar(reader: Any, key: str) -> Any:
    fld = reader.get_field(key)
    if fld is None:
        return None
    try:
        return fld.contents()
    except Exception:  # a field type this gguf release cannot decode: skip it
        return None


def read_gguf(path: Path, *, name: str | None = None) -> GGUFInfo:
    """Read one GGUF file's metadata and tensor table (tensor data is memory-mapped, not read).

    Raises:
        GGUFError: the file is not GGUF or is truncated.
    """
    shown = name or str(path)
    try:
        import gguf
    except ImportError as e:  # pragma: no cover - gguf is a core dependency
        raise GGUFError(shown, "the gguf package is not installed") from e
    try:
        reader = gguf.GGUFReader(str(path), "r")
    except Exception as e:  # gguf raises ValueError, struct.error, IndexError...
        raise GGUFError(shown, str(e) or type(e).__name__) from e
    arch = _scalar(reader, "general.architecture")
    types: dict[str, dict[str, int]] = {}
    params = nbytes = 0
    for t in reader.tensors:
        type_name = t.tensor_type.name
        entry = types.setdefault(type_name, {"tensors": 0, "parameters": 0, "bytes": 0})
        entry["tensors"] += 1
        entry["parameters"] += int(t.n_elements)
        entry["bytes"] += int(t.n_bytes)
        params += int(t.n_elements)
        nbytes += int(t.n_bytes)
    file_type_id = _scalar(reader, "general.file_type")
    file_type = None
    if isinstance(file_type_id, int):
        try:
            file_type = gguf.LlamaFileType(file_type_id).name.removeprefix("MOSTLY_")
        except ValueError:
            file_type = str(file_type_id)
    meta: dict[str, Any] = {}
    if isinstance(arch, str):
        for key in (
            "context_length", "block_count", "embedding_length", "feed_forward_length",
            "attention.head_count", "attention.head_count_kv", "attention.key_length",
            "attention.value_length", "attention.sliding_window", "expert_count",
            "expert_used_count", "attention.kv_lora_rank", "rope.dimension_count",
            "vocab_size", "attention.sliding_window_pattern",
        ):  # fmt: skip
            value = _scalar(reader, f"{arch}.{key}")
            if value is not None:
                meta[key] = value
    return GGUFInfo(
        file=shown,
        architecture=arch if isinstance(arch, str) else None,
        file_type=file_type,
        tensor_types=types,
        parameters=params,
        bytes=nbytes,
        metadata=meta,
    )


def _as_int(value: Any) -> int | None:
    if isinstance(value, list):  # per-layer arrays (some archs): take the maximum
        ints = [v for v in value if isinstance(v, int)]
        return max(ints) if ints else None
    return value if isinstance(value, int) else None


# llama.cpp's sliding-layer period by architecture when the file gives none (its model code).
_SWA_PERIODS = {"gpt-oss": 2, "gemma2": 2, "gemma3": 6, "llama4": 4}


def _gguf_layer_types(arch: str | None, m: dict[str, Any], n: int) -> list[str] | None:
    """Per-layer types as llama.cpp reads them: ``attention.sliding_window_pattern`` (one
    flag per layer, or a period p: layer i slides when i % p < p - 1), else its default
    period for the architecture. Llama 4's local layers are chunked (attention chunk)."""
    pattern = m.get("attention.sliding_window_pattern")
    local = "chunked_attention" if arch == "llama4" else "sliding_attention"
    if isinstance(pattern, list) and len(pattern) == n:
        return [local if bool(p) else "full_attention" for p in pattern]
    period = _as_int(pattern) or _SWA_PERIODS.get(arch or "")
    if not period or not n or (arch != "llama4" and not m.get("attention.sliding_window")):
        return None
    return [local if i % period < period - 1 else "full_attention" for i in range(n)]


def gguf_config(info: GGUFInfo) -> dict[str, Any]:
    """A config.json-shaped dict from GGUF architecture keys, for the KV formulas."""
    m = info.metadata
    heads = _as_int(m.get("attention.head_count")) or 0
    hidden = _as_int(m.get("embedding_length")) or 0
    cfg: dict[str, Any] = {
        "model_type": info.architecture,
        "architectures": [],
        "num_hidden_layers": _as_int(m.get("block_count")),
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_key_value_heads": _as_int(m.get("attention.head_count_kv")) or heads,
        "intermediate_size": _as_int(m.get("feed_forward_length")),
        "max_position_embeddings": _as_int(m.get("context_length")),
    }
    key_len = _as_int(m.get("attention.key_length"))
    if key_len:
        cfg["head_dim"] = key_len
    window = _as_int(m.get("attention.sliding_window"))
    if window:
        cfg["sliding_window"] = window
    types = _gguf_layer_types(info.architecture, m, cfg["num_hidden_layers"] or 0)
    if types:
        cfg["layer_types"] = types
        if info.architecture == "llama4":
            cfg["attention_chunk_size"] = window or 8192
    if m.get("expert_count"):
        cfg["num_local_experts"] = _as_int(m["expert_count"])
        cfg["num_experts_per_tok"] = _as_int(m.get("expert_used_count")) or 1
    if m.get("vocab_size"):
        cfg["vocab_size"] = _as_int(m["vocab_size"])
    return cfg
