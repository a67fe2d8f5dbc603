"""The ASGI app, assembled: state, start-up in the lifespan, the error table, the routes.

The app answers as soon as it starts: ``/health`` is 200 while the model loads, and
``/ready`` turns 200 only once the model is loaded and warm, so a kubelet or a load
balancer never sends traffic to a cold replica, and never kills a loading one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI

from hfdeploy._version import __version__
from hfdeploy.serve.duplex.runner import DUPLEX_TASK
from hfdeploy.serve.generate import GenerateRunner
from hfdeploy.serve.loader import load_model, preflight
from hfdeploy.serve.metrics import ServerMetrics
from hfdeploy.serve.middleware import ServeMiddleware
from hfdeploy.serve.openapi import install_openapi
from hfdeploy.serve.responses import install_error_handlers
from hfdeploy.serve.routes import duplex as duplex_routes
from hfdeploy.serve.routes import health as health_routes
from hfdeploy.serve.routes import openai as openai_routes
from hfdeploy.serve.routes import tei as tei_routes
from hfdeploy.serve.runtime import LoadedModel
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


def create_app(
    settings: ServeSettings, *, loader: Loader | None = None, task: str | None = None
) -> Any:
    """The ASGI app for ``settings``: FastAPI wrapped in :class:`ServeMiddleware`.

    Only the routes of the model's task are mounted (and documented): ``task``, else the
    task :func:`preflight` finds in the folder. The model loads in the background when
    the app starts (ASGI lifespan).

    Raises:
        ModelLoadError: ``task`` not given and the folder fails the preflight.

    Example:
        >>> app = create_app(ServeSettings(model="./all-MiniLM-L6-v2"))  # doctest: +SKIP
        >>> uvicorn.run(app, port=8080)  # doctest: +SKIP
    """
    if task is None:
        _, _, task = preflight(settings)
    metrics = ServerMetrics(duplex=task == DUPLEX_TASK)
    state = ServerState(settings, metrics, task=task)
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
    tei_routes.register(api, state, task)
    openai_routes.register(api, state, task)
    duplex_routes.register(api, state, task)
    install_openapi(api, state)

    paths = {getattr(r, "path", "") for r in api.routes}
    state.on_loaded = partial(_unmount_unserved, api, paths)
    return ServeMiddleware(
        api,
        metrics=metrics,
        routes=lambda: paths,
        api_key=settings.api_key,
        max_body=_max_body(state),
    )


def _unmount_unserved(api: FastAPI, paths: set[str], loaded: LoadedModel) -> None:
    """What only the loaded model tells: a generator without a chat template has no chat."""
    if isinstance(loaded.runner, GenerateRunner) and not loaded.runner.has_chat_template:
        api.router.routes[:] = [
            r for r in api.router.routes if getattr(r, "path", None) != openai_routes.CHAT_PATH
        ]
        paths.discard(openai_routes.CHAT_PATH)
        api.openapi_schema = None
