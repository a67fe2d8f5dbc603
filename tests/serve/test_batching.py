"""The batcher on its own: grouping, filling, shedding, cancelling, failing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from hfdeploy.errors import QueueFullError, RequestTimeoutError
from hfdeploy.serve.batching import Batcher, split_by_tokens


def test_split_by_tokens_groups_similar_lengths_under_the_budget() -> None:
    lengths = [5, 100, 6, 90, 7, 300]
    groups = split_by_tokens(lengths, max_batch_size=8, max_batch_tokens=200)
    assert sorted(i for g in groups for i in g) == list(range(6))
    for g in groups:
        padded = len(g) * max(lengths[i] for i in g)
        assert padded <= 200 or len(g) == 1
    assert groups[0] == [0, 2, 4]  # the short ones together
    assert [5] in groups  # over the budget alone: still runs, alone


def test_split_by_tokens_respects_the_count() -> None:
    groups = split_by_tokens([3] * 10, max_batch_size=4, max_batch_tokens=10_000)
    assert [len(g) for g in groups] == [4, 4, 2]


def _batcher(run: Any, **kw: Any) -> Batcher[Any]:
    opts = {"max_batch_size": 4, "max_wait_ms": 20, "max_queue": 8} | kw
    return Batcher(run, **opts)


def test_batches_fill_to_the_size_and_keep_order() -> None:
    seen: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        seen.append(items)
        time.sleep(0.01)
        return [x * 10 for x in items]

    async def main() -> list[Any]:
        b = _batcher(run)
        b.start()
        try:
            return await asyncio.gather(*(b.run([i], timeout=5) for i in range(8)))
        finally:
            await b.stop()

    assert asyncio.run(main()) == [[i * 10] for i in range(8)]
    assert [len(s) for s in seen] == [4, 4]


def test_max_wait_applies_under_load_only() -> None:
    sizes: list[int] = []

    def run(items: list[str]) -> list[str]:
        sizes.append(len(items))
        return items

    async def late_pair(b: Batcher[Any]) -> None:
        first = asyncio.ensure_future(b.run(["a"], timeout=5))
        await asyncio.sleep(0.03)  # well inside max_wait
        await asyncio.gather(first, b.run(["b"], timeout=5))

    async def main() -> None:
        b = _batcher(run, max_wait_ms=300)
        b.start()
        await late_pair(b)  # idle: "a" runs alone at once, "b" after
        assert sizes == [1, 1]
        await asyncio.gather(b.run(["c"], timeout=5), b.run(["d"], timeout=5))
        assert sizes[-1] == 2  # now under load
        await late_pair(b)  # "a" waits for "b"
        assert sizes[-1] == 2
        await b.stop()

    asyncio.run(main())


def test_submit_is_all_or_none_when_full() -> None:
    async def main() -> None:
        b = _batcher(lambda items: items, max_queue=4)  # not started: nothing drains
        b.submit([1, 2, 3])
        with pytest.raises(QueueFullError) as err:
            b.submit([4, 5])
        assert err.value.status == 503
        assert b.in_use == 3
        b.submit([4])
        assert b.in_use == 4
        await b.stop()

    asyncio.run(main())


def test_timeout_drops_queued_work() -> None:
    ran: list[Any] = []

    async def main() -> None:
        b = _batcher(lambda items: ran.extend(items) or items)
        with pytest.raises(RequestTimeoutError):
            await b.run(["late"], timeout=0.05)  # batcher not started: stays queued
        assert b.in_use == 0
        b.start()
        assert await b.run(["next"], timeout=5) == ["next"]
        await b.stop()

    asyncio.run(main())
    assert ran == ["next"]


def test_errors_fail_their_own_requests_only() -> None:
    def run(items: list[str]) -> list[Any]:
        if "boom" in items:
            raise RuntimeError("batch failed")
        return [ValueError(x) if x == "bad" else x for x in items]

    async def main() -> None:
        b = _batcher(run, max_wait_ms=0, max_batch_size=1)
        b.start()
        results = await asyncio.gather(
            b.run(["boom"], timeout=5),
            b.run(["bad"], timeout=5),
            b.run(["good"], timeout=5),
            return_exceptions=True,
        )
        assert isinstance(results[0], RuntimeError)
        assert isinstance(results[1], ValueError)
        assert results[2] == ["good"]
        assert b.in_use == 0
        await b.stop()

    asyncio.run(main())


def test_two_workers_run_two_batches_side_by_side() -> None:
    import threading

    both = threading.Barrier(2, timeout=5)  # passes only with two batches running at once
    sizes: list[int] = []

    def run(items: list[int]) -> list[int]:
        sizes.append(len(items))
        both.wait()
        return [x + 1 for x in items]

    async def main() -> list[Any]:
        b = _batcher(run, max_batch_size=2, workers=2)
        b.start()
        try:
            return await asyncio.gather(*(b.run([i], timeout=10) for i in range(4)))
        finally:
            await b.stop()

    assert asyncio.run(main()) == [[i + 1] for i in range(4)]
    assert sum(sizes) == 4
    with pytest.raises(ValueError, match="at least 1"):
        _batcher(run, workers=0)


def test_one_worker_never_runs_two_batches_at_once() -> None:
    import threading

    running = threading.Semaphore(1)
    overlaps: list[bool] = []

    def run(items: list[int]) -> list[int]:
        overlaps.append(not running.acquire(blocking=False))
        time.sleep(0.005)
        running.release()
        return items

    async def main() -> None:
        b = _batcher(run, max_batch_size=2)
        b.start()
        try:
            await asyncio.gather(*(b.run([i], timeout=10) for i in range(8)))
        finally:
            await b.stop()

    asyncio.run(main())
    assert overlaps and not any(overlaps)


def test_a_lone_batch_is_told_it_runs_alone_and_two_that_they_share() -> None:
    import threading

    both = threading.Barrier(2, timeout=5)
    told: list[tuple[str, int]] = []

    def run(items: list[int]) -> list[int]:
        if items[0] < 10:  # the first two batches meet: two run at once
            both.wait()
        return items

    def on_start(running: int) -> None:  # on the worker thread, before its batch
        told.append((threading.current_thread().name, running))

    async def main() -> None:
        b = _batcher(run, max_batch_size=2, workers=2, on_batch_start=on_start)
        b.start()
        try:
            await asyncio.gather(*(b.run([i], timeout=10) for i in range(4)))
            await b.run([10], timeout=10)  # alone now
        finally:
            await b.stop()

    asyncio.run(main())
    assert sorted(n for _, n in told[:2]) == [1, 2]  # the second started while the first ran
    assert told[-1][1] == 1
    assert all(name.startswith("hfdeploy-model") for name, _ in told)
