"""One pure ASGI middleware: request id, API key, body limit, metrics, access log, last resort.

Pure ASGI (not ``BaseHTTPMiddleware``): it adds no task and no copy per request,
and it sees streamed responses end to end. It is the outermost layer, so an exception
nothing else handled ends here: logged once with the request id, answered 500 with the
JSON error body (never a plain-text "Internal Server Error").
"""

from __future__ import annotations

import hmac
import itertools
import logging
import os
import time
from collections.abc import Callable, Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hfdeploy.errors import PayloadTooLargeError
from hfdeploy.serve.metrics import ServerMetrics
from hfdeploy.serve.responses import error_body, internal_error_body, log_unexpected

__all__ = ["OPEN_PATHS", "ServeMiddleware"]

log = logging.getLogger("hfdeploy.access")


#: Routes a load balancer or kubelet calls without a key.
OPEN_PATHS = frozenset({"/health", "/ready", "/v2/health/live", "/v2/health/ready"})
_QUIET_PATHS = OPEN_PATHS | {"/metrics"}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


_PREFIX = os.urandom(8).hex()
_COUNTER = itertools.count(1)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            rid = str(value.decode("latin-1"))[:128]
            if rid.isprintable() and rid.strip():
                return rid
    # A random per-process prefix and a counter: unique, and no syscall per request
    # (uuid4 reads os.urandom each time, which showed in profiles).
    return f"{_PREFIX}{next(_COUNTER):016x}"


class ServeMiddleware:
    """Wraps the FastAPI app.

    Args:
        app: the ASGI app.
        metrics: where request counts and durations go.
        routes: known route paths; others count as ``unmatched`` (bounded labels).
        api_key: when set, ``Authorization: Bearer <key>`` is required outside
            :data:`OPEN_PATHS`.
        max_body: a function of the path giving the body limit in bytes.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: ServerMetrics,
        routes: Callable[[], Collection[str]],
        api_key: str | None,
        max_body: Callable[[str], int],
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self.expected = f"Bearer {api_key}".encode() if api_key else None
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and self.expected and not self._authorized(scope):
            # Refused before the upgrade, as HTTP's 401.
            await _reply(
                send, 401, error_body("missing or wrong API key", "invalid_api_key"),
                [(b"www-authenticate", b"Bearer")], prefix="websocket.",
            )  # fmt: skip
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        path: str = scope["path"]
        method: str = scope["method"]
        status = 500
        started_response = False
        rid_header = (b"x-request-id", rid.encode("latin-1"))

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        try:
            if self.expected is not None and path not in OPEN_PATHS and not self._authorized(scope):
                await _reply(
                    send_wrapper,
                    401,
                    error_body("missing or wrong API key", "invalid_api_key"),
                    [(b"www-authenticate", b"Bearer")],
                )
                return
            if method in _BODY_METHODS:
                limit = self.max_body(path)
                body, too_large = await _read_body(scope, receive, limit)
                if too_large:
                    err = PayloadTooLargeError(f"request body over the limit of {limit} bytes")
                    await _reply(send_wrapper, err.status, error_body(err.message, err.code))
                    return
                receive = _replay(body, receive)
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            # Starlette answers first (responses._unexpected) and re-raises; what is raised
            # outside it (or once a stream started) is answered or cut here. Either way it
            # is logged once, with the request id, and not re-raised: uvicorn would log it
            # again without the id.
            log_unexpected(scope, exc)
            if not started_response:
                await _reply(send_wrapper, 500, internal_error_body(rid))
        finally:
            elapsed = time.perf_counter() - started
            route = path if path in self.routes() else "unmatched"
            self.metrics.request(route, method, status, elapsed)
            level = logging.DEBUG if path in _QUIET_PATHS and status < 400 else logging.INFO
            if log.isEnabledFor(level):
                log.log(
                    level,
                    "%s %s %d %.1fms",
                    method,
                    path,
                    status,
                    elapsed * 1000,
                    extra={
                        "request_id": rid,
                        "method": method,
                        "path": path,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                return hmac.compare_digest(value, self.expected or b"")
        return False


async def _read_body(scope: Scope, receive: Receive, limit: int) -> tuple[bytes, bool]:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                if int(value) > limit:
                    return b"", True
            except ValueError:
                pass
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # disconnected
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _reply(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    prefix: str = "",
) -> None:
    """An HTTP answer; ``prefix="websocket."``: the answer to a refused WebSocket upgrade."""
    await send(
        {
            "type": prefix + "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": prefix + "http.response.body", "body": body})
