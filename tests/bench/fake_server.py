"""An inference server with known behaviour, for testing the benchmark client.

Raw asyncio HTTP/1.1 (keep-alive, chunked SSE), run as its own process so its timing and
memory are apart from the client's. Routes:
  POST /v1/chat/completions, /v1/completions: SSE; first content after --ttft-ms, then one
       chunk every --tpot-ms (each +- uniform --jitter-ms), --tokens-per-chunk tokens per
       chunk, comment lines between events, usage in the last chunk unless --no-usage.
  POST /generate_stream: TGI-style events, one token each, same timing.
  POST /embed, /v1/embeddings: answer after --embed-ms, then (with --batch-ms T) on the
       next T-ms tick, together with every other pending request, as a batching server does.
  GET /health, /info (TEI-shaped, or TGI-shaped with --info tgi), /v1/models, /metrics;
      /ready is 404 unless --ready-after S (then 503 until S after listening, 200 after).
Start-up: --start-delay S before listening; --crash exits 1 at once.
Behaviours: --serial (one request at a time); --fail-every N (every Nth POST is a 503);
--stall-at S --stall-for S (nothing is answered during that window after start);
--leak-bytes N (keeps N bytes per request).

Usage: python fake_server.py --port P [...]; prints "ready" once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

CHAT_PATHS = {"/v1/chat/completions", "/v1/completions"}


class FakeServer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.started = time.monotonic()
        self.served = 0
        self.posts = 0
        self.leaked: list[bytearray] = []
        self.lock = asyncio.Lock()

    def delay(self, ms: float) -> float:
        j = self.args.jitter_ms
        return max(0.0, (ms + (self.rng.uniform(-j, j) if j else 0.0)) / 1000)

    async def stall(self) -> None:
        a = self.args
        if a.stall_for:
            end = self.started + a.stall_at + a.stall_for
            now = time.monotonic()
            if self.started + a.stall_at <= now < end:
                await asyncio.sleep(end - now)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                length = 0
                while (h := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = h.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                if self.args.serial:
                    async with self.lock:
                        await self.route(method, path, body, writer)
                else:
                    await self.route(method, path, body, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def route(self, method: str, path: str, body: bytes, w: asyncio.StreamWriter) -> None:
        a = self.args
        if method == "GET":
            if path == "/metrics":
                text = (
                    "# TYPE hfdeploy_requests counter\n"
                    f'hfdeploy_requests_total{{route="/embed",method="POST",status="200"}} '
                    f"{self.served}\n"
                )
                return await self.send(w, 200, text.encode(), "text/plain; version=0.0.4")
            if path == "/info":
                info = (
                    {"model_id": "fake", "max_total_tokens": 4096}
                    if a.info == "tgi"
                    else {"model_id": "fake", "model_type": {a.info: {}}}
                )
                return await self.send(w, 200, json.dumps(info).encode())
            if path == "/ready":
                if a.ready_after is None:
                    return await self.send(w, 404, b'{"error":"not found"}')
                ready = time.monotonic() - self.started >= a.ready_after
                return await self.send(w, 200 if ready else 503, b"{}")
            if path == "/v1/models":
                return await self.send(w, 200, b'{"object":"list","data":[{"id":"fake"}]}')
            return await self.send(w, 200, b"{}")
        req = json.loads(body or b"{}")
        self.posts += 1
        if a.fail_every and self.posts % a.fail_every == 0:
            return await self.send(w, 503, b'{"error":"overloaded"}')
        await self.stall()
        if a.leak_bytes:
            self.leaked.append(bytearray(a.leak_bytes))
        if path in CHAT_PATHS or path == "/generate_stream":
            await self.stream(path, req, w)
        else:
            if a.embed_ms:
                await asyncio.sleep(self.delay(a.embed_ms))
            if a.batch_ms:  # answer on the next tick, with every other pending request
                tick = a.batch_ms / 1000
                elapsed = time.monotonic() - self.started
                await asyncio.sleep(tick - elapsed % tick)
            n = len(req.get("inputs") or req.get("input") or [1])
            await self.send(w, 200, json.dumps([[0.5, 0.25]] * n).encode())
        self.served += 1
        return None

    async def send(
        self, w: asyncio.StreamWriter, status: int, data: bytes, ctype: str = "application/json"
    ) -> None:
        w.write(
            f"HTTP/1.1 {status} OK\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        await w.drain()

    async def stream(self, path: str, req: dict, w: asyncio.StreamWriter) -> None:
        a = self.args
        n = int(req.get("max_tokens") or req.get("parameters", {}).get("max_new_tokens") or 16)
        w.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )

        async def chunk(text: str) -> None:
            data = text.encode()
            w.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await w.drain()

        await chunk(": connected\n\n")  # a comment before anything: headers are not TTFT
        # Each chunk is due at a time fixed from the start (not a sleep after the last one),
        # so that sleeps that overrun on a busy machine do not add up over a response.
        loop = asyncio.get_running_loop()
        due = loop.time() + self.delay(a.ttft_ms)
        await asyncio.sleep(max(0.0, due - loop.time()))
        sent = 0
        while sent < n:
            k = min(a.tokens_per_chunk, n - sent)
            sent += k
            if path == "/generate_stream":
                last = sent == n
                event = {
                    "token": {"id": 1, "text": " tok", "special": False},
                    "generated_text": "x" if last else None,
                    "details": {"generated_tokens": n} if last else None,
                }
            elif path == "/v1/completions":
                event = {"choices": [{"index": 0, "text": " tok" * k}]}
            else:
                event = {"choices": [{"index": 0, "delta": {"content": " tok" * k}}]}
            await chunk(f"data: {json.dumps(event)}\n\n")
            if sent < n:
                due += self.delay(a.tpot_ms) * min(a.tokens_per_chunk, n - sent)
                await asyncio.sleep(max(0.0, due - loop.time()))
        if path != "/generate_stream":
            if not a.no_usage:
                usage = {"prompt_tokens": 7, "completion_tokens": n, "total_tokens": n + 7}
                await chunk(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n")
            await chunk("data: [DONE]\n\n")
        w.write(b"0\r\n\r\n")
        await w.drain()


async def main(args: argparse.Namespace) -> None:
    await asyncio.sleep(args.start_delay)
    fake = FakeServer(args)
    server = await asyncio.start_server(fake.handle, "127.0.0.1", args.port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ttft-ms", type=float, default=50)
    p.add_argument("--tpot-ms", type=float, default=10)
    p.add_argument("--jitter-ms", type=float, default=0)
    p.add_argument("--tokens-per-chunk", type=int, default=1)
    p.add_argument("--embed-ms", type=float, default=0)
    p.add_argument("--batch-ms", type=float, default=0)
    p.add_argument("--no-usage", action="store_true")
    p.add_argument("--serial", action="store_true")
    p.add_argument("--stall-at", type=float, default=0)
    p.add_argument("--stall-for", type=float, default=0)
    p.add_argument("--leak-bytes", type=int, default=0)
    p.add_argument("--fail-every", type=int, default=0)
    p.add_argument("--info", default="embedding")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start-delay", type=float, default=0)
    p.add_argument("--ready-after", type=float, default=None)
    p.add_argument("--crash", action="store_true")
    return p.parse_args(argv)


if __name__ == "__main__":
    ns = parse()
    if ns.crash:
        raise SystemExit("fake server: crashing on purpose")
    try:
        import uvloop

        uvloop.run(main(ns))
    except ImportError:
        asyncio.run(main(ns))
