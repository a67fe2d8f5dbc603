"""The SSE parser gives the same events however the bytes are split."""

from __future__ import annotations

import itertools
import random

from hfdeploy.bench.sse import SSEEvent, SSEParser

STREAM = (
    b": keep-alive\r\n\r\n"
    b'data: {"a": 1}\r\n\r\n'
    b"event: ping\ndata: x\n\n"
    b"data: line one\ndata: line two\n\n"
    b"id: 7\ndata:no-space\r\r"
    b'data: {"b": "\xc3\xa9"}\n\n'
    b"data: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent('{"a": 1}'),
    SSEEvent("x", "ping"),
    SSEEvent("line one\nline two"),
    SSEEvent("no-space"),
    SSEEvent('{"b": "é"}'),
    SSEEvent("[DONE]"),
]


def _parse(pieces: list[bytes]) -> list[SSEEvent]:
    p = SSEParser()
    out = [e for piece in pieces for e in p.feed(piece)]
    return out + p.close()


def test_whole_stream() -> None:
    events = _parse([STREAM])
    assert events == EXPECTED
    assert events[-1].done
    assert not events[0].done


def test_every_two_way_split() -> None:
    for i in range(len(STREAM) + 1):
        assert _parse([STREAM[:i], STREAM[i:]]) == EXPECTED, f"split at {i}"


def test_byte_at_a_time_and_random_chunks() -> None:
    assert _parse([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED
    rng = random.Random(1)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(STREAM)), rng.randint(1, 12)))
        bounds = [0, *cuts, len(STREAM)]
        pieces = [STREAM[a:b] for a, b in itertools.pairwise(bounds)]
        assert _parse(pieces) == EXPECTED


def test_unterminated_last_event_counts_at_close() -> None:
    p = SSEParser()
    assert p.feed(b"data: tail") == []
    assert p.close() == [SSEEvent("tail")]
