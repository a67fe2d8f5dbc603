"""TEI-compatible routes: ``/embed``, ``/rerank``, ``/predict``, ``/tokenize``, ``/info``, ``/``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from hfdeploy._version import __version__
from hfdeploy.errors import BadRequestError, UnsupportedTaskError
from hfdeploy.serve.encoders import (
    ScoreInput,
    ScoreRunner,
    TokenInput,
    TokenRunner,
    entities,
    scores_from_logits,
)
from hfdeploy.serve.responses import json_response
from hfdeploy.serve.routes._bodies import body_schema, parse_body, read_json, validate_payload
from hfdeploy.serve.routes._inference import check_count, embed, runner_of, transcribe
from hfdeploy.serve.specs.tei import EmbedRequest, PredictRequest, RerankRequest, TokenizeRequest
from hfdeploy.serve.state import ServerState

__all__ = ["info", "register"]


async def _predict(state: ServerState, body: PredictRequest) -> Response:
    loaded, batcher = state.require()
    runner = loaded.runner
    if isinstance(runner, TokenRunner):
        texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
        if not all(isinstance(t, str) for t in texts):
            raise BadRequestError("token classification takes strings", param="inputs")
        check_count(state, len(texts), "inputs")
        results = await batcher.run(
            [TokenInput(str(t), body.truncate) for t in texts],
            timeout=state.settings.request_timeout,
        )
        state.metrics.tokens.labels("input").inc(sum(r.tokens for r in results))
        aggregate = body.aggregation_strategy == "simple"
        out = [
            entities(r, str(t), runner.labels, aggregate=aggregate)
            for r, t in zip(results, texts, strict=True)
        ]
        return json_response(out[0] if isinstance(body.inputs, str) else out)
    if not isinstance(runner, ScoreRunner):
        raise UnsupportedTaskError("/predict", runner.task, supported="/embed")
    out = await _predict_labels(state, body)
    return json_response(out[0] if _predict_inputs(body.inputs)[0] else out)


async def _predict_labels(state: ServerState, body: PredictRequest) -> list[list[dict[str, Any]]]:
    """Labels with scores, best first, one list per input."""
    runner: ScoreRunner = runner_of(state, ScoreRunner, "/predict", "/embed")
    _, batcher = state.require()
    _, pairs = _predict_inputs(body.inputs)
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


def _predict_inputs(
    inputs: str | list[str] | list[list[str]],
) -> tuple[bool, list[tuple[str, str | None]]]:
    """TEI's shapes: a text, a ``[text, pair]``, or a batch of ``[text]`` / ``[text, pair]``."""
    if isinstance(inputs, str):
        return True, [(inputs, None)]
    if inputs and all(isinstance(x, str) for x in inputs):
        if len(inputs) != 2:
            raise BadRequestError(
                "a list of strings is one [text, text_pair] pair; send a batch as "
                '[["text"], ["text", "pair"]]',
                param="inputs",
            )
        return True, [(str(inputs[0]), str(inputs[1]))]
    pairs: list[tuple[str, str | None]] = []
    for k, item in enumerate(inputs):
        if not isinstance(item, list) or len(item) not in (1, 2):
            raise BadRequestError(f"inputs[{k}] must be [text] or [text, pair]", param="inputs")
        pairs.append((item[0], item[1] if len(item) == 2 else None))
    return False, pairs


def register(app: FastAPI, state: ServerState) -> None:
    """Add the TEI routes to ``app``."""

    @app.post("/embed", tags=["tei"], openapi_extra=body_schema(EmbedRequest))
    async def embed_route(request: Request) -> Response:
        # The hot path parses and validates in one pydantic-core call (see body_schema).
        return await _embed(await parse_body(request, EmbedRequest))

    async def _embed(body: EmbedRequest) -> Response:
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

    @app.post("/rerank", tags=["tei"])
    async def rerank_route(body: RerankRequest) -> Response:
        runner: ScoreRunner = runner_of(state, ScoreRunner, "/rerank", "/embed")
        if runner.task != "text-ranking":
            raise UnsupportedTaskError("/rerank", runner.task, supported="/predict")
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

    @app.post("/predict", tags=["tei"])
    async def predict_route(body: PredictRequest) -> Response:
        return await _predict(state, body)

    @app.post("/tokenize", tags=["tei"])
    async def tokenize_route(body: TokenizeRequest) -> Response:
        loaded, batcher = state.require()
        runner = loaded.runner
        if not hasattr(runner, "tokenize"):
            raise UnsupportedTaskError("/tokenize", runner.task, supported="/v1/models")
        texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
        check_count(state, len(texts), "inputs")
        # On the model thread: the tokenizer is not shared across threads.
        out = await batcher.call(
            lambda: runner.tokenize(texts, add_special_tokens=body.add_special_tokens)
        )
        return json_response(out)

    @app.get("/info", tags=["tei"])
    async def info_route() -> Response:
        return json_response(info(state))

    @app.post("/", tags=["tei"], include_in_schema=False)
    async def root_route(request: Request) -> Response:
        """TEI's and the Inference API's root: dispatch on the model's task."""
        loaded, _ = state.require()
        task = loaded.runner.task
        if task == "automatic-speech-recognition":
            text = await transcribe(state, await request.body(), language=None)
            return json_response({"text": text})
        payload = await read_json(request)
        if task == "feature-extraction":
            return await _embed(validate_payload(EmbedRequest, payload))
        if task in ("text-classification", "text-ranking"):
            # The Inference API's shape: one list of labels per input, best first.
            body = validate_payload(PredictRequest, payload)
            params = payload.get("parameters") if isinstance(payload, dict) else None
            top_k = params.get("top_k") if isinstance(params, dict) else None
            labels = await _predict_labels(state, body)
            if isinstance(top_k, int) and top_k > 0:
                labels = [x[:top_k] for x in labels]
            return json_response(labels)
        if task == "token-classification":
            return await predict_route(validate_payload(PredictRequest, payload))
        raise UnsupportedTaskError("/", task, supported="/v1/completions or /v1/chat/completions")


def info(state: ServerState) -> dict[str, Any]:
    """``GET /info``: the model, its task and the server's limits (TEI's fields and more)."""
    s = state.settings
    body: dict[str, Any] = {
        "model_id": None,
        "model_sha": None,
        "model_dtype": s.dtype,
        "model_type": None,
        "task": s.task,
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
