"""Per-request records into the report's numbers. Pure arithmetic, formulas stated.

Clock: ``time.perf_counter()`` of the client, in seconds. Every latency starts at the
request's *intended* send time: for closed-loop profiles that is when it was sent; for
open-loop ones it is the schedule's time, so queueing inside the client (coordinated
omission) counts as latency and is also reported on its own as ``send_lag``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "FORMULAS",
    "PERCENTILES",
    "Record",
    "Slo",
    "parse_slo",
    "percentiles",
    "summarize",
]

PERCENTILES = (50, 90, 95, 99, 99.9)

FORMULAS = {
    "ttft_ms": "TTFT = t_first_content - t_intended (first chunk that carries output)",
    "tpot_ms": "TPOT = (E2E - TTFT) / (n_out - 1), per request with n_out > 1 (vLLM's sense; "
    "genai-perf and guidellm call this ITL)",
    "itl_ms": "ITL = every gap between consecutive content chunks, pooled over requests "
    "(a chunk may hold several tokens)",
    "e2e_ms": "E2E = t_last_byte - t_intended",
    "send_lag_ms": "send lag = t_sent - t_intended (waits for a free connection, client overhead)",
    "request_throughput": "completed requests / D, D = first intended send to last answer",
    "output_token_throughput": "sum(n_out) / D",
    "total_token_throughput": "sum(n_in + n_out) / D",
    "goodput": "completed requests meeting every SLO / D",
    "latency_policy": "percentiles over successful requests; errors counted apart, by kind",
}


@dataclass(slots=True)
class Record:
    """One request, as the client saw it (times: perf_counter seconds)."""

    index: int
    intended: float
    sent: float = 0.0
    first: float | None = None
    end: float = 0.0
    status: int = 0
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    chunk_times: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def e2e(self) -> float:
        return self.end - self.intended

    @property
    def ttft(self) -> float | None:
        return None if self.first is None else self.first - self.intended

    @property
    def tpot(self) -> float | None:
        if self.first is None or self.output_tokens < 2:
            return None
        return (self.end - self.first) / (self.output_tokens - 1)

    def row(self, t0: float) -> dict[str, Any]:
        """A flat, JSON- and CSV-ready view, times in ms from the phase start ``t0``."""

        def ms(x: float | None) -> float | None:
            return None if x is None else round(x * 1000, 3)

        return {
            "index": self.index,
            "intended_ms": ms(self.intended - t0),
            "send_lag_ms": ms(self.sent - self.intended),
            "ttft_ms": ms(self.ttft),
            "tpot_ms": ms(self.tpot),
            "e2e_ms": ms(self.e2e),
            "status": self.status,
            "error": self.error,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "chunks": len(self.chunk_times),
        }


@dataclass(frozen=True, slots=True)
class Slo:
    """Service-level objectives in seconds; None where not set."""

    ttft: float | None = None
    tpot: float | None = None
    e2e: float | None = None

    def met(self, r: Record) -> bool:
        if not r.ok:
            return False
        if self.ttft is not None and (r.ttft is None or r.ttft > self.ttft):
            return False
        if self.tpot is not None and r.tpot is not None and r.tpot > self.tpot:
            return False
        return not (self.e2e is not None and r.e2e > self.e2e)

    @property
    def empty(self) -> bool:
        return self.ttft is None and self.tpot is None and self.e2e is None

    def to_dict(self) -> dict[str, float | None]:
        return {f"{k}_ms": None if v is None else v * 1000 for k, v in asdict(self).items()}


def parse_slo(text: str | None) -> Slo:
    """``ttft=500ms,tpot=50ms,e2e=3s`` (units ms or s; bare numbers are ms)."""
    from hfdeploy.errors import InvalidSettingError

    if not text:
        return Slo()
    values: dict[str, float] = {}
    for part in text.split(","):
        name, _, raw = part.strip().partition("=")
        raw = raw.strip().lower()
        scale = 1.0 if raw.endswith("s") and not raw.endswith("ms") else 0.001
        number = raw.removesuffix("ms").removesuffix("s")
        try:
            value = float(number) * scale
        except ValueError:
            value = -1.0
        if name not in {"ttft", "tpot", "e2e"} or value <= 0:
            raise InvalidSettingError(
                "--slo", text, f"bad part {part!r}: use ttft=, tpot= or e2e= with ms or s",
                hint="e.g. --slo ttft=500ms,tpot=50ms,e2e=3s",
            )  # fmt: skip
        values[name] = value
    return Slo(**values)


def percentiles(values: list[float], scale: float = 1000.0) -> dict[str, float] | None:
    """p50..p99.9, mean and max of ``values`` (seconds) in ms; None when empty.

    Nearest-rank on the sorted values (no interpolation), as locust and k6 do.
    """
    if not values:
        return None
    xs = sorted(values)
    n = len(xs)
    out = {
        f"p{p:g}": round(xs[min(n - 1, math.ceil(p / 100 * n) - 1)] * scale, 3) for p in PERCENTILES
    }
    out["mean"] = round(sum(xs) / n * scale, 3)
    out["max"] = round(xs[-1] * scale, 3)
    return out


def summarize(
    records: list[Record],
    *,
    streaming: bool,
    slo: Slo,
    offered_rate: float | None = None,
) -> dict[str, Any]:
    """The summary of one phase (the ``--json`` contract's ``summary`` keys and more)."""
    ok = [r for r in records if r.ok]
    errors = Counter(r.error for r in records if not r.ok)
    if records:
        start = min(r.intended for r in records)
        end = max(r.end for r in records)
        duration = max(end - start, 1e-9)
    else:
        duration = 0.0
    n_out = sum(r.output_tokens for r in ok)
    n_in = sum(r.input_tokens for r in ok)
    good = sum(1 for r in ok if slo.met(r))
    itl = [b - a for r in ok for a, b in zip(r.chunk_times, r.chunk_times[1:], strict=False)]

    def rate(x: float) -> float:
        return round(x / duration, 3) if duration else 0.0

    return {
        "requests": len(records),
        "completed": len(ok),
        "errors": len(records) - len(ok),
        "errors_by_kind": dict(errors.most_common()),
        "error_rate": round((len(records) - len(ok)) / len(records), 4) if records else 0.0,
        "duration_s": round(duration, 3),
        "offered_rate": offered_rate,
        "request_throughput": rate(len(ok)),
        "input_token_throughput": rate(n_in),
        "output_token_throughput": rate(n_out),
        "total_token_throughput": rate(n_in + n_out),
        "goodput": None if slo.empty else rate(good),
        "good_fraction": None if slo.empty or not records else round(good / len(records), 4),
        "ttft_ms": percentiles([t for r in ok if (t := r.ttft) is not None]) if streaming else None,
        "tpot_ms": percentiles([t for r in ok if (t := r.tpot) is not None]) if streaming else None,
        "itl_ms": percentiles(itl) if streaming else None,
        "e2e_ms": percentiles([r.e2e for r in ok]),
        "send_lag_ms": percentiles([r.sent - r.intended for r in records]),
        "input_tokens": n_in,
        "output_tokens": n_out,
        "max_concurrent": _max_in_flight(records),
    }


def _max_in_flight(records: list[Record]) -> int:
    events = sorted([(r.sent, 1) for r in records] + [(r.end, -1) for r in records])
    best = cur = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best
