"""One completion's answer (OpenAI's completions and chat completions): whole, or streamed.

A streamed answer waits for the first text before it starts, so that a request the model
refuses (a prompt over the context) gets its 4xx, not a 200 stream that ends in an error.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi.responses import Response, StreamingResponse

from hfdeploy.errors import RequestTimeoutError, ServeError
from hfdeploy.serve.batching import Batcher, Work
from hfdeploy.serve.generate import GenInput, GenResult
from hfdeploy.serve.responses import error_body, json_response
from hfdeploy.serve.specs.openai import ChatRequest, CompletionRequest
from hfdeploy.serve.state import ServerState

__all__ = ["respond"]

_TAKEN: Any = object()


def _usage(prompt: int, completion: int = 0) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


async def respond(
    state: ServerState,
    gen: GenInput,
    body: CompletionRequest | ChatRequest,
    name: str,
    *,
    chat: bool,
) -> Response:
    """Run ``gen``; answer the whole completion, or stream it when ``body.stream``."""
    _, batcher = state.require()
    rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
    reply = _Reply(rid, int(time.time()), name, chat=chat)
    if not body.stream:
        try:
            (result,) = await batcher.run([gen], timeout=state.settings.request_timeout)
        finally:
            gen.cancel.set()
        _count(state, result)
        return json_response(reply.final(result))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    stream = _Stream(state, batcher, gen, reply, include_usage=include_usage)
    await stream.open()
    return StreamingResponse(
        stream.events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


@dataclass(frozen=True, slots=True)
class _Reply:
    """The fields every object of one completion's answer repeats, and those objects."""

    rid: str
    created: int
    name: str
    chat: bool

    def _object(self, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.rid,
            "object": kind,
            "created": self.created,
            "model": self.name,
            "choices": choices,
        }

    def final(self, r: GenResult) -> dict[str, Any]:
        """The whole completion (``stream: false``)."""
        finish = "stop" if r.finish_reason == "cancelled" else r.finish_reason
        if self.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": r.text},
                "finish_reason": finish,
                "logprobs": None,
            }
        else:
            choice = {"index": 0, "text": r.text, "finish_reason": finish, "logprobs": None}
        kind = "chat.completion" if self.chat else "text_completion"
        usage = _usage(r.prompt_tokens, r.completion_tokens)
        return self._object(kind, [choice]) | {"usage": usage}

    @property
    def chunk_kind(self) -> str:
        return "chat.completion.chunk" if self.chat else "text_completion"

    def chunk(self, delta: str | None, finish: str | None, *, role: bool = False) -> bytes:
        """One server-sent event with a piece of text (chat: a delta) or the finish reason."""
        if self.chat:
            d: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
            if delta is not None:
                d["content"] = delta
            choice: dict[str, Any] = {"index": 0, "delta": d, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": delta or "", "finish_reason": finish}
        return _event(orjson.dumps(self._object(self.chunk_kind, [choice])))

    def usage_chunk(self, r: GenResult) -> bytes:
        """The last event when ``stream_options.include_usage``: no choices, the usage."""
        usage = _usage(r.prompt_tokens, r.completion_tokens)
        return _event(orjson.dumps(self._object(self.chunk_kind, []) | {"usage": usage}))


def _event(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


class _Stream:
    """One streamed generation: text from the model thread to server-sent events.

    :meth:`open` submits the input and waits for its first text; :meth:`events` is the
    response body.
    """

    def __init__(
        self,
        state: ServerState,
        batcher: Batcher[Any],
        gen: GenInput,
        reply: _Reply,
        *,
        include_usage: bool,
    ) -> None:
        self.state = state
        self.batcher = batcher
        self.gen = gen
        self.reply = reply
        self.include_usage = include_usage
        self.timeout = state.settings.request_timeout
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.deadline = 0.0
        self.first: str | None = _TAKEN
        self.work: Work[Any] | None = None

    async def open(self) -> None:
        """Submit; wait for the first text or the end.

        Raises:
            RequestTimeoutError: no text before the request timeout.
            ServeError: the model refused the input (prompt too long, bad max_tokens).
        """
        loop = asyncio.get_running_loop()
        queue = self.queue

        def on_text(text: str) -> None:  # on the model thread
            loop.call_soon_threadsafe(queue.put_nowait, text)

        self.gen.on_text = on_text
        (work,) = self.batcher.submit([self.gen])
        self.work = work
        work.future.add_done_callback(lambda _: queue.put_nowait(None))
        # Wait for the first text (or the end) before answering, so that a request the
        # model refuses (prompt too long, bad max_tokens) gets its 4xx, not a 200 stream.
        self.deadline = loop.time() + self.timeout
        try:
            async with asyncio.timeout_at(self.deadline):
                self.first = await queue.get()
        except BaseException as e:
            self._abandon()
            if isinstance(e, TimeoutError):
                raise RequestTimeoutError(self.timeout) from None
            raise
        if self.first is None and work.future.exception() is not None:
            raise work.future.exception()  # type: ignore[misc]

    def _abandon(self) -> None:
        self.gen.cancel.set()
        assert self.work is not None
        self.batcher.cancel([self.work])

    async def _next_text(self) -> str | None:
        if self.first is not _TAKEN:
            text, self.first = self.first, _TAKEN
            return text
        async with asyncio.timeout_at(self.deadline):
            return await self.queue.get()

    async def events(self) -> AsyncIterator[bytes]:
        """The text as it comes, the finish reason, the usage if asked, ``[DONE]``.

        A timeout or a model error after the stream started ends it with an error event.
        """
        reply = self.reply
        try:
            if reply.chat:
                yield reply.chunk(None, None, role=True)
            while True:
                try:
                    text = await self._next_text()
                except TimeoutError:
                    self._abandon()
                    err = RequestTimeoutError(self.timeout)
                    yield _event(error_body(err.message, err.code))
                    return
                if text is None:
                    break
                yield reply.chunk(text, None)
            assert self.work is not None
            try:
                result: GenResult = self.work.future.result()
            except ServeError as e:
                yield _event(error_body(e.message, e.code, param=e.param))
                return
            _count(self.state, result)
            yield reply.chunk(None if reply.chat else "", result.finish_reason)
            if self.include_usage:
                yield reply.usage_chunk(result)
            yield b"data: [DONE]\n\n"
        finally:
            self.gen.cancel.set()  # client gone or done: stop generating


def _count(state: ServerState, r: GenResult) -> None:
    state.metrics.tokens.labels("input").inc(r.prompt_tokens)
    state.metrics.tokens.labels("output").inc(r.completion_tokens)
