"""The OpenAPI document of the server that is running, not of every server it could be.

FastAPI's document of the mounted routes (only the loaded task's: see
:mod:`hfdeploy.serve.routes`), then what only the running server knows: the limits its
routes enforce with a 422 (inputs per request, the model's vector size, its prompt names,
the most tokens it can generate), the API key when one is set, and ``X-Request-Id`` on
every answer. Until the model is loaded the model's own limits are absent; from then on
the document is built once and kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from hfdeploy.serve.embed import EmbedRunner
from hfdeploy.serve.generate import GenerateRunner
from hfdeploy.serve.middleware import OPEN_PATHS
from hfdeploy.serve.routes._bodies import REF_TEMPLATE
from hfdeploy.serve.specs.openai import ErrorResponse
from hfdeploy.serve.state import ServerState

__all__ = ["Limits", "build_openapi", "install_openapi"]

_DESCRIPTION = (
    "hfdeploy's inference server for one model; this document lists the routes of the "
    "model it serves. Every error answer is an `ErrorResponse`."
)


@dataclass(frozen=True, slots=True)
class Limits:
    """What the routes refuse with a 422 beyond the body models' own constraints.

    ``None``: not known (the model is not loaded yet) or not this model's.
    """

    inputs: int
    dimension: int | None = None
    prompts: tuple[str, ...] | None = None
    max_new_tokens: int | None = None

    @classmethod
    def of(cls, state: ServerState) -> Limits:
        inputs = state.settings.max_client_batch_size
        runner = state.loaded.runner if state.loaded is not None else None
        if isinstance(runner, EmbedRunner):
            prompts = tuple(sorted(runner.prompts)) if runner.include_prompt else ()
            return cls(inputs, dimension=runner.dimension, prompts=prompts)
        if isinstance(runner, GenerateRunner):
            return cls(inputs, max_new_tokens=runner.max_new_tokens)
        return cls(inputs)


def _branches(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return list(schema.get("anyOf", [schema]))


def _cap(schema: dict[str, Any], kind: str, key: str, value: int) -> None:
    for branch in _branches(schema):
        if branch.get("type") == kind:
            branch.setdefault(key, value)


def _limit_body(schema: dict[str, Any], limits: Limits) -> None:
    props: dict[str, Any] = schema.get("properties", {})
    for name in ("inputs", "input", "texts"):
        if name in props:  # a [text, pair] has its own maxItems of 2
            _cap(props[name], "array", "maxItems", limits.inputs)
    if limits.dimension is not None and "dimensions" in props:
        _cap(props["dimensions"], "integer", "maximum", limits.dimension)
    if limits.prompts is not None and "prompt_name" in props:
        named = [{"type": "string", "enum": list(limits.prompts)}] if limits.prompts else []
        props["prompt_name"]["anyOf"] = [*named, {"type": "null"}]
    if limits.max_new_tokens is not None:
        for name in ("max_tokens", "max_completion_tokens"):
            if name in props:
                _cap(props[name], "integer", "maximum", limits.max_new_tokens)


def _operations(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(path, op) for path, item in doc.get("paths", {}).items() for op in item.values()]


def build_openapi(app: FastAPI, state: ServerState) -> dict[str, Any]:
    """The document of ``app`` as mounted, with ``state``'s limits, key and headers."""
    doc = get_openapi(
        title=app.title, version=app.version, description=_DESCRIPTION, routes=app.routes
    )
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    error = ErrorResponse.model_json_schema(ref_template=REF_TEMPLATE)
    schemas.update(error.pop("$defs", {}))
    schemas.setdefault("ErrorResponse", error)
    limits = Limits.of(state)
    request_id = {
        "X-Request-Id": {
            "description": "the client's own X-Request-Id, else a new one; the log's `rid`",
            "schema": {"type": "string"},
        }
    }
    for path, op in _operations(doc):
        for media in op.get("requestBody", {}).get("content", {}).values():
            schemas.update(media.get("schema", {}).pop("$defs", {}))
            _limit_body(media.get("schema", {}), limits)
        if state.settings.api_key and path not in OPEN_PATHS:
            op["security"] = [{"bearer": []}]
            op["responses"]["401"] = {
                "description": "missing or wrong API key (`invalid_api_key`)",
                "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                "content": {"application/json": {"schema": {"$ref": REF_TEMPLATE.format(
                    model="ErrorResponse")}}},
            }  # fmt: skip
        for response in op["responses"].values():
            response.setdefault("headers", {}).update(request_id)
    if state.settings.api_key:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return doc


def install_openapi(app: FastAPI, state: ServerState) -> None:
    """Serve :func:`build_openapi`'s document at ``/openapi.json`` (kept once loaded)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = build_openapi(app, state)
            if state.loaded is None:
                return doc  # the model's limits come with the model
            app.openapi_schema = doc
        return app.openapi_schema

    replace: Callable[[], dict[str, Any]] = openapi
    app.openapi = replace  # type: ignore[method-assign]
