"""Running the app under uvicorn: logging, graceful drain on SIGTERM, exit codes.

:func:`serve_model` is ``hfdeploy serve``'s library call: the extra checked, the settings
resolved, then :func:`run_server`.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import signal
import socket
import sys
import time
from types import FrameType
from typing import Any

from hfdeploy.errors import HfDeployError, MissingDependencyError
from hfdeploy.serve.cpu import set_cpu_environment
from hfdeploy.serve.duplex.runner import DUPLEX_TASK
from hfdeploy.serve.settings import ServeSettings, resolve_serve_settings

__all__ = ["JsonFormatter", "configure_logging", "require_serve_extra", "run_server", "serve_model"]

#: Bytes the kernel may hold for a full-duplex client (Linux doubles it): ~4 frames of PCM.
DUPLEX_SEND_BUFFER = 16384
_FIELDS = ("request_id", "method", "path", "status", "duration_ms")
#: The ``serve`` extra's modules the server imports.
_SERVE_MODULES = ("fastapi", "uvicorn", "prometheus_client", "orjson", "torch", "transformers")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and request fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            if hasattr(record, name):
                data[name] = getattr(record, name)
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{line} rid={rid}" if rid else line


def configure_logging(settings: ServeSettings) -> None:
    """hfdeploy's and uvicorn's loggers to stderr, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    level = getattr(logging, settings.log_level.upper())
    for name in ("hfdeploy", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level)
        logger.propagate = False


def _since_process_start() -> float | None:
    """Seconds since this process started (Linux: both clocks count from boot), or None."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        ticks = int(fields[19])  # starttime, field 22 of proc(5)
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def run_server(settings: ServeSettings) -> int:
    """Serve until SIGTERM/SIGINT; drain in-flight requests; return the exit code.

    0 after a graceful stop; 1 when the model failed to load (the error is logged
    and, for :class:`HfDeployError`, re-raised for the CLI to print).
    """
    import uvicorn

    from hfdeploy.serve.app import create_app
    from hfdeploy.serve.loader import load_model, preflight

    imports = _since_process_start()
    t0 = time.perf_counter()
    checked = preflight(settings)  # a wrong folder fails here, before the port is bound
    took = time.perf_counter() - t0
    configure_logging(settings)
    # The load reuses the preflight's profile instead of inspecting the folder again.
    app = create_app(
        settings,
        loader=lambda s: load_model(
            s, checked=checked, preflight_seconds=took, imports_seconds=imports
        ),
    )
    state = app.app.state.hfd
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.drain_timeout) or None,
        lifespan="on",
        server_header=False,
        # Audio frames do not deflate; compressing each one for every conversation is CPU
        # taken from the frame step, and it hides a stalled client from the flow control.
        ws_per_message_deflate=False,
    )

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if state.phase != "failed":
                state.phase = "draining"  # /ready turns 503 at once
            super().handle_exit(sig, frame)
            # uvicorn re-raises the caught signal after shutdown, which would end
            # the process with 143 instead of 0 after a clean drain.
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list) and sig == signal.SIGTERM:
                captured[:] = [s for s in captured if s != signal.SIGTERM]

        async def shutdown(self, sockets: list[Any] | None = None) -> None:
            # Before uvicorn cuts every WebSocket (1012): conversations run on for the
            # drain timeout, then end with a close frame of their own.
            if await state.drain_conversations():
                await self._closing_handshakes()
            await super().shutdown(sockets)

        async def _closing_handshakes(self) -> None:
            # A socket closed with the client's audio still unread is reset, and a reset
            # can lose the close frame: give clients a moment to answer it.
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and any(
                "WebSocket" in type(c).__name__ for c in self.server_state.connections
            ):
                await asyncio.sleep(0.02)

    server = _Server(config)

    def on_failure(_: BaseException) -> None:
        server.should_exit = True

    state.on_failure = on_failure
    server.run(sockets=_duplex_sockets(config) if checked[2] == DUPLEX_TASK else None)
    if state.phase == "failed" and state.error is not None:
        if isinstance(state.error, HfDeployError):
            raise state.error
        return 1
    return 0


def _duplex_sockets(config: Any) -> list[socket.socket]:
    """The listening socket with a small send buffer, which accepted connections inherit:
    a client that stops reading then blocks the server's sends within a few seconds of
    audio (and its conversation is closed) instead of after megabytes of kernel buffer."""
    sock = config.bind_socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, DUPLEX_SEND_BUFFER)
    return [sock]


def require_serve_extra() -> None:
    """Import the ``serve`` extra's modules, so that a missing one is named up front.

    Raises:
        MissingDependencyError: a module is not installed (or fails to import), with
            the ``pip install 'hfdeploy[serve]'`` to run.
    """
    for module in _SERVE_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise MissingDependencyError(
                module, extra="serve", purpose="serve a model", failure=e
            ) from e


def serve_model(model: str, **flags: Any) -> int:
    """``hfdeploy serve``: serve the model folder ``model``, offline, until stopped.

    Sets ``HF_HUB_OFFLINE=1`` for the process (the server never downloads), checks the
    ``serve`` extra, resolves the settings (see :func:`resolve_serve_settings`) and runs
    :func:`run_server`.

    Args:
        model: a local model folder.
        **flags: :class:`ServeSettings` fields; ``None`` leaves a field to the
            ``HFDEPLOY_*`` environment or the default.

    Returns:
        The exit code: 0 after a graceful stop, 1 when the model failed to load with an
        error that is not an :class:`HfDeployError` (those are raised).

    Raises:
        MissingDependencyError: the ``serve`` extra is not installed.
        InvalidSettingError: a flag or variable out of range.
        HfDeployError: the model cannot be served (e.g. :class:`ModelLoadError`).

    Example:
        >>> serve_model("./all-MiniLM-L6-v2", port=8080)  # doctest: +SKIP
        0
    """
    # Before the extra is imported: huggingface_hub reads the variable at import.
    os.environ["HF_HUB_OFFLINE"] = "1"
    set_cpu_environment()  # before torch is imported: OpenMP reads it once
    require_serve_extra()
    return run_server(resolve_serve_settings(model, **flags))
