"""How load is sent: one request and its timings, the closed loop (N workers, each sending
when its last answer came) and the open loop (sends at times fixed in advance, whatever the
server does; latency counts from the intended time)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfdeploy.bench.apis import Api, Reply
from hfdeploy.bench.config import BenchConfig, Phase
from hfdeploy.bench.dataset import Item
from hfdeploy.bench.http import Pool
from hfdeploy.bench.metrics import Record, Slo
from hfdeploy.errors import EndpointError, InvalidSettingError

__all__ = ["Progress", "RunContext", "Tokens", "closed_loop", "open_loop"]

Progress = Callable[[str, int, int | None], None]


class Tokens:
    """Counts tokens with a local tokenizer (``tokenizer.json``) when one is given."""

    def __init__(self, path: str | None) -> None:
        self.tok: Any = None
        if path:
            try:
                from tokenizers import Tokenizer
            except ImportError as e:  # pragma: no cover - tokenizers comes with transformers
                raise InvalidSettingError(
                    "--tokenizer", path, "the tokenizers package is not installed"
                ) from e
            file = Path(path)
            file = file / "tokenizer.json" if file.is_dir() else file
            if not file.is_file():
                raise InvalidSettingError("--tokenizer", path, "no tokenizer.json there")
            self.tok = Tokenizer.from_file(str(file))

    def count(self, text: str) -> int | None:
        if self.tok is None:
            return None
        return len(self.tok.encode(text, add_special_tokens=False).ids)


@dataclass
class RunContext:
    """One run's state, shared by its phases: the connection pool, the API, the items sent in
    turn, and the counts of where token numbers came from."""

    cfg: BenchConfig
    pool: Pool
    api: Api
    model: str | None
    items: list[Item]
    slo: Slo
    tokens: Tokens
    progress: Progress | None
    headers: dict[str, str]
    sources: dict[str, Counter[str]] = field(
        default_factory=lambda: {"input": Counter(), "output": Counter()}
    )
    next_item: int = 0
    #: Requests answered so far (any status), for the memory sampler.
    answered: int = 0

    def item(self) -> Item:
        it = self.items[self.next_item % len(self.items)]
        self.next_item += 1
        return it


async def _one(ctx: RunContext, record: Record) -> None:
    api = ctx.api
    item = ctx.item()
    body = api.encode(item, ctx.model)
    reply = Reply()
    sink = None
    if api.streaming:
        parser = api.new_parser()

        def sink(piece: bytes, at: float) -> None:
            api.feed(parser, reply, piece, at)

    try:
        result = await ctx.pool.request("POST", api.path, body, headers=ctx.headers, on_piece=sink)
    except TimeoutError:
        record.error = "timeout"
    except EndpointError:
        record.error = "connect"
    except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError):
        record.error = "connection"
    else:
        record.status = result.status
        record.sent = result.sent_at
        if not 200 <= result.status < 300:
            record.error = f"http_{result.status}"
        elif api.streaming:
            for _ in parser.close():
                pass
            if reply.error:
                record.error = reply.error
            elif not reply.content_times:
                record.error = "no_content"
        else:
            api.answer(result.body, reply)
            if reply.error:
                record.error = reply.error
    record.end = time.perf_counter()
    ctx.answered += 1
    if not record.sent:
        record.sent = record.end
    if record.error is None:
        record.first = reply.content_times[0] if reply.content_times else None
        record.chunk_times = reply.content_times
        _count_tokens(ctx, record, item, reply)


def _count_tokens(ctx: RunContext, record: Record, item: Item, reply: Reply) -> None:
    if reply.input_tokens is not None:
        record.input_tokens, src = reply.input_tokens, "usage"
    elif (n := ctx.tokens.count("\n".join(item.texts))) is not None:
        record.input_tokens, src = n, "tokenizer"
    else:
        record.input_tokens, src = item.input_words, "words (estimate)"
    ctx.sources["input"][src] += 1
    if not ctx.api.generates:
        return
    if reply.output_tokens is not None:
        record.output_tokens, src = reply.output_tokens, "usage"
    elif (n := ctx.tokens.count("".join(reply.text))) is not None:
        record.output_tokens, src = n, "tokenizer"
    else:
        record.output_tokens = reply.token_events
        src = "token events" if ctx.api.name == "tgi-generate" else "chunks (estimate)"
    ctx.sources["output"][src] += 1


async def closed_loop(
    ctx: RunContext, n: int, deadline: float | None, limit: int | None
) -> list[Record]:
    """``n`` workers, each sending when its last answer came, until ``deadline`` (a
    ``perf_counter`` time) or ``limit`` requests; the records in send order."""
    records: list[Record] = []
    issued = 0

    async def worker() -> None:
        nonlocal issued
        while (limit is None or issued < limit) and (
            deadline is None or time.perf_counter() < deadline
        ):
            issued += 1
            r = Record(len(records), time.perf_counter())
            records.append(r)
            await _one(ctx, r)
            if ctx.progress:
                ctx.progress("request", 1, None)

    await asyncio.gather(*(worker() for _ in range(n)))
    return records


def _schedule(phase: Phase, duration: float | None, limit: int | None, seed: int) -> list[float]:
    """Offsets (s) of the intended sends: even spacing, or exponential gaps for Poisson."""
    rate = phase.rate or 1.0
    rng = random.Random(seed)
    out: list[float] = []
    t = 0.0
    while (limit is None or len(out) < limit) and (duration is None or t < duration):
        out.append(t)
        t += rng.expovariate(rate) if phase.kind == "poisson" else 1.0 / rate
    return out


async def open_loop(
    ctx: RunContext, phase: Phase, duration: float | None, limit: int | None
) -> tuple[list[Record], list[float]]:
    """Sends on ``phase``'s schedule for ``duration`` seconds or ``limit`` requests, without
    waiting for answers; the records and how late each send was dispatched (seconds)."""
    offsets = _schedule(phase, duration, limit, ctx.cfg.seed)
    records: list[Record] = []
    lags: list[float] = []
    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter() + 0.005
    loop = asyncio.get_running_loop()

    def done(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if ctx.progress:
            ctx.progress("request", 1, None)

    i = 0
    while i < len(offsets):
        now = time.perf_counter()
        due = start + offsets[i]
        if due > now:
            # Event-loop timers have about 1 ms resolution: a shorter sleep returns at once
            # and the loop would spin a whole core. Sleeping 1 ms at least makes a send at
            # most ~1 ms late, which the dispatch lag records and the latency includes.
            await asyncio.sleep(max(due - now, 0.001))
            continue
        while i < len(offsets) and start + offsets[i] <= now:
            intended = start + offsets[i]
            lags.append(now - intended)
            r = Record(len(records), intended)
            records.append(r)
            task = loop.create_task(_one(ctx, r))
            tasks.add(task)
            task.add_done_callback(done)
            i += 1
        await asyncio.sleep(0)
    if tasks:
        await asyncio.gather(*list(tasks))
    return records, lags
