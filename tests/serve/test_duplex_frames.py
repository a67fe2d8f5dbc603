"""The frame loop without a model: a runner that records its calls (and fails once when
asked), real asyncio timing. A failed step ends the conversations in it and the loop goes
on serving; a client ahead of real time loses its oldest frames, counted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

np = pytest.importorskip("numpy")

from prometheus_client import CollectorRegistry  # noqa: E402

from hfdeploy.serve.duplex.frames import INBOX_FRAMES, FrameLoop  # noqa: E402
from hfdeploy.serve.duplex.lockstep import Sampling  # noqa: E402
from hfdeploy.serve.duplex.metrics import DuplexMetrics  # noqa: E402
from hfdeploy.serve.duplex.step import Joining, StepResult  # noqa: E402

FRAME = 1920


class FakeRunner:
    frame_samples = FRAME
    session_limit = 4

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.steps = 0
        self.batch: set[int] = set()
        self.resets = 0

    def bind_thread(self) -> None:
        pass

    def warm(self) -> None:
        pass

    def reset(self) -> None:
        self.batch.clear()
        self.resets += 1

    def step(
        self,
        joins: list[Joining],
        leaves: list[int],
        frames: dict[int, Any],
        formats: dict[int, str] | None = None,
    ) -> dict[int, StepResult]:
        for key in leaves:
            self.batch.remove(key)  # raises on a key the engine does not hold
        self.batch |= {j.key for j in joins}
        if not frames:
            return {}
        assert set(frames) == self.batch
        self.steps += 1
        if self.steps == self.fail_at:
            raise RuntimeError("CUDA error: an illegal memory access")
        return {k: StepResult(" w", (b"\x01" + bytes(2 * FRAME),)) for k in frames}


def _metric(registry: CollectorRegistry, name: str, reason: str) -> float:
    return float(registry.get_sample_value(name, {"reason": reason}) or 0.0)


async def _loop(runner: FakeRunner) -> tuple[FrameLoop, CollectorRegistry]:
    registry = CollectorRegistry()
    frames = FrameLoop(runner, DuplexMetrics(registry))  # type: ignore[arg-type]
    await frames.warm()
    frames.start()
    return frames, registry


def test_a_failed_step_ends_its_conversations_and_the_loop_goes_on() -> None:
    async def main() -> None:
        runner = FakeRunner(fail_at=3)
        frames, metrics = await _loop(runner)
        a = frames.open(Sampling())
        frames.frames_in(a, [np.zeros(FRAME, np.float32)] * 4)
        await asyncio.wait_for(a.done.wait(), 2.0)
        assert a.ended is not None and a.ended[0] == 1011 and "step failed" in a.ended[1]
        for _ in range(100):  # the reset runs on the model thread right after
            if runner.resets:
                break
            await asyncio.sleep(0.01)
        assert runner.resets == 1
        assert _metric(metrics, "hfdeploy_duplex_sessions_closed_total", "step_error") == 1
        b = frames.open(Sampling())  # served by the fresh engine
        frames.frames_in(b, [np.zeros(FRAME, np.float32)] * 2)
        got = [await asyncio.wait_for(b.outbox.get(), 2.0) for _ in range(4)]
        assert got[0] == b"\x02 w" and got[1][:1] == b"\x01"
        frames.close(b, "client")
        await frames.stop()

    asyncio.run(main())


def test_a_client_ahead_of_real_time_loses_its_oldest_frames() -> None:
    async def main() -> None:
        frames, metrics = await _loop(FakeRunner())
        s = frames.open(Sampling())
        sent = [np.full(FRAME, i, np.float32) for i in range(INBOX_FRAMES + 3)]
        frames.frames_in(s, sent)
        assert len(s.inbox) <= INBOX_FRAMES
        name = "hfdeploy_duplex_frames_dropped_total"
        assert _metric(metrics, name, "input_overflow") == 3
        assert s.inbox[-1][0] == INBOX_FRAMES + 2  # the newest kept
        assert frames.full() is False and frames.limit == 4
        frames.close(s, "client")
        await frames.stop()

    asyncio.run(main())
