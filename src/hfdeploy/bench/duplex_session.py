"""One duplex session over a WebSocket: connect, wait for the handshake, send audio paced at
real time while timestamping everything the server sends, then close, all within bounds.

Messages are binary; the first byte is the kind: 0x00 handshake, 0x01 audio, 0x02 text
token, 0x03 control, 0x04 metadata (JSON; the first few are kept), 0x05 error, 0x06 ping.
This module is the one place where the ``websockets`` package's exceptions become session
outcomes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from hfdeploy.bench.duplex_audio import Audio, Encoder
from hfdeploy.bench.duplex_config import FRAME_S, SAMPLE_RATE
from hfdeploy.bench.duplex_metrics import SessionLog
from hfdeploy.bench.ogg import OggClock, is_ogg

__all__ = ["CLOSE_TIMEOUT_S", "run_session"]

#: Seconds the closing handshake may take before the connection is dropped.
CLOSE_TIMEOUT_S = 2.0
#: Audio messages are small; anything larger than this is a broken server.
MAX_MESSAGE = 4 * 2**20
_TEXT_KEPT = 200
_OTHER = {0x03: "control", 0x04: "metadata_not_kept", 0x06: "ping"}
_METADATA_KEPT = 5

now = time.monotonic


async def sleep_until(t: float) -> None:
    """Sleep until ``now() >= t``: a timer may fire a little early, so check and go again."""
    while (left := t - now()) > 0:
        await asyncio.sleep(left)


class _Session:
    def __init__(self, log: SessionLog, audio: Audio, encoder: Encoder, duration: float) -> None:
        self.log = log
        self.audio = audio
        self.encoder = encoder
        self.duration = duration
        self.shaken = asyncio.Event()
        self.closing = False
        self.clock: OggClock | None = None

    def on_message(self, msg: str | bytes, t: float) -> None:
        log = self.log
        if isinstance(msg, str) or not msg:
            kind = "text_frame" if isinstance(msg, str) else "empty"
            log.other[kind] = log.other.get(kind, 0) + 1
            return
        match msg[0]:
            case 0x00:
                if log.handshake is None:
                    log.handshake = t
                    log.deadline = t + self.duration
                    self.shaken.set()
            case 0x01 if log.deadline is not None and t <= log.deadline:
                seconds = self._seconds(msg[1:])
                if seconds > 0:
                    log.audio.append((t, seconds))
            case 0x01:
                log.other["audio_outside_window"] = log.other.get("audio_outside_window", 0) + 1
            case 0x02:
                log.text_tokens += 1
                if len(log.text) < _TEXT_KEPT:
                    log.text += msg[1:].decode("utf-8", "replace")
            case 0x04 if len(log.metadata) < _METADATA_KEPT:
                text = msg[1:].decode("utf-8", "replace")
                try:
                    log.metadata.append(json.loads(text))
                except ValueError:
                    log.metadata.append(text)
            case 0x05:
                log.errors.append(msg[1:].decode("utf-8", "replace")[:200] or "(empty)")
            case code:
                name = _OTHER.get(code, f"unknown_0x{code:02x}")
                log.other[name] = log.other.get(name, 0) + 1

    def _seconds(self, payload: bytes) -> float:
        """Audio seconds in one message: Ogg granules once the stream is Ogg, else PCM."""
        log = self.log
        if self.clock is None and is_ogg(payload):
            self.clock = OggClock()
            log.audio_format = "ogg-opus"
        if self.clock is None:
            log.audio_format = log.audio_format or "pcm16"
            return len(payload) // 2 / SAMPLE_RATE
        try:
            return self.clock.feed(payload)
        except ValueError:
            log.other["bad_ogg"] = log.other.get("bad_ogg", 0) + 1
            return FRAME_S

    async def receive(self, ws: ClientConnection) -> None:
        log = self.log
        try:
            async for msg in ws:
                self.on_message(msg, now())
        except ConnectionClosed:
            pass
        finally:
            log.closed_at = now()
            log.closed_by_server = not self.closing
            log.close_code, log.close_reason = ws.close_code, ws.close_reason or ""

    async def send(self, ws: ClientConnection) -> None:
        """One frame every 80 ms from the handshake, against the clock: a late frame is sent
        at once and the next keeps its time, so sending never drifts."""
        log = self.log
        assert log.handshake is not None
        assert log.deadline is not None
        frames = self.audio.frames()
        k = 0
        with contextlib.suppress(ConnectionClosed):
            while (due := log.handshake + k * FRAME_S) < log.deadline:
                await sleep_until(due)
                payload = self.encoder.encode(next(frames))
                if payload:
                    await ws.send(b"\x01" + payload)
                log.sends.append((due, now()))
                k += 1


async def _connect(log: SessionLog, url: str, timeout: float) -> ClientConnection | None:
    try:
        return await connect(
            url, open_timeout=timeout, close_timeout=CLOSE_TIMEOUT_S, compression=None,
            max_size=MAX_MESSAGE,
        )  # fmt: skip
    except InvalidStatus as e:
        log.connect_error = f"http_{e.response.status_code}"
    except TimeoutError:
        log.connect_error = "connect_timeout"
    except (OSError, InvalidHandshake) as e:
        log.connect_error = f"{type(e).__name__}: {e}"[:200]
    return None


async def _first(*aws: asyncio.Future[Any], timeout: float) -> None:
    await asyncio.wait(aws, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED)


async def run_session(
    log: SessionLog,
    url: str,
    *,
    audio: Audio,
    encoder: Encoder,
    duration: float,
    handshake_timeout: float,
) -> None:
    """Run one session into ``log``: refused or timed out sessions are recorded, not raised.

    The session waits at most ``handshake_timeout`` seconds (connection included) for the
    handshake, then streams for ``duration`` seconds or until the server closes; what it
    saw stays in ``log`` even when the caller cancels it.
    """
    log.t0 = now()
    ws = await _connect(log, url, handshake_timeout)
    if ws is None:
        log.end = now()
        return
    log.opened = now()
    session = _Session(log, audio, encoder, duration)
    reader = asyncio.create_task(session.receive(ws))
    shaken = asyncio.create_task(session.shaken.wait())
    sender = None
    try:
        await _first(shaken, reader, timeout=log.t0 + handshake_timeout - now())
        if log.deadline is not None and not reader.done():
            sender = asyncio.create_task(session.send(ws))
            await _first(reader, timeout=log.deadline - now())
    finally:
        session.closing = not reader.done()
        for task in (shaken, sender):
            if task is not None:
                task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), CLOSE_TIMEOUT_S + 1)
        await asyncio.wait({reader}, timeout=1.0)
        reader.cancel()
        log.end = now()
