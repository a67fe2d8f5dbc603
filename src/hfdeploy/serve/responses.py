"""What the server answers: JSON responses, the OpenAI-style error body, the HTTP error table.

A leaf of the server: routes, the middleware and the app import it; it imports none of
them.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from hfdeploy.errors import HfDeployError, NotReadyError, QueueFullError, ServeError
from hfdeploy.serve.specs.openai import ErrorResponse

__all__ = [
    "Responses",
    "error_body",
    "error_responses",
    "install_error_handlers",
    "internal_error_body",
    "json_response",
    "log_unexpected",
    "ok_response",
]

log = logging.getLogger("hfdeploy.serve")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialized by orjson (numpy arrays included)."""
    return Response(
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error_body(message: str, code: str, *, param: str | None = None) -> bytes:
    """An OpenAI-style error object (:class:`ErrorResponse`)."""
    return orjson.dumps({"error": {"message": message, "type": code, "param": param, "code": code}})


def internal_error_body(request_id: str | None) -> bytes:
    """The 500 answer: no internals, the request id to find them in the log."""
    return error_body(
        f"internal error; the server's log has the details under request id {request_id}",
        "internal_error",
    )


#: What each error status means on this server, for the OpenAPI document.
_MEANINGS = {
    400: "the multipart body could not be parsed (`invalid_request`)",
    401: "missing or wrong API key (`invalid_api_key`)",
    404: "the `model` field names another model (`model_not_found`)",
    413: "the body is over the size limit (`payload_too_large`)",
    422: "the body does not match the schema, or an input is over the token limit "
    "(`invalid_request`, `input_too_long`); `param` names the field",
    500: "an unexpected error, such as the model failing on this request (`internal_error`); "
    "logged under the request id",
    503: "the model is loading, warming up or draining (`not_ready`, Retry-After: 5), or the "
    "queue is full (`overloaded`, Retry-After: 1)",
    504: "not answered within the request timeout (`timeout`)",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}


Responses = dict[int | str, dict[str, Any]]


def ok_response(
    model: Any, description: str, *, content: dict[str, Any] | None = None, status: int = 200
) -> Responses:
    """FastAPI ``responses`` documenting a ``status`` answer as ``model`` (JSON), and as the
    other media types in ``content``."""
    out: dict[str, Any] = {"model": model, "description": description}
    if content is not None:
        out["content"] = content
    return {status: out}


def error_responses(*statuses: int) -> Responses:
    """FastAPI ``responses`` documenting ``statuses`` with :class:`ErrorResponse` bodies."""
    out: Responses = {}
    for status in statuses:
        out[status] = {"model": ErrorResponse, "description": _MEANINGS[status]}
        if status == 503:
            out[status]["headers"] = _RETRY_AFTER
    return out


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "dict", "list", "none", "is-instance"})


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    """``field: what is wrong``, naming the field (union branches folded into one line)."""
    errors = exc.errors()
    if not errors:
        return "invalid request body", None
    if errors[0].get("type") == "json_invalid":
        return f"malformed JSON body: {errors[0].get('msg', '')}", None

    def field_of(err: Any) -> str:
        loc = [str(x) for x in err.get("loc", ()) if x != "body"]
        kept = [x for x in loc if x not in _TYPE_TAGS and "[" not in x and "-" not in x]
        return ".".join(kept) or "body"

    field = field_of(errors[0])
    msgs = list(dict.fromkeys(str(e.get("msg", "invalid")) for e in errors if field_of(e) == field))
    others = len({field_of(e) for e in errors}) - 1
    more = f" (and {others} more field{'s' if others > 1 else ''})" if others else ""
    return f"{field}: {'; or '.join(msgs)}{more}", field


async def _serve_error(_: Request, exc: ServeError) -> Response:
    headers = {}
    if isinstance(exc, QueueFullError | NotReadyError):
        headers["Retry-After"] = str(exc.retry_after)
    return Response(
        error_body(exc.message, exc.code, param=exc.param),
        status_code=exc.status,
        media_type="application/json",
        headers=headers,
    )


async def _invalid(_: Request, exc: RequestValidationError) -> Response:
    message, field = _validation_message(exc)
    return Response(
        error_body(message, "invalid_request", param=field),
        status_code=422,
        media_type="application/json",
    )


async def _other(request: Request, exc: HfDeployError) -> Response:
    # hfdeploy's own message (a missing extra, say) is meant for people: it is answered.
    rid = request.scope.get("state", {}).get("request_id")
    log.error("request failed: %s", exc.message, extra={"request_id": rid})
    return Response(
        error_body(exc.message, "internal_error"), status_code=500, media_type="application/json"
    )


#: Set in the request's scope state once its unexpected error is logged.
LOGGED = "error_logged"


def log_unexpected(scope: Any, exc: BaseException) -> None:
    """Log ``exc`` once per request, with the request id (text: ``rid=``; JSON: a field)."""
    state = scope.setdefault("state", {})
    if not state.get(LOGGED):
        state[LOGGED] = True
        rid = state.get("request_id")
        log.error(
            "unexpected error in %s %s",
            scope.get("method"),
            scope.get("path"),
            exc_info=exc,
            extra={"request_id": rid},
        )


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Logged before the answer leaves; Starlette re-raises after answering, and
    # ServeMiddleware, which sees the re-raise, does not log it again.
    log_unexpected(request.scope, exc)
    rid = request.scope.get("state", {}).get("request_id")
    return Response(internal_error_body(rid), status_code=500, media_type="application/json")


_HTTP_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}


async def _http(request: Request, exc: HTTPException) -> Response:
    """Starlette's own errors (no such route, wrong method, unreadable form) in the same shape."""
    method, path = request.method, request.url.path
    match exc.status_code:
        case 404:
            message = f"no route {method} {path} on this server; /openapi.json lists its routes"
        case 405:
            allowed = (exc.headers or {}).get("Allow", "")
            message = f"{path} does not take {method}; it takes {allowed}"
        case _:
            message = str(exc.detail)
    code = _HTTP_CODES.get(exc.status_code, "invalid_request")
    return Response(
        error_body(message, code),
        status_code=exc.status_code,
        media_type="application/json",
        headers=exc.headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    """The HTTP error table on ``app``.

    :class:`ServeError` → its own status and code (``Retry-After`` on 503s); a body
    that fails validation → 422 naming the field; Starlette's 404, 405 and 400 → the
    same status; any other :class:`HfDeployError` → 500 with its message, logged; any
    other exception → 500 with the request id only, logged with its traceback. Every body
    is :func:`error_body`'s.
    """
    app.exception_handler(ServeError)(_serve_error)
    app.exception_handler(RequestValidationError)(_invalid)
    app.exception_handler(HTTPException)(_http)
    app.exception_handler(HfDeployError)(_other)
    app.exception_handler(Exception)(_unexpected)
