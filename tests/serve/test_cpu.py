"""The server's CPU budget (affinity and cgroup quota) and its OpenMP environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hfdeploy.serve.cpu import cpu_budget, parse_cgroup_quota, worker_plan


@pytest.mark.parametrize(
    ("cpu_max", "quota", "period", "cpus"),
    [
        ("200000 100000\n", None, None, 2.0),
        ("50000 100000", None, None, 0.5),
        ("max 100000\n", None, None, None),
        (None, "150000\n", "100000\n", 1.5),
        (None, "-1", "100000", None),
        (None, None, None, None),
    ],
)
def test_cgroup_quota_v1_and_v2(
    cpu_max: str | None, quota: str | None, period: str | None, cpus: float | None
) -> None:
    assert parse_cgroup_quota(cpu_max, quota, period) == cpus


def test_a_quota_under_the_affinity_sets_the_budget(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu_budget(tmp_path) == (affinity, "CPU affinity")
    # A pod limited to half a CPU on this machine: one thread, not one per core.
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert cpu_budget(tmp_path) == (1, "cgroup CPU quota 0.5")
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    expected = (1, "cgroup CPU quota 1") if affinity > 1 else (1, "CPU affinity")
    assert cpu_budget(v1) == expected
    (tmp_path / "cpu.max").write_text("garbage\n")
    assert cpu_budget(tmp_path) == (affinity, "CPU affinity")


_PROBE = (
    "import os; from hfdeploy.serve.cpu import set_cpu_environment as s; "
    "print(s(), os.environ.get('OMP_WAIT_POLICY'))"
)


def test_openmp_is_told_to_sleep_unless_the_environment_chose() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert out.split() == ["{'OMP_WAIT_POLICY':", "'PASSIVE'}", "PASSIVE"]
    chosen = subprocess.run([sys.executable, "-c", _PROBE], env=env | {"OMP_WAIT_POLICY": "ACTIVE"},
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert chosen.split() == ["{}", "ACTIVE"]
    late = subprocess.run([sys.executable, "-c", "import torch; " + _PROBE], env=env,
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert late.split() == ["{}", "None"]  # too late to matter: left alone


@pytest.mark.parametrize(
    ("budget", "device", "task", "workers", "threads", "plan"),
    [
        (2, "cpu", "feature-extraction", None, None, (2, 1)),  # two; a lone batch takes both
        (2, "cpu", "feature-extraction", 2, None, (2, 1)),  # two passes side by side
        (16, "cpu", "text-ranking", 2, None, (2, 8)),
        (1, "cpu", "feature-extraction", None, None, (1, 1)),  # never more workers than CPUs
        (8, "cpu", "feature-extraction", 4, None, (4, 2)),
        (8, "cpu", "feature-extraction", 3, 1, (3, 1)),
        (8, "cuda", "feature-extraction", 4, None, (1, 8)),  # one stream of work on a GPU
        (8, "cpu", "text-generation", None, None, (1, 8)),  # one sequence at a time
        (8, "cpu", "automatic-speech-recognition", 2, None, (1, 8)),
    ],
)
def test_worker_plan(
    budget: int, device: str, task: str, workers: int | None, threads: int | None,
    plan: tuple[int, int],
) -> None:  # fmt: skip
    assert worker_plan(budget, device=device, task=task, workers=workers, threads=threads) == plan
