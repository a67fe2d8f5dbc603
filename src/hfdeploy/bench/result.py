"""What ``hfdeploy bench`` returns: each phase's summary and checks, the run's envelope, and
the ``--json`` object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hfdeploy.bench.config import BenchConfig, Phase
from hfdeploy.bench.metrics import FORMULAS, Record, parse_slo
from hfdeploy.envelope import Confidence, Envelope

__all__ = ["BenchResult", "PhaseResult"]


@dataclass(slots=True)
class PhaseResult:
    phase: Phase
    summary: dict[str, Any]
    records: list[Record]
    t0: float
    client: dict[str, Any]
    server: dict[str, Any] | None

    def to_dict(self, *, records: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.phase.name,
            "kind": self.phase.kind,
            "concurrency": self.phase.concurrency,
            "rate": self.phase.rate,
            "summary": self.summary,
            "client": self.client,
            "server": self.server,
        }
        if records:
            out["records"] = [r.row(self.t0) for r in self.records]
        return out


@dataclass(slots=True)
class BenchResult:
    config: BenchConfig
    api: str
    model: str | None
    phases: list[PhaseResult]
    token_sources: dict[str, str]
    sweep: dict[str, Any] | None = None
    valid: bool = True
    invalid_reason: str | None = None
    started: str = ""
    preflight: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] | None = None

    @property
    def main(self) -> PhaseResult | None:
        """The phase ``summary`` reports: the only one, else the highest-throughput one."""
        if not self.phases:
            return None
        if len(self.phases) == 1:
            return self.phases[0]
        return max(self.phases, key=lambda p: p.summary["request_throughput"])

    def envelope(self) -> Envelope:
        """The answer: throughput and latency of the main phase, how far to trust them."""
        main = self.main
        if main is None:
            return Envelope("no phase ran", "low", "nothing was measured")
        s = main.summary
        e2e = s["e2e_ms"] or {}
        ttft = s["ttft_ms"] or {}
        result = (
            f"{s['request_throughput']:,.1f} req/s at {main.phase.name} on {self.config.url} "
            f"({self.api}); E2E p50 {e2e.get('p50', '-')} ms, p99 {e2e.get('p99', '-')} ms"
            + (f"; TTFT p50 {ttft['p50']} ms" if ttft else "")
            + f"; {s['errors']} errors of {s['requests']}"
        )
        factors = (
            f"token counts: input from {self.token_sources.get('input', 'none')}, output from "
            f"{self.token_sources.get('output', 'none')}",
            "latency from the intended send time (coordinated omission corrected); "
            "errors are kept out of the percentiles",
            f"{s['requests']} requests in {s['duration_s']} s: short runs have wide tails",
        )
        confidence: Confidence = "high"
        why = "the client kept up and the server's own counter agrees"
        server = main.server
        if not self.valid:
            confidence, why = "low", f"the client fell behind: {self.invalid_reason}"
        elif s["errors"]:
            confidence, why = "medium", f"{s['error_rate']:.1%} of requests failed"
        elif server is None or server.get("client_over_server") is None:
            confidence, why = "medium", "the client kept up; no server-side counter to compare"
        elif abs(server["client_over_server"] - 1) > 0.05:
            confidence = "medium"
            why = f"client and server counts differ: ratio {server['client_over_server']}"
        checks = (
            f"hfdeploy bench {self.config.url} --api {self.api} --profile "
            f"{self.config.profile} --out DIR (per-request records and an HTML report)",
            f"compare with the server's own metrics: curl {self.config.url}/metrics",
        )
        return Envelope(result, confidence, why, factors, checks)

    def to_dict(self, *, records: bool = True) -> dict[str, Any]:
        c = self.config
        main = self.main
        return {
            "hfdeploy": "bench",
            "started": self.started,
            "valid": self.valid,
            "invalid_reason": self.invalid_reason,
            "config": {
                "url": c.url,
                "api": self.api,
                "model": self.model,
                "profile": c.profile,
                "duration_s": c.duration,
                "requests": c.requests,
                "dataset": c.dataset,
                "input_tokens": c.input_tokens,
                "output_tokens": c.output_tokens,
                "batch_size": c.batch_size,
                "slo": parse_slo(c.slo).to_dict(),
                "seed": c.seed,
                "max_concurrency": c.max_concurrency,
                "warmup": c.warmup,
            },
            "token_counts": self.token_sources,
            "formulas": FORMULAS,
            "preflight": self.preflight,
            "summary": main.summary if main else None,
            "summary_phase": main.phase.name if main else None,
            "sweep": self.sweep,
            "phases": [p.to_dict(records=records) for p in self.phases],
            "memory": self.memory,
            "envelope": self.envelope().to_dict(),
        }
