"""OpenAI-compatible routes: models, embeddings, completions, chat completions, audio.

``/v1/models`` is always there; the others only for a model whose task they serve.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from hfdeploy.errors import BadRequestError, ModelNotServedError, RequestTimeoutError, ServeError
from hfdeploy.serve.batching import Batcher, Work
from hfdeploy.serve.generate import GenerateRunner, GenInput, GenResult
from hfdeploy.serve.responses import error_body, error_responses, json_response, ok_response
from hfdeploy.serve.routes._bodies import body_schema, parse_body
from hfdeploy.serve.routes._inference import embed, runner_of, transcribe
from hfdeploy.serve.specs.openai import (
    ChatCompletion,
    ChatRequest,
    Completion,
    CompletionRequest,
    Embeddings,
    EmbeddingsRequest,
    ModelList,
    Transcription,
)
from hfdeploy.serve.state import ServerState

__all__ = ["CHAT_PATH", "register"]

CHAT_PATH = "/v1/chat/completions"

_TAKEN: Any = object()


def _check_model(state: ServerState, asked: str | None) -> str:
    loaded, _ = state.require()
    names = {loaded.name, loaded.profile.repo_id, loaded.profile.location}
    if asked is not None and asked not in names:
        raise ModelNotServedError(asked, loaded.name)
    return loaded.name


def _usage(prompt: int, completion: int = 0) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


_GEN_ERRORS = (404, 413, 422, 500, 503, 504)
#: One server-sent event (OpenAPI 3.1 documents each event, not the whole stream).
_SSE = {
    "text/event-stream": {
        "schema": {
            "type": "object",
            "properties": {
                "data": {
                    "type": "string",
                    "description": "a chunk of the answer as JSON, an error body, or [DONE]",
                }
            },
            "required": ["data"],
        }
    }
}


def register(app: FastAPI, state: ServerState, task: str) -> None:
    """Add the OpenAI routes that ``task`` serves to ``app`` (``/v1/models`` for every task)."""

    @app.get(
        "/v1/models",
        tags=["openai"],
        responses=ok_response(ModelList, "the one model served") | error_responses(503),
    )
    async def models_route() -> Response:
        loaded, _ = state.require()
        return json_response(
            {
                "object": "list",
                "data": [
                    {
                        "id": loaded.name,
                        "object": "model",
                        "created": int(state.started),
                        "owned_by": "hfdeploy",
                        "task": loaded.runner.task,
                        "max_model_len": loaded.runner.max_input_tokens,
                    }
                ],
            }
        )

    if task == "feature-extraction":
        _register_embeddings(app, state)
    if task == "text-generation":
        _register_generation(app, state)
    if task == "automatic-speech-recognition":
        _register_transcriptions(app, state)


def _register_embeddings(app: FastAPI, state: ServerState) -> None:
    @app.post(
        "/v1/embeddings",
        tags=["openai"],
        openapi_extra=body_schema(EmbeddingsRequest),
        responses=ok_response(Embeddings, "one embedding per input")
        | error_responses(*_GEN_ERRORS),
    )
    async def embeddings_route(request: Request) -> Response:
        body = await parse_body(request, EmbeddingsRequest)
        name = _check_model(state, body.model)
        texts = [body.input] if isinstance(body.input, str) else body.input
        results = await embed(
            state,
            texts,
            normalize=True,
            truncate=False,
            prompt_name=None,
            dimensions=body.dimensions,
            field="input",
        )
        data = []
        for i, r in enumerate(results):
            vec: Any = r.vector
            if body.encoding_format == "base64":
                vec = base64.b64encode(r.vector.astype("<f4").tobytes()).decode("ascii")
            data.append({"object": "embedding", "index": i, "embedding": vec})
        tokens = sum(r.tokens for r in results)
        return json_response(
            {
                "object": "list",
                "data": data,
                "model": name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )


def _register_generation(app: FastAPI, state: ServerState) -> None:
    @app.post(
        "/v1/completions",
        tags=["openai"],
        openapi_extra=body_schema(CompletionRequest),
        responses=ok_response(
            Completion, "the completion; server-sent events with `stream: true`", content=_SSE
        )
        | error_responses(*_GEN_ERRORS),
    )
    async def completions_route(request: Request) -> Response:
        body = await parse_body(request, CompletionRequest)
        name = _check_model(state, body.model)
        prompt = body.prompt if isinstance(body.prompt, str) else body.prompt[0]
        gen = _gen_input(state, body, prompt=prompt)
        return await _respond(state, gen, body, name, chat=False)

    @app.post(
        CHAT_PATH,
        tags=["openai"],
        openapi_extra=body_schema(ChatRequest),
        responses=ok_response(
            ChatCompletion, "the answer; server-sent events with `stream: true`", content=_SSE
        )
        | error_responses(*_GEN_ERRORS),
    )
    async def chat_route(request: Request) -> Response:
        body = await parse_body(request, ChatRequest)
        name = _check_model(state, body.model)
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        gen = _gen_input(state, body, messages=messages)
        return await _respond(state, gen, body, name, chat=True)


def _register_transcriptions(app: FastAPI, state: ServerState) -> None:
    @app.post(
        "/v1/audio/transcriptions",
        tags=["openai"],
        responses=ok_response(
            Transcription,
            "the text (plain text with `response_format=text`)",
            content={"text/plain": {"schema": {"type": "string"}}},
        )
        | error_responses(400, *_GEN_ERRORS),
    )
    async def transcriptions_route(
        file: UploadFile = File(...),  # noqa: B008 - FastAPI's declaration style
        model: str | None = Form(None),
        language: str | None = Form(None),
        response_format: Literal["json", "text"] = Form("json"),
    ) -> Response:
        loaded, _ = state.require()
        if model is not None and model not in {loaded.name, loaded.profile.repo_id}:
            raise ModelNotServedError(model, loaded.name)
        text = await transcribe(state, await file.read(), language=language)
        if response_format == "text":
            return PlainTextResponse(text)
        return json_response({"text": text})


def _gen_input(
    state: ServerState,
    body: CompletionRequest | ChatRequest,
    *,
    prompt: str | None = None,
    messages: list[dict[str, Any]] | None = None,
) -> GenInput:
    """The model's input; ``max_tokens`` checked against the context (the schema's maximum)."""
    runner = runner_of(state, GenerateRunner)
    asked = {"max_tokens": body.max_tokens}
    if isinstance(body, ChatRequest):
        asked["max_completion_tokens"] = body.max_completion_tokens
    for field, value in asked.items():
        if value is not None and value > runner.max_new_tokens:
            raise BadRequestError(
                f"{field} {value} is more than this model can generate "
                f"({runner.max_new_tokens}: its context less one prompt token)",
                param=field,
            )
    max_tokens = asked.get("max_completion_tokens") or body.max_tokens
    return GenInput(
        prompt=prompt,
        messages=messages,
        max_tokens=max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed,
        stop=body.stops(),
    )


async def _respond(
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
