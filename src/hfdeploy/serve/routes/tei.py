"""TEI-compatible routes: ``/embed``, ``/rerank``, ``/predict``, ``/tokenize``, ``/info``, ``/``.

Each is mounted only for a model whose task it serves (``/rerank`` for a reranker,
``/predict`` for classifiers, ...); the others are 404 and absent from the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from hfdeploy._version import __version__
from hfdeploy.serve.encoders import (
    Encoder,
    ScoreInput,
    ScoreRunner,
    TokenInput,
    TokenRunner,
    entities,
    scores_from_logits,
)
from hfdeploy.serve.responses import error_responses, json_response, ok_response
from hfdeploy.serve.routes import ENCODER_TASKS
from hfdeploy.serve.routes._bodies import body_schema, parse_body
from hfdeploy.serve.routes._inference import check_count, embed, runner_of, transcribe
from hfdeploy.serve.specs.openai import Transcription
from hfdeploy.serve.specs.tei import (
    EmbedRequest,
    Entity,
    Info,
    Label,
    PredictRequest,
    Rank,
    RerankRequest,
    RootPredictRequest,
    Token,
    TokenizeRequest,
    TokenPredictRequest,
)
from hfdeploy.serve.state import ServerState

__all__ = ["info", "register"]


_ERRORS = (413, 422, 500, 503, 504)
_LABELS = ok_response(
    list[Label] | list[list[Label]], "labels best first (a list per input for a batch)"
)
_ENTITIES = ok_response(
    list[Entity] | list[list[Entity]], "entities (a list per input for a batch)"
)


async def _classify(state: ServerState, body: PredictRequest) -> list[list[dict[str, Any]]]:
    """Labels with scores, best first, one list per input."""
    runner = runner_of(state, ScoreRunner)
    _, batcher = state.require()
    pairs = _pairs(body.inputs)
    check_count(state, len(pairs), "inputs")
    results = await batcher.run(
        [ScoreInput(a, b, body.truncate) for a, b in pairs], timeout=state.settings.request_timeout
    )
    state.metrics.tokens.labels("input").inc(sum(r.tokens for r in results))
    out = []
    for r in results:
        scores = scores_from_logits(r.logits, raw=body.raw_scores, multi_label=runner.multi_label)
        ranked = sorted(zip(runner.labels, scores.tolist(), strict=True), key=lambda x: -x[1])
        out.append([{"label": label, "score": score} for label, score in ranked])
    return out


def _one(inputs: str | list[str] | list[list[str]]) -> bool:
    """TEI's shapes: a text or a ``[text, pair]`` is one input; a list of lists a batch."""
    return isinstance(inputs, str) or all(isinstance(x, str) for x in inputs)


def _pairs(inputs: str | list[str] | list[list[str]]) -> list[tuple[str, str | None]]:
    if isinstance(inputs, str):
        return [(inputs, None)]
    if _one(inputs):  # validated: exactly [text, pair]
        return [(str(inputs[0]), str(inputs[1]))]
    batch: list[list[str]] = inputs  # type: ignore[assignment]
    return [(item[0], item[1] if len(item) == 2 else None) for item in batch]


async def _tag(state: ServerState, body: TokenPredictRequest) -> Any:
    """Entities of each text (one list for a single text)."""
    runner = runner_of(state, TokenRunner)
    _, batcher = state.require()
    texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
    check_count(state, len(texts), "inputs")
    results = await batcher.run(
        [TokenInput(t, body.truncate) for t in texts], timeout=state.settings.request_timeout
    )
    state.metrics.tokens.labels("input").inc(sum(r.tokens for r in results))
    aggregate = body.aggregation_strategy == "simple"
    out = [
        entities(r, t, runner.labels, aggregate=aggregate)
        for r, t in zip(results, texts, strict=True)
    ]
    return out[0] if isinstance(body.inputs, str) else out


async def _embed(state: ServerState, body: EmbedRequest) -> Response:
    texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
    results = await embed(
        state,
        texts,
        normalize=body.normalize,
        truncate=body.truncate,
        prompt_name=body.prompt_name,
        dimensions=body.dimensions,
        field="inputs",
    )
    # TEI answers a list of vectors for a single input too.
    return json_response([r.vector for r in results])


def register(app: FastAPI, state: ServerState, task: str) -> None:
    """Add the TEI routes that ``task`` serves to ``app`` (``/info`` for every task)."""
    if task == "feature-extraction":

        @app.post(
            "/embed",
            tags=["tei"],
            openapi_extra=body_schema(EmbedRequest),
            responses=ok_response(list[list[float]], "one vector per input")
            | error_responses(*_ERRORS),
        )
        async def embed_route(request: Request) -> Response:
            # The hot path parses and validates in one pydantic-core call (see parse_body).
            return await _embed(state, await parse_body(request, EmbedRequest))

    if task == "text-ranking":
        _register_rerank(app, state)
    if task in ("text-ranking", "text-classification"):

        @app.post(
            "/predict",
            tags=["tei"],
            openapi_extra=body_schema(PredictRequest),
            responses=_LABELS | error_responses(*_ERRORS),
        )
        async def predict_route(request: Request) -> Response:
            body = await parse_body(request, PredictRequest)
            out = await _classify(state, body)
            return json_response(out[0] if _one(body.inputs) else out)

    if task == "token-classification":

        @app.post(
            "/predict",
            tags=["tei"],
            openapi_extra=body_schema(TokenPredictRequest),
            responses=_ENTITIES | error_responses(*_ERRORS),
        )
        async def tag_route(request: Request) -> Response:
            return json_response(await _tag(state, await parse_body(request, TokenPredictRequest)))

    if task in ENCODER_TASKS:
        _register_tokenize(app, state)

    @app.get(
        "/info", tags=["tei"], responses=ok_response(Info, "the model, its task and the limits")
    )
    async def info_route() -> Response:
        return json_response(info(state))

    if task != "text-generation":
        _register_root(app, state, task)


def _register_rerank(app: FastAPI, state: ServerState) -> None:
    @app.post(
        "/rerank",
        tags=["tei"],
        openapi_extra=body_schema(RerankRequest),
        responses=ok_response(list[Rank], "texts best first") | error_responses(*_ERRORS),
    )
    async def rerank_route(request: Request) -> Response:
        body = await parse_body(request, RerankRequest)
        runner_of(state, ScoreRunner)
        _, batcher = state.require()
        check_count(state, len(body.texts), "texts")
        results = await batcher.run(
            [ScoreInput(body.query, t, body.truncate) for t in body.texts],
            timeout=state.settings.request_timeout,
        )
        state.metrics.tokens.labels("input").inc(sum(r.tokens for r in results))
        ranked = []
        for i, r in enumerate(results):
            score = float(scores_from_logits(r.logits, raw=body.raw_scores)[0])
            item: dict[str, Any] = {"index": i, "score": score}
            if body.return_text:
                item["text"] = body.texts[i]
            ranked.append(item)
        ranked.sort(key=lambda x: -x["score"])
        return json_response(ranked)


def _register_tokenize(app: FastAPI, state: ServerState) -> None:
    @app.post(
        "/tokenize",
        tags=["tei"],
        openapi_extra=body_schema(TokenizeRequest),
        responses=ok_response(list[list[Token]], "the tokens of each input")
        | error_responses(413, 422, 500, 503),
    )
    async def tokenize_route(request: Request) -> Response:
        body = await parse_body(request, TokenizeRequest)
        runner = runner_of(state, Encoder)
        texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
        check_count(state, len(texts), "inputs")
        _, batcher = state.require()
        # On the model thread: the tokenizer is not shared across threads.
        out = await batcher.call(
            lambda: runner.tokenize(texts, add_special_tokens=body.add_special_tokens)
        )
        return json_response(out)


def _register_root(app: FastAPI, state: ServerState, task: str) -> None:
    """TEI's and the Inference API's root, documented with the body of the model's task."""
    if task == "automatic-speech-recognition":
        # Any rate and channels; a body that is not one of these answers 422.
        audio = {"schema": {"type": "string", "format": "binary"}}
        kinds = ("audio/wav", "audio/flac", "audio/ogg")
        extra: dict[str, Any] = {
            "requestBody": {"required": True, "content": dict.fromkeys(kinds, audio)}
        }
        ok = ok_response(Transcription, "the text")
    elif task == "feature-extraction":
        extra, ok = (
            body_schema(EmbedRequest),
            ok_response(list[list[float]], "one vector per input"),
        )
    elif task == "token-classification":
        extra = body_schema(TokenPredictRequest)
        ok = ok_response(
            list[Entity] | list[list[Entity]], "entities (a list per input for a batch)"
        )
    else:
        extra = body_schema(RootPredictRequest)
        ok = ok_response(list[list[Label]], "labels best first, a list per input")

    @app.post("/", tags=["tei"], openapi_extra=extra, responses=ok | error_responses(*_ERRORS))
    async def root_route(request: Request) -> Response:
        """The Inference API's root (what ``huggingface_hub.InferenceClient`` calls)."""
        if task == "automatic-speech-recognition":
            text = await transcribe(state, await request.body(), language=None)
            return json_response({"text": text})
        if task == "feature-extraction":
            return await _embed(state, await parse_body(request, EmbedRequest))
        if task == "token-classification":
            return json_response(await _tag(state, await parse_body(request, TokenPredictRequest)))
        # The Inference API's shape: one list of labels per input, best first.
        body = await parse_body(request, RootPredictRequest)
        labels = await _classify(state, body)
        top_k = body.parameters.top_k if body.parameters else None
        if top_k is not None:
            labels = [x[:top_k] for x in labels]
        return json_response(labels)


def info(state: ServerState) -> dict[str, Any]:
    """``GET /info``: the model, its task and the server's limits (TEI's fields and more)."""
    s = state.settings
    body: dict[str, Any] = {
        "model_id": None,
        "model_sha": None,
        "model_dtype": s.dtype,
        "model_type": None,
        "task": state.task,
        "phase": state.phase,
        "max_concurrent_requests": s.max_queue,
        "max_input_length": s.max_input_tokens,
        "max_batch_tokens": s.max_batch_tokens,
        "max_batch_requests": s.max_batch_size,
        "max_client_batch_size": s.max_client_batch_size,
        "max_wait_ms": s.max_wait_ms,
        "device": s.device,
        "version": __version__,
        "server": "hfdeploy",
    }
    if state.loaded is not None:
        loaded = state.loaded
        runner = loaded.runner
        body |= {
            "model_id": loaded.name,
            "model_sha": loaded.profile.commit_sha,
            "task": runner.task,
            "max_input_length": runner.max_input_tokens,
            "model_type": {_TEI_TYPE.get(runner.task, runner.task): runner.info()},
            "load_seconds": round(loaded.load_seconds, 3),
            "warmup_seconds": round(loaded.warmup_seconds, 3),
            "warmup_shapes": loaded.warmup_shapes,
            "startup_phases": loaded.phases,
        }
    return body


_TEI_TYPE = {
    "feature-extraction": "embedding",
    "text-ranking": "reranker",
    "text-classification": "classifier",
}
