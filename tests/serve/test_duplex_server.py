"""``hfdeploy serve`` on a Moshi folder, as its own process, with real WebSocket clients:
conversations stepped together, audio and text out per frame, refusals before the upgrade,
clients that vanish or stop reading, and SIGTERM ending open conversations with a close
frame."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("transformers.models.moshi")
np = pytest.importorskip("numpy")

from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402

from hfdeploy.serve.duplex.lockstep import Sampling  # noqa: E402
from hfdeploy.serve.routes.duplex import sampling_from_query  # noqa: E402
from tests.serve._duplex import tiny_moshi_folder  # noqa: E402
from tests.serve._fixtures import free_port, serving, wait_ready  # noqa: E402
from tests.serve.test_process import HFDEPLOY  # noqa: E402

FRAME = 1920
LIMIT = 8


@pytest.fixture(scope="module")
def moshi_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tiny_moshi_folder(tmp_path_factory.mktemp("moshi") / "tiny-moshi"))


@pytest.fixture(scope="module")
def server(moshi_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("logs") / "duplex.log"
    with serving(moshi_dir, log, "--max-sessions", str(LIMIT)) as url:
        yield url


def _ws(url: str, query: str = "") -> str:
    return url.replace("http://", "ws://") + "/api/chat" + (f"?{query}" if query else "")


def _frame(k: int) -> bytes:
    pcm = np.random.default_rng(k).standard_normal(FRAME) * 3000
    return b"\x01" + pcm.astype("<i2").tobytes()


def _metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


async def _converse(ws: Any, frames: int, seen: dict[str, list[bytes]]) -> None:
    """Send ``frames`` frames at real time while reading everything the server sends."""

    async def read() -> None:
        async for m in ws:
            seen.setdefault(f"0x{m[0]:02x}", []).append(m)

    reader = asyncio.create_task(read())
    start = time.monotonic()
    for k in range(frames):
        await ws.send(_frame(k))
        await asyncio.sleep(max(0.0, start + (k + 1) * 0.08 - time.monotonic()))
    # Every frame sent gives one back, but the first (Moshi's warm-up step): wait for them
    # however busy the machine is, then close.
    await _until(lambda: len(seen.get("0x01", [])) >= frames - 1)
    reader.cancel()


async def _until(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def _session(url: str, frames: int, seed: int) -> dict[str, list[bytes]]:
    seen: dict[str, list[bytes]] = {}
    async with connect(_ws(url, f"seed={seed}")) as ws:
        seen["first"] = [await ws.recv()]
        await _converse(ws, frames, seen)
    return seen


def _check_conversation(seen: dict[str, list[bytes]], frames: int) -> None:
    assert seen["first"] == [b"\x00"], "the handshake comes first"
    audio = seen.get("0x01", [])
    # One frame per step after the warm-up step; steps go on (with silence for a frame that
    # came late) until the client closes, so a few more than were sent.
    assert frames - 1 <= len(audio) < 2 * frames
    assert {len(m) for m in audio} == {1 + 2 * FRAME}, "each audio message is one 80 ms frame"
    for m in seen.get("0x02", []):  # text: the tokenizer's pieces, never a special token
        assert m[1:].decode().startswith(" w")
    assert seen.get("0x02"), "some text tokens"
    assert not seen.get("0x05"), seen.get("0x05")


@pytest.mark.parametrize("sessions", [2, LIMIT])
def test_concurrent_conversations_get_a_frame_per_step(server: str, sessions: int) -> None:
    frames = 15

    async def main() -> list[dict[str, list[bytes]]]:
        return await asyncio.gather(*(_session(server, frames, i) for i in range(sessions)))

    for seen in asyncio.run(main()):
        _check_conversation(seen, frames)


def test_past_the_limit_refused_before_the_upgrade_with_retry_after(server: str) -> None:
    refused = _metric(server, 'hfdeploy_duplex_sessions_refused_total{reason="limit"}')

    async def main() -> InvalidStatus:
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(LIMIT):
                ws = await stack.enter_async_context(connect(_ws(server)))
                assert await ws.recv() == b"\x00"
            with pytest.raises(InvalidStatus) as e:
                await connect(_ws(server))
            # /ready stays 200 at the limit: the replica is healthy.
            assert httpx.get(server + "/ready").status_code == 200
        # A conversation that ends frees its place.
        async with connect(_ws(server)) as ws:
            assert await ws.recv() == b"\x00"
        return e.value

    err = asyncio.run(main())
    assert err.response.status_code == 503
    assert err.response.headers["Retry-After"].isdigit()
    body = json.loads(err.response.body)
    assert body["error"]["code"] == "overloaded" and "limit" in body["error"]["message"]
    assert _metric(server, 'hfdeploy_duplex_sessions_refused_total{reason="limit"}') == refused + 1


def test_persona_prompts_and_bad_sampling_refused_with_400(server: str) -> None:
    async def status(query: str) -> int:
        try:
            async with connect(_ws(server, query)):
                return 101
        except InvalidStatus as e:
            return int(e.response.status_code)

    async def main() -> list[int]:
        queries = ("text_prompt=You+are+a+pirate", "seed=x", "audio_topk=0",
                   "text_prompt=&voice_prompt=")  # fmt: skip
        return [await status(q) for q in queries]

    assert asyncio.run(main()) == [400, 400, 400, 101]


def test_sampling_from_the_query_string() -> None:
    got = sampling_from_query({"seed": "7", "audio_temperature": "0", "text_topk": "5"})
    assert got == Sampling(seed=7, temp=0.0, top_k_text=5)
    assert sampling_from_query({}) == Sampling()
    with pytest.raises(ValueError, match="not a number"):
        sampling_from_query({"seed": "x"})


def _wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_a_client_that_vanishes_mid_conversation_leaves_the_batch(server: str) -> None:
    closed = _metric(server, 'hfdeploy_duplex_sessions_closed_total{reason="client"}')

    async def vanish() -> None:
        ws = await connect(_ws(server))
        assert await ws.recv() == b"\x00"
        for k in range(5):
            await ws.send(_frame(k))
            await asyncio.sleep(0.08)
        ws.transport.abort()  # no close frame: the TCP connection just ends

    asyncio.run(vanish())
    _wait_for(lambda: _metric(server, "hfdeploy_duplex_sessions_active") == 0)
    assert _metric(server, 'hfdeploy_duplex_sessions_closed_total{reason="client"}') > closed

    async def after() -> dict[str, list[bytes]]:
        return await _session(server, 6, 1)

    _check_conversation(asyncio.run(after()), 6)


def test_a_client_that_stops_reading_is_closed_without_stalling_others(server: str) -> None:
    name = 'hfdeploy_duplex_sessions_closed_total{reason="slow_client"}'
    slow = _metric(server, name)

    async def stalled() -> None:
        # A tiny receive buffer so the stall reaches the server soon; the client sends on
        # (so its frames keep the conversation stepping) and never reads.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", int(server.rsplit(":", 1)[1])))
        ws = await connect(_ws(server), sock=sock, max_queue=1)
        healthy = asyncio.create_task(_session(server, 40, 2))
        try:
            for k in range(400):
                await asyncio.wait_for(ws.send(_frame(k)), 1.0)
                await asyncio.sleep(0.08)
                if _metric(server, name) > slow:
                    break
        except (ConnectionClosed, TimeoutError, OSError):
            pass
        finally:
            ws.transport.abort()
        _check_conversation(await healthy, 40)

    asyncio.run(stalled())
    assert _metric(server, name) > slow
    assert _metric(server, 'hfdeploy_duplex_frames_dropped_total{reason="output_overflow"}') > 0


def test_ogg_opus_in_is_answered_in_ogg_opus(server: str) -> None:
    sphn = pytest.importorskip("sphn")
    frames = 12

    async def main() -> tuple[list[bytes], int]:
        writer = sphn.OpusStreamWriter(24000)
        reader = sphn.OpusStreamReader(24000)
        audio: list[bytes] = []
        samples = 0
        async with connect(_ws(server, "seed=3")) as ws:
            assert await ws.recv() == b"\x00"

            async def read() -> None:
                nonlocal samples
                async for m in ws:
                    if m[0] == 1:
                        audio.append(m)
                        samples += len(reader.append_bytes(m[1:]))

            task = asyncio.create_task(read())
            start = time.monotonic()
            for k in range(frames):
                pcm = np.random.default_rng(k).standard_normal(FRAME).astype("float32") * 0.1
                await ws.send(b"\x01" + bytes(writer.append_pcm(pcm)))
                await asyncio.sleep(max(0.0, start + (k + 1) * 0.08 - time.monotonic()))
            await _until(lambda: samples >= (frames - 1) * FRAME)
            task.cancel()
        return audio, samples

    audio, samples = asyncio.run(main())
    assert audio[0][1:5] == b"OggS", "the answer is an Ogg stream"
    assert (frames - 1) * FRAME <= samples < 2 * frames * FRAME


def test_audio_in_refuses_ogg_opus_without_its_library(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from hfdeploy.serve.duplex.protocol import AudioFormatError, AudioIn, detect_format

    real = builtins.__import__

    def no_sphn(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "sphn":
            raise ModuleNotFoundError("No module named 'sphn'", name="sphn")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sphn)
    assert detect_format(b"OggS\x00\x02") == "ogg-opus"
    with pytest.raises(AudioFormatError, match=r"hfdeploy\[opus\].*16-bit PCM"):
        AudioIn("ogg-opus", FRAME, 24000)
    pcm = AudioIn("pcm16", FRAME, 24000)  # PCM needs no library; odd bytes carry over
    data = (np.arange(FRAME * 2) % 100).astype("<i2").tobytes()
    got = pcm.feed(data[:1001]) + pcm.feed(data[1001:])
    assert [len(f) for f in got] == [FRAME, FRAME]
    assert np.allclose(np.concatenate(got) * 32768, np.arange(FRAME * 2) % 100)


async def _read_all(ws: Any) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass


def test_sigterm_ends_open_conversations_with_a_close_frame(
    moshi_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    with (tmp_path / "serve.log").open("w") as log:
        proc = subprocess.Popen(
            [HFDEPLOY, "serve", str(moshi_dir), "--port", str(port), "--max-sessions", "2",
             "--drain-timeout", "1"],
            stderr=log,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)

        async def main() -> tuple[int | None, str, float, int]:
            async with connect(_ws(url)) as ws:
                assert await ws.recv() == b"\x00"
                reader = asyncio.create_task(_read_all(ws))
                for k in range(3):
                    await ws.send(_frame(k))
                    await asyncio.sleep(0.08)
                proc.send_signal(signal.SIGTERM)
                sent = time.monotonic()

                def draining() -> bool:
                    return httpx.get(url + "/ready").status_code == 503

                for _ in range(500):  # the server has taken the signal: /ready says so
                    if await asyncio.to_thread(draining):
                        break
                try:  # while draining, a new conversation is refused
                    async with connect(_ws(url)):
                        refused = 101
                except InvalidStatus as e:
                    refused = e.response.status_code
                try:
                    while True:  # the open one goes on for the drain time, then is closed
                        await ws.send(_frame(0))
                        await asyncio.sleep(0.08)
                except ConnectionClosed:
                    pass
                await ws.wait_closed()
                await reader
                return ws.close_code, ws.close_reason or "", time.monotonic() - sent, refused

        code, reason, took, refused = asyncio.run(main())
        assert code == 1001 and "shutting down" in reason
        assert 0.9 <= took < 15
        assert refused == 503
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
