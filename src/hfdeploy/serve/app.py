"""The FastAPI app: state, start-up (load, warm up, ready), health, metrics, errors.

The app answers as soon as it starts: ``/health`` is 200 while the model loads, and
``/ready`` turns 200 only once the model is loaded and warm, so a kubelet or a load
balancer never sends traffic to a cold replica, and never kills a loading one.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Literal

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from hfdeploy._version import __version__
from hfdeploy.errors import HfDeployError, NotReadyError, QueueFullError, ServeError
from hfdeploy.serve.batching import Batcher
from hfdeploy.serve.metrics import CONTENT_TYPE_LATEST, ServerMetrics
from hfdeploy.serve.middleware import ServeMiddleware, error_body
from hfdeploy.serve.runtime import LoadedModel
from hfdeploy.serve.settings import ServeSettings

__all__ = ["ServerState", "create_app", "json_response"]

log = logging.getLogger("hfdeploy.serve")

Phase = Literal["starting", "loading", "warming", "ready", "failed", "draining"]
Loader = Callable[[ServeSettings], LoadedModel]

_DEFAULT_BODY = 2_000_000
_SPEECH_BODY = 25_000_000


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialized by orjson (numpy arrays included)."""
    return Response(
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


class ServerState:
    """What the routes share: settings, metrics, the phase and, once ready, the model."""

    def __init__(self, settings: ServeSettings, metrics: ServerMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.phase: Phase = "starting"
        self.error: BaseException | None = None
        self.loaded: LoadedModel | None = None
        self.batcher: Batcher[Any] | None = None
        self.started = time.time()
        self.on_failure: Callable[[BaseException], None] | None = None

    def require(self) -> tuple[LoadedModel, Batcher[Any]]:
        """The model and its batcher, or 503 while loading, warming up or draining."""
        if self.phase != "ready" and self.phase != "draining":
            raise NotReadyError(self.phase)
        assert self.loaded is not None
        assert self.batcher is not None
        return self.loaded, self.batcher

    async def start(self, loader: Loader) -> None:
        """Load, start the batcher, warm up; on failure record it (and tell ``on_failure``)."""
        s = self.settings
        try:
            self.phase = "loading"
            loaded = await asyncio.to_thread(loader, s)
            self.loaded = loaded
            runner = loaded.runner
            generative = runner.task == "text-generation"
            self.batcher = Batcher(
                runner.run,
                max_batch_size=1 if generative else s.max_batch_size,
                max_wait_ms=0 if generative else s.max_wait_ms,
                max_queue=s.max_queue,
                observer=self.metrics,
            )
            self.batcher.start()
            self.metrics.load_seconds.set(loaded.load_seconds)
            for phase, seconds in loaded.phases.items():
                self.metrics.startup_phase.labels(phase).set(seconds)
            self.metrics.info.labels(loaded.name, runner.task).set(1)
            if s.warmup:
                self.phase = "warming"
                started = time.perf_counter()
                for shape in runner.warmup_shapes(s):
                    t = time.perf_counter()
                    await self.batcher.call(partial(runner.warm, shape))
                    log.info("warmup %s (batch x tokens): %.3fs", shape, time.perf_counter() - t)
                    loaded.warmup_shapes.append(str(shape))
                loaded.warmup_seconds = time.perf_counter() - started
                self.metrics.warmup_seconds.set(loaded.warmup_seconds)
                loaded.phases["warmup"] = round(loaded.warmup_seconds, 4)
                self.metrics.startup_phase.labels("warmup").set(loaded.warmup_seconds)
                log.info("warmup done in %.2fs", loaded.warmup_seconds)
            # Everything loaded so far (torch, transformers, the model) lives as long as
            # the process: keep it out of the cyclic GC's full passes, whose pauses
            # showed as p99 spikes under load.
            gc.collect()
            gc.freeze()
            self.phase = "ready"
            self.metrics.ready.set(1)
            log.info("ready: %s (%s)", loaded.name, runner.task)
        except Exception as e:
            self.phase = "failed"
            self.error = e
            if isinstance(e, HfDeployError):
                log.error("start failed: %s (next: %s)", e.message, e.hint)
                log.debug("start failed", exc_info=e)
            else:
                log.exception("start failed")
            if self.on_failure is not None:
                self.on_failure(e)

    async def stop(self) -> None:
        if self.phase != "failed":
            self.phase = "draining"
        self.metrics.ready.set(0)
        if self.batcher is not None:
            await self.batcher.stop()


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


def create_app(settings: ServeSettings, *, loader: Loader | None = None) -> Any:
    """The ASGI app for ``settings``: FastAPI wrapped in :class:`ServeMiddleware`.

    The model loads in the background when the app starts (ASGI lifespan).

    Example:
        >>> app = create_app(ServeSettings(model="./all-MiniLM-L6-v2"))  # doctest: +SKIP
        >>> uvicorn.run(app, port=8080)  # doctest: +SKIP
    """
    from hfdeploy.serve.loader import load_model
    from hfdeploy.serve.routes import openai as openai_routes
    from hfdeploy.serve.routes import tei as tei_routes

    metrics = ServerMetrics()
    state = ServerState(settings, metrics)
    load = loader or load_model

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(state.start(load), name="load-model")
        try:
            yield
        finally:
            if not task.done():
                task.cancel()
            await state.stop()

    api = FastAPI(
        title="hfdeploy serve",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    api.state.hfd = state

    @api.exception_handler(ServeError)
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

    @api.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        message, field = _validation_message(exc)
        return Response(
            error_body(message, "invalid_request", param=field),
            status_code=422,
            media_type="application/json",
        )

    @api.exception_handler(HfDeployError)
    async def _other(request: Request, exc: HfDeployError) -> Response:
        log.error("request %s failed: %s", request.scope["state"].get("request_id"), exc.message)
        return Response(
            error_body(exc.message, "internal_error"),
            status_code=500,
            media_type="application/json",
        )

    @api.get("/health", tags=["health"])
    @api.get("/v2/health/live", tags=["health"], include_in_schema=False)
    async def health() -> Response:
        """Liveness: 200 while the process serves HTTP, also during load (but not after a
        failed load)."""
        if state.phase == "failed":
            return json_response({"status": "failed", "error": str(state.error)}, 503)
        return json_response({"status": "ok", "phase": state.phase})

    @api.get("/ready", tags=["health"])
    @api.get("/v2/health/ready", tags=["health"], include_in_schema=False)
    async def ready() -> Response:
        """Readiness: 200 only once the model is loaded and warmed up."""
        body: dict[str, Any] = {"status": state.phase}
        if state.phase == "ready":
            return json_response(body)
        if state.error is not None:
            body["error"] = str(state.error)
        return json_response(body, 503, headers={"Retry-After": "5"})

    @api.get("/metrics", tags=["health"])
    async def metrics_route() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

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
