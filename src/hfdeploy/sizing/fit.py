"""MemoryEstimate x GPU catalog → which GPUs fit, how many, at what context x concurrency.

Pure. Each GPU is judged with the engine's own defaults on it (vLLM's batched-token budget and
SGLang's memory fraction depend on the GPU). Engines with a memory fraction budget it one of
two ways: vLLM fits everything but the CUDA context into ``memory x fraction``; SGLang fits its
weights and KV pool there and activations, graphs and the CUDA context into the rest. Other
engines fit the whole total into the GPU's memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from hfdeploy.catalog.gpus import GPU
from hfdeploy.errors import InvalidSettingError
from hfdeploy.model.profile import ModelProfile
from hfdeploy.sizing.estimate import MemoryEstimate, estimate_memory
from hfdeploy.sizing.settings import resolve_settings

__all__ = ["FitRow", "budget_bytes", "fit_table", "fits_on"]

TP_DEGREES = (1, 2, 4, 8)


@dataclass(frozen=True, slots=True)
class FitRow:
    """One GPU type: does the estimate fit at ``count`` GPUs, and what would."""

    gpu: str
    count: int
    fits: bool
    memory_bytes: int
    budget_bytes: int
    needed_bytes: int
    headroom_bytes: int
    max_concurrency: int | None
    max_context: int | None
    min_count: int | None
    min_tp: int | None
    reason: str
    #: The batched-token budget on this GPU (the engine's default there, or the flag's).
    batched_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _split_fraction(est: MemoryEstimate) -> bool:
    """The fraction covers weights and the KV pool only (SGLang)."""
    sizing = est.engine.sizing
    return sizing is not None and sizing.fraction_covers == "weights_and_kv"


def budget_bytes(est: MemoryEstimate, gpu: GPU) -> tuple[int, int]:
    """(budget, needed): what the engine may use on this GPU, and what the estimate needs."""
    fraction = est.settings.gpu_memory_utilization
    if fraction is None or fraction >= 1.0:
        # A fraction of 1 (TGI's CUDA_MEMORY_FRACTION default) is the whole GPU: the
        # CUDA context then shares it with everything else rather than sitting outside.
        return gpu.memory_bytes, est.total_bytes
    if _split_fraction(est):
        return int(gpu.memory_bytes * fraction), est.weights.bytes + est.kv_cache.bytes
    return int(gpu.memory_bytes * fraction), est.total_bytes - est.cuda_context.bytes


def fits_on(est: MemoryEstimate, gpu: GPU) -> tuple[bool, int, str]:
    """Whether the estimate fits one rank on this GPU: (fits, headroom, reason)."""
    budget, needed = budget_bytes(est, gpu)
    headroom = budget - needed
    fraction = est.settings.gpu_memory_utilization
    if fraction is not None and fraction < 1.0:
        outside = gpu.memory_bytes - budget
        rest = est.total_bytes - needed if _split_fraction(est) else est.cuda_context.bytes
        if rest > outside:
            what = (
                "activations, graphs and the CUDA context"
                if _split_fraction(est)
                else ("the CUDA context")
            )
            return (
                False,
                headroom,
                f"{what} need {rest / 2**30:.2f} GiB outside the {fraction:.2f} fraction; "
                "lower the fraction",
            )
    # Headroom >= 0 already holds ``concurrency`` requests at the context, so vLLM's
    # "one request does not fit the KV cache" failure needs no check of its own.
    if headroom < 0:
        return False, headroom, "over budget"
    return True, headroom, "fits"


def _kv_free(est: MemoryEstimate, gpu: GPU) -> int:
    budget, needed = budget_bytes(est, gpu)
    return budget - (needed - est.kv_cache.bytes)


def _max_concurrency(est: MemoryEstimate, gpu: GPU) -> int | None:
    per_seq = est.kv_bytes_per_sequence_per_rank
    if not per_seq:
        return None
    return max(0, _kv_free(est, gpu) // per_seq)


Resolver = Callable[..., MemoryEstimate]


def _max_context(profile: ModelProfile, est: MemoryEstimate, gpu: GPU, at: Resolver) -> int | None:
    if not est.kv_bytes_per_sequence_per_rank:
        return profile.max_context
    cap = profile.max_context or est.settings.context
    lo, hi = 0, cap

    def ok(ctx: int) -> bool:
        return fits_on(at(context=ctx), gpu)[0]

    if ok(hi):
        return hi
    while hi - lo > 16:
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    # lo fitted (or is 0: nothing does); whole blocks of 16 read better and still fit
    return lo - lo % 16 if lo >= 16 else lo or None


def _min_tp(profile: ModelProfile, est: MemoryEstimate, gpu: GPU, at: Resolver) -> int | None:
    if not est.engine.tensor_parallel:
        return 1 if fits_on(at(tp=1), gpu)[0] else None
    heads = profile.arch.num_attention_heads
    for tp in TP_DEGREES:
        if heads and heads % tp:
            continue
        if fits_on(at(tp=tp), gpu)[0]:
            return tp
    return None


def fit_table(profile: ModelProfile, gpus: Sequence[GPU], knobs: Mapping[str, Any]) -> list[FitRow]:
    """One row per GPU, with the engine's defaults on that GPU unless ``knobs`` set them: fit
    at the knobs' TP, the largest concurrency and context, and the smallest TP that fits."""
    if not gpus:
        raise InvalidSettingError("gpu", gpus, "no GPU to fit against")
    rows = []
    for gpu in gpus:

        def at(gpu: GPU = gpu, **change: Any) -> MemoryEstimate:
            return estimate_memory(
                profile, resolve_settings(profile, gpu=gpu, **(dict(knobs) | change))
            )

        est = at()
        fits, headroom, reason = fits_on(est, gpu)
        budget, needed = budget_bytes(est, gpu)
        min_tp = _min_tp(profile, est, gpu, at)
        rows.append(
            FitRow(
                gpu=gpu.name,
                count=est.settings.tp,
                fits=fits,
                memory_bytes=gpu.memory_bytes,
                budget_bytes=budget,
                needed_bytes=needed,
                headroom_bytes=headroom,
                max_concurrency=_max_concurrency(est, gpu),
                max_context=_max_context(profile, est, gpu, at),
                min_count=min_tp,
                min_tp=min_tp,
                reason=reason,
                batched_tokens=est.settings.batched_tokens,
            )
        )
    return rows
