"""``hfdeploy profile memory``: watch a process tree's memory for a while and judge it.

The target is a running process (``pid``) or a command started for the purpose (then stopped,
with its children, at the end). Samples come from ``memory.MemorySampler``; with a server's
``/metrics`` URL each sample also carries the server's count of answered requests, so that the
verdict can fit memory per request rather than per hour (the rules: ``memory``'s docstring).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hfdeploy.bench.counters import parse_request_counter
from hfdeploy.bench.memory import MemorySampler, Sample, memory_report
from hfdeploy.bench.process import spawn, stop
from hfdeploy.envelope import Confidence, Envelope
from hfdeploy.errors import InvalidSettingError

__all__ = ["MemoryProfile", "profile_memory"]


@dataclass(frozen=True, slots=True)
class MemoryProfile:
    """The samples of one watched process tree; the verdicts are computed from them."""

    pid: int
    interval_s: float
    samples: tuple[Sample, ...]
    process_exited: bool
    #: Seconds of start-up left out of the fit; None: the first 20% of the samples.
    warmup_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``hfdeploy profile memory --json`` object: samples, verdicts, RSS figures."""
        report = memory_report(
            list(self.samples), exited=self.process_exited, warmup_s=self.warmup_s
        )
        return {"hfdeploy": "profile memory", "pid": self.pid, "interval_s": self.interval_s,
                **report}  # fmt: skip

    def envelope(self) -> Envelope:
        """The answer: the leak verdict, and how far the fit can be trusted."""
        data = self.to_dict()
        rss = data["rss"]
        mib = {k: f"{data[k] / 2**20:,.1f} MiB" if k in data else "-"
               for k in ("rss_first_bytes", "rss_last_bytes", "rss_peak_bytes")}  # fmt: skip
        result = (
            f"pid {self.pid}: host RSS {rss['verdict']} ({mib['rss_first_bytes']} -> "
            f"{mib['rss_last_bytes']}, peak {mib['rss_peak_bytes']}, {len(self.samples)} samples)"
        )
        if data["gpu"]:
            result += f"; GPU memory {data['gpu']['verdict']}"
        confidence: Confidence = "high"
        why = "fitted against the server's own request count"
        if rss["verdict"] == "inconclusive":
            confidence, why = "low", rss["note"]
        elif self.process_exited:
            confidence, why = "low", "the process exited during sampling"
        elif rss.get("note"):
            confidence, why = "medium", rss["note"]
        elif rss["against"] == "time":
            confidence = "medium"
            why = "fitted against time: no request count (a metrics URL gives one)"
        factors = (
            "the warm-up is left out of the fit: allocator pools and caches fill first",
            "RSS of a process tree counts pages its processes share once per process",
            "growth that levels off later reads as growing in a short run",
        )
        checks = (f"hfdeploy profile memory --pid {self.pid} --duration 600 --json",)
        return Envelope(result, confidence, why, factors, checks)


@contextmanager
def _request_counter(metrics_url: str | None) -> Iterator[Callable[[], float | None] | None]:
    """A function that reads the server's count of answered requests, over one HTTP session."""
    if metrics_url is None:
        yield None
        return
    import httpx

    url = metrics_url if metrics_url.endswith("/metrics") else metrics_url.rstrip("/") + "/metrics"
    with httpx.Client(timeout=2.0) as client:

        def count() -> float | None:
            try:
                r = client.get(url)
            except httpx.HTTPError:
                return None
            found = parse_request_counter(r.text, None) if r.status_code == 200 else None
            return None if found is None else found[1]

        yield count


def profile_memory(
    command: Sequence[str] | None = None,
    *,
    pid: int | None = None,
    duration: float = 60.0,
    interval: float = 1.0,
    warmup: float | None = None,
    metrics_url: str | None = None,
    out: Path | None = None,
) -> MemoryProfile:
    """Sample the memory of ``pid`` or of ``command`` (started here) for ``duration`` seconds.

    Example:
        >>> profile_memory(pid=1234, duration=600).to_dict()["rss"]["verdict"]  # doctest: +SKIP
        'stable'

    Args:
        command: a command to start in a session of its own and stop (with its children)
            at the end; give this or ``pid``.
        pid: a running process to watch, with its children.
        duration: seconds to sample; sampling ends early when the process exits.
        interval: seconds between samples.
        warmup: seconds of start-up to leave out of the fit; None: the first 20%.
        metrics_url: a server whose ``/metrics`` counts requests, to fit memory per request.
        out: also write the ``to_dict()`` object there as JSON.

    Returns:
        The samples; ``to_dict()`` has the verdicts.

    Raises:
        InvalidSettingError: not exactly one of ``command`` and ``pid``, or a bad number.
        BenchError: ``pid`` is no running process.
    """
    if (pid is None) == (not command):
        raise InvalidSettingError(
            "--pid / COMMAND", pid, "give exactly one: --pid PID or -- COMMAND...",
            hint="hfdeploy profile memory --pid 1234 --duration 600",
        )  # fmt: skip
    if duration <= 0:
        raise InvalidSettingError("--duration", duration, "must be positive")
    if warmup is not None and warmup < 0:
        raise InvalidSettingError("--warmup", warmup, "must be 0 or more")
    proc = spawn(list(command)) if command else None
    target = proc.pid if proc is not None else pid
    assert target is not None
    try:
        with _request_counter(metrics_url) as count:
            sampler = MemorySampler(target, interval, count).start()
            deadline = time.monotonic() + duration
            while time.monotonic() < deadline and not sampler.exited:
                time.sleep(min(0.2, interval))
            samples = sampler.stop()
    finally:
        if proc is not None:
            stop(proc, grace=10)  # the whole group: a command's children go too
    result = MemoryProfile(target, interval, tuple(samples), sampler.exited, warmup)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    return result
