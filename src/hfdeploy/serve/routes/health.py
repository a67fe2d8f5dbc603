"""Health, readiness and metrics: ``/health``, ``/ready`` (and KServe's v2 paths), ``/metrics``.

``/health`` is 200 while the model loads, and ``/ready`` turns 200 only once the model
is loaded and warm, so a kubelet or a load balancer never sends traffic to a cold
replica, and never kills a loading one.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response

from hfdeploy.serve.metrics import CONTENT_TYPE_LATEST
from hfdeploy.serve.responses import json_response
from hfdeploy.serve.state import ServerState

__all__ = ["register"]


def register(app: FastAPI, state: ServerState) -> None:
    """Add the health, readiness and metrics routes to ``app``."""

    @app.get("/health", tags=["health"])
    @app.get("/v2/health/live", tags=["health"], include_in_schema=False)
    async def health() -> Response:
        """Liveness: 200 while the process serves HTTP, also during load (but not after a
        failed load)."""
        if state.phase == "failed":
            return json_response({"status": "failed", "error": str(state.error)}, 503)
        return json_response({"status": "ok", "phase": state.phase})

    @app.get("/ready", tags=["health"])
    @app.get("/v2/health/ready", tags=["health"], include_in_schema=False)
    async def ready() -> Response:
        """Readiness: 200 only once the model is loaded and warmed up."""
        body: dict[str, Any] = {"status": state.phase}
        if state.phase == "ready":
            return json_response(body)
        if state.error is not None:
            body["error"] = str(state.error)
        return json_response(body, 503, headers={"Retry-After": "5"})

    @app.get("/metrics", tags=["health"])
    async def metrics_route() -> Response:
        return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
