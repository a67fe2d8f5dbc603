"""``/api/chat``: a full-duplex conversation over a WebSocket, as the reference Moshi and
PersonaPlex servers speak it (see :mod:`hfdeploy.serve.duplex.protocol`).

A conversation past the session limit, or one asked of a server that is not ready, is
refused before the upgrade: an HTTP 503 with ``Retry-After`` and the usual error body.
``/ready`` does not turn 503 at the limit: the replica is healthy, and a conversation
that ends frees a place at once.

Query parameters: ``seed``, ``audio_temperature``, ``audio_topk``, ``text_temperature``,
``text_topk`` (the conversation's sampling); ``text_prompt`` and ``voice_prompt`` are
PersonaPlex's persona prompts (a voice is a file in the model's voices): stepped before the
handshake. A Moshi model takes none: empty ones are accepted, others refused with 400, as
is a voice the model does not have.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect

from hfdeploy.serve.duplex.frames import CLOSE_WAIT_S, FrameLoop, Session
from hfdeploy.serve.duplex.lockstep import Sampling
from hfdeploy.serve.duplex.prompts import PromptError
from hfdeploy.serve.duplex.protocol import (
    AUDIO,
    ERROR,
    HANDSHAKE,
    AudioFormatError,
    AudioIn,
    detect_format,
)
from hfdeploy.serve.duplex.runner import DUPLEX_TASK
from hfdeploy.serve.responses import error_body
from hfdeploy.serve.state import ServerState

__all__ = ["CHAT_PATH", "register"]

log = logging.getLogger("hfdeploy.serve")

CHAT_PATH = "/api/chat"
#: Seconds a client is asked to wait before it tries again (a conversation lasts minutes).
RETRY_AFTER_S = 10
_FLOATS = {"audio_temperature": "temp", "text_temperature": "temp_text"}
_INTS = {"audio_topk": "top_k", "text_topk": "top_k_text", "seed": "seed"}


def sampling_from_query(query: Mapping[str, str]) -> Sampling:
    """The conversation's sampling from the query string.

    Raises:
        ValueError: a value that is not a number, or out of range.
    """
    values: dict[str, Any] = {}
    for name, field in (*_FLOATS.items(), *_INTS.items()):
        raw = query.get(name)
        if raw is None or raw == "":
            continue
        try:
            value = float(raw) if name in _FLOATS else int(raw)
        except ValueError:
            raise ValueError(f"{name}: {raw!r} is not a number") from None
        if value < 0 or (name in ("audio_topk", "text_topk") and value < 1):
            raise ValueError(f"{name}: {raw} is out of range")
        values[field] = value
    return Sampling(**values)


async def _deny(ws: WebSocket, status: int, message: str, code: str) -> None:
    from starlette.responses import Response

    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    await ws.send_denial_response(
        Response(error_body(message, code), status, headers=headers, media_type="application/json")
    )


def register(app: FastAPI, state: ServerState, task: str) -> None:
    """Add ``/api/chat`` when ``task`` is full-duplex speech."""
    if task != DUPLEX_TASK:
        return

    @app.websocket(CHAT_PATH)
    async def chat(ws: WebSocket) -> None:
        metrics = state.metrics.duplex
        assert metrics is not None
        frames = state.frames
        if frames is None or state.phase != "ready" or frames.closing:
            metrics.refused.labels("not_ready").inc()
            await _deny(ws, 503, f"not ready ({state.phase})", "not_ready")
            return
        try:
            sampling = sampling_from_query(ws.query_params)
        except ValueError as e:
            metrics.refused.labels("bad_request").inc()
            await _deny(ws, 400, str(e), "invalid_request")
            return
        runner, query = frames.runner, ws.query_params
        prompt = (query.get("text_prompt", ""), query.get("voice_prompt", ""))
        try:  # a model with prompts: on the model thread (a voice may be encoded, then kept)
            forced = (await frames.call(runner.prompt, *prompt) if runner.prompts is not None
                      else runner.prompt(*prompt))  # fmt: skip
        except PromptError as e:
            metrics.refused.labels("bad_request").inc()
            await _deny(ws, 400, str(e), "invalid_request")
            return
        if frames.full():
            metrics.refused.labels("limit").inc()
            await _deny(
                ws, 503, f"at the session limit ({frames.limit} conversations); try again",
                "overloaded",
            )  # fmt: skip
            return
        session = frames.open(sampling, forced)
        try:
            await ws.accept()
            if forced is None:  # with a prompt: once it is over (the frame loop sends it)
                await ws.send_bytes(HANDSHAKE)
            await _converse(ws, frames, session)
        except WebSocketDisconnect:
            pass
        finally:
            frames.close(session, "client")
            session.finished.set()


async def _converse(ws: WebSocket, frames: FrameLoop, s: Session) -> None:
    """Read the client's audio and write the session's messages until either side ends."""
    reader = asyncio.create_task(_read(ws, frames, s))
    writer = asyncio.create_task(_write(ws, s))
    ended = asyncio.create_task(s.done.wait())
    try:
        await asyncio.wait({reader, writer, ended}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reader, writer, ended):
            task.cancel()
        await asyncio.gather(reader, writer, ended, return_exceptions=True)
    if s.ended is not None:
        code, reason = s.ended
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_WAIT_S):
                if code != 1001:
                    await ws.send_bytes(ERROR + reason.encode())
                await ws.close(code, reason[:120])


async def _read(ws: WebSocket, frames: FrameLoop, s: Session) -> None:
    audio: AudioIn | None = None
    runner = frames.runner
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes")
        if not data or data[0] != AUDIO:
            continue  # text frames, control and ping messages: nothing to do
        payload = data[1:]
        if audio is None:
            fmt = detect_format(payload)
            try:
                audio = AudioIn(fmt, runner.frame_samples, runner.sample_rate)
            except AudioFormatError as e:
                frames.end(s, 1003, str(e), "protocol")
                return
            s.audio_format = fmt
        frames.frames_in(s, audio.feed(payload))


async def _write(ws: WebSocket, s: Session) -> None:
    while True:
        await ws.send_bytes(await s.outbox.get())
