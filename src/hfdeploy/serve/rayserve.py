"""``hfdeploy serve`` as a Ray Serve application (KubeRay's ``RayService`` runs it).

The import path for a Serve config is ``hfdeploy.serve.rayserve:build``, with ``args`` the
server's settings (``ServeSettings`` field names: ``model``, ``max_batch_size``, ...). Each Serve
replica is the same app as ``hfdeploy serve``: the same routes, batching, metrics and
OpenAPI document. What differs is readiness: Serve sends traffic to a replica as soon as its
ASGI start-up completes, so here start-up completes only once the model is loaded and warm
(or fails the replica when loading fails), and Serve's health check asks the server's own
state.

Needs ``ray[serve]`` (not a dependency of hfdeploy: the image Ray runs installs it).
"""

from __future__ import annotations

import asyncio
from dataclasses import fields
from typing import Any

from hfdeploy.errors import InvalidSettingError
from hfdeploy.serve.app import create_app
from hfdeploy.serve.settings import ServeSettings
from hfdeploy.serve.state import ServerState

__all__ = ["DEPLOYMENT", "build", "settings_from_args"]

#: The Serve deployment's name (a Serve config's ``deployments[].name`` refers to it).
DEPLOYMENT = "hfdeploy"
_POLL_S = 0.1


def settings_from_args(args: dict[str, Any]) -> ServeSettings:
    """The server's settings from a Serve config's ``args``; unknown keys refused (Serve
    itself ignores them, so a typo would pass silently).

    Raises:
        InvalidSettingError: an unknown key, no ``model``, or a value ``ServeSettings`` refuses.
    """
    known = {f.name for f in fields(ServeSettings)} - {"host", "port"}
    unknown = sorted(set(args) - known)
    if unknown:
        raise InvalidSettingError(
            "args", ", ".join(unknown), "not a setting of hfdeploy serve",
            hint="Use the names of `hfdeploy serve`'s flags with underscores: "
            + ", ".join(sorted(known)) + ".",
        )  # fmt: skip
    if "model" not in args:
        raise InvalidSettingError("args", "model", "missing", hint="Set model: /repository.")
    return ServeSettings(**args)


class _ReadyBeforeTraffic:
    """Holds the ASGI start-up until the model is ready (or turns it into a failure)."""

    def __init__(self, app: Any, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_when_ready(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                while self.state.phase not in ("ready", "failed"):
                    await asyncio.sleep(_POLL_S)
                if self.state.phase == "failed":
                    message = {"type": "lifespan.startup.failed",
                               "message": f"model failed to load: {self.state.error}"}  # fmt: skip
            await send(message)

        await self.app(scope, receive, send_when_ready)


def _deployment() -> Any:
    from ray import serve  # the image Ray runs has it; hfdeploy itself does not need it

    class HfdeployServer:
        """One replica: hfdeploy's server for the settings it is bound with."""

        def __init__(self, settings: ServeSettings) -> None:
            app = create_app(settings)
            self._state: ServerState = app.app.state.hfd
            self._app = _ReadyBeforeTraffic(app, self._state)

        def __serve_build_asgi_app__(self) -> Any:
            return self._app

        def check_health(self) -> None:
            if self._state.phase == "failed":
                raise RuntimeError(f"model failed to load: {self._state.error}")

    # ingress first: Serve wraps the class, then makes it a deployment.
    return serve.deployment(name=DEPLOYMENT)(serve.ingress()(HfdeployServer))


def build(args: dict[str, Any]) -> Any:
    """The Serve application for a config's ``args`` (an application builder)."""
    return _deployment().bind(settings_from_args(args))
