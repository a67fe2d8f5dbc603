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

from hfdeploy.errors import HfDeployError, NotReadyError, QueueFullError, ServeError

__all__ = ["error_body", "install_error_handlers", "json_response"]

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
    """An OpenAI-style error object."""
    return orjson.dumps({"error": {"message": message, "type": code, "param": param, "code": code}})


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
    log.error("request %s failed: %s", request.scope["state"].get("request_id"), exc.message)
    return Response(
        error_body(exc.message, "internal_error"),
        status_code=500,
        media_type="application/json",
    )


def install_error_handlers(app: FastAPI) -> None:
    """The HTTP error table on ``app``.

    :class:`ServeError` → its own status and code (``Retry-After`` on 503s); a body
    that fails validation → 422 naming the field; any other :class:`HfDeployError`
    → 500, logged. Every body is :func:`error_body`'s.
    """
    app.exception_handler(ServeError)(_serve_error)
    app.exception_handler(RequestValidationError)(_invalid)
    app.exception_handler(HfDeployError)(_other)
