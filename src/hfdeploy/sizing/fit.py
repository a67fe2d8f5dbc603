"""MemoryEstimate x GPU catalog → which GPUs fit, how many, at what context x concurrency.

Pure. For engines with a memory fraction (vLLM, SGLang), everything but the CUDA
context must fit in ``memory x fraction``, and the context in the rest; otherwise the
whole total must fit in the GPU's memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from hfdeploy.catalog.gpus import GPU
from hfdeploy.errors import InvalidSettingError
from hfdeploy.model.profile import ModelProfile
from hfdeploy.sizing.estimate import MemoryEstimate, estimate_memory

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def budget_bytes(est: MemoryEstimate, gpu: GPU) -> tuple[int, int]:
    """(budget, needed): what the engine may use on this GPU, and what the estimate needs."""
    fraction = est.settings.gpu_memory_utilization
    if fraction is None or fraction >= 1.0:
        # A fraction of 1 (TGI's CUDA_MEMORY_FRACTION default) is the whole GPU: the
        # CUDA context then shares it with everything else rather than sitting outside.
        return gpu.memory_bytes, est.total_bytes
    return int(gpu.memory_bytes * fraction), est.total_bytes - est.cuda_context.bytes


def fits_on(est: MemoryEstimate, gpu: GPU) -> tuple[bool, int, str]:
    """Whether the estimate fits one rank on this GPU: (fits, headroom, reason)."""
    budget, needed = budget_bytes(est, gpu)
    headroom = budget - needed
    fraction = est.settings.gpu_memory_utilization
    if fraction is not None and fraction < 1.0:
        outside = gpu.memory_bytes - budget
        if est.cuda_context.bytes > outside:
            return (
                False,
                headroom,
                (
                    f"the CUDA context needs {est.cuda_context.bytes / 2**30:.2f} GiB outside the "
                    f"{fraction:.2f} fraction; lower the fraction"
                ),
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


def _max_context(profile: ModelProfile, est: MemoryEstimate, gpu: GPU) -> int | None:
    if not est.kv_bytes_per_sequence_per_rank:
        return profile.max_context
    cap = profile.max_context or est.settings.context
    lo, hi = 0, cap

    def ok(ctx: int) -> bool:
        trial = estimate_memory(profile, replace(est.settings, context=ctx))
        return fits_on(trial, gpu)[0]

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


def _min_tp(profile: ModelProfile, est: MemoryEstimate, gpu: GPU) -> int | None:
    if not est.engine.tensor_parallel:
        return 1 if fits_on(estimate_memory(profile, replace(est.settings, tp=1)), gpu)[0] else None
    heads = profile.arch.num_attention_heads
    for tp in TP_DEGREES:
        if heads and heads % tp:
            continue
        if fits_on(estimate_memory(profile, replace(est.settings, tp=tp)), gpu)[0]:
            return tp
    return None


def fit_table(profile: ModelProfile, est: MemoryEstimate, gpus: Sequence[GPU]) -> list[FitRow]:
    """One row per GPU: fit at the estimate's TP, limits, and the smallest TP that fits."""
    if not gpus:
        raise InvalidSettingError("gpu", gpus, "no GPU to fit against")
    rows = []
    for gpu in gpus:
        fits, headroom, reason = fits_on(est, gpu)
        budget, needed = budget_bytes(est, gpu)
        min_tp = _min_tp(profile, est, gpu)
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
                max_context=_max_context(profile, est, gpu),
                min_count=min_tp,
                min_tp=min_tp,
                reason=reason,
            )
        )
    return rows
