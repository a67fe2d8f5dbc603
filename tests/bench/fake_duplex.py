"""A full-duplex speech server with known timing, for testing ``hfdeploy bench --api duplex``.

It speaks the Moshi/PersonaPlex protocol on ``/api/chat`` (a WebSocket; binary messages whose
first byte is the kind: 0x00 handshake, 0x01 audio, 0x02 text, 0x04 metadata, 0x05 error) and
runs as its own process, so that its timing is apart from the client's. Per session:
  --handshake-ms MS      0x00 this long after the session starts (--never-handshake: never)
  --first-audio-ms MS    the first 0x01 this long after the handshake, then one every
                         --frame-ms (80) against the clock (late frames catch up)
  --stall-at S --stall-ms MS   the gap after the frame S seconds into the audio lasts MS
                         instead of one frame, and the schedule stays shifted (no catch-up)
  --frame-cost-ms MS     each frame holds one lock shared by all sessions this long first,
                         as a GPU running sessions one after another would
  --text-every N         a 0x02 token after every Nth frame; --error-after N: one 0x05
  --close-after S        the server closes the session S seconds after its handshake
  --ogg                  audio as Ogg pages (granule positions at 48 kHz) instead of raw PCM
  --one-session queue|refuse|close   with a session open, a second one waits for it (queue),
                         gets HTTP 503 (refuse) or is closed before its handshake (close)
The query's text_prompt and voice_prompt come back in a 0x04 metadata message.

Usage: python fake_duplex.py [options]; prints "ready PORT" once listening on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import time
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

_CRC = []
for _i in range(256):
    _r = _i << 24
    for _ in range(8):
        _r = ((_r << 1) ^ 0x04C11DB7) if _r & 0x80000000 else _r << 1
    _CRC.append(_r & 0xFFFFFFFF)


def ogg_page(body: bytes, granule: int, seq: int, *, bos: bool = False) -> bytes:
    """One Ogg page holding one packet (under 255 bytes here), with its CRC."""
    assert len(body) < 255
    head = b"OggS" + struct.pack("<BBqIIIB", 0, 2 if bos else 0, granule, 7, seq, 0, 1)
    page = bytearray(head + bytes([len(body)]) + body)
    crc = 0
    for b in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC[((crc >> 24) ^ b) & 0xFF]
    page[22:26] = struct.pack("<I", crc)
    return bytes(page)


class Fake:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.busy = 0
        self.slot = asyncio.Lock()
        self.compute = asyncio.Lock()
        self.turned_away: set[int] = set()

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path != "/api/chat":
            return conn.respond(404, "no such route\n")
        mode = self.args.one_session
        if mode in ("refuse", "close") and self.busy:
            if mode == "refuse":
                return conn.respond(503, "busy\n")
            self.turned_away.add(id(conn))
            return None
        self.busy += 1
        return None

    async def handler(self, ws: ServerConnection) -> None:
        if id(ws) in self.turned_away:
            self.turned_away.discard(id(ws))
            await ws.close(1013, "busy")
            return
        try:
            if self.args.one_session == "queue":
                async with self.slot:
                    await self.session(ws)
            else:
                await self.session(ws)
        except ConnectionClosed:
            pass
        finally:
            self.busy -= 1

    async def session(self, ws: ServerConnection) -> None:
        a = self.args
        drain = asyncio.create_task(self.drain(ws))
        try:
            if a.never_handshake:
                await drain
                return
            await until(time.monotonic() + a.handshake_ms / 1000)
            await ws.send(b"\x00")
            shaken = time.monotonic()
            query = parse_qs(urlsplit(ws.request.path).query) if ws.request else {}
            meta = {k: v[0] for k, v in query.items()}
            await ws.send(b"\x04" + json.dumps(meta).encode())
            await self.stream(ws, shaken)
        finally:
            drain.cancel()

    async def stream(self, ws: ServerConnection, shaken: float) -> None:
        a = self.args
        frame_s = a.frame_ms / 1000
        stall_k = round(a.stall_at / frame_s) if a.stall_ms else -1
        t = shaken + a.first_audio_ms / 1000
        k = seq = 0
        if a.ogg:
            await ws.send(
                b"\x01"
                + ogg_page(b"OpusHead\x01\x01" + bytes(9), 0, 0, bos=True)
                + ogg_page(b"OpusTags" + bytes(8), 0, 1)
            )
            seq = 2
        while True:
            await until(t)
            if a.frame_cost_ms:
                async with self.compute:
                    await asyncio.sleep(a.frame_cost_ms / 1000)
            k += 1
            if a.ogg:
                payload = ogg_page(bytes(120), k * round(48_000 * frame_s), seq)
                seq += 1
            else:
                payload = bytes(2 * round(24_000 * frame_s))
            await ws.send(b"\x01" + payload)
            if a.text_every and k % a.text_every == 0:
                await ws.send(b"\x02" + f" w{k}".encode())
            if a.error_after == k:
                await ws.send(b"\x05" + b"fake failure")
            if a.close_after and time.monotonic() - shaken >= a.close_after:
                await ws.close(1011, "fake close")
                return
            t += frame_s + (a.stall_ms / 1000 - frame_s if k == stall_k else 0.0)

    async def drain(self, ws: ServerConnection) -> None:
        """Read the client's audio, as the real servers do."""
        async for msg in ws:
            assert isinstance(msg, bytes) and msg[:1] == b"\x01", msg[:8]


async def until(t: float) -> None:
    while (left := t - time.monotonic()) > 0:
        await asyncio.sleep(left)


async def main(args: argparse.Namespace) -> None:
    fake = Fake(args)
    async with serve(
        fake.handler, "127.0.0.1", 0, process_request=fake.process_request, compression=None
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"ready {port}", flush=True)
        await server.serve_forever()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--handshake-ms", type=float, default=0.0)
    p.add_argument("--never-handshake", action="store_true")
    p.add_argument("--first-audio-ms", type=float, default=0.0)
    p.add_argument("--frame-ms", type=float, default=80.0)
    p.add_argument("--stall-at", type=float, default=0.0)
    p.add_argument("--stall-ms", type=float, default=0.0)
    p.add_argument("--frame-cost-ms", type=float, default=0.0)
    p.add_argument("--text-every", type=int, default=0)
    p.add_argument("--error-after", type=int, default=0)
    p.add_argument("--close-after", type=float, default=0.0)
    p.add_argument("--ogg", action="store_true")
    p.add_argument("--one-session", choices=("off", "queue", "refuse", "close"), default="off")
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
