"""ServeMiddleware on its own: the last resort for an exception nothing else answered."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from hfdeploy.serve.metrics import ServerMetrics
from hfdeploy.serve.middleware import ServeMiddleware


async def _raises(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("outside any handler")


def test_an_error_outside_fastapi_is_500_json_logged_once_with_the_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = ServerMetrics()
    app = ServeMiddleware(
        _raises, metrics=metrics, routes=lambda: {"/x"}, api_key=None, max_body=lambda _: 100
    )

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/x", headers={"x-request-id": "abc"})

    r = asyncio.run(get())
    assert r.status_code == 500
    assert r.headers["x-request-id"] == "abc"
    assert r.json()["error"]["code"] == "internal_error"
    assert "outside" not in r.text
    errors = [x for x in caplog.records if x.levelno == logging.ERROR]
    assert [getattr(x, "request_id", None) for x in errors] == ["abc"]
    assert b'route="/x",status="500"' in metrics.render()


def test_a_websocket_without_the_api_key_is_refused_401_before_the_upgrade() -> None:
    reached: list[dict[str, object]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope)

    mw = ServeMiddleware(
        app, metrics=ServerMetrics(), routes=lambda: set(), api_key="s3cret",
        max_body=lambda _: 100,
    )  # fmt: skip

    async def connect(headers: list[tuple[bytes, bytes]]) -> list[dict[str, object]]:
        sent: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            return {"type": "websocket.connect"}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        scope = {"type": "websocket", "path": "/api/chat", "headers": headers}
        await mw(scope, receive, send)  # type: ignore[arg-type]
        return sent

    refused = asyncio.run(connect([]))
    assert refused[0]["type"] == "websocket.http.response.start"
    assert refused[0]["status"] == 401
    assert b"invalid_api_key" in refused[1]["body"]  # type: ignore[operator]
    assert not reached
    wrong = asyncio.run(connect([(b"authorization", b"Bearer nope")]))
    assert wrong[0]["status"] == 401 and not reached
    assert asyncio.run(connect([(b"authorization", b"Bearer s3cret")])) == []
    assert len(reached) == 1
