"""Dynamic batching: a bounded queue on the event loop, one or more model worker threads.

The collector waits for the first input, then, if the server is under load (the
previous batch held more than one input), up to ``max_wait_ms`` for more; an idle
server runs a lone input at once, and a full batch never waits. Under load, inputs
also pile up while the running batches run. Each batch goes to a worker thread; with
``workers`` above one, a free worker starts a batch while another runs only when a full
batch is waiting (a backlog), so independent batches run side by side (each forward pass
on its own CPU, no barrier between them) without cutting a trickle of inputs into small
batches. Torch
releases the GIL during the forward pass, so the event loop keeps parsing requests
meanwhile.

:func:`split_by_tokens` is the pure part: length-aware grouping under a padded-token
budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from hfdeploy.errors import QueueFullError, RequestTimeoutError

__all__ = ["BatchObserver", "Batcher", "Work", "split_by_tokens"]

log = logging.getLogger("hfdeploy.serve")

P = TypeVar("P")


def split_by_tokens(
    lengths: Sequence[int], *, max_batch_size: int, max_batch_tokens: int
) -> list[list[int]]:
    """Group input indices into forward passes, shortest first.

    Sorting by length puts inputs of similar length together, so padding is small;
    a group closes when adding the next input would make ``count * longest`` exceed
    ``max_batch_tokens`` or the count exceed ``max_batch_size``. An input longer
    than the budget on its own still runs, alone.

    >>> split_by_tokens([5, 100, 6, 90], max_batch_size=8, max_batch_tokens=200)
    [[0, 2], [3, 1]]
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[i]  # sorted: the newcomer is the longest
        if current and (
            len(current) + 1 > max_batch_size or (len(current) + 1) * longest > max_batch_tokens
        ):
            groups.append(current)
            current = []
        current.append(i)
    if current:
        groups.append(current)
    return groups


@dataclass(slots=True, eq=False)
class Work(Generic[P]):
    """One input waiting for the model; ``cancelled`` once its request gave up."""

    payload: P
    future: asyncio.Future[Any]
    enqueued: float = field(default_factory=time.perf_counter)
    cancelled: bool = False


class BatchObserver(Protocol):
    def queue_depth(self, depth: int) -> None: ...
    def batch(self, size: int, seconds: float) -> None: ...


class Batcher(Generic[P]):
    """Feeds ``run_batch`` with batches of payloads; one batch at a time.

    ``run_batch`` runs on the worker thread and returns one result per payload, in
    order; a result that is an exception fails only its own request. If the call
    itself raises, every request of that batch fails with that error and the next
    batch runs as usual.
    """

    def __init__(
        self,
        run_batch: Callable[[list[P]], Sequence[Any]],
        *,
        max_batch_size: int,
        max_wait_ms: float,
        max_queue: int,
        observer: BatchObserver | None = None,
        workers: int = 1,
        on_batch_start: Callable[[int], None] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._run_batch = run_batch
        #: Called on the worker thread before each batch with the number of batches running
        #: (this one included): a lone batch may take every CPU, two share them.
        self._on_batch_start = on_batch_start
        self.workers = workers
        self._busy = 0  # batches running
        self._running: set[asyncio.Task[None]] = set()
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self._observer = observer
        self._queue: deque[Work[P]] = deque()
        self._in_use = 0  # queued + running, not yet answered
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="hfdeploy-model"
        )
        self._task: asyncio.Task[None] | None = None
        self._last_size = 0

    @property
    def in_use(self) -> int:
        return self._in_use

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._collect(), name="batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        for w in self._queue:
            if not w.future.done():
                w.future.cancel()
        self._queue.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on a model thread (tokenize, warm up)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def submit(self, payloads: Sequence[P]) -> list[Work[P]]:
        """Queue payloads, all or none.

        Raises:
            QueueFullError: the queue cannot take them all; nothing is queued.
        """
        if self._in_use + len(payloads) > self.max_queue:
            raise QueueFullError(self._in_use, self.max_queue)
        loop = asyncio.get_running_loop()
        works = [Work(p, loop.create_future()) for p in payloads]
        self._queue.extend(works)
        self._in_use += len(works)
        self._observe_depth()
        self._wake.set()
        return works

    async def results(self, works: list[Work[P]], *, timeout: float) -> list[Any]:
        """Wait for the results of ``works``; on timeout, free their slots.

        Raises:
            RequestTimeoutError: not answered within ``timeout`` seconds.
        """
        futures = [w.future for w in works]
        try:
            async with asyncio.timeout(timeout):
                return list(await asyncio.gather(*futures))
        except TimeoutError:
            self.cancel(works)
            raise RequestTimeoutError(timeout) from None
        except BaseException:
            self.cancel(works)
            raise

    async def run(self, payloads: Sequence[P], *, timeout: float) -> list[Any]:
        """Submit payloads and wait for their results."""
        return await self.results(self.submit(payloads), timeout=timeout)

    def cancel(self, works: list[Work[P]]) -> None:
        """Give up on ``works``: queued ones are dropped and their slots freed now."""
        for w in works:
            # The future may already be cancelled (by the caller's own timeout or
            # disconnect): the work must still leave the queue.
            w.cancelled = True
            if not w.future.done():
                w.future.cancel()
        dropped = [w for w in self._queue if w.cancelled]
        if dropped:
            self._queue = deque(w for w in self._queue if not w.cancelled)
            self._in_use -= len(dropped)
            self._observe_depth()

    def _observe_depth(self) -> None:
        if self._observer is not None:
            self._observer.queue_depth(self._in_use)

    async def _collect(self) -> None:
        while True:
            # A second worker starts only on a full batch: while a batch runs, a trickle of
            # inputs waits to join the next batch of the worker that frees up, instead of
            # going out in small batches that cost more CPU per input.
            if (not self._queue or self._busy >= self.workers
                    or (self._busy and len(self._queue) < self.max_batch_size)):  # fmt: skip
                self._wake.clear()
                await self._wake.wait()
                continue
            # Wait for company only under load (the last batch had company): an idle
            # server answers a lone request at once instead of adding max_wait to it.
            deadline = self._queue[0].enqueued + (self.max_wait if self._last_size > 1 else 0.0)
            while len(self._queue) < self.max_batch_size:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._wake.clear()
                try:
                    async with asyncio.timeout(remaining):
                        await self._wake.wait()
                except TimeoutError:
                    break
            batch: list[Work[P]] = []
            while self._queue and len(batch) < self.max_batch_size:
                w = self._queue.popleft()
                if w.cancelled or w.future.done():  # its request is gone: free the slot
                    self._in_use -= 1
                    continue
                batch.append(w)
            if not batch:
                self._observe_depth()
                continue
            self._busy += 1
            self._last_size = len(batch)
            task = asyncio.get_running_loop().create_task(self._run(batch, self._busy))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    def _call(self, running: int, payloads: list[P]) -> Sequence[Any]:
        """On the worker thread: tell the hook how many batches run, then run this one."""
        if self._on_batch_start is not None:
            self._on_batch_start(running)
        return self._run_batch(payloads)

    async def _run(self, batch: list[Work[P]], running: int) -> None:
        """One batch on a worker thread (``running``: batches running as it starts, itself
        included); its results to their requests; the worker freed."""
        started = time.perf_counter()
        try:
            results: Sequence[Any] = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._call, running, [w.payload for w in batch]
            )
            if len(results) != len(batch):
                raise RuntimeError(f"runner gave {len(results)} results for {len(batch)}")
        except Exception as exc:  # the batch fails; the server goes on
            log.exception("batch of %d failed", len(batch))
            results = [exc] * len(batch)
        finally:
            self._busy -= 1
            self._wake.set()
        if self._observer is not None:
            self._observer.batch(len(batch), time.perf_counter() - started)
        for w, r in zip(batch, results, strict=True):
            if w.future.done():
                continue
            if isinstance(r, BaseException):
                w.future.set_exception(r)
            else:
                w.future.set_result(r)
        self._in_use -= len(batch)
        self._observe_depth()
