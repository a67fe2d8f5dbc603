"""One measured phase (its summary, the client's checks on itself, the server's counter) and
the sweep: synchronous, throughput, then constant rates in between, with its verdict."""

from __future__ import annotations

import time
from typing import Any

from hfdeploy.bench.config import BenchConfig, Phase
from hfdeploy.bench.counters import server_count
from hfdeploy.bench.drivers import RunContext, closed_loop, open_loop
from hfdeploy.bench.metrics import Slo, percentiles, summarize
from hfdeploy.bench.result import BenchResult, PhaseResult
from hfdeploy.errors import ClientBottleneckError

__all__ = [
    "CPU_LIMIT", "PhaseBottleneck", "expected_requests", "run_phase", "run_sweep", "sweep_verdict",
]  # fmt: skip

#: Fail a phase when the client used more than this share of one core.
CPU_LIMIT = 0.95
#: Fail an open-loop phase when dispatches fell this far behind schedule (p99), or when the
#: dispatched rate was below this share of the offered rate.
LAG_LIMIT_S = 0.05
RATE_SHARE = 0.95


async def run_phase(ctx: RunContext, phase: Phase) -> PhaseResult:
    """Run one phase: its records and summary, the client's CPU and dispatch lag, and the
    server's counter before and after.

    Raises:
        PhaseBottleneck: the client fell behind (unless ``no_client_check``).
    """
    cfg = ctx.cfg
    before = await server_count(ctx.pool, ctx.headers, ctx.api.path)
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    lags: list[float] = []
    if phase.kind == "closed":
        deadline = wall0 + cfg.duration if cfg.duration is not None else None
        records = await closed_loop(ctx, phase.concurrency or 1, deadline, cfg.requests)
    else:
        records, lags = await open_loop(ctx, phase, cfg.duration, cfg.requests)
    wall = time.perf_counter() - wall0
    cpu = (time.thread_time() - cpu0) / wall if wall > 0 else 0.0
    after = await server_count(ctx.pool, ctx.headers, ctx.api.path)
    summary = summarize(records, streaming=ctx.api.streaming, slo=ctx.slo, offered_rate=phase.rate)
    t0 = min((r.intended for r in records), default=wall0)
    client: dict[str, Any] = {"cpu_share_of_one_core": round(cpu, 3)}
    if phase.kind != "closed" and records:
        span = max(records[-1].intended - t0, 1e-9)
        sent_rate = (len(records) - 1) / span if len(records) > 1 else None
        client |= {
            "dispatch_lag_ms": percentiles(lags),
            "offered_rate": phase.rate,
            "dispatched_rate": None if sent_rate is None else round(sent_rate, 2),
        }
    server = None
    if before is not None and after is not None:
        delta = after[1] - before[1]
        rate = delta / summary["duration_s"] if summary["duration_s"] else 0.0
        server = {
            "counter": after[0],
            "requests": delta,
            "request_throughput": round(rate, 3),
            "client_over_server": round(summary["request_throughput"] / rate, 4) if rate else None,
        }
    result = PhaseResult(phase, summary, records, t0, client, server)
    if not cfg.no_client_check:
        _check_kept_up(result)
    return result


def _check_kept_up(result: PhaseResult) -> None:
    client = result.client
    if client["cpu_share_of_one_core"] > CPU_LIMIT:
        raise PhaseBottleneck(
            result,
            ClientBottleneckError(
                f"phase {result.phase.name}: the client used "
                f"{client['cpu_share_of_one_core']:.0%} of a core (limit {CPU_LIMIT:.0%})",
                offered=result.phase.rate,
                achieved=result.summary["request_throughput"],
            ),
        )
    lag = client.get("dispatch_lag_ms")
    offered = result.phase.rate
    dispatched = client.get("dispatched_rate")
    behind = lag is not None and lag["p99"] > LAG_LIMIT_S * 1000
    slow = offered and dispatched is not None and dispatched < RATE_SHARE * offered
    if behind or slow:
        raise PhaseBottleneck(
            result,
            ClientBottleneckError(
                f"phase {result.phase.name}: offered {offered:g} req/s, dispatched "
                f"{dispatched} req/s; dispatch lag p99 {lag['p99'] if lag else 0:.1f} ms "
                f"(limits: {RATE_SHARE:.0%} of the rate, {LAG_LIMIT_S * 1000:.0f} ms)",
                offered=offered,
                achieved=dispatched,
            ),
        )


class PhaseBottleneck(Exception):
    """A phase ran but the client fell behind: the result is kept, the run marked invalid."""

    def __init__(self, result: PhaseResult, error: ClientBottleneckError) -> None:
        super().__init__(error.message)
        self.result = result
        self.error = error


def expected_requests(cfg: BenchConfig, phase: Phase) -> int | None:
    """Requests a phase will send, when known in advance (for the progress bar)."""
    if cfg.requests is not None:
        return cfg.requests
    if phase.rate and cfg.duration:
        return int(phase.rate * cfg.duration)
    return None


async def run_sweep(ctx: RunContext, result: BenchResult) -> dict[str, Any]:
    """Synchronous, throughput, then ``sweep_size - 2`` constant rates evenly between their
    throughputs, appended to ``result.phases``; the sweep's verdict."""
    cfg = ctx.cfg
    steps = [Phase("synchronous", "closed", concurrency=1),
             Phase("throughput", "closed", concurrency=cfg.max_concurrency)]  # fmt: skip
    for phase in steps:
        if ctx.progress:
            ctx.progress("phase", 0, expected_requests(cfg, phase))
        result.phases.append(await run_phase(ctx, phase))
    low = result.phases[0].summary["request_throughput"]
    high = result.phases[1].summary["request_throughput"]
    k = cfg.sweep_size - 2
    rates = [low + (high - low) * (i + 1) / (k + 1) for i in range(k)]
    for rate in rates:
        if rate <= 0:
            continue
        phase = Phase(f"constant:{rate:.3g}", "constant", rate=round(rate, 3))
        if ctx.progress:
            ctx.progress("phase", 0, expected_requests(cfg, phase))
        result.phases.append(await run_phase(ctx, phase))
    return sweep_verdict(result.phases, ctx.slo)


def sweep_verdict(phases: list[PhaseResult], slo: Slo) -> dict[str, Any]:
    """The saturation knee and the highest rate meeting the SLOs, from a sweep's phases.

    Knee: the highest constant rate served at >= 95% of the offered rate with p50 E2E at most
    twice the synchronous p50. SLO rate: the highest constant rate with no errors and the p99
    of every SLO metric within its limit.
    """
    sync = phases[0].summary
    base = (sync["e2e_ms"] or {}).get("p50")
    rated = sorted((p for p in phases if p.phase.rate), key=lambda p: p.phase.rate or 0.0)
    knee = None
    best = None
    for p in rated:
        s = p.summary
        rate = p.phase.rate or 0.0
        p50 = (s["e2e_ms"] or {}).get("p50")
        if (
            s["request_throughput"] >= RATE_SHARE * rate
            and base is not None
            and p50 is not None
            and p50 <= 2 * base
        ):
            knee = rate
        ok = s["errors"] == 0 and not slo.empty
        for key, limit in (("ttft_ms", slo.ttft), ("tpot_ms", slo.tpot), ("e2e_ms", slo.e2e)):
            if limit is not None:
                p99 = (s.get(key) or {}).get("p99")
                ok = ok and p99 is not None and p99 <= limit * 1000
        if ok:
            best = rate
    return {
        "synchronous_throughput": sync["request_throughput"],
        "max_throughput": phases[1].summary["request_throughput"] if len(phases) > 1 else None,
        "knee_rate": knee,
        "max_rate_meeting_slo": best,
        "rule": "knee: highest rate served at >= 95% of offered with p50 E2E <= 2x the "
        "synchronous p50; SLO rate: highest rate with no errors and each SLO's p99 within it",
    }
