"""OpenAI-compatible routes: models, embeddings, completions, chat completions, audio.

``/v1/models`` is always there; the others only for a model whose task they serve.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import PlainTextResponse, Response

from hfdeploy.errors import BadRequestError, ModelNotServedError
from hfdeploy.serve.generate import GenerateRunner, GenInput
from hfdeploy.serve.responses import error_responses, json_response, ok_response
from hfdeploy.serve.routes._bodies import body_schema, parse_body
from hfdeploy.serve.routes._completion import respond
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


def _check_model(state: ServerState, asked: str | None) -> str:
    loaded = state.require_model()
    names = {loaded.name, loaded.profile.repo_id, loaded.profile.location}
    if asked is not None and asked not in names:
        raise ModelNotServedError(asked, loaded.name)
    return loaded.name


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
        loaded = state.require_model()
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
        return await respond(state, gen, body, name, chat=False)

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
        return await respond(state, gen, body, name, chat=True)


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
        file: UploadFile = File(  # noqa: B008 - FastAPI's declaration style
            ..., description="WAV, FLAC or OGG, any rate and channels (else 422)"
        ),
        model: str | None = Form(None),
        language: str | None = Form(None),
        response_format: Literal["json", "text"] = Form("json"),
    ) -> Response:
        loaded = state.require_model()
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
