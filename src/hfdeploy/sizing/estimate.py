"""ModelProfile + serving settings → MemoryEstimate (reference/sizing.md).

Pure arithmetic. ``total_per_gpu = weights_per_rank + kv_cache + activations +
overhead`` (CUDA context, non-torch memory, CUDA graphs). Each term names the inputs
and priors that drove it, and how sure it is.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypedDict, Unpack

from hfdeploy.errors import InvalidSettingError
from hfdeploy.model.profile import ModelProfile
from hfdeploy.model.safetensors import DTYPE_BITS
from hfdeploy.sizing.engines import (
    CUDA_CONTEXT_BYTES,
    ENGINES,
    GIB,
    VLLM_ACTIVATION_PRIORS_GIB,
    EngineSizing,
    default_engine,
)
from hfdeploy.sizing.kv import kv_layout

__all__ = [
    "DTYPES",
    "KV_DTYPES",
    "MemoryEstimate",
    "ServingSettings",
    "SettingsKnobs",
    "Term",
    "estimate_memory",
    "resolve_settings",
]

Confidence = Literal["high", "medium", "low"]

DTYPES = {"auto": None, "float32": "F32", "float16": "F16", "bfloat16": "BF16"}
#: Checkpoint dtype -> the serving dtype name that keeps it (F64 is served as float32).
_DTYPE_NAMES = {v: k for k, v in DTYPES.items() if v} | {"F64": "float32"}
KV_DTYPES = {
    "auto": None, "float32": 4.0, "float16": 2.0, "bfloat16": 2.0, "fp8": 1.0,
    "fp8_e4m3": 1.0, "fp8_e5m2": 1.0,
}  # fmt: skip
QUANTIZATIONS = ("int8", "int4", "fp8")
DEFAULT_CONTEXT_CAP = 8192


class SettingsKnobs(TypedDict, total=False):
    """The serving knobs a caller may set; every one has a default (see resolve_settings)."""

    engine: str | None
    dtype: str
    kv_dtype: str
    context: int | None
    concurrency: int
    tp: int
    max_batched_tokens: int | None
    gpu_memory_utilization: float | None
    quantization: str | None
    pp: int


@dataclass(frozen=True, slots=True)
class ServingSettings:
    """The knobs an estimate depends on, after defaults are applied."""

    engine: str
    dtype: str
    kv_dtype: str
    context: int
    concurrency: int
    tp: int
    batched_tokens: int
    gpu_memory_utilization: float | None
    quantization: str | None
    block_size: int
    sources: dict[str, str] = field(default_factory=dict)
    #: Pipeline-parallel stages (nodes of ``tp`` GPUs each): layers split across them.
    pp: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Term:
    """One line of the breakdown, per GPU rank."""

    bytes: int
    confidence: Confidence
    basis: str
    drivers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    """GPU memory for one model under one set of serving settings."""

    model: str
    parameters: int
    settings: ServingSettings
    weights: Term
    weights_total_bytes: int
    kv_cache: Term
    kv_bytes_per_token: int
    kv_bytes_per_sequence: int
    kv_bytes_per_sequence_per_rank: int
    kv_groups: tuple[dict[str, Any], ...]
    activations: Term
    cuda_context: Term
    non_torch: Term
    cuda_graphs: Term
    notes: tuple[str, ...] = ()

    @property
    def overhead_bytes(self) -> int:
        return self.cuda_context.bytes + self.non_torch.bytes + self.cuda_graphs.bytes

    @property
    def host_bytes(self) -> int:
        """On CPU: weights, KV cache and activations; no CUDA context, non-torch or graphs."""
        return self.weights.bytes + self.kv_cache.bytes + self.activations.bytes

    @property
    def total_bytes(self) -> int:
        """Per GPU rank: everything."""
        return (
            self.weights.bytes + self.kv_cache.bytes + self.activations.bytes + self.overhead_bytes
        )

    @property
    def engine(self) -> EngineSizing:
        return ENGINES[self.settings.engine]

    def to_dict(self) -> dict[str, Any]:
        """The core of the ``hfdeploy size --json`` object (fits are added by the caller)."""
        s = self.settings
        return {
            "model": self.model,
            "settings": s.to_dict(),
            "parameters": {"total": self.parameters},
            "weights": {
                **self.weights.to_dict(),
                "bytes": self.weights_total_bytes,
                "bytes_per_rank": self.weights.bytes,
                "dtype": s.dtype,
            },
            "kv_cache": {
                **self.kv_cache.to_dict(),
                "bytes": self.kv_cache.bytes,
                "bytes_per_token": self.kv_bytes_per_token,
                "bytes_per_sequence": self.kv_bytes_per_sequence,
                "bytes_per_sequence_per_rank": self.kv_bytes_per_sequence_per_rank,
                "dtype": s.kv_dtype,
                "context": s.context,
                "concurrency": s.concurrency,
                "layer_groups": list(self.kv_groups),
            },
            "activations": self.activations.to_dict(),
            "overhead": {
                "bytes": self.overhead_bytes,
                "cuda_context": self.cuda_context.to_dict(),
                "non_torch": self.non_torch.to_dict(),
                "cuda_graphs": self.cuda_graphs.to_dict(),
            },
            "total": {
                "bytes": self.total_bytes,
                "bytes_all_ranks": self.total_bytes * s.tp * s.pp,
                "per": "GPU rank",
            },
            "notes": list(self.notes),
        }


def _serving_dtype(profile: ModelProfile, engine: EngineSizing, requested: str) -> tuple[str, str]:
    if requested != "auto":
        if requested not in DTYPES:
            raise InvalidSettingError(
                "dtype", requested, "unknown", hint="Use one of: " + ", ".join(DTYPES)
            )
        return requested, "--dtype"
    ckpt = profile.weights.checkpoint_dtype or "BF16"
    name = _DTYPE_NAMES[ckpt]
    match engine.auto_dtype:
        case "vllm":
            if ckpt in {"F32", "F64"}:
                return "float16", f"auto: {engine.name} serves a {ckpt} checkpoint in float16"
            return name, f"auto: checkpoint dtype {ckpt}"
        case "f16":
            return "float16", f"auto: {engine.name} runs float16 on GPU"
        case _:
            return name, f"auto: checkpoint dtype {ckpt}"


def _kv_dtype(profile: ModelProfile, requested: str, dtype: str) -> tuple[str, str]:
    if requested not in KV_DTYPES:
        raise InvalidSettingError(
            "kv_dtype", requested, "unknown", hint="Use one of: " + ", ".join(KV_DTYPES)
        )
    if requested != "auto":
        return requested, "--kv-dtype"
    scheme = (profile.quantization or {}).get("kv_cache_scheme")
    if isinstance(scheme, dict) and scheme.get("num_bits") == 8:
        return "fp8", "auto: the checkpoint's kv_cache_scheme (8-bit)"
    return dtype, "auto: the serving dtype"


def resolve_settings(profile: ModelProfile, **knobs: Unpack[SettingsKnobs]) -> ServingSettings:
    """Apply defaults and validate the knobs once, at the boundary.

    Defaults: the engine by the model's kind, dtypes ``auto``, the context at the model's
    maximum capped at 8192, concurrency 1, TP 1, the engine's batched-token budget and
    memory fraction, no quantization what-if.

    Raises:
        InvalidSettingError: a value out of range, with a valid one in the hint.
    """
    engine = knobs.get("engine")
    dtype = knobs.get("dtype", "auto")
    kv_dtype = knobs.get("kv_dtype", "auto")
    context = knobs.get("context")
    concurrency = knobs.get("concurrency", 1)
    tp = knobs.get("tp", 1)
    pp = knobs.get("pp", 1)
    batched_tokens = knobs.get("max_batched_tokens")
    gpu_memory_utilization = knobs.get("gpu_memory_utilization")
    quantization = knobs.get("quantization")
    gguf = profile.weights_source.startswith("gguf")
    name = engine or default_engine(profile.task.kind, gguf=gguf)
    if name not in ENGINES:
        raise InvalidSettingError(
            "engine", name, "unknown engine", hint="Use one of: " + ", ".join(ENGINES)
        )
    eng = ENGINES[name]
    sources: dict[str, str] = {
        "engine": "--engine" if engine else f"default for {profile.task.kind}"
    }
    if concurrency < 1:
        raise InvalidSettingError("concurrency", concurrency, "must be at least 1")
    if tp < 1 or tp & (tp - 1):
        raise InvalidSettingError("tp", tp, "must be a power of two (1, 2, 4, 8)")
    if pp < 1:
        raise InvalidSettingError("pp", pp, "must be at least 1")
    if pp > 1 and name not in {"vllm", "sglang"}:
        raise InvalidSettingError(
            "pp", pp, f"{name} has no pipeline parallelism here",
            hint="Use --engine vllm or sglang for pipeline parallelism across nodes.",
        )  # fmt: skip
    if pp > 1 and profile.arch.num_layers and pp > profile.arch.num_layers:
        raise InvalidSettingError(
            "pp", pp, f"more stages than the {profile.arch.num_layers} layers"
        )
    heads = profile.arch.num_attention_heads
    if tp > 1 and heads and heads % tp:
        raise InvalidSettingError(
            "tp", tp, f"does not divide num_attention_heads={heads}",
            hint="Pick a TP degree that divides the attention head count.",
        )  # fmt: skip
    if gpu_memory_utilization is not None and not 0.05 <= gpu_memory_utilization <= 1.0:
        raise InvalidSettingError(
            "gpu_memory_utilization", gpu_memory_utilization, "must be within 0.05..1.0",
            hint="vLLM's default is 0.9.",
        )  # fmt: skip
    if quantization is not None:
        if quantization not in QUANTIZATIONS:
            raise InvalidSettingError(
                "quantization", quantization, "unknown", hint="Use int8, int4 or fp8."
            )
        if profile.quant_method:
            raise InvalidSettingError(
                "quantization", quantization,
                f"the checkpoint is already quantized ({profile.quant_method})",
                hint="Drop --quantization: its stored bytes are already counted.",
            )  # fmt: skip
    max_ctx = profile.max_context
    if context is None:
        context = min(max_ctx, DEFAULT_CONTEXT_CAP) if max_ctx else DEFAULT_CONTEXT_CAP
        sources["context"] = (
            f"default: model maximum {max_ctx} capped at {DEFAULT_CONTEXT_CAP}"
            if max_ctx and max_ctx > DEFAULT_CONTEXT_CAP
            else f"default: model maximum {max_ctx}" if max_ctx
            else f"default {DEFAULT_CONTEXT_CAP} (the model states no maximum)"
        )  # fmt: skip
    else:
        if context < 1:
            raise InvalidSettingError("context", context, "must be at least 1")
        if max_ctx and context > max_ctx:
            raise InvalidSettingError(
                "context", context, f"exceeds the model's maximum of {max_ctx} tokens",
                hint=f"Use --context {max_ctx} or less (RoPE scaling is not assumed).",
            )  # fmt: skip
        sources["context"] = "--context"
    d, sources["dtype"] = _serving_dtype(profile, eng, dtype)
    kvd, sources["kv_dtype"] = _kv_dtype(profile, kv_dtype, d)
    if batched_tokens is None:
        if eng.batched_tokens is None:
            batched_tokens = context * concurrency
            sources["batched_tokens"] = "concurrency x context (one prefill of every request)"
        else:
            # Engines warm up at their full batch-token budget, so the peak follows it.
            batched_tokens = eng.batched_tokens
            sources["batched_tokens"] = f"{name} default ({eng.batched_tokens_flag})"
    elif batched_tokens < 1:
        raise InvalidSettingError("max_batched_tokens", batched_tokens, "must be at least 1")
    else:
        sources["batched_tokens"] = "--max-batched-tokens"
    util = gpu_memory_utilization if gpu_memory_utilization is not None else eng.memory_fraction
    if gpu_memory_utilization is not None:
        sources["gpu_memory_utilization"] = "--gpu-memory-utilization"
    return ServingSettings(
        engine=name, dtype=d, kv_dtype=kvd, context=context, concurrency=concurrency, tp=tp,
        batched_tokens=batched_tokens, gpu_memory_utilization=util, quantization=quantization,
        block_size=eng.block_size, sources=sources, pp=pp,
    )  # fmt: skip


def _dtype_bytes(name: str) -> float:
    return DTYPE_BITS[DTYPES[name] or "BF16"] / 8


def _weights(profile: ModelProfile, s: ServingSettings) -> tuple[Term, int]:
    w = profile.weights
    b = _dtype_bytes(s.dtype)
    drivers: dict[str, Any] = {"source": w.source, "dtype": s.dtype}
    if profile.weights_source.startswith("gguf"):
        total = w.bytes
        basis = "GGUF tensor bytes as stored (the dtype flag does not apply)"
    else:
        stored_other = w.bytes - w.float_bytes  # quantized storage, scales, buffers: as stored
        floats = w.float_parameters
        if s.quantization:
            linear = w.linear_float_parameters
            q_bits = {"int8": 8, "fp8": 8, "int4": 4}[s.quantization]
            scales = {
                "int8": w.linear_rows * 2,  # per-output-channel fp16 scales
                "fp8": w.linear_rows * 4,  # per-channel fp32 scales
                "int4": math.ceil(linear / 128) * 4,  # group 128: fp16 scale + fp16 zero
            }[s.quantization]
            quantized = math.ceil(linear * q_bits / 8) + scales
            total = stored_other + round((floats - linear) * b) + quantized
            basis = (
                f"what-if {s.quantization}: 2-D non-embedding float weights at {q_bits} bits "
                "plus scales; embeddings, norms at the serving dtype"
            )
            drivers["quantized_parameters"] = linear
        else:
            total = stored_other + round(floats * b)
            basis = "exact bytes from headers; float tensors converted to the serving dtype"
        drivers["float_parameters"] = floats
        drivers["stored_non_float_bytes"] = stored_other
    ckpt_bits = DTYPE_BITS.get(w.checkpoint_dtype or "BF16", 16)
    replicated = round(w.one_dim_bytes * min(1.0, b * 8 / ckpt_bits))
    per_rank = total if s.tp == 1 else math.ceil((total - replicated) / s.tp) + replicated
    if s.tp > 1:
        drivers["tp"] = s.tp
        drivers["replicated_bytes"] = replicated
        basis += "; split over TP ranks, 1-D tensors (norms, biases) replicated"
    if s.pp > 1:
        per_rank = math.ceil(per_rank / s.pp)
        drivers["pp"] = s.pp
        basis += (
            f"; layers split over {s.pp} pipeline stages (even split; the first and last "
            "stages also hold the embeddings)"
        )
    confidence: Confidence = (
        "high" if profile.weights_source != "config (meta device)" else "medium"
    )
    return Term(per_rank, confidence, basis, drivers), total


def _activations(profile: ModelProfile, s: ServingSettings) -> Term:
    a = profile.arch
    eng = ENGINES[s.engine]
    b = _dtype_bytes(s.dtype)
    tp = s.tp
    tokens = s.batched_tokens
    h = a.hidden_size
    kv_group = next((g for g in a.groups if g.kind in {"full", "sliding"}), None)
    head_dim = (
        kv_group.head_dim_k
        if kv_group
        else (h // a.num_attention_heads if a.num_attention_heads else 0)
    )
    q = a.num_attention_heads * head_dim
    kvw = (kv_group.kv_heads * head_dim) if kv_group else q
    if a.moe:
        inter = a.moe.active * a.moe.expert_intermediate_size + a.moe.shared_experts * (
            a.moe.expert_intermediate_size
        )
    else:
        inter = a.intermediate_size
    gated = a.family != "encoder"
    mlp = (3 if gated else 2) * inter / tp
    attn = (2 * q + 2 * kvw) / tp
    per_token = b * (2 * h + max(mlp, attn))
    forward = tokens * per_token
    drivers: dict[str, Any] = {
        "batched_tokens": tokens, "hidden_size": h, "intermediate_size": inter,
        "bytes_per_token": round(per_token),
    }  # fmt: skip
    logits = 0.0
    if profile.task.kind in {"generator", "speech", "seq2seq"} and a.vocab_size:
        rows = min(tokens, s.concurrency)
        copies = 4 if eng.name in {"vllm", "sglang", "tgi"} else 2
        logits = rows * a.vocab_size * 4 * copies
        drivers["logit_rows"] = rows
        drivers["vocab_size"] = a.vocab_size
    moe_extra = 0.0
    if a.moe:
        moe_extra = tokens * (a.moe.num_experts * 4 + a.moe.active * h * b)
        drivers["num_experts"] = a.moe.num_experts
    formula = (
        f"batched_tokens x b x (2 x hidden + max(MLP {'3' if gated else '2'} x intermediate, "
        "attention 2 x (q + kv) widths)) / TP + logits (rows x vocab x 4 B x copies)"
        + (" + MoE routing buffers" if a.moe else "")
    )
    total = forward + logits + moe_extra
    confidence: Confidence = "low"
    if eng.name == "vllm" and profile.parameters >= 3_000_000_000:
        key = (
            "moe" if a.moe else "multimodal" if profile.task.task == "image-text-to-text"
            else "llama" if profile.model_type == "llama"
            else str(profile.model_type) if profile.model_type in {"qwen2", "qwen3"}
            else "dense"
        )  # fmt: skip
        # Not divided by TP: hidden states are replicated on every rank; conservative.
        prior = VLLM_ACTIVATION_PRIORS_GIB[key] * GIB * tokens / 8192
        drivers["llm_d_prior_gib"] = round(prior / GIB, 2)
        if prior > total:
            total = prior
            formula = (
                f"llm-d's measured vLLM peak for {key} models on H100 "
                f"({VLLM_ACTIVATION_PRIORS_GIB[key]} GiB at 8192 batched tokens), scaled by "
                "batched_tokens / 8192 (kept whole on every TP rank); it exceeds the per-token "
                "formula (torch.compile and sampler buffers)"
            )
            confidence = "medium"
    return Term(round(total), confidence, formula, drivers)


def _keeps_cache(profile: ModelProfile, eng: EngineSizing) -> tuple[bool, str]:
    """Whether serving keeps a per-request cache (KV or recurrent state); if not, why."""
    if not eng.kv_cache:
        return False, f"no KV cache: {eng.name} runs one forward pass per request"
    if profile.task.kind in {"embedder", "reranker", "classifier"}:
        return False, f"no KV cache: a {profile.task.task} model runs one forward pass"
    if not profile.arch.has_kv_cache and not any(
        g.kind in {"mamba", "linear"} for g in profile.arch.groups
    ):
        return False, "no KV cache: no layer holds per-request state"
    return True, ""


def estimate_memory(profile: ModelProfile, settings: ServingSettings) -> MemoryEstimate:
    """Estimate GPU memory per rank for a model under serving settings.

    Example:
        >>> s = resolve_settings(profile, context=8192, concurrency=16)  # doctest: +SKIP
        >>> estimate_memory(profile, s).total_bytes  # doctest: +SKIP
    """
    eng = ENGINES[settings.engine]
    notes: list[str] = []
    weights, weights_total = _weights(profile, settings)
    kv_b = KV_DTYPES[settings.kv_dtype] or _dtype_bytes(settings.kv_dtype)
    state_b = _dtype_bytes(settings.dtype)
    uses_kv, no_kv_reason = _keeps_cache(profile, eng)
    if no_kv_reason and profile.arch.has_kv_cache:
        notes.append(no_kv_reason)
    if uses_kv:
        layout = kv_layout(
            profile.arch, context=settings.context, kv_bytes=kv_b, state_bytes=state_b,
            block_size=settings.block_size, batched_tokens=settings.batched_tokens,
            tp=settings.tp, mla_latent=eng.mla_latent,
        )  # fmt: skip
        per_token, per_seq, per_seq_rank = (
            layout.bytes_per_token, layout.bytes_per_sequence, layout.bytes_per_sequence_per_rank,
        )  # fmt: skip
        # Pipeline stages hold their own layers' cache: an even split of the layers.
        per_seq_rank = math.ceil(per_seq_rank / settings.pp)
        groups, formula = layout.groups, layout.formula
        kv_drivers = {
            "context": settings.context, "concurrency": settings.concurrency,
            "kv_dtype": settings.kv_dtype, "block_size": settings.block_size,
            "tp": settings.tp, **{k: v for k, v in profile.arch.drivers.items() if k in {
                "num_key_value_heads", "head_dim", "sliding_window", "layer_types",
                "sliding_window_pattern", "kv_lora_rank", "qk_rope_head_dim", "use_sliding_window",
                "alternation", "max_source_positions", "max_window_layers", "num_hidden_layers",
                "decoder_layers", "multi_query_group_num", "num_kv_heads",
            }},
        }  # fmt: skip
        if any(g.kind == "mla" for g in profile.arch.groups) and not eng.mla_latent:
            notes.append(f"{eng.name} stores MLA as expanded K/V: far more than vLLM's latent")
        basis = f"concurrency x per-request cache at context; {formula}"
    else:
        per_token = per_seq = per_seq_rank = 0
        groups, kv_drivers, basis = (), {}, no_kv_reason
    kv_term = Term(
        per_seq_rank * settings.concurrency,
        "medium" if uses_kv else "high",
        basis + (f"; layers split over {settings.pp} pipeline stages" if settings.pp > 1 else ""),
        kv_drivers,
    )
    acts = _activations(profile, settings)
    ctx = Term(
        CUDA_CONTEXT_BYTES, "low",
        "prior: CUDA context and library workspaces, outside the engine's budget "
        "(619 MiB measured on an H200, torch 2.11 and CUDA 13: benchmarks/results/gpu_memory.json; "
        "varies with driver, CUDA and GPU)",
    )  # fmt: skip
    nt = eng.non_torch_tp1 if settings.tp * settings.pp == 1 else eng.non_torch_tp_many
    non_torch = Term(
        nt, "low",
        "prior: non-torch allocations (NCCL, attention workspaces); llm-d measured 0.13 GiB at "
        "TP=1 and 0.55 GiB per GPU at TP=2 on H100",
        {"tp": settings.tp},
    )  # fmt: skip
    graphs = Term(
        eng.cuda_graphs_bytes, "low",
        "prior: CUDA-graph pools; llm-d measured -0.9 to +0.6 GiB on H100"
        if eng.cuda_graphs_bytes else "no CUDA graphs",
    )  # fmt: skip
    if profile.weights_source == "config (meta device)":
        notes.append("weights counted from config.json, not from headers")
    return MemoryEstimate(
        model=profile.ref, parameters=profile.parameters, settings=settings, weights=weights,
        weights_total_bytes=weights_total, kv_cache=kv_term, kv_bytes_per_token=per_token,
        kv_bytes_per_sequence=per_seq, kv_bytes_per_sequence_per_rank=per_seq_rank,
        kv_groups=groups, activations=acts, cuda_context=ctx, non_torch=non_torch,
        cuda_graphs=graphs, notes=tuple(notes),
    )  # fmt: skip
