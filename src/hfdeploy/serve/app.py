"""The ASGI app, assembled: state, start-up in the lifespan, the error table, the routes.

The app answers as soon as it starts: ``/health`` is 200 while the model loads, and
``/ready`` turns 200 only once the model is loaded and warm, so a kubelet or a load
balancer never sends traffic to a cold replica, and never kills a loading one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from hfdeploy._version import __version__
from hfdeploy.serve.loader import load_model
from hfdeploy.serve.metrics import ServerMetrics
from hfdeploy.serve.middleware import ServeMiddleware
from hfdeploy.serve.responses import install_error_handlers
from hfdeploy.serve.routes import health as health_routes
from hfdeploy.serve.routes import openai as openai_routes
from hfdeploy.serve.routes import tei as tei_routes
from hfdeploy.serve.settings import ServeSettings
from hfdeploy.serve.state import Loader, ServerState

__all__ = ["create_app"]

_DEFAULT_BODY = 2_000_000
_SPEECH_BODY = 25_000_000


def _max_body(state: ServerState) -> Callable[[str], int]:
    def limit(path: str) -> int:
        if state.settings.max_payload_bytes is not None:
            return state.settings.max_payload_bytes
        if path == "/v1/audio/transcriptions" or (
            state.loaded is not None and state.loaded.runner.task == "automatic-speech-recognition"
        ):
            return _SPEECH_BODY
        return _DEFAULT_BODY

    return limit


def _lifespan(
    state: ServerState, load: Loader
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Load in the background when the app starts; drain when it stops."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(state.start(load), name="load-model")
        try:
            yield
        finally:
            if not task.done():
                task.cancel()
            await state.stop()

    return lifespan


def create_app(settings: ServeSettings, *, loader: Loader | None = None) -> Any:
    """The ASGI app for ``settings``: FastAPI wrapped in :class:`ServeMiddleware`.

    The model loads in the background when the app starts (ASGI lifespan).

    Example:
        >>> app = create_app(ServeSettings(model="./all-MiniLM-L6-v2"))  # doctest: +SKIP
        >>> uvicorn.run(app, port=8080)  # doctest: +SKIP
    """
    metrics = ServerMetrics()
    state = ServerState(settings, metrics)
    api = FastAPI(
        title="hfdeploy serve",
        version=__version__,
        lifespan=_lifespan(state, loader or load_model),
        docs_url="/docs",
        redoc_url=None,
    )
    api.state.hfd = state
    install_error_handlers(api)
    # Registration order is the OpenAPI document's order.
    health_routes.register(api, state)
    tei_routes.register(api, state)
    openai_routes.register(api, state)

    paths = frozenset(getattr(r, "path", "") for r in api.routes)
    return ServeMiddleware(
        api,
        metrics=metrics,
        routes=lambda: paths,
        api_key=settings.api_key,
        max_body=_max_body(state),
    )
