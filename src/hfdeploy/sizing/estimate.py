"""ModelProfile + serving settings → MemoryEstimate (docs/architecture.md, "The sizing model").

Pure arithmetic. ``total_per_gpu = weights_per_rank + kv_cache + activations +
overhead`` (CUDA context, non-torch memory, CUDA graphs). Each term names the inputs
and priors that drove it, and how sure it is.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from hfdeploy.catalog.engines import GIB, EngineSizing, EngineSpec, engine_catalog, sizing_engines
from hfdeploy.errors import UnknownLayerTypeError
from hfdeploy.model.profile import ModelProfile
from hfdeploy.model.safetensors import DTYPE_BITS
from hfdeploy.sizing.duplex import duplex_terms
from hfdeploy.sizing.kv import LocalRules, kv_layout
from hfdeploy.sizing.settings import DTYPES, KV_DTYPES, ServingSettings

__all__ = ["CUDA_CONTEXT_BYTES", "MemoryEstimate", "Term", "estimate_memory"]

Confidence = Literal["high", "medium", "low"]

#: CUDA context (driver, cuBLAS/cuDNN workspaces) outside any engine budget: 619 MiB measured
#: on an H200 with torch 2.11 / CUDA 13 (benchmarks/results/gpu_memory.json), rounded up.
CUDA_CONTEXT_BYTES = int(0.625 * GIB)


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
    def engine(self) -> EngineSpec:
        """The catalog entry of the engine whose memory model applies."""
        return engine_catalog()[self.settings.engine]

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
    eng = sizing_engines()[s.engine]
    b = _dtype_bytes(s.dtype)
    tp = s.tp
    tokens = s.batched_tokens
    h = a.hidden_size
    kv_group = next(
        (g for g in a.groups if g.kind in {"full", "sliding", "chunked", "hybrid"}), None
    )
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
        # vLLM's memory profile samples logits for min(batched tokens, max-num-seqs) requests.
        held = s.max_seqs if eng.sampler_rows == "max_seqs" and s.max_seqs else s.concurrency
        rows = min(tokens, held)
        logits = rows * a.vocab_size * 4 * eng.logit_copies
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
    priors = eng.activation_priors_gib
    if priors and profile.parameters >= 3_000_000_000:
        key = (
            "moe" if a.moe else "multimodal" if profile.task.task == "image-text-to-text"
            else "llama" if profile.model_type == "llama"
            else str(profile.model_type) if profile.model_type in {"qwen2", "qwen3"}
            else "dense"
        )  # fmt: skip
        # Not divided by TP: hidden states are replicated on every rank; conservative.
        prior = priors[key] * GIB * tokens / 8192
        drivers["llm_d_prior_gib"] = round(prior / GIB, 2)
        if prior > total:
            total = prior
            formula = (
                f"llm-d's measured vLLM peak for {key} models on H100 "
                f"({priors[key]} GiB at 8192 batched tokens), scaled by "
                "batched_tokens / 8192 (kept whole on every TP rank); it exceeds the per-token "
                "formula (torch.compile and sampler buffers)"
            )
            confidence = "medium"
    return Term(round(total), confidence, formula, drivers)


def _keeps_cache(profile: ModelProfile, eng: EngineSizing) -> tuple[bool, str]:
    """Whether serving keeps a per-request cache (KV or recurrent state); if not, why.

    Raises:
        UnknownLayerTypeError: it does, and some layers are of a type not sized here.
    """
    if not eng.kv_cache:
        return False, f"no KV cache: {eng.name} runs one forward pass per request"
    if profile.task.kind in {"embedder", "reranker", "classifier"}:
        return False, f"no KV cache: a {profile.task.task} model runs one forward pass"
    arch = profile.arch
    if arch.unknown_layers:
        raise UnknownLayerTypeError(
            profile.model_type, dict(arch.unknown_layers), arch.layer_types_source
        )
    if not profile.arch.has_kv_cache and not any(
        g.kind in {"mamba", "linear"} for g in profile.arch.groups
    ):
        return False, "no KV cache: no layer holds per-request state"
    return True, ""


def local_rules(
    eng: EngineSizing, settings: ServingSettings, architectures: tuple[str, ...]
) -> LocalRules:
    """How this engine holds sliding-window and chunked layers of this model."""
    spec = eng.local_layers
    sliding, chunked = spec.sliding, spec.chunked
    if spec.pool_archs and not set(architectures) & set(spec.pool_archs):
        # SGLang's SWA pool is for its allowlist only; other models hold the whole context.
        sliding = "full" if sliding == "pool_ratio" else sliding
        chunked = "full" if chunked == "pool_ratio" else chunked
    batches = settings.pp + spec.in_flight_batches_over_pp
    return LocalRules(
        sliding=sliding, chunked=chunked,
        in_flight_tokens=batches * (settings.batched_tokens or 0),
        ubatch=spec.ubatch, pool_ratio=spec.pool_ratio, pool_slack=spec.pool_slack,
        engine=eng.name,
    )  # fmt: skip


def estimate_memory(profile: ModelProfile, settings: ServingSettings) -> MemoryEstimate:
    """Estimate GPU memory per rank for a model under serving settings.

    Example:
        >>> s = resolve_settings(profile, context=8192, concurrency=16)  # doctest: +SKIP
        >>> estimate_memory(profile, s).total_bytes  # doctest: +SKIP
    """
    eng = sizing_engines()[settings.engine]
    if profile.duplex is not None:
        return _duplex_estimate(profile, settings, eng)
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
            block_size=settings.block_size, tp=settings.tp, mla_latent=eng.mla_latent,
            local=local_rules(eng, settings, profile.architectures),
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
                "attention_chunk_size", "index_head_dim",
            }},
            "layer_types_source": profile.arch.layer_types_source,
        }  # fmt: skip
        if profile.arch.layer_types_assumed:
            notes.append(f"layer types assumed, not read: {profile.arch.layer_types_source}")
        if any(g.kind == "mla" for g in profile.arch.groups) and not eng.mla_latent:
            notes.append(f"{eng.name} stores MLA as expanded K/V: far more than vLLM's latent")
        basis = f"concurrency x per-request cache at context; {formula}"
    else:
        per_token = per_seq = per_seq_rank = 0
        groups, kv_drivers, basis = (), {}, no_kv_reason
    kv_term = Term(
        per_seq_rank * settings.concurrency,
        ("low" if profile.arch.layer_types_assumed else "medium") if uses_kv else "high",
        basis + (f"; layers split over {settings.pp} pipeline stages" if settings.pp > 1 else ""),
        kv_drivers,
    )
    acts = _activations(profile, settings)
    ctx, non_torch, graphs = _overheads(eng, settings)
    if profile.weights_source == "config (meta device)":
        notes.append("weights counted from config.json, not from headers")
    return MemoryEstimate(
        model=profile.ref, parameters=profile.parameters, settings=settings, weights=weights,
        weights_total_bytes=weights_total, kv_cache=kv_term, kv_bytes_per_token=per_token,
        kv_bytes_per_sequence=per_seq, kv_bytes_per_sequence_per_rank=per_seq_rank,
        kv_groups=groups, activations=acts, cuda_context=ctx, non_torch=non_torch,
        cuda_graphs=graphs, notes=tuple(notes),
    )  # fmt: skip


def _overheads(eng: EngineSizing, settings: ServingSettings) -> tuple[Term, Term, Term]:
    """CUDA context, non-torch memory and CUDA graphs: priors, as every engine has them."""
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
    return ctx, non_torch, graphs


def _duplex_estimate(
    profile: ModelProfile, settings: ServingSettings, eng: EngineSizing
) -> MemoryEstimate:
    """A full-duplex server: LM, codecs, one KV ring buffer per session (sizing/duplex.py)."""
    t = duplex_terms(profile, settings, eng)
    d = profile.duplex
    assert d is not None
    w_bytes, w_basis, w_drivers = t["weights"]
    kv_seq, kv_basis, kv_drivers = t["kv"]
    a_bytes, a_basis, a_drivers = t["activations"]
    per_frame = int(kv_drivers["bytes_per_frame"])  # type: ignore[call-overload]
    group = {
        "kind": "ring", "layers": d.layers, "elements_per_token_per_layer": 2 * d.kv_heads
        * d.head_dim, "tokens_held": settings.context, "held": "the ring buffer: "
        f"{settings.context:,} frames of {d.frame_ms} ms", "bytes_per_sequence": kv_seq,
        "window": None, "state_elements_per_layer": 0,
    }  # fmt: skip
    ctx, non_torch, graphs = _overheads(eng, settings)
    return MemoryEstimate(
        model=profile.ref, parameters=profile.parameters, settings=settings,
        weights=Term(w_bytes, "high", w_basis, dict(w_drivers)), weights_total_bytes=w_bytes,
        kv_cache=Term(kv_seq * settings.concurrency, "high",
                      f"concurrency (sessions) x {kv_basis}", dict(kv_drivers)),
        kv_bytes_per_token=per_frame, kv_bytes_per_sequence=kv_seq,
        kv_bytes_per_sequence_per_rank=kv_seq, kv_groups=(group,),
        activations=Term(a_bytes, "medium", a_basis, dict(a_drivers)), cuda_context=ctx,
        non_torch=non_torch, cuda_graphs=graphs,
        notes=(f"full-duplex: --context counts {d.frame_ms} ms frames and --concurrency "
               f"sessions; {eng.name} " + (
                   "steps every session of a process together" if eng.lockstep_sessions
                   else f"holds {eng.sessions_per_process} session per process"),),
    )  # fmt: skip
