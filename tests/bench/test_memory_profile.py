"""``profile_memory``, the library call behind ``hfdeploy profile memory``, on real processes."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from hfdeploy.bench import BenchConfig, run_bench
from hfdeploy.bench.memory_profile import profile_memory
from hfdeploy.errors import InvalidSettingError
from tests.bench.conftest import Fake

IDLE = "import time\nwhile True:\n    time.sleep(0.05)\n"


def test_a_command_is_sampled_then_stopped_and_the_result_written(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "memory.json"
    result = profile_memory([sys.executable, "-c", IDLE], duration=1.5, interval=0.05, out=out)
    assert not psutil.pid_exists(result.pid)
    assert len(result.samples) > 10
    assert not result.process_exited
    data = result.to_dict()
    assert data["hfdeploy"] == "profile memory"
    assert data["pid"] == result.pid
    assert data["rss"]["verdict"] == "stable"
    assert json.loads(out.read_text()) == json.loads(json.dumps(data))
    env = result.envelope()
    assert env.result.startswith(f"pid {result.pid}: host RSS stable")
    assert env.confidence == "medium"  # against time: no request counter was given


def test_the_server_counter_fits_memory_per_request(fake_server: Callable[..., Fake]) -> None:
    fake = fake_server("--leak-bytes", "10000")
    load = BenchConfig(fake.url, api="tei-embed", profile="constant:400", duration=2.5,
                       warmup=0, max_concurrency=8)  # fmt: skip
    sender = threading.Thread(target=run_bench, args=(load,))
    sender.start()
    try:
        result = profile_memory(pid=fake.pid, duration=2.0, interval=0.05, metrics_url=fake.url)
    finally:
        sender.join()
    counts = [s.requests for s in result.samples]
    assert all(c is not None for c in counts)
    assert counts[-1] > counts[0]
    rss = result.to_dict()["rss"]
    assert rss["against"] == "requests", rss


def test_a_process_that_exits_ends_the_sampling_early() -> None:
    import subprocess

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    # Reaped as soon as it exits: a zombie would still count as a process.
    reaper = threading.Thread(target=child.wait)
    reaper.start()
    result = profile_memory(pid=child.pid, duration=30, interval=0.05)
    reaper.join()
    assert result.process_exited
    assert result.envelope().confidence == "low"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give exactly one"),
        ({"command": [sys.executable, "-c", "pass"], "pid": 1}, "give exactly one"),
        ({"pid": 1, "duration": 0}, "--duration"),
        ({"pid": 1, "warmup": -1}, "--warmup"),
        ({"pid": 1, "interval": 0}, "--interval"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidSettingError, match=message):
        profile_memory(**kwargs)  # type: ignore[arg-type]
