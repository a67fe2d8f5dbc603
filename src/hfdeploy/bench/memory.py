"""Memory over time: sample a process tree (RSS, GPU memory) and give a leak verdict.

Sampling reads RSS of the process and all its descendants (psutil), and GPU memory used by
those processes through NVML when ``nvidia-ml-py`` and a driver are present. The verdict is
pure: a least-squares line of memory against requests served (when counts are known) or
against time, after a warm-up share of the samples is dropped (allocator pools and caches
fill first), with a 95% confidence interval on the slope.

Verdicts:
  - ``leak-suspected``: the slope's lower bound exceeds the leak threshold (default
    1 KiB per request, or 10 MiB per hour and 2% of the baseline per hour against time),
    the second half of the samples alone still grows faster than the threshold (growth
    that levels off is a new plateau, not a leak), and the run grew more than 1% of the
    baseline (less is allocator noise at this length);
  - ``growing``: the lower bound is above zero and the fitted growth over the run is more
    than 1% of the baseline (a note says when it levelled off: a plateau);
  - ``stable``: the slope's upper bound is under the leak threshold, or the growth the
    upper bound allows over the run is under 1% of the baseline while the lower bound is
    not above zero;
  - ``inconclusive``: what the data cannot tell apart, with why and how long to run
    (``run_for_s``): fewer than 8 samples after the warm-up; a fit shorter than 60 s that
    grew by 10% or less (pools, caches and first batches fill by that much); a leak-sized
    slope in a run that grew by 1% or less (allocator noise at this length); an interval
    too wide to rule a leak in or out.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from hfdeploy.errors import BenchError, InvalidSettingError

__all__ = [
    "MemorySampler", "Sample", "fit_line", "memory_report", "memory_verdict", "tree_memory",
]  # fmt: skip

LEAK_BYTES_PER_REQUEST = 1024
LEAK_BYTES_PER_HOUR = 10 * 2**20
LEAK_SHARE_PER_HOUR = 0.02
GROWING_SHARE = 0.01
#: A fit shorter than this many seconds needs SHORT_RUN_SHARE of growth for a verdict of
#: growth: in a few seconds, pools, caches and a worker's first batch fill by a few percent.
SHORT_RUN_S = 60.0
SHORT_RUN_SHARE = 0.10


@dataclass(frozen=True, slots=True)
class Sample:
    t: float
    rss: int
    #: GPU memory NVML attributes to the tree's processes; and all memory used on the GPUs
    #: (the fallback when NVML lists the processes under other pids: a container's namespace).
    gpu: int | None
    requests: float | None
    processes: int
    gpu_device: int | None = None


def tree_memory(pid: int) -> tuple[int, list[int]]:
    """RSS of ``pid`` and its descendants, and their pids.

    Raises:
        BenchError: no such process.
    """
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess as e:
        raise BenchError(f"process {pid} does not exist (or has exited)") from e
    total = 0
    pids = []
    for p in procs:
        try:
            total += p.memory_info().rss
            pids.append(p.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total, pids


class _Nvml:
    """GPU memory of given pids through NVML, or None when there is none."""

    def __init__(self) -> None:
        self.lib: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self.lib = pynvml
            self.handles = [
                pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
            ]
        except Exception:  # no package, no driver, no GPU: host RSS only
            self.lib = None

    def used(self, pids: list[int]) -> tuple[int | None, int | None]:
        """(bytes used by these pids, bytes used on all GPUs), None where NVML cannot say."""
        if self.lib is None:
            return None, None
        wanted = set(pids)
        mine = 0
        device = 0
        for h in self.handles:
            try:
                procs = self.lib.nvmlDeviceGetComputeRunningProcesses(h)
                device += int(self.lib.nvmlDeviceGetMemoryInfo(h).used)
            except Exception:
                return None, None
            mine += sum(p.usedGpuMemory or 0 for p in procs if p.pid in wanted)
        return mine, device


class MemorySampler:
    """Samples a process tree every ``interval`` seconds on a thread, until stopped."""

    def __init__(
        self, pid: int, interval: float, requests: Callable[[], float | None] | None = None
    ) -> None:
        if interval <= 0:
            raise InvalidSettingError("--interval", interval, "must be positive")
        tree_memory(pid)  # fails now, not in the thread, if the pid is wrong
        self.pid = pid
        self.interval = interval
        self.requests = requests
        self.samples: list[Sample] = []
        self.exited = False
        self._stop = threading.Event()
        self._nvml = _Nvml()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def sample(self) -> None:
        try:
            rss, pids = tree_memory(self.pid)
        except BenchError:
            self.exited = True
            self._stop.set()
            return
        count = self.requests() if self.requests else None
        gpu, device = self._nvml.used(pids)
        self.samples.append(Sample(time.perf_counter(), rss, gpu, count, len(pids), device))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join()
        if not self.exited:
            self.sample()
        return self.samples


def _t975(df: int) -> float:
    """Student's t 97.5% quantile (Cornish-Fisher expansion; within 1% for df >= 3)."""
    z = 1.959964
    if df <= 0:
        return math.inf
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def fit_line(xs: list[float], ys: list[float]) -> dict[str, float]:
    """Least-squares slope and intercept, with the slope's standard error and 95% bounds."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return {"slope": 0.0, "intercept": my, "se": math.inf, "low": -math.inf, "high": math.inf}
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = my - slope * mx
    resid = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    se = math.sqrt(resid / (n - 2) / sxx) if n > 2 else math.inf
    t = _t975(n - 2)
    return {"slope": slope, "intercept": intercept, "se": se, "low": slope - t * se,
            "high": slope + t * se}  # fmt: skip


def memory_verdict(
    samples: list[Sample],
    *,
    warmup_share: float = 0.2,
    warmup_s: float | None = None,
    series: str = "rss",
) -> dict[str, Any]:
    """The leak verdict over ``samples`` (see the module docstring for the rules).

    The warm-up dropped is ``warmup_s`` seconds when given, else ``warmup_share`` of the
    samples; for GPU series, also the leading samples at zero (no CUDA context yet).
    """
    if warmup_s is not None and samples:
        kept = [s for s in samples if s.t - samples[0].t >= warmup_s]
    else:
        kept = samples[int(len(samples) * warmup_share) :]
    if series != "rss":
        while kept and not getattr(kept[0], series):
            kept = kept[1:]
    values = [getattr(s, series) for s in kept]
    if len(kept) < 8 or any(v is None for v in values):
        return _too_few(samples, len(kept), series, warmup_share, warmup_s)
    ys = [float(v) for v in values]
    base = ys[0] or (sum(ys) / len(ys)) or 1.0
    counts = [s.requests for s in kept]
    by_requests = all(c is not None for c in counts) and len(set(counts)) > 2
    if by_requests:
        xs = [float(c or 0) for c in counts]
        unit = "bytes/request"
        threshold = float(LEAK_BYTES_PER_REQUEST)
    else:
        xs = [(s.t - kept[0].t) / 3600 for s in kept]
        unit = "bytes/hour"
        threshold = max(float(LEAK_BYTES_PER_HOUR), LEAK_SHARE_PER_HOUR * base)
    line = fit_line(xs, ys)
    half = len(xs) // 2
    late = fit_line(xs[half:], ys[half:])
    span = xs[-1] - xs[0]
    growth = line["slope"] * span
    warm_s, fit_s = kept[0].t - samples[0].t, kept[-1].t - kept[0].t
    note, run_for = None, None
    material = growth > GROWING_SHARE * base
    if material and fit_s < SHORT_RUN_S and growth <= SHORT_RUN_SHARE * base and line["low"] > 0:
        verdict = "inconclusive"
        run_for = warm_s + max(SHORT_RUN_S, 2 * fit_s)
        note = (
            f"grew {growth / base:.1%} in a fit of {fit_s:,.0f} s: in so short a run, pools, "
            f"caches and first batches fill by that much; growth over {SHORT_RUN_SHARE:.0%} "
            f"or a longer run tells: run for at least {run_for:,.0f} s"
        )
    elif line["low"] > threshold and late["slope"] > threshold and material:
        verdict = "leak-suspected"
    elif line["low"] > threshold and not material:
        verdict = "inconclusive"
        # The run that would grow 1% at this slope, twice over.
        run_for = warm_s + fit_s * max(2.0, 2 * GROWING_SHARE * base / max(growth, 1.0))
        note = (
            f"the slope is leak-sized but the run grew only {growth / base:.2%}: too little "
            f"to tell allocator noise from a leak; run for at least {run_for:,.0f} s"
        )
    elif line["low"] > 0 and material:
        verdict = "growing"
        if line["low"] > threshold:
            note = (
                "grew fast, then levelled off in the second half (a new plateau: larger "
                "inputs, pools, caches); run longer to tell a plateau from a leak"
            )
    elif line["high"] < threshold or line["high"] * span <= GROWING_SHARE * base:
        verdict = "stable"
    else:
        verdict = "inconclusive"
        # The interval narrows about as the run's length to the power 1.5 (same interval).
        width = line["high"] - max(line["slope"], 0.0)
        room = max(threshold - max(line["slope"], 0.0), threshold * 0.1)
        run_for = warm_s + fit_s * max(2.0, (width / room) ** (2 / 3))
        note = (
            f"the slope's 95% interval reaches {line['high']:,.0f} {unit}, over the leak "
            f"threshold: too wide to rule a leak in or out; run for at least {run_for:,.0f} s"
        )
    return {
        "series": series,
        "verdict": verdict,
        "against": "requests" if by_requests else "time",
        "slope": round(line["slope"], 3),
        "slope_ci95": [round(line["low"], 3), round(line["high"], 3)],
        "late_half_slope": round(late["slope"], 3),
        "note": note,
        "run_for_s": None if run_for is None else round(run_for),
        "unit": unit,
        "leak_threshold": threshold,
        "baseline_bytes": int(base),
        "fitted_growth_bytes": int(growth),
        "fitted_growth_share": round(growth / base, 5),
        "samples": len(kept),
        "warmup_samples_dropped": len(samples) - len(kept),
        "rule": _rule(threshold, unit),
    }


def _rule(threshold: float, unit: str) -> str:
    """The verdict rules in words, with this fit's threshold."""
    return (
        f"leak-suspected when the slope's 95% lower bound > {threshold:,.0f} {unit}, "
        f"the second half still grows that fast and the run grew > {GROWING_SHARE:.0%} of the "
        f"baseline; growing when the lower bound is > 0 and the growth > {GROWING_SHARE:.0%}; "
        f"stable when the upper bound is under the threshold or allows < {GROWING_SHARE:.0%} "
        f"growth; otherwise inconclusive, as is a fit under {SHORT_RUN_S:.0f} s that grew "
        f"{SHORT_RUN_SHARE:.0%} or less"
    )


def _too_few(
    samples: list[Sample], kept: int, series: str, warmup_share: float, warmup_s: float | None
) -> dict[str, Any]:
    """``inconclusive``: fewer than 8 samples after the warm-up, and how long would do."""
    gaps = sorted(b.t - a.t for a, b in itertools.pairwise(samples))
    run_for = None
    if gaps:
        interval = gaps[len(gaps) // 2]
        run_for = (warmup_s + 8 * interval) if warmup_s is not None else (
            8 * interval / (1 - warmup_share))  # fmt: skip
        run_for = max(run_for, 2 * (samples[-1].t - samples[0].t))
    how = f"; run for at least {run_for:,.0f} s" if run_for is not None else ""
    return {
        "series": series, "verdict": "inconclusive", "samples": kept,
        "note": f"{kept} samples after the warm-up: 8 are needed to fit a line{how}",
        "run_for_s": None if run_for is None else max(1, round(run_for)),
        "rule": "needs 8 samples or more after the warm-up",
    }  # fmt: skip


def memory_report(
    samples: list[Sample], *, exited: bool = False, warmup_s: float | None = None
) -> dict[str, Any]:
    """Samples and verdicts (host RSS, and GPU when NVML saw the processes)."""
    out: dict[str, Any] = {
        "samples": [asdict(s) | {"t": round(s.t - samples[0].t, 3)} for s in samples],
        "rss": memory_verdict(samples, warmup_s=warmup_s),
        "gpu": None,
        "process_exited": exited,
    }
    if samples and all(s.gpu is not None for s in samples):
        # Per-process figures when NVML saw the tree's pids; else the whole device's use.
        series = "gpu" if any(s.gpu for s in samples) else "gpu_device"
        out["gpu"] = memory_verdict(samples, series=series, warmup_s=warmup_s)
        out["gpu_scope"] = (
            "processes"
            if series == "gpu"
            else (
                "device: NVML lists no process of this tree (another PID namespace, or no CUDA "
                "context yet); other processes on the GPUs count too"
            )
        )
        out["gpu_last_bytes"] = getattr(samples[-1], series)
    if samples:
        out["rss_first_bytes"] = samples[0].rss
        out["rss_last_bytes"] = samples[-1].rss
        out["rss_peak_bytes"] = max(s.rss for s in samples)
    return out
