"""Cold start (from priors) and cost: dedicated against scale-to-zero, and the break-even.

Pure. Scale-to-zero is modelled as a renewal process under Poisson traffic: a cold start,
up until a gap of ``idle`` with no request, then off until the next request.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from hfdeploy.catalog.engines import EngineDeploy
from hfdeploy.catalog.gpus import GPU
from hfdeploy.model.profile import ModelProfile
from hfdeploy.plan.roofline import Scaling

__all__ = ["ColdStart", "Cost", "billed_share", "break_even_rate", "cold_start", "cost"]

_PULL_GBPS = 0.25  # registry pull, GB/s (prior)
_LOAD_GBPS = 1.0  # weight read from a network volume, GB/s (prior)
_HOURS_PER_MONTH = 730
# Scale-to-zero: an idle replica goes after this long without requests (Inference Endpoints'
# default, "1 hour by default"; Knative, under KServe, waits about a minute).
_IDLE_TIMEOUT_S = 3600.0
# Scale-to-zero is "not worth it" once it saves less than this share of the dedicated bill.
_S2Z_MIN_SAVING = 0.05


@dataclass(frozen=True, slots=True)
class ColdStart:
    """Seconds from nothing to ready, by phase (priors)."""

    image_pull_s: int
    weight_load_s: int
    warmup_s: int
    total_s: int
    #: With the image already on the node.
    cached_image_s: int
    startup_probe_budget_s: int
    basis: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cold_start(name: str, deploy: EngineDeploy, p: ModelProfile) -> ColdStart:
    """The cold start of engine ``name`` loading ``p``: image pull, weight load, warmup."""
    pull = deploy.image_gb / _PULL_GBPS
    load = p.weights.bytes / 1e9 / _LOAD_GBPS
    total = pull + load + deploy.warmup_s
    return ColdStart(
        image_pull_s=round(pull),
        weight_load_s=round(load),
        warmup_s=round(deploy.warmup_s),
        total_s=round(total),
        cached_image_s=round(load + deploy.warmup_s),
        startup_probe_budget_s=int(max(deploy.min_startup_s, math.ceil(2 * total / 10) * 10)),
        basis=f"priors: pull {_PULL_GBPS * 1000:g} MB/s, weights {_LOAD_GBPS:g} GB/s, "
        f"{name} warmup {deploy.warmup_s:g}s",
    )


def billed_share(rate: float, cold_s: float, idle_s: float) -> float:
    """Share of the time a scale-to-zero replica is billed under Poisson traffic at ``rate``/s.

    A cycle: a cold start (``cold_s``, billed), then up until a gap of ``idle_s`` with no
    request (expected (e^(rate*idle) - 1) / rate, the last idle stretch included), then
    off until the next request (1 / rate). Billed share = 1 - 1 / (rate*cold + e^(rate*idle));
    1 minus it is also the share of requests that meet a cold start.
    """
    if rate <= 0:
        return 0.0
    x = rate * idle_s
    if x > 700:  # e^x overflows; the replica never goes idle
        return 1.0
    return 1.0 - 1.0 / (rate * cold_s + math.exp(x))


def break_even_rate(cold_s: float, idle_s: float) -> float:
    """Requests/s above which round-the-clock scale-to-zero saves less than _S2Z_MIN_SAVING."""
    lo, hi = 0.0, 1.0
    for _ in range(200):  # bisection: the billed share rises with the rate
        mid = (lo + hi) / 2
        if 1 - billed_share(mid, cold_s, idle_s) > _S2Z_MIN_SAVING:
            lo = mid
        else:
            hi = mid
    return hi


@dataclass(frozen=True, slots=True)
class Cost:
    """A month of the plan's replicas: dedicated, and scaled to zero when idle."""

    price_per_gpu_hour: float
    dedicated_per_month: float
    scale_to_zero_per_month: float
    scale_to_zero_billed_hours_per_day: float
    active_hours_per_day: float
    idle_timeout_s: float
    cold_start_penalty_s: int
    #: None: no traffic given, so no share of requests is known.
    cold_start_share_of_requests: float | None
    break_even_traffic_rps: float
    break_even_requests_per_hour: float
    cheaper: Literal["scale-to-zero", "dedicated"]
    basis: str

    def to_dict(self) -> dict[str, Any]:
        return {"applies": True, **asdict(self)}


def cost(
    gpu: GPU | None, gpus: int, scaling: Scaling, cold: ColdStart, hours: float
) -> Cost | None:
    """The monthly cost of ``scaling.replicas`` x ``gpus`` x ``gpu``; None without a price."""
    if gpu is None or not gpu.price_per_hour:
        return None
    per_replica_h = gpu.price_per_hour * gpus
    replicas = scaling.replicas
    days = _HOURS_PER_MONTH / 24
    dedicated = per_replica_h * replicas * _HOURS_PER_MONTH
    cold_s, idle_s = float(cold.total_s), _IDLE_TIMEOUT_S
    rate = scaling.traffic_rps
    cold_share: float | None
    if rate:
        # Billed while traffic lasts (by the renewal model), then one idle tail a day.
        share = billed_share(rate, cold_s, idle_s)
        billed_h = hours * share + idle_s / 3600
        cold_share = 1 - share
        if hours + idle_s / 3600 < 24:  # off overnight: the day's first request waits too
            cold_share = min(1.0, cold_share + 1 / max(1.0, rate * hours * 3600))
        how = f"Poisson traffic at {rate:g} req/s for {hours:g} h/day"
    else:
        # No traffic given: up for the active hours, one cold start and one idle tail a day.
        billed_h = hours + (cold_s + idle_s) / 3600
        cold_share = None
        how = f"up {hours:g} h/day (no --traffic: every active hour billed)"
    billed_h = min(24.0, billed_h)
    s2z = per_replica_h * replicas * billed_h * days
    even = break_even_rate(cold_s, idle_s)
    return Cost(
        price_per_gpu_hour=gpu.price_per_hour,
        dedicated_per_month=round(dedicated, 2),
        scale_to_zero_per_month=round(s2z, 2),
        scale_to_zero_billed_hours_per_day=round(billed_h, 2),
        active_hours_per_day=hours,
        idle_timeout_s=idle_s,
        cold_start_penalty_s=cold.total_s,
        cold_start_share_of_requests=None if cold_share is None else round(cold_share, 6),
        break_even_traffic_rps=round(even, 6),
        break_even_requests_per_hour=round(even * 3600, 2),
        cheaper="scale-to-zero" if s2z < dedicated * (1 - _S2Z_MIN_SAVING) else "dedicated",
        basis=f"{replicas} replica(s) x {gpus} x {gpu.name} at ${gpu.price_per_hour}/h "
        f"(indicative, unverified); scale-to-zero: {how}, idle timeout {idle_s:g} s, "
        f"cold start {cold_s:g} s billed; break-even: round-the-clock traffic at which "
        f"scale-to-zero saves under {_S2Z_MIN_SAVING:.0%}",
    )
