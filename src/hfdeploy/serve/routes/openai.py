"""OpenAI-compatible routes: models, embeddings, completions, chat completions, audio."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from hfdeploy.errors import (
    BadRequestError,
    ModelNotServedError,
    RequestTimeoutError,
    ServeError,
    UnsupportedTaskError,
)
from hfdeploy.serve.generate import GenerateRunner, GenInput, GenResult
from hfdeploy.serve.responses import error_body, json_response
from hfdeploy.serve.routes._bodies import body_schema, parse_body
from hfdeploy.serve.routes._inference import embed, transcribe
from hfdeploy.serve.specs.openai import ChatRequest, CompletionRequest, EmbeddingsRequest
from hfdeploy.serve.state import ServerState

__all__ = ["register"]

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


def register(app: FastAPI, state: ServerState) -> None:
    """Add the OpenAI routes to ``app``."""

    @app.get("/v1/models", tags=["openai"])
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

    @app.post("/v1/embeddings", tags=["openai"], openapi_extra=body_schema(EmbeddingsRequest))
    async def embeddings_route(request: Request) -> Response:
        body = await parse_body(request, EmbeddingsRequest)
        name = _check_model(state, body.model)
        raw = body.input
        if isinstance(raw, str):
            texts = [raw]
        elif raw and all(isinstance(x, str) for x in raw):
            texts = [str(x) for x in raw]
        elif not raw:
            texts = []
        else:
            raise BadRequestError("token-id input is not supported; send text", param="input")
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

    @app.post("/v1/completions", tags=["openai"], response_model=None)
    async def completions_route(body: CompletionRequest) -> Response:
        name = _check_model(state, body.model)
        prompt = body.prompt
        if isinstance(prompt, list):
            if len(prompt) != 1:
                raise BadRequestError("send one prompt per request", param="prompt")
            prompt = prompt[0]
        gen = _gen_input(body, prompt=prompt)
        return await _respond(state, gen, body, name, chat=False)

    @app.post("/v1/chat/completions", tags=["openai"], response_model=None)
    async def chat_route(body: ChatRequest) -> Response:
        name = _check_model(state, body.model)
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        gen = _gen_input(body, messages=messages)
        if body.max_completion_tokens is not None:
            gen.max_tokens = body.max_completion_tokens
        return await _respond(state, gen, body, name, chat=True)

    @app.post("/v1/audio/transcriptions", tags=["openai"])
    async def transcriptions_route(
        file: UploadFile = File(...),  # noqa: B008 - FastAPI's declaration style
        model: str | None = Form(None),
        language: str | None = Form(None),
        response_format: str = Form("json"),
    ) -> Response:
        loaded, _ = state.require()
        if model is not None and model not in {loaded.name, loaded.profile.repo_id}:
            raise ModelNotServedError(model, loaded.name)
        if response_format not in ("json", "text"):
            raise BadRequestError("response_format must be json or text", param="response_format")
        text = await transcribe(state, await file.read(), language=language)
        if response_format == "text":
            return PlainTextResponse(text)
        return json_response({"text": text})


def _gen_input(
    body: CompletionRequest | ChatRequest,
    *,
    prompt: str | None = None,
    messages: list[dict[str, Any]] | None = None,
) -> GenInput:
    if len(body.stops()) > 4:
        raise BadRequestError("at most 4 stop sequences", param="stop")
    return GenInput(
        prompt=prompt,
        messages=messages,
        max_tokens=body.max_tokens,
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
    loaded, batcher = state.require()
    if not isinstance(loaded.runner, GenerateRunner):
        raise UnsupportedTaskError(
            "/v1/chat/completions" if chat else "/v1/completions",
            loaded.runner.task,
            supported="/v1/embeddings"
            if loaded.runner.task == "feature-extraction"
            else "/predict",
        )
    rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
    created = int(time.time())
    timeout = state.settings.request_timeout
    if not body.stream:
        try:
            (result,) = await batcher.run([gen], timeout=timeout)
        finally:
            gen.cancel.set()
        _count(state, result)
        return json_response(_final(result, rid, created, name, chat=chat))

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def on_text(text: str) -> None:  # on the model thread
        loop.call_soon_threadsafe(queue.put_nowait, text)

    gen.on_text = on_text
    (work,) = batcher.submit([gen])
    work.future.add_done_callback(lambda _: queue.put_nowait(None))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    kind = "chat.completion.chunk" if chat else "text_completion"

    def chunk(delta: str | None, finish: str | None, *, role: bool = False) -> bytes:
        if chat:
            d: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
            if delta is not None:
                d["content"] = delta
            choice: dict[str, Any] = {"index": 0, "delta": d, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": delta or "", "finish_reason": finish}
        obj = {"id": rid, "object": kind, "created": created, "model": name, "choices": [choice]}
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    # Wait for the first text (or the end) before answering, so that a request the
    # model refuses (prompt too long, bad max_tokens) gets its 4xx, not a 200 stream.
    deadline = loop.time() + timeout
    try:
        async with asyncio.timeout_at(deadline):
            first = await queue.get()
    except BaseException as e:
        gen.cancel.set()
        batcher.cancel([work])
        if isinstance(e, TimeoutError):
            raise RequestTimeoutError(timeout) from None
        raise
    if first is None and work.future.exception() is not None:
        raise work.future.exception()  # type: ignore[misc]

    async def next_text() -> str | None:
        nonlocal first
        if first is not _TAKEN:
            text, first = first, _TAKEN
            return text
        async with asyncio.timeout_at(deadline):
            return await queue.get()

    async def events() -> AsyncIterator[bytes]:
        try:
            if chat:
                yield chunk(None, None, role=True)
            while True:
                try:
                    text = await next_text()
                except TimeoutError:
                    gen.cancel.set()
                    batcher.cancel([work])
                    err = RequestTimeoutError(timeout)
                    yield b"data: " + error_body(err.message, err.code) + b"\n\n"
                    return
                if text is None:
                    break
                yield chunk(text, None)
            try:
                result: GenResult = work.future.result()
            except ServeError as e:
                yield b"data: " + error_body(e.message, e.code, param=e.param) + b"\n\n"
                return
            _count(state, result)
            yield chunk(None if chat else "", result.finish_reason)
            if include_usage:
                usage = {
                    "id": rid,
                    "object": kind,
                    "created": created,
                    "model": name,
                    "choices": [],
                    "usage": _usage(result.prompt_tokens, result.completion_tokens),
                }
                yield b"data: " + orjson.dumps(usage) + b"\n\n"
            yield b"data: [DONE]\n\n"
        finally:
            gen.cancel.set()  # client gone or done: stop generating

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def _count(state: ServerState, r: GenResult) -> None:
    state.metrics.tokens.labels("input").inc(r.prompt_tokens)
    state.metrics.tokens.labels("output").inc(r.completion_tokens)


def _final(r: GenResult, rid: str, created: int, name: str, *, chat: bool) -> dict[str, Any]:
    finish = "stop" if r.finish_reason == "cancelled" else r.finish_reason
    if chat:
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": r.text},
            "finish_reason": finish,
            "logprobs": None,
        }
    else:
        choice = {"index": 0, "text": r.text, "finish_reason": finish, "logprobs": None}
    return {
        "id": rid,
        "object": "chat.completion" if chat else "text_completion",
        "created": created,
        "model": name,
        "choices": [choice],
        "usage": _usage(r.prompt_tokens, r.completion_tokens),
    }
