"""How many CPUs the server may use, and the OpenMP environment that shares them well.

A container's CPU limit is a CFS quota, not an affinity mask: on a 64-core node a pod
limited to 2 CPUs still sees 64 in ``os.sched_getaffinity``, and 64 torch threads on a
2-CPU quota spend most of each period throttled. :func:`cpu_budget` takes the smaller of
the affinity mask and the cgroup quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``).

OpenMP's worker threads spin for a while after each parallel region, waiting for the
next. On a machine of its own that saves a wake-up; sharing CPUs (with the event loop,
the clients, sidecars, other pods) it burns the time they need.
:func:`set_cpu_environment` sets ``OMP_WAIT_POLICY=PASSIVE`` (sleep when idle) unless
the environment already chose, before torch is imported: OpenMP reads it once.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

__all__ = ["cpu_budget", "parse_cgroup_quota", "set_cpu_environment", "worker_plan"]

#: Tasks whose batches are independent forward passes (no state between batches), which
#: can run on several worker threads at once; generation and speech keep one.
PARALLEL_TASKS = frozenset(
    {"feature-extraction", "text-ranking", "text-classification", "token-classification"}
)
#: Default workers on CPU for those tasks (at most one per CPU). Each worker's torch threads
#: follow the batches running: all the CPUs when its batch runs alone, a share beside another
#: (``runtime.thread_share``), so a trickle of requests loses nothing against one worker.
#: Measured on 2 CPUs shared with the client, each setting twice
#: (benchmarks/results/serve_throughput_workers_adaptive.json): two workers served as much
#: or more at 16 clients and 1.2-1.4x at 64, from raw sockets and from httpx clients.
DEFAULT_WORKERS = 2

_CGROUP = Path("/sys/fs/cgroup")


def parse_cgroup_quota(cpu_max: str | None, cfs_quota: str | None, cfs_period: str | None
                       ) -> float | None:  # fmt: skip
    """CPUs a cgroup's quota allows (None: no limit), from v2 ``cpu.max`` ("200000 100000"
    or "max 100000") or v1's quota and period files (quota -1: no limit).

    >>> parse_cgroup_quota("150000 100000", None, None)
    1.5
    >>> parse_cgroup_quota("max 100000", None, None) is None
    True
    >>> parse_cgroup_quota(None, "-1", "100000") is None
    True
    """
    if cpu_max is not None:
        quota, _, period = cpu_max.strip().partition(" ")
        if quota == "max" or not period:
            return None
        return int(quota) / int(period)
    if cfs_quota is not None and cfs_period is not None:
        q = int(cfs_quota.strip())
        return None if q <= 0 else q / int(cfs_period.strip())
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def cpu_budget(root: Path = _CGROUP) -> tuple[int, str]:
    """CPUs this process may use, and where the figure came from."""
    affinity = len(os.sched_getaffinity(0))
    try:
        quota = parse_cgroup_quota(
            _read(root / "cpu.max"),
            _read(root / "cpu" / "cpu.cfs_quota_us") or _read(root / "cpu.cfs_quota_us"),
            _read(root / "cpu" / "cpu.cfs_period_us") or _read(root / "cpu.cfs_period_us"),
        )
    except ValueError:
        quota = None
    if quota is not None and math.ceil(quota) < affinity:
        return max(1, math.ceil(quota)), f"cgroup CPU quota {quota:g}"
    return affinity, "CPU affinity"


def set_cpu_environment() -> dict[str, str]:
    """Set the OpenMP wait policy for a shared CPU, unless already chosen; what it set.

    Has no effect on OpenMP once torch is imported; callers run it first.
    """
    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ:
        return {}
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return {"OMP_WAIT_POLICY": "PASSIVE"}


def worker_plan(
    budget: int, *, device: str, task: str, workers: int | None, threads: int | None
) -> tuple[int, int]:
    """(worker threads, torch threads) for a model: the settings where given, else
    :data:`DEFAULT_WORKERS` (at most one per CPU) for :data:`PARALLEL_TASKS` on CPU, and the
    CPUs shared out between them. On CUDA, and for other tasks, one worker.

    >>> worker_plan(8, device="cpu", task="feature-extraction", workers=2, threads=None)
    (2, 4)
    >>> worker_plan(8, device="cuda", task="feature-extraction", workers=4, threads=None)
    (1, 8)
    """
    if device != "cpu" or task not in PARALLEL_TASKS:
        n = 1
    else:
        n = workers if workers is not None else min(DEFAULT_WORKERS, budget)
    return n, threads or max(1, budget // n)
