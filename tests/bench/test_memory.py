"""The leak verdict: a server that leaks 1 MB per 100 requests is flagged; a stable one is not."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from hfdeploy.bench import BenchConfig, run_bench
from hfdeploy.bench.memory import Sample, fit_line, memory_verdict, tree_memory
from hfdeploy.errors import BenchError
from tests.bench.conftest import Fake


def _bench_with_memory(fake: Fake) -> dict:
    r = run_bench(
        BenchConfig(
            fake.url,
            api="tei-embed",
            profile="constant:1000",
            duration=3.0,
            memory_pid=fake.pid,
            memory_interval=0.02,
            # Eight connections, all opened by the warm-up: a loaded machine must not make
            # the client open new ones mid-run (each costs the server buffers: real growth).
            max_concurrency=8,
            warmup=50,
        )
    )
    assert r.memory is not None
    return r.memory


def test_leaking_server_is_flagged(fake_server: Callable[..., Fake]) -> None:
    memory = _bench_with_memory(fake_server("--leak-bytes", "10000"))
    rss = memory["rss"]
    assert rss["verdict"] == "leak-suspected", rss
    assert rss["against"] == "requests"
    # 10,000 bytes per request leaked; the fitted slope finds it (allocator overhead on top).
    assert 8_000 < rss["slope"] < 14_000, rss


def test_stable_server_is_not_flagged(fake_server: Callable[..., Fake]) -> None:
    memory = _bench_with_memory(fake_server())
    assert memory["rss"]["verdict"] == "stable", memory["rss"]


def _samples(
    values: list[float], requests: list[float] | None = None, dt: float = 1.0
) -> list[Sample]:
    return [
        Sample(i * dt, int(v), None, None if requests is None else requests[i], 1)
        for i, v in enumerate(values)
    ]


def test_verdict_rules_on_synthetic_series() -> None:
    base = 500e6
    flat = [base + (i % 3) * 4096 for i in range(40)]
    assert memory_verdict(_samples(flat, [i * 10.0 for i in range(40)]))["verdict"] == "stable"
    # 100 bytes/request over 4,000 requests of a 20 MB process, over 200 s: 2% growth, below
    # the leak threshold.
    slow = [20e6 + 100 * 100 * i for i in range(40)]
    v = memory_verdict(_samples(slow, [i * 100.0 for i in range(40)], dt=5.0))
    assert v["verdict"] == "growing", v
    # The same 2% in 40 s: pools and caches fill by that much; no verdict of growth.
    v = memory_verdict(_samples(slow, [i * 100.0 for i in range(40)]))
    assert v["verdict"] == "inconclusive", v
    assert v["run_for_s"] == 8 + 62 and "run for at least 70 s" in v["note"]
    # Against time (no request counts): 1 GB over 40 s is a leak.
    fast = [base + 25e6 * i for i in range(40)]
    assert memory_verdict(_samples(fast))["verdict"] == "leak-suspected"
    few = memory_verdict(_samples(flat[:5]))
    assert few["verdict"] == "inconclusive", few
    # One sample a second, 20% of them warm-up: 8 kept need 10 s.
    assert few["run_for_s"] == 10 and "8 are needed" in few["note"]
    # A step to a new plateau (bigger inputs arrived) is not a leak: the late half is flat.
    step = [base + (0 if i < 15 else 100e6) for i in range(40)]
    v = memory_verdict(_samples(step, [i * 10.0 for i in range(40)]))
    assert v["verdict"] == "growing", v
    assert "plateau" in v["note"]


def test_a_run_too_short_to_tell_is_inconclusive_with_how_long_to_run() -> None:
    # What `hfdeploy up`'s 10 s bench saw: 4 KB per request over 120 requests of a 530 MB
    # server, leak-sized, but 0.1% growth is allocator noise at this length.
    short = [530e6 + 4000 * 3 * i for i in range(40)]
    v = memory_verdict(_samples(short, [i * 3.0 for i in range(40)]))
    assert v["verdict"] == "inconclusive", v
    # 0.07% in the 31 s fitted: 1% takes 14 times as long; twice that, after the 8 s warm-up.
    assert v["run_for_s"] == 891, v
    assert f"at least {v['run_for_s']:,} s" in v["note"]
    # The same slope kept up 20 times as long grew 1.4%: a verdict.
    longer = [530e6 + 4000 * 3 * i for i in range(800)]
    assert memory_verdict(_samples(longer, [i * 3.0 for i in range(800)]))["verdict"] == (
        "leak-suspected"
    )


def test_noise_too_wide_to_rule_a_leak_out_is_inconclusive() -> None:
    # A 500 MB process against time, 10 s, 40 samples, +-40 MB of noise: the slope's interval
    # spans far more than 10 MiB/hour either way.
    noisy = [500e6 + (40e6 if i % 2 else -40e6) for i in range(40)]
    samples = [Sample(i * 0.25, int(v), None, None, 1) for i, v in enumerate(noisy)]
    v = memory_verdict(samples)
    assert v["verdict"] == "inconclusive", v
    assert "too wide" in v["note"] and v["run_for_s"] > 10
    quiet = [Sample(i * 0.25, int(500e6 + (i % 2) * 4096), None, None, 1) for i in range(40)]
    assert memory_verdict(quiet)["verdict"] == "stable"


def test_fit_line_recovers_a_known_slope() -> None:
    xs = [float(i) for i in range(50)]
    ys = [3.0 + 2.5 * x + (0.1 if i % 2 else -0.1) for i, x in enumerate(xs)]
    line = fit_line(xs, ys)
    assert line["slope"] == pytest.approx(2.5, abs=0.01)
    assert line["low"] < 2.5 < line["high"]


def test_tree_memory_of_this_process_and_a_missing_one() -> None:
    rss, pids = tree_memory(os.getpid())
    assert rss > 10e6 and os.getpid() in pids
    with pytest.raises(BenchError, match="does not exist"):
        tree_memory(2**22 + 12345)


class _FakeNvml:
    """pynvml's calls that the sampler makes, over a scripted GPU."""

    def __init__(self, pid: int, step: int) -> None:
        self.pid, self.step, self.calls = pid, step, 0

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[object]:
        from types import SimpleNamespace

        self.calls += 1
        return [SimpleNamespace(pid=self.pid, usedGpuMemory=self.calls * self.step),
                SimpleNamespace(pid=1, usedGpuMemory=10**9)]  # fmt: skip

    def nvmlDeviceGetMemoryInfo(self, h: int) -> object:
        from types import SimpleNamespace

        return SimpleNamespace(used=2 * 10**9 + self.calls * self.step)


def test_gpu_memory_of_the_tree_through_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import time

    from hfdeploy.bench.memory import MemorySampler, memory_report

    fake = _FakeNvml(os.getpid(), step=50 * 2**20)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    sampler = MemorySampler(os.getpid(), 0.01).start()
    time.sleep(0.5)
    report = memory_report(sampler.stop())
    assert report["gpu_scope"] == "processes"  # the other process's 1 GB is not counted
    assert report["gpu"]["verdict"] == "leak-suspected"
    assert report["samples"][0]["gpu"] == 50 * 2**20


def test_warmup_seconds_and_leading_zeros_are_left_out() -> None:
    # Start-up: zero GPU memory (no CUDA context), then a step to 1.7 GB, then flat.
    gpu = [0] * 15 + [1_700_000_000] * 35
    samples = [Sample(i * 0.2, 10**8, g, None, 1, g) for i, g in enumerate(gpu)]
    v = memory_verdict(samples, series="gpu")
    assert v["verdict"] == "stable", v
    # A host RSS step at 2.4 s is start-up when --warmup 3 says so (20% of 10 s is not).
    rss = [10**8 + (0 if i < 12 else 5 * 10**8) for i in range(50)]
    step = [Sample(i * 0.2, r, None, None, 1) for i, r in enumerate(rss)]
    assert memory_verdict(step, warmup_s=3.0)["verdict"] == "stable"
    assert memory_verdict(step)["verdict"] != "stable"
