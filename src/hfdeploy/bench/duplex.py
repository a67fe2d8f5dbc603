"""``hfdeploy bench --api duplex``: hold N full-duplex speech sessions open at once and
measure whether each stays real time.

Per phase, N sessions connect together to the server's ``/api/chat`` WebSocket, wait for its
handshake, send audio paced at real time (one 80 ms frame every 80 ms against the clock) and
timestamp every message the server sends: time to handshake and to first audio, jitter,
slow-frame episodes, drift and backlog, text tokens, errors and closes; sessions refused or
queued are counted. The run reports the largest session count that stayed real time.

A phase always ends: each session waits at most ``handshake_timeout`` for its handshake and
streams ``duration`` seconds; a phase is cut ``HARD_GRACE_S`` after both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hfdeploy.bench.drivers import Progress
from hfdeploy.bench.duplex_audio import Audio, Encoder, load_wav, pick_encoder, tone
from hfdeploy.bench.duplex_config import DuplexConfig
from hfdeploy.bench.duplex_metrics import (
    DUPLEX_FORMULAS,
    REALTIME_RULE,
    SessionLog,
    largest_realtime,
    phase_summary,
)
from hfdeploy.bench.duplex_session import CLOSE_TIMEOUT_S, run_session
from hfdeploy.envelope import Confidence, Envelope

__all__ = ["DuplexPhase", "DuplexResult", "run_duplex_bench"]

#: Seconds a phase may run past its sessions' handshake wait and streaming, to close them.
HARD_GRACE_S = 2 * CLOSE_TIMEOUT_S + 2
#: The client fell behind when its event loop used more than this share of a core, or sent
#: its frames later than one frame (p99).
CPU_LIMIT = 0.95
SEND_LAG_LIMIT_MS = 80.0


@dataclass(slots=True)
class DuplexPhase:
    name: str
    sessions: int
    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    client: dict[str, Any]
    #: Each session's audio arrivals, ms from its handshake (for ``--out``).
    arrivals: list[list[float]] = field(default_factory=list)

    def to_dict(self, *, records: bool = True) -> dict[str, Any]:
        out = {
            "name": self.name,
            "kind": "sessions",
            "concurrency": self.sessions,
            "rate": None,
            "summary": self.summary,
            "client": self.client,
            "sessions": self.rows,
        }
        if records:
            out["arrivals_ms"] = self.arrivals
        return out


@dataclass(slots=True)
class DuplexResult:
    config: DuplexConfig
    codec: str
    codec_note: str
    audio: Audio
    phases: list[DuplexPhase]
    started: str = ""
    valid: bool = True
    invalid_reason: str | None = None

    @property
    def largest_realtime_sessions(self) -> int | None:
        return largest_realtime([(p.sessions, p.summary["realtime"]) for p in self.phases])

    @property
    def main(self) -> DuplexPhase | None:
        """The phase ``summary`` reports: the largest real-time one, else the first."""
        n = self.largest_realtime_sessions
        return next((p for p in self.phases if p.sessions == n), None) or next(
            iter(self.phases), None
        )

    def envelope(self) -> Envelope:
        main = self.main
        if main is None:
            return Envelope("no phase ran", "low", "nothing was measured")
        n, s, c = self.largest_realtime_sessions, main.summary, self.config
        hs, fa, jit = s["handshake_ms"] or {}, s["first_audio_ms"] or {}, s["jitter_ms"] or {}
        result = (
            f"{n if n is not None else 'no'} concurrent session(s) stayed real time on "
            f"{c.ws_url}; phase {main.name}: handshake p50 {hs.get('p50', '-')} ms, first audio "
            f"p50 {fa.get('p50', '-')} ms, jitter p95 {jit.get('p95', '-')} ms, "
            f"{s['slow_frame_episodes']} slow-frame episode(s), {s['refused']} refused, "
            f"{s['queued']} queued"
        )
        confidence: Confidence = "high"
        why = "the client kept up and every session was served"
        served = sum(p.summary["served"] for p in self.phases)
        if not self.valid:
            confidence, why = "low", f"the client fell behind: {self.invalid_reason}"
        elif served == 0:
            confidence, why = "low", "no session was served: nothing streamed"
        elif self.codec == "pcm16":
            confidence, why = "medium", "raw PCM was sent; the reference servers expect Ogg-Opus"
        elif c.duration < 30:
            confidence, why = "medium", f"{c.duration:g} s per session: slow drift shows later"
        factors = (
            f"audio sent: {self.audio.source} ({self.audio.note}), {self.codec_note}",
            "times are the client's: network and the client's own event loop are included",
            f"real time: {REALTIME_RULE['rule']}",
        )
        checks = (
            f"hfdeploy bench {c.url} --api duplex --profile {c.profile} --duration 60 --out DIR",
            "listen to what the server sends (the 0x01 messages) for audible gaps",
        )
        return Envelope(result, confidence, why, factors, checks)

    def to_dict(self, *, records: bool = True) -> dict[str, Any]:
        c, main = self.config, self.main
        return {
            "hfdeploy": "bench",
            "started": self.started,
            "valid": self.valid,
            "invalid_reason": self.invalid_reason,
            "config": {
                "url": c.url,
                "ws_url": c.ws_url,
                "api": "duplex",
                "profile": c.profile,
                "duration_s": c.duration,
                "handshake_timeout_s": c.handshake_timeout,
                "queue_after_s": c.queue_after,
                "text_prompt": c.text_prompt,
                "voice_prompt": c.voice_prompt,
                "codec": self.codec,
                "codec_note": self.codec_note,
                "audio": {
                    "source": self.audio.source,
                    "note": self.audio.note,
                    "seconds": round(self.audio.seconds, 3),
                },
            },
            "formulas": DUPLEX_FORMULAS,
            "realtime_rule": REALTIME_RULE,
            "largest_realtime_sessions": self.largest_realtime_sessions,
            "summary": main.summary if main else None,
            "summary_phase": main.name if main else None,
            "phases": [p.to_dict(records=records) for p in self.phases],
            "envelope": self.envelope().to_dict(),
        }


async def _phase(
    cfg: DuplexConfig,
    name: str,
    n: int,
    audio: Audio,
    make_encoder: Callable[[], Encoder],
    progress: Progress | None,
) -> DuplexPhase:
    logs = [SessionLog(i) for i in range(n)]
    url = cfg.ws_url
    cpu0, wall0 = time.thread_time(), time.monotonic()
    tasks = [
        asyncio.create_task(run_session(log, url, audio=audio, encoder=make_encoder(),
                                        duration=cfg.duration,
                                        handshake_timeout=cfg.handshake_timeout))
        for log in logs
    ]  # fmt: skip
    if (report := progress) is not None:
        report("phase", 0, n)
        for task in tasks:
            task.add_done_callback(lambda _: report("session", 1, None))
    cap = cfg.handshake_timeout + cfg.duration + HARD_GRACE_S
    done, pending = await asyncio.wait(tasks, timeout=cap)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=CLOSE_TIMEOUT_S + 1)
    for task in done:
        task.result()  # a bug in the client surfaces here
    wall = time.monotonic() - wall0
    summary, rows = phase_summary(logs, queue_after=cfg.queue_after)
    client = {
        "cpu_share_of_one_core": round((time.thread_time() - cpu0) / wall, 3) if wall else 0.0,
        "send_lag_ms": summary["send_lag_ms"],
        "wall_s": round(wall, 3),
        "hard_cap_hit": bool(pending),
    }
    arrivals = [
        [round((t - log.handshake) * 1000, 3) for t, _ in log.audio]
        for log in logs
        if log.handshake is not None
    ]
    return DuplexPhase(name, n, summary, rows, client, arrivals)


def _kept_up(phase: DuplexPhase) -> str | None:
    client = phase.client
    if client["cpu_share_of_one_core"] > CPU_LIMIT:
        return (
            f"phase {phase.name}: the client used {client['cpu_share_of_one_core']:.0%} of a "
            "core; its timestamps include its own queueing"
        )
    lag = client["send_lag_ms"] or {}
    if lag.get("p99", 0.0) > SEND_LAG_LIMIT_MS:
        return f"phase {phase.name}: frames went out {lag['p99']} ms late (p99), over one frame"
    return None


async def _run(cfg: DuplexConfig, progress: Progress | None) -> DuplexResult:
    audio = load_wav(cfg.audio) if cfg.audio is not None else tone()
    codec, make_encoder, note = pick_encoder(cfg.codec)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result = DuplexResult(cfg, codec, note, audio, [], started=started)
    for name, n in cfg.phases():
        phase = await _phase(cfg, name, n, audio, make_encoder, progress)
        result.phases.append(phase)
        reason = _kept_up(phase)
        if reason and not cfg.no_client_check:
            result.valid, result.invalid_reason = False, reason
            break
    return result


def run_duplex_bench(cfg: DuplexConfig, progress: Progress | None = None) -> DuplexResult:
    """Run a duplex benchmark to completion (blocking); see :class:`DuplexConfig`.

    Sessions the server refuses, queues or never answers are counted in the result, not
    raised; a client that fell behind marks the result invalid (``valid`` False).

    Example:
        >>> cfg = DuplexConfig("ws://127.0.0.1:8998", profile="concurrent:1,2", duration=30)
        >>> run_duplex_bench(cfg).largest_realtime_sessions  # doctest: +SKIP
        1

    Raises:
        InvalidSettingError: a bad URL, profile, duration, codec or WAV file.
        MissingDependencyError: ``codec="opus"`` without sphn.
    """
    cfg.validate()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(_run(cfg, progress))
    return uvloop.run(_run(cfg, progress))
