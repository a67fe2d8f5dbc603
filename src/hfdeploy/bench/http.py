"""A small HTTP/1.1 client over asyncio streams, built for load generation.

Why not httpx: at thousands of requests per second on one core, a general client's
per-request overhead becomes the bottleneck being measured. This client does only what a
benchmark needs: keep-alive connections, ``Content-Length``, chunked and read-to-close
bodies, TLS, a timestamp for every body piece as it arrives (for TTFT and inter-chunk
gaps), and one transparent retry when a reused keep-alive connection turns out closed.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from hfdeploy.errors import EndpointError, InvalidSettingError

__all__ = ["Endpoint", "HttpResult", "Pool"]

PieceSink = Callable[[bytes, float], None]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where to send: scheme, host, port and the base path of a URL."""

    url: str
    scheme: str
    host: str
    port: int
    base: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise InvalidSettingError(
                "URL", url, "not an http(s) URL", hint="e.g. http://127.0.0.1:8080"
            )
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(url, parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"

    def head(self, method: str, path: str, headers: dict[str, str], length: int | None) -> bytes:
        lines = [f"{method} {self.base}{path} HTTP/1.1", f"Host: {self.host_header}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(slots=True)
class HttpResult:
    status: int
    body: bytes
    #: perf_counter() when the status line arrived.
    headers_at: float
    #: perf_counter() when the request was written (after waiting for a free connection).
    sent_at: float = 0.0


class _Conn:
    __slots__ = ("reader", "used", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used = False

    def close(self) -> None:
        self.writer.close()


class _Closed(Exception):
    """The server closed a kept-alive connection before answering."""


class Pool:
    """Up to ``size`` keep-alive connections to one endpoint; waits when all are busy."""

    def __init__(self, endpoint: Endpoint, size: int, *, timeout: float = 600.0) -> None:
        if size < 1:
            raise InvalidSettingError("max concurrency", size, "must be at least 1")
        self.endpoint = endpoint
        self.timeout = timeout
        self._free: list[_Conn] = []
        self._slots = asyncio.Semaphore(size)
        self._ssl = ssl.create_default_context() if endpoint.scheme == "https" else None
        self._all: set[_Conn] = set()

    async def _open(self) -> _Conn:
        e = self.endpoint
        try:
            reader, writer = await asyncio.open_connection(
                e.host, e.port, ssl=self._ssl, limit=2**20
            )
        except OSError as err:
            raise EndpointError(e.url, f"cannot connect: {err.strerror or err}") from err
        conn = _Conn(reader, writer)
        self._all.add(conn)
        return conn

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        headers: dict[str, str] | None = None,
        on_piece: PieceSink | None = None,
    ) -> HttpResult:
        """Send one request on a free connection; ``on_piece`` sees each body piece as it lands.

        Raises:
            EndpointError: no connection could be made.
            TimeoutError: no complete answer within the pool's timeout.
            ConnectionError: the connection broke mid-answer.
        """
        head = self.endpoint.head(
            method, path, headers or {}, len(body) if body or method != "GET" else None
        )
        async with self._slots:
            conn = self._free.pop() if self._free else await self._open()
            for attempt in range(2):
                reused = conn.used
                try:
                    # asyncio.timeout, not wait_for: wait_for runs the exchange as a new task,
                    # which waits its turn on the loop: client-side delay measured as latency.
                    async with asyncio.timeout(self.timeout):
                        result, keep = await self._exchange(conn, head + body, on_piece)
                except _Closed:
                    self._drop(conn)
                    if not reused or attempt:
                        raise ConnectionResetError("server closed the connection") from None
                    conn = await self._open()
                    continue
                except BaseException:
                    self._drop(conn)
                    raise
                conn.used = True
                if keep:
                    self._free.append(conn)
                else:
                    self._drop(conn)
                return result
        raise AssertionError("unreachable")

    def _drop(self, conn: _Conn) -> None:
        self._all.discard(conn)
        conn.close()

    async def close(self) -> None:
        for conn in list(self._all):
            self._drop(conn)
        self._free.clear()

    @staticmethod
    async def _exchange(
        conn: _Conn, data: bytes, on_piece: PieceSink | None
    ) -> tuple[HttpResult, bool]:
        reader, writer = conn.reader, conn.writer
        sent_at = time.perf_counter()
        writer.write(data)
        status_line = await reader.readline()
        if not status_line:
            raise _Closed
        headers_at = time.perf_counter()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ConnectionError(f"not an HTTP response: {status_line[:80]!r}")
        status = int(parts[1])
        keep = parts[0] == b"HTTP/1.1"
        length: int | None = None
        chunked = False
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                v = value.strip().lower()
                keep = v == b"keep-alive" or (keep and v != b"close")
        pieces: list[bytes] = []
        if status in (204, 304) or 100 <= status < 200:
            pass
        elif chunked:
            while True:
                size_line = await reader.readline()
                if not size_line:
                    raise ConnectionResetError("connection closed inside a chunked body")
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                piece = await reader.readexactly(size)
                await reader.readexactly(2)
                if on_piece is not None:
                    on_piece(piece, time.perf_counter())
                pieces.append(piece)
        elif length is not None:
            if on_piece is None:
                pieces.append(await reader.readexactly(length))
            else:
                remaining = length
                while remaining:
                    piece = await reader.read(min(remaining, 65536))
                    if not piece:
                        raise ConnectionResetError("connection closed inside the body")
                    remaining -= len(piece)
                    on_piece(piece, time.perf_counter())
                    pieces.append(piece)
        else:
            keep = False
            while piece := await reader.read(65536):
                if on_piece is not None:
                    on_piece(piece, time.perf_counter())
                pieces.append(piece)
        return HttpResult(status, b"".join(pieces), headers_at, sent_at), keep
