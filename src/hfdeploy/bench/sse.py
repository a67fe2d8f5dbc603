"""Server-sent events, parsed incrementally from bytes as they arrive.

Pure: no I/O. Robust to any chunking (an event split across reads, several events in one
read, a CRLF split between reads), comment lines (``: keep-alive``), ``event:``/``id:``
fields, multi-line ``data:`` and the OpenAI ``[DONE]`` sentinel. Follows the WHATWG
event-stream rules: a blank line ends an event; a field's value loses one leading space.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SSEEvent", "SSEParser"]


@dataclass(frozen=True, slots=True)
class SSEEvent:
    data: str
    event: str = "message"

    @property
    def done(self) -> bool:
        """The OpenAI end-of-stream sentinel."""
        return self.data.strip() == "[DONE]"


class SSEParser:
    """Feed bytes, get complete events."""

    __slots__ = ("_buf", "_data", "_event", "_pending_cr")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._event = ""
        self._pending_cr = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse ``chunk``; return the events it completes (possibly none)."""
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the LF of a CRLF split across reads
        self._pending_cr = False
        buf = self._buf + chunk
        events: list[SSEEvent] = []
        start = 0
        n = len(buf)
        while start < n:
            cr = buf.find(b"\r", start)
            lf = buf.find(b"\n", start)
            if cr == -1 and lf == -1:
                break
            if cr == -1 or (lf != -1 and lf < cr):
                end, nxt = lf, lf + 1
            else:
                end = cr
                if cr + 1 < n:
                    nxt = cr + 2 if buf[cr + 1 : cr + 2] == b"\n" else cr + 1
                else:
                    nxt = cr + 1
                    self._pending_cr = True
            self._line(buf[start:end].decode("utf-8", "replace"), events)
            start = nxt
        self._buf = buf[start:]
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: an unterminated last event still counts."""
        events: list[SSEEvent] = []
        if self._buf:
            self._line(self._buf.decode("utf-8", "replace"), events)
            self._buf = b""
        self._line("", events)
        return events

    def _line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(SSEEvent("\n".join(self._data), self._event or "message"))
            self._data = []
            self._event = ""
            return
        if line.startswith(":"):
            return  # a comment: keep-alive pings
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
