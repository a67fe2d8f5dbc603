"""Serving settings: the knobs an estimate depends on, defaulted and validated once.

Pure. Defaults come from the model (its kind, checkpoint dtype, maximum context) and the
engine's catalog entry (batched-token budget, memory fraction, block size). Each resolved
value records where it came from (``sources``): a flag, or which default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict, Unpack

from hfdeploy.catalog.engines import (
    EngineSizing,
    default_engine,
    duplex_engine,
    sizing_engines,
)
from hfdeploy.catalog.gpus import GPU
from hfdeploy.errors import InvalidSettingError
from hfdeploy.model.profile import ModelProfile
from hfdeploy.sizing.defaults import EngineDefaults, engine_defaults

__all__ = [
    "DEFAULT_CONTEXT_CAP",
    "DTYPES",
    "KV_DTYPES",
    "QUANTIZATIONS",
    "ServingSettings",
    "SettingsKnobs",
    "resolve_settings",
]

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
    max_seqs: int | None


@dataclass(frozen=True, slots=True)
class ServingSettings:
    """The knobs an estimate depends on, after defaults are applied."""

    #: The engine whose memory model applies (Triton's vLLM backend: ``vllm``).
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
    #: The most sequences the engine runs at once (vLLM's --max-num-seqs); None: no such knob.
    max_seqs: int | None = None
    #: The GPU the engine's defaults were taken for (None: no GPU).
    gpu: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_settings(
    profile: ModelProfile, *, gpu: GPU | None = None, **knobs: Unpack[SettingsKnobs]
) -> ServingSettings:
    """Apply defaults and validate the knobs once, at the boundary.

    Defaults: the engine by the model's kind, dtypes ``auto``, the context at the model's
    maximum capped at 8192, concurrency 1, TP 1, and the engine's own batched-token budget,
    sequence limit and memory fraction on ``gpu`` (they differ by GPU: vLLM budgets 2,048
    tokens under 70 GiB and 8,192 above), no quantization what-if.

    Raises:
        InvalidSettingError: a value out of range, with a valid one in the hint.
    """
    asked = knobs.get("engine")
    concurrency = knobs.get("concurrency", 1)
    tp, pp = knobs.get("tp", 1), knobs.get("pp", 1)
    util = knobs.get("gpu_memory_utilization")
    quantization = knobs.get("quantization")
    eng, sources = _engine(profile, asked)
    if concurrency < 1:
        raise InvalidSettingError("concurrency", concurrency, "must be at least 1")
    _check_parallelism(profile, eng, tp, pp)
    if util is not None and not 0.05 <= util <= 1.0:
        raise InvalidSettingError(
            "gpu_memory_utilization", util, "must be within 0.05..1.0",
            hint="vLLM's default is 0.9.",
        )  # fmt: skip
    if quantization is not None:
        _check_quantization(profile, quantization)
    context, sources["context"] = _context(profile, knobs.get("context"))
    d, sources["dtype"] = _serving_dtype(profile, eng, knobs.get("dtype", "auto"))
    kvd, sources["kv_dtype"] = _kv_dtype(profile, knobs.get("kv_dtype", "auto"), d)
    defaults = engine_defaults(profile, eng, gpu, tp=tp, pp=pp)
    batched, sources["batched_tokens"] = _batched_tokens(
        eng, defaults, knobs.get("max_batched_tokens"), context * concurrency
    )
    if profile.duplex is not None:  # a step runs one frame of every session, nothing else
        batched, sources["batched_tokens"] = concurrency, "one frame per session per step"
    max_seqs = knobs.get("max_seqs")
    if max_seqs is not None and max_seqs < 1:
        raise InvalidSettingError("max_seqs", max_seqs, "must be at least 1")
    if max_seqs is not None or defaults.max_seqs is not None:
        sources["max_seqs"] = (
            "--max-seqs" if max_seqs else f"{defaults.basis} ({eng.max_seqs_flag})"
        )
    if util is not None:
        sources["gpu_memory_utilization"] = "--gpu-memory-utilization"
    elif defaults.memory_fraction is not None and eng.static_fraction is not None:
        sources["gpu_memory_utilization"] = f"{defaults.basis}, from its memory held back"
    return ServingSettings(
        engine=eng.name, dtype=d, kv_dtype=kvd, context=context, concurrency=concurrency,
        tp=tp, batched_tokens=batched,
        gpu_memory_utilization=util if util is not None else defaults.memory_fraction,
        quantization=quantization, block_size=eng.block_size, sources=sources, pp=pp,
        max_seqs=max_seqs or defaults.max_seqs, gpu=gpu.name if gpu else None,
    )  # fmt: skip


def _engine(profile: ModelProfile, asked: str | None) -> tuple[EngineSizing, dict[str, str]]:
    engines = sizing_engines()
    duplex = profile.duplex
    name = asked or (
        duplex_engine(duplex.variant, duplex.layout) if duplex
        else default_engine(profile.task.kind, gguf=profile.weights_source.startswith("gguf"))
    )  # fmt: skip
    if name not in engines:
        raise InvalidSettingError(
            "engine", name, "unknown engine", hint="Use one of: " + ", ".join(engines)
        )
    eng = engines[name]
    if (duplex and not eng.duplex) or (not duplex and eng.sessions_per_process is not None):
        able = [n for n, e in engines.items()
                if (e.duplex if duplex else e.sessions_per_process is None)]  # fmt: skip
        raise InvalidSettingError(
            "engine", name,
            "does not serve full-duplex speech models (a conversation per WebSocket)" if duplex
            else "serves full-duplex speech models only",
            hint="Use one of: " + ", ".join(dict.fromkeys(able)),
        )  # fmt: skip
    source = "--engine" if asked else f"default for {profile.task.kind}"
    if eng.name != name:
        source += f" ({name} runs {eng.name}: its memory model)"
    return eng, {"engine": source}


def _check_parallelism(profile: ModelProfile, eng: EngineSizing, tp: int, pp: int) -> None:
    if tp < 1 or tp & (tp - 1):
        raise InvalidSettingError("tp", tp, "must be a power of two (1, 2, 4, 8)")
    if pp < 1:
        raise InvalidSettingError("pp", pp, "must be at least 1")
    if pp > 1 and not eng.pipeline_parallel:
        able = [n for n, e in sizing_engines().items() if e.pipeline_parallel and e.name == n]
        raise InvalidSettingError(
            "pp", pp, f"{eng.name} has no pipeline parallelism here",
            hint=f"Use --engine {' or '.join(able)} for pipeline parallelism across nodes.",
        )  # fmt: skip
    layers = profile.arch.num_layers
    if pp > 1 and layers and pp > layers:
        raise InvalidSettingError("pp", pp, f"more stages than the {layers} layers")
    heads = profile.arch.num_attention_heads
    if tp > 1 and heads and heads % tp:
        raise InvalidSettingError(
            "tp", tp, f"does not divide num_attention_heads={heads}",
            hint="Pick a TP degree that divides the attention head count.",
        )  # fmt: skip


def _check_quantization(profile: ModelProfile, quantization: str) -> None:
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


def _context(profile: ModelProfile, context: int | None) -> tuple[int, str]:
    if profile.duplex is not None:
        return _frames(profile.duplex.context_frames, profile.duplex.frame_ms, context)
    max_ctx = profile.max_context
    if context is None:
        default = min(max_ctx, DEFAULT_CONTEXT_CAP) if max_ctx else DEFAULT_CONTEXT_CAP
        return default, (
            f"default: model maximum {max_ctx} capped at {DEFAULT_CONTEXT_CAP}"
            if max_ctx and max_ctx > DEFAULT_CONTEXT_CAP
            else f"default: model maximum {max_ctx}" if max_ctx
            else f"default {DEFAULT_CONTEXT_CAP} (the model states no maximum)"
        )  # fmt: skip
    if context < 1:
        raise InvalidSettingError("context", context, "must be at least 1")
    if max_ctx and context > max_ctx:
        raise InvalidSettingError(
            "context", context, f"exceeds the model's maximum of {max_ctx} tokens",
            hint=f"Use --context {max_ctx} or less (RoPE scaling is not assumed).",
        )  # fmt: skip
    return context, "--context"


def _frames(max_frames: int, frame_ms: int, context: int | None) -> tuple[int, str]:
    """A full-duplex model's context counts frames: its ring buffer holds at most its own."""
    if context is None:
        return max_frames, (
            f"default: the model's {max_frames:,} frames ({max_frames * frame_ms / 1000:g} s)"
        )
    if not 1 <= context <= max_frames:
        raise InvalidSettingError(
            "context", context,
            f"counts {frame_ms} ms frames for this model: 1 to its {max_frames:,}",
            hint=f"Use --context {max_frames} or less (each frame is {frame_ms} ms of audio).",
        )  # fmt: skip
    return context, "--context (frames)"


def _batched_tokens(
    eng: EngineSizing, defaults: EngineDefaults, asked: int | None, every_prefill: int
) -> tuple[int, str]:
    if asked is not None:
        if asked < 1:
            raise InvalidSettingError("max_batched_tokens", asked, "must be at least 1")
        return asked, "--max-batched-tokens"
    if defaults.batched_tokens is None:
        return every_prefill, "concurrency x context (one prefill of every request)"
    # Engines warm up at their full batch-token budget, so the peak follows it.
    return defaults.batched_tokens, f"{defaults.basis} ({eng.batched_tokens_flag})"


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
