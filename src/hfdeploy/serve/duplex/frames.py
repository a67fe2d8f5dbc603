"""The frame loop: one lockstep step every 80 ms for every open conversation.

A conversation (:class:`Session`) joins the batch at the first step after its first whole
frame of audio arrives (one with a persona prompt at once: its prompt is stepped first, and
its handshake is sent when the prompt is over), and leaves at the first step after it
ends. Each step takes one frame from every conversation's inbox (silence, counted, when a
client's frame is late) and puts each answer in the conversation's outbox. Both are
bounded, so that no client can stall the step for the others: a client that sends faster
than real time loses its oldest frames (counted), and one that stops reading is closed
with an error once its outbox is full (counted).

Steps run on one model thread, in order. The schedule is fixed to the clock (step ``k``
at ``start + k * 80 ms``); a step that ends past the next one's time is counted late, and
the schedule restarts from now rather than bursting to catch up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hfdeploy.serve.duplex.forced import ForcedTokens
from hfdeploy.serve.duplex.lockstep import Sampling
from hfdeploy.serve.duplex.metrics import DuplexMetrics
from hfdeploy.serve.duplex.protocol import HANDSHAKE, TEXT
from hfdeploy.serve.duplex.runner import DuplexRunner
from hfdeploy.serve.duplex.step import FRAME_S, Joining, StepResult

__all__ = ["CLOSE_WAIT_S", "FrameLoop", "Session"]

log = logging.getLogger("hfdeploy.serve")

#: Frames a client may send ahead of the steps (the oldest go past it): 640 ms.
INBOX_FRAMES = 8
#: Seconds a handler may take to send its close frame.
CLOSE_WAIT_S = 1.0
#: Messages (audio and text) waiting for a client that reads slowly: ~2.5 s of frames.
OUTBOX_MESSAGES = 64


@dataclass(eq=False)
class Session:
    """One conversation: its frames in, its messages out, and why it ended."""

    key: int
    sampling: Sampling
    #: The persona prompt's forced tokens (PersonaPlex), stepped before the handshake.
    forced: ForcedTokens | None = None
    opened: float = field(default_factory=time.monotonic)
    audio_format: str | None = None
    inbox: deque[Any] = field(default_factory=lambda: deque(maxlen=INBOX_FRAMES))
    outbox: asyncio.Queue[bytes] = field(
        default_factory=lambda: asyncio.Queue(maxsize=OUTBOX_MESSAGES)
    )
    joined: bool = False
    #: Stepped on its prompt: no audio taken from it yet.
    prompting: bool = False
    #: The runner has the audio format (passed once, with the first step that knows it).
    format_given: bool = False
    #: Set when the server ends the conversation: (WebSocket close code, reason).
    ended: tuple[int, str] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set by the connection's handler once it has sent its close frame (or given up).
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class FrameLoop:
    """Sessions in, a step per frame on the model thread, messages out."""

    def __init__(
        self,
        runner: DuplexRunner,
        metrics: DuplexMetrics,
    ) -> None:
        self.runner = runner
        self.metrics = metrics
        self.limit = 1  # until the warm-up measures it
        self.sessions: dict[int, Session] = {}
        self._next_key = 0
        self._leaving: list[int] = []
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, "hfdeploy-duplex", initializer=runner.bind_thread)
        self._task: asyncio.Task[None] | None = None
        self.closing = False

    # -- sessions (event loop) -------------------------------------------------------------

    def full(self) -> bool:
        return len(self.sessions) >= self.limit

    def open(self, sampling: Sampling, forced: ForcedTokens | None = None) -> Session:
        """A new conversation (the caller checked :meth:`full` before the upgrade)."""
        key = self._next_key
        self._next_key += 1
        s = Session(key, sampling, forced, prompting=forced is not None)
        self.sessions[key] = s
        self.metrics.active.set(len(self.sessions))
        if forced is not None:
            self._wake.set()
        return s

    def frames_in(self, s: Session, frames: list[Any]) -> None:
        """Whole frames from the client; the oldest go past :data:`INBOX_FRAMES`."""
        if s.ended is not None:
            return
        for frame in frames:
            if len(s.inbox) == s.inbox.maxlen:
                self.metrics.dropped.labels("input_overflow").inc()
            s.inbox.append(frame)
        if frames and not s.joined:
            self._wake.set()

    def close(self, s: Session, reason: str) -> None:
        """The conversation is over (client gone, or ended by the server): it leaves at the
        next step. Safe to call more than once."""
        if self.sessions.pop(s.key, None) is None:
            return
        if s.joined:
            self._leaving.append(s.key)
        self.metrics.active.set(len(self.sessions))
        self.metrics.closed.labels(reason).inc()
        self.metrics.duration.observe(time.monotonic() - s.opened)
        s.done.set()

    def end(self, s: Session, code: int, reason: str, counted_as: str) -> None:
        """End a conversation from the server's side; its handler sends the close frame."""
        if s.ended is None:
            s.ended = (code, reason)
        self.close(s, counted_as)

    # -- the loop ----------------------------------------------------------------------------

    async def warm(self) -> None:
        """The runner's warm-up, on the model thread: it measures the session limit."""
        await self.call(self.runner.warm)
        self.limit = self.runner.session_limit
        self.metrics.limit.set(self.limit)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="duplex-frames")

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` on the model thread (between steps)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _run(self) -> None:
        due = time.monotonic()
        while True:
            if self._idle():
                self._wake.clear()
                try:
                    await self._flush_leaves()
                except Exception as e:
                    await self._recover(e)
                if self._idle():
                    await self._wake.wait()
                due = time.monotonic()
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            try:
                await self._step()
            except Exception as e:
                await self._recover(e)
            due += FRAME_S
            if time.monotonic() > due:
                self.metrics.late.inc()
                due = time.monotonic()

    async def _recover(self, e: Exception) -> None:
        """A step failed: end every conversation in the batch (1011) and start the engine
        afresh, so that conversations still joining, and new ones, are served."""
        log.error("duplex step failed: %s: %s", type(e).__name__, e, exc_info=e)
        for s in list(self.sessions.values()):
            if s.joined:
                self.end(s, 1011, f"step failed: {type(e).__name__}", "step_error")
        self._leaving = []
        await self.call(self.runner.reset)

    def _idle(self) -> bool:
        """No conversation to step: none joined, and none with a frame to join with."""
        return not any(s.joined or s.inbox or s.prompting for s in self.sessions.values())

    async def _flush_leaves(self) -> None:
        if self._leaving:
            leaves, self._leaving = self._leaving, []
            await self.call(self.runner.step, [], leaves, {})

    async def _step(self) -> None:
        joins = [s for s in self.sessions.values() if not s.joined and (s.inbox or s.prompting)]
        for s in joins:
            s.joined = True
        stepping = [s for s in self.sessions.values() if s.joined]
        frames: dict[int, Any] = {}
        for s in stepping:
            if s.prompting:
                continue
            if s.inbox:
                frames[s.key] = s.inbox.popleft()
            else:
                frames[s.key] = self._silence()
                self.metrics.gaps.inc()
        leaves, self._leaving = self._leaving, []
        joining = [Joining(s.key, s.sampling, s.forced) for s in joins]
        formats = {}
        for s in stepping:
            if not s.format_given and s.audio_format is not None:
                formats[s.key] = s.audio_format
                s.format_given = True
        started = time.perf_counter()
        results = await self.call(self.runner.step, joining, leaves, frames, formats)
        seconds = time.perf_counter() - started
        self.metrics.step(seconds, len(frames), FRAME_S)
        for s in stepping:
            if s.key in self.sessions:  # not closed while the step ran
                self._deliver(s, results[s.key])

    def _deliver(self, s: Session, r: StepResult) -> None:
        messages = [m for m in (TEXT + r.text.encode() if r.text else b"", *r.audio) if m]
        if r.dropped:
            self.metrics.dropped.labels("format_unknown").inc(r.dropped)
        if r.ready:  # the prompt is over: the handshake, then the conversation
            s.prompting = False
            messages.insert(0, HANDSHAKE)
        if s.outbox.maxsize - s.outbox.qsize() < len(messages):
            self.metrics.dropped.labels("output_overflow").inc(len(messages))
            self.end(s, 1008, "client too slow: it stopped reading the server's audio",
                     "slow_client")  # fmt: skip
            return
        for m in messages:
            s.outbox.put_nowait(m)

    def _silence(self) -> Any:
        import numpy as np

        return np.zeros(self.runner.frame_samples, dtype=np.float32)

    async def drain(self, timeout: float) -> int:
        """Stop taking conversations; let open ones run up to ``timeout`` seconds, then end
        them (close code 1001); how many were ended."""
        self.closing = True
        deadline = time.monotonic() + timeout
        while self.sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        ending = list(self.sessions.values())
        for s in ending:
            self.end(s, 1001, "server shutting down", "drain")
        if ending:  # the handlers send their close frames
            await asyncio.wait([asyncio.create_task(s.finished.wait()) for s in ending],
                               timeout=CLOSE_WAIT_S * 2)  # fmt: skip
        return len(ending)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True, cancel_futures=True)
