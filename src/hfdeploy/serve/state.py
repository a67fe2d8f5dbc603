"""What the routes share: settings, metrics, the phase and, once ready, the model and batcher.

The app answers as soon as it starts; :meth:`ServerState.start` moves the phase through
loading and warming to ready (or failed) in the background, and :meth:`ServerState.stop`
drains. Routes reach the model only through :meth:`ServerState.require`, which answers
503 until the model is ready.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

from hfdeploy.errors import HfDeployError, ModelLoadError, NotReadyError
from hfdeploy.serve.batching import Batcher
from hfdeploy.serve.duplex.frames import FrameLoop
from hfdeploy.serve.duplex.runner import DuplexRunner
from hfdeploy.serve.metrics import ServerMetrics
from hfdeploy.serve.runtime import LoadedModel
from hfdeploy.serve.settings import ServeSettings

__all__ = ["Loader", "Phase", "ServerState"]

log = logging.getLogger("hfdeploy.serve")

Phase = Literal["starting", "loading", "warming", "ready", "failed", "draining"]
Loader = Callable[[ServeSettings], LoadedModel]


class ServerState:
    """What the routes share: settings, metrics, the phase and, once ready, the model."""

    def __init__(self, settings: ServeSettings, metrics: ServerMetrics, *, task: str) -> None:
        self.settings = settings
        self.metrics = metrics
        #: The task the app's routes are mounted for; the loaded model must serve it.
        self.task = task
        self.phase: Phase = "starting"
        self.error: BaseException | None = None
        self.loaded: LoadedModel | None = None
        self.batcher: Batcher[Any] | None = None
        #: A full-duplex model's frame loop (in place of the batcher).
        self.frames: FrameLoop | None = None
        self.started = time.time()
        self.on_failure: Callable[[BaseException], None] | None = None
        #: Called on the event loop once the model is loaded, before warmup.
        self.on_loaded: Callable[[LoadedModel], None] | None = None

    def require_model(self) -> LoadedModel:
        """The loaded model, or 503 while loading, warming up or draining."""
        if self.phase != "ready" and self.phase != "draining":
            raise NotReadyError(self.phase)
        assert self.loaded is not None
        return self.loaded

    def require(self) -> tuple[LoadedModel, Batcher[Any]]:
        """The model and its batcher, or 503 while loading, warming up or draining."""
        loaded = self.require_model()
        assert self.batcher is not None
        return loaded, self.batcher

    async def start(self, loader: Loader) -> None:
        """Load, start the batcher, warm up; on failure record it (and tell ``on_failure``)."""
        try:
            self.phase = "loading"
            loaded = await asyncio.to_thread(loader, self.settings)
            if loaded.runner.task != self.task:
                raise ModelLoadError(
                    self.settings.model,
                    f"the model loaded for {loaded.runner.task}, but the routes are for "
                    f"{self.task}",
                )
            if self.on_loaded is not None:
                self.on_loaded(loaded)
            if isinstance(loaded.runner, DuplexRunner):
                await self._start_frames(loaded, loaded.runner)
            else:
                batcher = self._start_batcher(loaded)
                if self.settings.warmup:
                    self.phase = "warming"
                    await self._warm_up(loaded, batcher)
            # Everything loaded so far (torch, transformers, the model) lives as long as
            # the process: keep it out of the cyclic GC's full passes, whose pauses
            # showed as p99 spikes under load.
            gc.collect()
            gc.freeze()
            self.phase = "ready"
            self.metrics.ready.set(1)
            log.info("ready: %s (%s)", loaded.name, loaded.runner.task)
        except Exception as e:
            self._fail(e)

    def _start_batcher(self, loaded: LoadedModel) -> Batcher[Any]:
        """Keep the loaded model, start its batcher, record the load in the metrics."""
        s = self.settings
        self.loaded = loaded
        runner = loaded.runner
        # The generator runs one sequence at a time (generate.py): batches of one, sent at once.
        generative = runner.task == "text-generation"
        self.batcher = Batcher(
            runner.run,
            max_batch_size=1 if generative else s.max_batch_size,
            max_wait_ms=0 if generative else s.max_wait_ms,
            max_queue=s.max_queue,
            observer=self.metrics,
            workers=loaded.workers,
            on_batch_start=loaded.threads_for,
        )
        self.batcher.start()
        self._record_load(loaded)
        return self.batcher

    def _record_load(self, loaded: LoadedModel) -> None:
        self.metrics.load_seconds.set(loaded.load_seconds)
        for phase, seconds in loaded.phases.items():
            self.metrics.startup_phase.labels(phase).set(seconds)
        self.metrics.info.labels(loaded.name, loaded.runner.task).set(1)

    def _record_warmup(self, loaded: LoadedModel, seconds: float) -> None:
        loaded.warmup_seconds = seconds
        self.metrics.warmup_seconds.set(seconds)
        loaded.phases["warmup"] = round(seconds, 4)
        self.metrics.startup_phase.labels("warmup").set(seconds)
        log.info("warmup done in %.2fs", seconds)

    async def _start_frames(self, loaded: LoadedModel, runner: DuplexRunner) -> None:
        """Keep the loaded model; warm up (always: it measures the session limit); start the
        frame loop."""
        assert self.metrics.duplex is not None
        self.loaded = loaded
        self._record_load(loaded)
        frames = FrameLoop(runner, self.metrics.duplex)
        self.phase = "warming"
        started = time.perf_counter()
        await frames.warm()
        self._record_warmup(loaded, time.perf_counter() - started)
        loaded.warmup_shapes = (
            [f"{n} session(s)" for n in runner.limit.steps] if runner.limit else []
        )
        frames.start()
        self.frames = frames

    async def _warm_up(self, loaded: LoadedModel, batcher: Batcher[Any]) -> None:
        """Run the runner's warmup shapes on the model thread; record the time taken."""
        runner = loaded.runner
        started = time.perf_counter()
        for shape in runner.warmup_shapes(self.settings):
            t = time.perf_counter()
            await batcher.call(partial(runner.warm, shape))
            log.info("warmup %s (batch x tokens): %.3fs", shape, time.perf_counter() - t)
            loaded.warmup_shapes.append(str(shape))
        self._record_warmup(loaded, time.perf_counter() - started)

    def _fail(self, e: Exception) -> None:
        self.phase = "failed"
        self.error = e
        if isinstance(e, HfDeployError):
            log.error("start failed: %s (next: %s)", e.message, e.hint)
            log.debug("start failed", exc_info=e)
        else:
            log.exception("start failed")
        if self.on_failure is not None:
            self.on_failure(e)

    async def stop(self) -> None:
        """Drain: ``/ready`` turns 503 and the batcher finishes what it holds."""
        if self.phase != "failed":
            self.phase = "draining"
        self.metrics.ready.set(0)
        if self.batcher is not None:
            await self.batcher.stop()
        if self.frames is not None:
            await self.frames.drain(0)
            await self.frames.stop()

    async def drain_conversations(self) -> int:
        """On SIGTERM, before the server closes its connections: open conversations run on
        for up to the drain timeout, then end with a close frame (1001); how many did."""
        if self.frames is None:
            return 0
        return await self.frames.drain(self.settings.drain_timeout)
