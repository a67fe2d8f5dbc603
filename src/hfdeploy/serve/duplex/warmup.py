"""The session limit, measured at warm-up on the device the server runs on.

The warm-up steps growing batches of silent conversations (1, 2, 4, ... 128). Its
conversations are a few frames long, so their KV caches are nearly empty; a conversation
that has run for the model's whole window (3,000 frames, 240 s, for Moshi) makes every
step read its full cache. So each rung's step is charged that read too: the cache's bytes
over the memory bandwidth measured here (a large copy), per conversation. The limit is the
largest rung whose charged step stays within :data:`STEP_BUDGET` of the frame, and whose
full caches fit the free GPU memory; ``--max-sessions`` replaces it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from hfdeploy.serve.duplex.lockstep import Sampling
from hfdeploy.serve.duplex.step import FRAME_S, Joining

#: The runner (``serve.duplex.runner.DuplexRunner``, which imports this module): its
#: ``step``, ``frame_samples``, ``settings`` and ``kv_bytes_per_session``.
DuplexRunner = Any

__all__ = ["STEP_BUDGET", "Limit", "session_limit"]

log = logging.getLogger("hfdeploy.serve")

#: A step may take this share of a frame; the rest is the loop's, the network's and jitter's.
STEP_BUDGET = 0.75
#: Session counts the warm-up times (up to the limit asked, when there is one).
LADDER = (1, 2, 4, 8, 16, 32, 64, 128)
#: Frames stepped per rung; the median of the last three is kept (the first steps of a
#: batch join its rows and allocate, and the first has no audio to decode).
_RUNG_STEPS = 6
_COPY_BYTES = {"cuda": 512 * 2**20, "cpu": 128 * 2**20}


@dataclass(slots=True)
class Limit:
    """The session limit and what it came from."""

    sessions: int
    source: str
    #: Rung → (step measured, step charged with full KV caches), seconds.
    steps: dict[int, tuple[float, float]] = field(default_factory=dict)
    bandwidth_gbps: float = 0.0
    kv_bytes_per_session: int = 0

    def to_info(self) -> dict[str, Any]:
        return {
            "max_sessions_source": self.source,
            "warmup_step_ms": {str(n): round(m * 1000, 2) for n, (m, _) in self.steps.items()},
            "warmup_step_ms_full_kv": {
                str(n): round(f * 1000, 2) for n, (_, f) in self.steps.items()
            },
            "memory_bandwidth_gbps": round(self.bandwidth_gbps, 1),
            "kv_bytes_per_session": self.kv_bytes_per_session,
        }


def bandwidth(torch: Any, device: str) -> float:
    """Bytes per second a large copy moves on ``device`` (read and write), best of three."""
    n = _COPY_BYTES.get(device, _COPY_BYTES["cpu"])
    src = torch.empty(n, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(3):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        dst.copy_(src)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n / best


def _rung(runner: DuplexRunner, n: int) -> float:
    """The median step of ``n`` silent conversations (seconds), which then leave."""
    import numpy as np

    silence = np.zeros(runner.frame_samples, dtype=np.float32)
    keys = list(range(-n, 0))  # warm-up keys never clash with sessions' (>= 0)
    joins = [Joining(k, Sampling(seed=k)) for k in keys]
    times = []
    for i in range(_RUNG_STEPS):
        started = time.perf_counter()
        first = i == 0
        runner.step(joins if first else [], [], dict.fromkeys(keys, silence),
                    dict.fromkeys(keys, "pcm16") if first else None)  # fmt: skip
        times.append(time.perf_counter() - started)
    runner.step([], keys, {})
    return sorted(times[-3:])[1]


def session_limit(runner: DuplexRunner) -> Limit:
    """Time the ladder on the runner's model thread; the limit (see the module)."""
    import torch

    device = runner.settings.device
    asked = runner.settings.max_sessions
    kv = runner.kv_bytes_per_session()
    bw = bandwidth(torch, device)
    limit = Limit(0, "", bandwidth_gbps=bw / 1e9, kv_bytes_per_session=kv)
    fits = 0
    for n in LADDER:
        if asked is not None and n > asked and fits:
            break
        measured = _rung(runner, n)
        charged = measured + n * kv / bw
        limit.steps[n] = (measured, charged)
        log.info("warmup: %d session(s) step in %.1f ms (%.1f ms with full KV caches)",
                 n, measured * 1000, charged * 1000)  # fmt: skip
        if charged > STEP_BUDGET * FRAME_S:
            break
        fits = n
    limit.sessions, limit.source = _choose(runner, asked, fits, kv)
    return limit


def _choose(runner: DuplexRunner, asked: int | None, fits: int, kv: int) -> tuple[int, str]:
    budget = (f"a step, charged with full KV caches, within {STEP_BUDGET:.0%} of "
              f"{FRAME_S * 1000:.0f} ms")  # fmt: skip
    if asked is not None:
        return asked, "--max-sessions"
    if fits == 0:
        log.warning("one session does not step in real time on %s", runner.settings.device)
        return 1, f"one session: even one misses {budget} on this device"
    if runner.settings.device == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info()
        memory = int(free * 0.9 // kv)
        if memory < fits:
            return max(1, memory), "free GPU memory for the sessions' full KV caches"
    return fits, f"measured at warm-up: {budget}"
