"""The duplex server's metrics, on the server's own registry (``hfdeploy_duplex_*``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["DuplexMetrics"]

_STEP_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.1, 0.15, 0.25, 0.5, 1.0)
_SESSION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_SESSIONS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class DuplexMetrics:
    """Sessions (open, refused, closed and why, how long), steps (time, sessions stepped,
    real-time factor, late) and frames (dropped, missing)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.active = Gauge("hfdeploy_duplex_sessions_active", "Conversations open", registry=r)
        self.limit = Gauge(
            "hfdeploy_duplex_session_limit", "Conversations taken at most (past it: 503)",
            registry=r,
        )  # fmt: skip
        self.refused = Counter(
            "hfdeploy_duplex_sessions_refused", "Conversations refused before the upgrade",
            ["reason"], registry=r,
        )  # fmt: skip
        self.closed = Counter(
            "hfdeploy_duplex_sessions_closed", "Conversations ended, by why", ["reason"],
            registry=r,
        )  # fmt: skip
        self.duration = Histogram(
            "hfdeploy_duplex_session_duration_seconds", "Conversation length",
            buckets=_SESSION_BUCKETS, registry=r,
        )  # fmt: skip
        self.step_seconds = Histogram(
            "hfdeploy_duplex_step_seconds",
            "One frame for every conversation: codec encode, LM and depth steps, codec decode",
            buckets=_STEP_BUCKETS, registry=r,
        )  # fmt: skip
        self.step_sessions = Histogram(
            "hfdeploy_duplex_step_sessions", "Conversations stepped together",
            buckets=_SESSIONS_BUCKETS, registry=r,
        )  # fmt: skip
        self.rtf = Gauge(
            "hfdeploy_duplex_realtime_factor",
            "Last step's time over the frame's (80 ms); 1 or more is not real time",
            registry=r,
        )  # fmt: skip
        self.late = Counter(
            "hfdeploy_duplex_late_steps", "Steps that ended after the next one was due",
            registry=r,
        )  # fmt: skip
        self.dropped = Counter(
            "hfdeploy_duplex_frames_dropped",
            "Frames dropped: input_overflow (a client ahead of real time), output_overflow "
            "(a client that stopped reading), format_unknown (a prompted conversation's "
            "first frames, past 2 s before its client sent audio)",
            ["reason"], registry=r,
        )  # fmt: skip
        self.gaps = Counter(
            "hfdeploy_duplex_input_gaps",
            "Steps where a conversation's frame had not arrived (silence stepped instead)",
            registry=r,
        )  # fmt: skip
        for reason in ("limit", "not_ready", "bad_request"):
            self.refused.labels(reason)
        for reason in ("client", "slow_client", "drain", "step_error", "protocol"):
            self.closed.labels(reason)
        for reason in ("input_overflow", "output_overflow", "format_unknown"):
            self.dropped.labels(reason)

    def step(self, seconds: float, sessions: int, frame: float) -> None:
        self.step_seconds.observe(seconds)
        self.step_sessions.observe(sessions)
        self.rtf.set(seconds / frame)
