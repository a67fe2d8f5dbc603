"""Duplex sessions' timestamps into the report's numbers. Pure arithmetic, formulas stated.

Clock: ``time.monotonic()`` of the client, in seconds. A session's window runs from its
handshake to ``T``: the handshake plus ``--duration``, or the server's close if sooner. Audio
seconds come from each message's own size (raw PCM) or Ogg granule positions (Ogg-Opus), so
a server that sends two frames per message is timed by what it sent, not by a count.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from hfdeploy.bench.duplex_config import FRAME_S
from hfdeploy.bench.metrics import percentiles

__all__ = [
    "DUPLEX_FORMULAS", "REALTIME_RULE", "SessionLog", "classify", "largest_realtime",
    "phase_summary",
]  # fmt: skip

#: A gap longer than this many times the audio of the earlier message is a slow frame.
SLOW_FACTOR = 2.0
JITTER_P95_MAX_S = 0.25 * FRAME_S
DRIFT_MAX_S = 2 * FRAME_S
BACKLOG_GROWTH_MAX_S = 2 * FRAME_S

REALTIME_RULE: dict[str, Any] = {
    "rule": "a session stayed real time when it was served (handshake and audio, not queued), "
    "the server neither closed it early nor sent an error, the p95 of its jitter was at most "
    "20 ms (inter-arrival at most 1.25 x 80 ms with one frame per message), its drift was "
    "within +-160 ms and its backlog grew by at most 160 ms. A phase is real time when all "
    "its sessions were; largest_realtime_sessions is the largest N whose phase, and every "
    "phase with fewer sessions, was real time",
    "jitter_p95_ms_max": round(JITTER_P95_MAX_S * 1000, 3),
    "drift_ms_max": round(DRIFT_MAX_S * 1000, 3),
    "backlog_growth_ms_max": round(BACKLOG_GROWTH_MAX_S * 1000, 3),
    "slow_gap_factor": SLOW_FACTOR,
}

DUPLEX_FORMULAS = {
    "connect_ms": "t_open - t_connect (TCP, TLS and the WebSocket upgrade)",
    "handshake_ms": "t_handshake - t_connect: the first 0x00 message (connect, prompt "
    "processing, any wait for a free slot)",
    "first_audio_ms": "t_first_audio - t_handshake: the first 0x01 message carrying audio",
    "audio_seconds": "raw PCM: bytes / 2 / 24000; Ogg-Opus: granule advance / 48000 "
    "(pre-skip included)",
    "inter_arrival_ms": "gap between consecutive audio messages of a session, pooled over sessions",
    "jitter_ms": "inter_arrival - audio seconds of the earlier message (80 ms for one frame "
    "per message); > 0 late, < 0 early",
    "slow_frame_episodes": "gaps longer than twice the audio of the earlier message (160 ms "
    "for one frame), and a silence still open at T",
    "drift_ms": "(t_last - t_first_audio) - (audio_received - audio_first) "
    "+ max(0, T - t_last - audio_last): how far the audio lags the wall clock at T; "
    "> 0 behind real time",
    "backlog_ms": "audio_sent(t) - audio_received(t); backlog_growth_ms = at T minus at the "
    "first audio",
    "send_lag_ms": "t_sent - t_intended, t_intended = t_handshake + k x 80 ms (the client's "
    "own lateness; frames never drift: the schedule is absolute)",
    "window": "a session streams from its handshake for --duration seconds; T = that end, or "
    "the server's close if sooner",
}


@dataclass(slots=True)
class SessionLog:
    """What one session saw (times: ``time.monotonic()`` seconds)."""

    index: int
    t0: float = 0.0
    opened: float | None = None
    handshake: float | None = None
    #: Handshake + duration: the end of the window.
    deadline: float | None = None
    end: float | None = None
    connect_error: str | None = None
    closed_at: float | None = None
    closed_by_server: bool = False
    close_code: int | None = None
    close_reason: str = ""
    #: (arrival, audio seconds) of each audio message in the window, after the handshake.
    audio: list[tuple[float, float]] = field(default_factory=list)
    audio_format: str | None = None
    #: (intended, sent) of each frame sent.
    sends: list[tuple[float, float]] = field(default_factory=list)
    text_tokens: int = 0
    text: str = ""
    errors: list[str] = field(default_factory=list)
    #: The first metadata messages (JSON, or the text when it is not JSON).
    metadata: list[Any] = field(default_factory=list)
    #: Counts of the other message kinds (control, ping, unknown, ...).
    other: dict[str, int] = field(default_factory=dict)

    def window_end(self) -> float | None:
        if self.deadline is None:
            return None
        ends = [self.deadline]
        if self.closed_by_server and self.closed_at is not None:
            ends.append(self.closed_at)
        if self.end is not None:
            ends.append(self.end)
        return min(ends)


@dataclass(frozen=True, slots=True)
class _Stream:
    gaps: list[float]
    jitter: list[float]
    slow: list[float]
    longest_gap: float
    received: float
    drift: float
    backlog_first: float
    backlog_end: float


def _stream(log: SessionLog) -> _Stream | None:
    end = log.window_end()
    if end is None or not log.audio:
        return None
    times = [t for t, _ in log.audio]
    secs = [s for _, s in log.audio]
    gaps = [b - a for a, b in pairwise(times)]
    pairs = list(zip(gaps, secs[:-1], strict=True))
    tail = max(0.0, end - times[-1])
    slow = [g for g, e in pairs if g > SLOW_FACTOR * e]
    if tail > SLOW_FACTOR * secs[-1]:
        slow.append(tail)
    received = sum(secs)

    def sent_by(t: float) -> float:
        return FRAME_S * sum(1 for _, sent in log.sends if sent <= t)

    return _Stream(
        gaps=gaps,
        jitter=[g - e for g, e in pairs],
        slow=slow,
        longest_gap=max([*gaps, tail]),
        received=received,
        drift=(times[-1] - times[0]) - (received - secs[0]) + max(0.0, tail - secs[-1]),
        backlog_first=sent_by(times[0]) - secs[0],
        backlog_end=sent_by(end) - received,
    )


def classify(logs: list[SessionLog], queue_after: float) -> list[str]:
    """Each session's outcome: ``refused`` (no connection, or closed before a handshake),
    ``queued`` (its handshake came more than ``queue_after`` seconds after the phase's fastest,
    or never, while another session was being served), ``no_handshake``, ``no_audio`` or
    ``served``."""

    def end(log: SessionLog) -> float:
        return math.inf if log.end is None else log.end

    shaken = [(o, o.handshake, end(o)) for o in logs if o.handshake is not None]
    fastest = min((hs - o.t0 for o, hs, _ in shaken), default=0.0)
    out = []
    for log in logs:
        others = [(hs, e) for o, hs, e in shaken if o is not log]
        if log.connect_error is not None or (log.handshake is None and log.closed_by_server):
            out.append("refused")
        elif log.handshake is None:
            served = any(hs < end(log) and e > log.t0 for hs, e in others)
            out.append("queued" if served else "no_handshake")
        elif log.handshake > (mark := log.t0 + fastest + queue_after) and any(
            hs <= mark < e for hs, e in others
        ):
            out.append("queued")
        else:
            out.append("served" if log.audio else "no_audio")
    return out


def _ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 3)


def _realtime(outcome: str, log: SessionLog, s: _Stream | None) -> bool:
    if outcome != "served" or s is None or log.closed_by_server or log.errors or not s.jitter:
        return False
    p95 = percentiles(s.jitter, 1.0)
    return (
        p95 is not None
        and p95["p95"] <= JITTER_P95_MAX_S
        and abs(s.drift) <= DRIFT_MAX_S
        and s.backlog_end - s.backlog_first <= BACKLOG_GROWTH_MAX_S
    )


def _session_row(log: SessionLog, outcome: str, s: _Stream | None) -> dict[str, Any]:
    first = log.audio[0][0] if log.audio else None
    return {
        "index": log.index,
        "outcome": outcome,
        "realtime": _realtime(outcome, log, s),
        "connect_ms": _ms(None if log.opened is None else log.opened - log.t0),
        "handshake_ms": _ms(None if log.handshake is None else log.handshake - log.t0),
        "first_audio_ms": _ms(
            None if first is None or log.handshake is None else first - log.handshake
        ),
        "audio_format": log.audio_format,
        "audio_messages": len(log.audio),
        "audio_received_s": round(s.received, 3) if s else 0.0,
        "audio_sent_s": round(FRAME_S * len(log.sends), 3),
        "inter_arrival_ms": percentiles(s.gaps) if s else None,
        "jitter_ms": percentiles(s.jitter) if s else None,
        "slow_frame_episodes": len(s.slow) if s else 0,
        "longest_gap_ms": _ms(s.longest_gap) if s else None,
        "drift_ms": _ms(s.drift) if s else None,
        "backlog_ms": {"at_first_audio": _ms(s.backlog_first), "at_end": _ms(s.backlog_end)}
        if s
        else None,
        "backlog_growth_ms": _ms(s.backlog_end - s.backlog_first) if s else None,
        "send_lag_ms": percentiles([sent - want for want, sent in log.sends]),
        "text_tokens": log.text_tokens,
        "text": log.text,
        "errors": len(log.errors),
        "error_messages": log.errors[:5],
        "closed_by_server": log.closed_by_server,
        "close_code": log.close_code,
        "close_reason": log.close_reason,
        "connect_error": log.connect_error,
        "metadata": log.metadata,
        "other_messages": dict(log.other),
    }


def phase_summary(
    logs: list[SessionLog], *, queue_after: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One phase's summary (pooled over its sessions) and one row per session."""
    outcomes = classify(logs, queue_after)
    streams = [_stream(log) for log in logs]
    rows = [_session_row(*x) for x in zip(logs, outcomes, streams, strict=True)]
    live = [s for s in streams if s is not None]
    counts = Counter(outcomes)
    drifts = [s.drift for s in live]
    growth = [s.backlog_end - s.backlog_first for s in live]
    messages = [m for log in logs for m in log.errors]
    summary = {
        "sessions": len(logs),
        **{
            k: counts.get(k, 0) for k in ("served", "queued", "refused", "no_handshake", "no_audio")
        },
        "realtime_sessions": sum(r["realtime"] for r in rows),
        "realtime": bool(rows) and all(r["realtime"] for r in rows),
        "refused_by_kind": dict(
            Counter(
                log.connect_error or f"closed {log.close_code}"
                for log, o in zip(logs, outcomes, strict=True)
                if o == "refused"
            )
        ),
        "closed_by_server": sum(log.closed_by_server for log in logs),
        "connect_ms": percentiles([log.opened - log.t0 for log in logs if log.opened is not None]),
        "handshake_ms": percentiles(
            [log.handshake - log.t0 for log in logs if log.handshake is not None]
        ),
        "first_audio_ms": percentiles(
            [
                log.audio[0][0] - log.handshake
                for log in logs
                if log.handshake is not None and log.audio
            ]
        ),
        "inter_arrival_ms": percentiles([g for s in live for g in s.gaps]),
        "jitter_ms": percentiles([j for s in live for j in s.jitter]),
        "slow_frame_episodes": sum(len(s.slow) for s in live),
        "longest_gap_ms": _ms(max((s.longest_gap for s in live), default=None)),
        "drift_ms": {"min": _ms(min(drifts)), "max": _ms(max(drifts))} if drifts else None,
        "backlog_growth_ms_max": _ms(max(growth, default=None)),
        "audio_sent_s": round(sum(r["audio_sent_s"] for r in rows), 3),
        "audio_received_s": round(sum(s.received for s in live), 3),
        "audio_formats": sorted({log.audio_format for log in logs if log.audio_format}),
        "text_tokens": sum(log.text_tokens for log in logs),
        "errors": len(messages),
        "error_messages": list(dict.fromkeys(messages))[:5],
        "send_lag_ms": percentiles([sent - want for log in logs for want, sent in log.sends]),
    }
    return summary, rows


def largest_realtime(phases: list[tuple[int, bool]]) -> int | None:
    """The largest session count N such that the phase of N sessions, and every phase with
    fewer, was real time; None when the smallest was not."""
    best = None
    for n, ok in sorted(phases):
        if not ok:
            break
        best = n
    return best
