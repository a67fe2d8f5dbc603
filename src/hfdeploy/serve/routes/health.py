"""Health, readiness and metrics: ``/health``, ``/ready`` (and KServe's v2 paths), ``/metrics``.

``/health`` is 200 while the model loads, and ``/ready`` turns 200 only once the model
is loaded and warm, so a kubelet or a load balancer never sends traffic to a cold
replica, and never kills a loading one.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response

from hfdeploy.serve.metrics import CONTENT_TYPE_LATEST
from hfdeploy.serve.responses import Responses, json_response, ok_response
from hfdeploy.serve.specs.tei import Health
from hfdeploy.serve.state import ServerState

__all__ = ["register"]

_RETRY = {"Retry-After": {"schema": {"type": "integer"}}}
_LIVE: Responses = ok_response(Health, "the process serves HTTP (also while loading)") | {
    503: {"model": Health, "description": "the model failed to load; `error` says why"}
}
_READY: Responses = ok_response(Health, "loaded and warm") | {
    503: {
        "model": Health,
        "description": "loading, warming up, draining or failed",
        "headers": _RETRY,
    }
}
_PROMETHEUS: Responses = {
    200: {
        "description": "Prometheus' text exposition format",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}


def register(app: FastAPI, state: ServerState) -> None:
    """Add the health, readiness and metrics routes to ``app``."""

    @app.get("/v2/health/live", tags=["health"], responses=_LIVE)
    @app.get("/health", tags=["health"], responses=_LIVE)
    async def health() -> Response:
        """Liveness: 200 while the process serves HTTP, also during load (but not after a
        failed load)."""
        if state.phase == "failed":
            return json_response({"status": "failed", "error": str(state.error)}, 503)
        return json_response({"status": "ok", "phase": state.phase})

    @app.get("/v2/health/ready", tags=["health"], responses=_READY)
    @app.get("/ready", tags=["health"], responses=_READY)
    async def ready() -> Response:
        """Readiness: 200 only once the model is loaded and warmed up."""
        body: dict[str, Any] = {"status": state.phase}
        if state.phase == "ready":
            return json_response(body)
        if state.error is not None:
            body["error"] = str(state.error)
        return json_response(body, 503, headers={"Retry-After": "5"})

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse, responses=_PROMETHEUS)
    async def metrics_route() -> Response:
        """The server's metrics (``hfdeploy_*``)."""
        return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
