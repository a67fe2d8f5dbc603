"""The cheapest configuration that meets the request, before more GPUs.

Pure. For each candidate GPU type and count, the engine first runs at its own defaults on
that GPU; when those do not fit, the knobs that trade throughput (or, last, accuracy) for
memory are tried in order of what they cost: a smaller batched-token budget (a slower
prefill), an fp8 KV cache where the GPU computes in fp8, a shorter context when none was
asked for, fp8 weights. Every candidate that fits is priced for the traffic (replicas at its
own expected speed); ``prefer="cost"`` takes the cheapest, ``prefer="latency"`` the cheapest
at the engine's defaults, when one fits.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

from hfdeploy.catalog.engines import EngineSpec
from hfdeploy.catalog.gpus import GPU
from hfdeploy.errors import InvalidSettingError
from hfdeploy.model.profile import ModelProfile
from hfdeploy.plan.roofline import roofline, scaling
from hfdeploy.sizing.estimate import estimate_memory
from hfdeploy.sizing.fit import fits_on
from hfdeploy.sizing.report import SizeReport, size_model
from hfdeploy.sizing.settings import resolve_settings

__all__ = ["Candidate", "Prefer", "Trades", "search"]

Prefer = Literal["cost", "latency"]

_TP_DEGREES = (1, 2, 4, 8)
_MIN_BATCHED = 512  # below this a prefill step is mostly fixed overhead
_MIN_CONTEXT = 2048


@dataclass(frozen=True, slots=True)
class Trades:
    """What a configuration gives up against the engine's defaults, mildest first."""

    batched_tokens: int | None = None
    kv_fp8: bool = False
    context: int | None = None
    quantization: str | None = None

    @property
    def level(self) -> int:
        """0: the defaults; 1: a smaller prefill budget; 2: fp8 KV; 3: a shorter context;
        4: fp8 weights."""
        return (4 if self.quantization else 3 if self.context else 2 if self.kv_fp8
                else 1 if self.batched_tokens else 0)  # fmt: skip

    def knobs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.batched_tokens:
            out["max_batched_tokens"] = self.batched_tokens
        if self.kv_fp8:
            out["kv_dtype"] = "fp8"
        if self.context:
            out["context"] = self.context
        if self.quantization:
            out["quantization"] = self.quantization
        return out

    def words(self) -> list[str]:
        return [
            *([f"{self.batched_tokens:,} batched tokens"] if self.batched_tokens else []),
            *(["an fp8 KV cache"] if self.kv_fp8 else []),
            *([f"a {self.context:,}-token context"] if self.context else []),
            *([f"{self.quantization} weights"] if self.quantization else []),
        ]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One GPU type and count at one set of trades, fitting or not, with its price."""

    gpu: GPU
    tp: int
    trades: Trades
    report: SizeReport
    fits: bool
    replicas: int = 1
    #: The engine's own batched-token budget on this GPU (what a smaller one is measured by).
    default_batched: int | None = None

    @property
    def per_hour(self) -> float:
        """All its replicas, by the hour (GPUs with no price count as very dear)."""
        return (self.gpu.price_per_hour or 1e6) * self.tp * self.replicas

    def label(self) -> str:
        trades = self.trades.words()
        return f"{self.tp} x {self.gpu.name}" + (
            f" at {' and '.join(trades)}" if trades else " at the engine's defaults"
        )


def _halvings(start: int, floor: int) -> Iterator[int]:
    value = start // 2
    while value >= floor:
        yield value
        value //= 2


def ladder(
    spec: EngineSpec,
    gpu: GPU,
    *,
    default_batched: int | None,
    context: int,
    context_given: bool,
    last_resort: bool = False,
) -> Iterator[Trades]:
    """Configurations to try on ``gpu``, from the engine's defaults to the costliest trades.
    ``last_resort``: also a shorter context (when none was asked for) and fp8 weights, which
    change what the deployment can do or answer, not only how fast: tried only when nothing
    else fits on one node."""
    d = spec.deploy
    yield Trades()
    smaller = list(_halvings(default_batched, _MIN_BATCHED)) if default_batched else []
    if d is not None and "batch_tokens" in d.flags:
        yield from (Trades(batched_tokens=b) for b in smaller)
    floor = smaller[-1] if smaller and "batch_tokens" in (d.flags if d else {}) else None
    fp8_kv = bool(d and d.kv_fp8 and gpu.fp8_tflops)
    if fp8_kv:
        yield Trades(kv_fp8=True)
        if floor:
            yield from (Trades(batched_tokens=b, kv_fp8=True) for b in smaller)
    if not last_resort:
        return
    if not context_given:
        for c in _halvings(context, _MIN_CONTEXT):
            yield Trades(batched_tokens=floor, kv_fp8=fp8_kv, context=c)
    if "fp8" in spec.quantizations and gpu.fp8_tflops:
        yield Trades(quantization="fp8")
        yield Trades(batched_tokens=floor, kv_fp8=fp8_kv, quantization="fp8")


def _fits(
    p: ModelProfile, spec: EngineSpec, gpu: GPU, tp: int, knobs: dict[str, Any], t: Trades
) -> bool | None:
    """Whether it fits (one estimate: the search tries many); None: not a valid setting."""
    try:
        s = resolve_settings(p, gpu=gpu, engine=spec.name, tp=tp, **(knobs | t.knobs()))
    except InvalidSettingError:
        return None  # e.g. TP that does not divide the heads
    return fits_on(estimate_memory(p, s), gpu)[0]


def _size(
    p: ModelProfile, spec: EngineSpec, gpu: GPU, tp: int, knobs: dict[str, Any], t: Trades
) -> SizeReport:
    report = size_model(p, gpu=gpu.name, engine=spec.name, tp=tp, **(knobs | t.knobs()))
    return _settle_max_seqs(p, spec, gpu, tp, knobs | t.knobs(), report)


def _settle_max_seqs(
    p: ModelProfile, spec: EngineSpec, gpu: GPU, tp: int, knobs: dict[str, Any], r: SizeReport
) -> SizeReport:
    """Run no more sequences than the KV cache holds at the full context (the deployment's
    --max-num-seqs), and size for that many: the sampler's buffers follow it."""
    s, fit = r.estimate.settings, r.fits[0] if r.fits else None
    if not (fit and fit.fits and fit.max_concurrency and s.max_seqs):
        return r
    most = max(1, min(fit.max_concurrency, s.max_seqs))
    if most == s.max_seqs:
        return r
    return size_model(p, gpu=gpu.name, engine=spec.name, tp=tp, max_seqs=most, **knobs)


def search(
    p: ModelProfile,
    spec: EngineSpec,
    gpus: list[GPU],
    knobs: dict[str, Any],
    *,
    prefer: Prefer = "cost",
    traffic: float | None = None,
    slo_ms: float | None = None,
    output_tokens: int = 256,
) -> tuple[Candidate | None, list[Candidate]]:
    """The chosen configuration on one node (None: none fits), and every candidate looked at:
    for each GPU type and count, the first rung of its ladder that fits (or its defaults,
    which did not)."""
    seen = _candidates(p, spec, gpus, knobs, last_resort=False)
    if not any(c.fits for c in seen):
        seen = _candidates(p, spec, gpus, knobs, last_resort=True)
    seen = [_priced(c, p, traffic, slo_ms, output_tokens) if c.fits else c for c in seen]
    fitting = [c for c in seen if c.fits]
    if not fitting:
        return None, seen

    def key(c: Candidate) -> tuple[Any, ...]:
        if prefer == "latency":
            return (c.trades.level > 0, c.per_hour, c.trades.level)
        return (c.per_hour, c.trades.level, c.tp)

    return min(fitting, key=key), seen


def _candidates(
    p: ModelProfile, spec: EngineSpec, gpus: list[GPU], knobs: dict[str, Any], *, last_resort: bool
) -> list[Candidate]:
    """For each GPU type and count, the first rung of its ladder that fits (or its defaults,
    which did not); more GPUs of a type stop at the first count that fits at the defaults."""
    degrees = _TP_DEGREES if spec.tensor_parallel else (1,)
    context_given = "context" in knobs
    seen: list[Candidate] = []
    for gpu in gpus:
        for tp in degrees:
            try:
                s = resolve_settings(p, gpu=gpu, engine=spec.name, tp=tp, **knobs)
            except InvalidSettingError:
                continue  # e.g. TP that does not divide the heads
            rungs = ladder(spec, gpu, default_batched=s.batched_tokens, context=s.context,
                           context_given=context_given, last_resort=last_resort)  # fmt: skip
            t = next((t for t in rungs if _fits(p, spec, gpu, tp, knobs, t)), None)
            report = _size(p, spec, gpu, tp, knobs, t or Trades())
            seen.append(Candidate(gpu, tp, t or Trades(), report, t is not None,
                                  default_batched=s.batched_tokens))  # fmt: skip
            if t == Trades():
                break  # more GPUs of this type only cost more at the same defaults
    return seen


def _priced(
    c: Candidate, p: ModelProfile, traffic: float | None, slo_ms: float | None, n_out: int
) -> Candidate:
    roof = roofline(p, c.report, c.gpu, c.tp, n_out)
    return replace(c, replicas=scaling(roof, traffic, slo_ms, c.tp).replicas)


def prefill_slowdown(p: ModelProfile, report: SizeReport, gpu: GPU, tp: int, default: int) -> float:
    """How much slower a prefill runs at the report's batched tokens than at ``default``: one
    chunk reads the weights once or does 2 FLOPs per parameter per token, whichever is longer."""
    e = report.estimate
    flops = (gpu.bf16_tflops or gpu.fp16_tflops or 0) * 1e12
    if not flops:
        return 0.0
    weights_s = e.weights.bytes / (gpu.bandwidth_gbps * 1e9)

    def rate(tokens: int) -> float:
        return tokens / max(weights_s, 2 * p.parameters / tp * tokens / flops)

    return max(0.0, 1 - rate(e.settings.batched_tokens) / rate(default))


def percent(x: float) -> str:
    """``~12%``, rounded up so a real slowdown never reads as 0%."""
    return f"~{math.ceil(x * 100)}%"


_HOURS_PER_MONTH = 730


@dataclass(frozen=True, slots=True)
class Alternative:
    """A configuration looked at, with what it would cost a month (its replicas included)."""

    placement: str
    fits: bool
    per_month: float
    chosen: bool
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"placement": self.placement, "fits": self.fits, "chosen": self.chosen,
                "per_month": round(self.per_month, 2), "why": self.why}  # fmt: skip


def explain(
    p: ModelProfile,
    spec: EngineSpec,
    chosen: Candidate,
    seen: list[Candidate],
    *,
    gpu_given: bool,
    prefer: Prefer,
) -> tuple[list[str], tuple[Alternative, ...]]:
    """The reasons for the chosen configuration, and the others with their monthly cost."""
    s, fit = chosen.report.estimate.settings, chosen.report.fits[0]
    month = chosen.per_hour * _HOURS_PER_MONTH
    held = f"weights, KV cache at {s.context:,} tokens x {s.concurrency} and overheads fit"
    headroom = f"{fit.headroom_bytes / 2**30:.1f} GiB headroom"
    if chosen.trades.level == 0:
        reason = (f"{chosen.tp} x {chosen.gpu.name} at {spec.name}'s defaults there "
                  f"({s.batched_tokens:,} batched tokens): {held} ({headroom})")  # fmt: skip
        cheaper = any(c.fits and c.per_hour < chosen.per_hour for c in seen)
        if not gpu_given and not cheaper:
            reason += "; the cheapest fitting configuration in the catalog"
    else:
        reason = f"{chosen.label()}{_costs(p, chosen)}: {held} ({headroom})"
        dearer = [c for c in seen if c.fits and c.trades.level == 0]
        if dearer:
            alt = min(dearer, key=lambda c: c.per_hour)
            reason += (f"; instead of {alt.label()}: ${month:,.0f}/month against "
                       f"${alt.per_hour * _HOURS_PER_MONTH:,.0f}")  # fmt: skip
    reasons = [reason]
    if (
        prefer == "latency"
        and chosen.trades.level == 0
        and any(c.fits and c.per_hour < chosen.per_hour for c in seen)
    ):
        reasons.append("--prefer latency: the engine's defaults, not a cheaper traded setting")
    alternatives = tuple(
        Alternative(c.label() if c.fits else f"{c.tp} x {c.gpu.name} at the engine's defaults",
                    c.fits, c.per_hour * _HOURS_PER_MONTH, c is chosen, _why_not(c, chosen))
        for c in sorted(seen, key=lambda c: (c.per_hour, c.trades.level))[:8]
    )  # fmt: skip
    return reasons, alternatives


def _costs(p: ModelProfile, c: Candidate) -> str:
    """What each trade costs, in words."""
    out = []
    t, s = c.trades, c.report.estimate.settings
    if t.batched_tokens and c.default_batched:
        default = c.default_batched
        slower = prefill_slowdown(p, c.report, c.gpu, c.tp, default)
        out.append(f"prefill {percent(slower)} slower than at the default {default:,} tokens")
    if t.kv_fp8:
        out.append("fp8 keys and values: half the KV memory, a small accuracy cost")
    if t.context:
        out.append(f"requests up to {s.context:,} tokens")
    if t.quantization:
        out.append("fp8 weights quantized on the fly: check your evals")
    return f" ({'; '.join(out)})" if out else ""


def _why_not(c: Candidate, chosen: Candidate) -> str:
    if c is chosen:
        return "chosen"
    if not c.fits:
        fit = c.report.fits[0]
        return (f"does not fit: {-fit.headroom_bytes / 2**30:.1f} GiB over at the defaults, "
                "and no trade made it fit")  # fmt: skip
    more = c.per_hour - chosen.per_hour
    if more > 0:
        return f"fits, ${more * _HOURS_PER_MONTH:,.0f}/month more"
    return "fits, at a trade the chosen configuration does not make"
