"""Tensor lists → weight statistics: parameters and bytes per dtype, quantization-aware.

Pure. Bytes always come from the stored tensors (exact for every dtype). Parameters are
logical values: packed 4-bit tensors hold two per byte, GPTQ/AWQ ``qweight`` int32 holds
``32 / bits``; quantization scales, zero points and index tensors are not parameters;
integer buffers such as ``position_ids`` are not parameters either.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from hfdeploy.model.safetensors import FLOAT_DTYPES, TensorInfo

__all__ = ["DtypeStats", "WeightStats", "weight_stats"]

_AUX_SUFFIXES = (
    ".weight_scale", ".weight_scale_inv", ".weight_scale_2", ".input_scale", ".output_scale",
    ".k_scale", ".v_scale", ".q_scale", ".qzeros", ".scales", ".g_idx", ".weight_zero_point",
    ".weight_g_idx", ".weight_shape", ".absmax", ".quant_map", ".nested_absmax",
    ".nested_quant_map", ".SCB", ".weight_format", ".zeros",
)  # fmt: skip
_AUX_INFIXES = (".quant_state.",)
_EXPERT = re.compile(r"(^|\.)experts\.")
_EMBED = re.compile(r"(embed|lm_head|wte|wpe|word_embeddings|position_embeddings|output\.weight$)")
_8BIT_FLOATS = frozenset({"F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4"})


@dataclass(frozen=True, slots=True)
class DtypeStats:
    """Tensors, stored elements, logical parameters and bytes of one dtype."""

    tensors: int = 0
    elements: int = 0
    parameters: int = 0
    bytes: int = 0

    def plus(self, *, elements: int, parameters: int, nbytes: int) -> DtypeStats:
        return DtypeStats(
            self.tensors + 1,
            self.elements + elements,
            self.parameters + parameters,
            self.bytes + nbytes,
        )

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class WeightStats:
    """What the weights of a model weigh, by dtype and by role."""

    parameters: int
    bytes: int
    by_dtype: dict[str, DtypeStats]
    #: Parameters stored in 16/32/64-bit floats: what ``--dtype`` converts.
    float_parameters: int
    float_bytes: int
    #: Float parameters in 2-D+ non-embedding tensors: what a quantization what-if shrinks.
    linear_float_parameters: int
    linear_rows: int
    embedding_parameters: int
    expert_parameters: int
    expert_bytes: int
    #: Quantization scales, zero points, indices: bytes that are not parameters.
    quant_aux_bytes: int
    #: Integer buffers such as ``position_ids``.
    buffer_bytes: int
    #: 1-D tensors (norms, biases): replicated on every tensor-parallel rank.
    one_dim_bytes: int
    source: str
    dtype_sources: dict[str, str] = field(default_factory=dict)

    @property
    def checkpoint_dtype(self) -> str | None:
        """The float dtype holding the most bytes (None for purely quantized storage)."""
        floats = {d: s.bytes for d, s in self.by_dtype.items() if d in FLOAT_DTYPES}
        return max(floats, key=lambda d: floats[d]) if floats else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.parameters,
            "bytes": self.bytes,
            "by_dtype": {d: s.to_dict() for d, s in sorted(self.by_dtype.items())},
            "checkpoint_dtype": self.checkpoint_dtype,
            "embedding": self.embedding_parameters,
            "experts": {"parameters": self.expert_parameters, "bytes": self.expert_bytes},
            "quantization_aux_bytes": self.quant_aux_bytes,
            "buffer_bytes": self.buffer_bytes,
            "source": self.source,
        }


def _is_aux(name: str, names: frozenset[str]) -> bool:
    if any(i in name for i in _AUX_INFIXES):
        return True
    if name.endswith("_scales") and name[: -len("_scales")] + "_blocks" in names:
        return True  # MXFP4: <proj>_blocks + <proj>_scales
    return name.endswith(_AUX_SUFFIXES)


def _four_bit_u8(quant: Mapping[str, Any] | None) -> bool:
    if not quant:
        return False
    text = json.dumps(quant).lower()
    return "fp4" in text or "nf4" in text or bool(quant.get("load_in_4bit"))


def _bits(quant: Mapping[str, Any] | None) -> int:
    if not quant:
        return 4
    bits = quant.get("bits") or quant.get("w_bit")
    if isinstance(bits, int) and bits > 0:
        return bits
    match = re.search(r'"num_bits":\s*(\d+)', json.dumps(quant))
    return int(match.group(1)) if match else 4


def _logical(t: TensorInfo, *, four_bit_u8: bool, bits: int) -> int | None:
    """Logical parameters of a weight tensor; None for a buffer that is no parameter."""
    if t.dtype in FLOAT_DTYPES or t.dtype in _8BIT_FLOATS:
        return t.numel
    if t.name.endswith("_blocks") and t.dtype == "U8":
        return t.numel * 2  # MXFP4: two 4-bit values per byte
    if t.name.endswith((".qweight", ".weight_packed")) and t.dtype in {"I32", "U32"}:
        return t.numel * (32 // bits)
    if t.dtype == "U8" and t.name.endswith((".weight", ".weight_packed")) and four_bit_u8:
        return t.numel * 2
    if t.dtype in {"I8", "U8"} and t.name.endswith(".weight"):
        return t.numel  # int8 weights (bitsandbytes LLM.int8, W8A8)
    return None


def weight_stats(
    tensors: Iterable[TensorInfo],
    *,
    quantization_config: Mapping[str, Any] | None = None,
    source: str = "safetensors headers",
) -> WeightStats:
    """Summarise a checkpoint's tensors (every shard together).

    Args:
        tensors: every tensor of the checkpoint.
        quantization_config: config.json's ``quantization_config``, for packing rules.
        source: what the tensors came from, for the report.
    """
    items = list(tensors)
    names = frozenset(t.name for t in items)
    four_bit, bits = _four_bit_u8(quantization_config), _bits(quantization_config)
    by_dtype: dict[str, DtypeStats] = {}
    params = total_bytes = float_params = float_bytes = linear = rows = embed = 0
    expert_p = expert_b = aux = buffers = one_dim = 0
    for t in items:
        total_bytes += t.nbytes
        if len(t.shape) <= 1:
            one_dim += t.nbytes
        is_aux = _is_aux(t.name, names)
        logical = None if is_aux else _logical(t, four_bit_u8=four_bit, bits=bits)
        if logical is None:
            if is_aux:
                aux += t.nbytes
            else:
                buffers += t.nbytes
            by_dtype[t.dtype] = by_dtype.get(t.dtype, DtypeStats()).plus(
                elements=t.numel, parameters=0, nbytes=t.nbytes
            )
            continue
        params += logical
        by_dtype[t.dtype] = by_dtype.get(t.dtype, DtypeStats()).plus(
            elements=t.numel, parameters=logical, nbytes=t.nbytes
        )
        is_embed = bool(_EMBED.search(t.name))
        if is_embed:
            embed += logical
        if t.dtype in FLOAT_DTYPES:
            float_params += logical
            float_bytes += t.nbytes
            if len(t.shape) >= 2 and not is_embed:
                linear += logical
                rows += t.numel // t.shape[-1] if t.shape[-1] else 0
        if _EXPERT.search(t.name):
            expert_p += logical
            expert_b += t.nbytes
    return WeightStats(
        parameters=params,
        bytes=total_bytes,
        by_dtype=by_dtype,
        float_parameters=float_params,
        float_bytes=float_bytes,
        linear_float_parameters=linear,
        linear_rows=rows,
        embedding_parameters=embed,
        expert_parameters=expert_p,
        expert_bytes=expert_b,
        quant_aux_bytes=aux,
        buffer_bytes=buffers,
        one_dim_bytes=one_dim,
        source=source,
    )
