"""What ``hfdeploy bench --api duplex`` is asked to do: ``DuplexConfig``, the WebSocket URL of
the chat route and the session count of each phase.

Full-duplex speech servers (Kyutai's Moshi, NVIDIA's PersonaPlex) upgrade ``GET /api/chat``
to a WebSocket and exchange 80 ms frames of 24 kHz mono audio both ways. Every value is
checked in ``DuplexConfig.validate`` before any connection is made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from hfdeploy.bench.config import parse_profile
from hfdeploy.errors import InvalidSettingError

__all__ = [
    "CODECS", "FRAME_S", "FRAME_SAMPLES", "SAMPLE_RATE", "DuplexConfig", "chat_url",
    "session_counts",
]  # fmt: skip

#: The protocol's audio: 24 kHz mono, one frame = 1,920 samples = 80 ms.
SAMPLE_RATE = 24_000
FRAME_SAMPLES = 1_920
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
#: ``auto``: Ogg-Opus when the optional codec (sphn) is installed, else raw 16-bit PCM.
CODECS = ("auto", "opus", "pcm")
ROUTE = "/api/chat"
_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}


def chat_url(url: str, *, text_prompt: str | None = None, voice_prompt: str | None = None) -> str:
    """The WebSocket URL of the chat route: ``http(s)`` maps to ``ws(s)``, ``/api/chat`` is
    added unless the path already ends with it, and the prompts become query parameters.

    Example:
        >>> chat_url("http://127.0.0.1:8998", text_prompt="You are kind.")
        'ws://127.0.0.1:8998/api/chat?text_prompt=You+are+kind.'

    Raises:
        InvalidSettingError: not a ws, wss, http or https URL with a host and a valid port.
    """
    parts = urlsplit(url if "://" in url else f"ws://{url}")
    scheme = _SCHEMES.get(parts.scheme.lower())
    try:
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    if scheme is None or not parts.hostname or not port_ok:
        raise InvalidSettingError(
            "URL", url, "not a ws://, wss://, http:// or https:// URL with a host and port",
            hint="e.g. ws://127.0.0.1:8998 (the route /api/chat is added)",
        )  # fmt: skip
    path = parts.path.rstrip("/")
    if not path.endswith(ROUTE):
        path += ROUTE
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for key, value in (("text_prompt", text_prompt), ("voice_prompt", voice_prompt)):
        if value is not None:
            query[key] = value
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


def session_counts(profile: str, max_sessions: int) -> list[tuple[str, int]]:
    """Each phase's name and number of concurrent sessions: ``synchronous`` is one session,
    ``concurrent:N[,N...]`` one phase per N.

    Raises:
        InvalidSettingError: another profile (sessions are held open, not sent at a rate),
            a count below 1 or above ``max_sessions``.
    """
    name = profile.strip().partition(":")[0]
    phases = parse_profile(profile, max_sessions)
    if name not in ("synchronous", "concurrent") or isinstance(phases, str):
        raise InvalidSettingError(
            "--profile", profile,
            "a duplex run holds N sessions open at once: use synchronous or concurrent:N[,N...]",
            hint="e.g. --profile concurrent:1,2,4",
        )  # fmt: skip
    counts = [(p.name, p.concurrency or 1) for p in phases]
    if max(n for _, n in counts) > max_sessions:
        raise InvalidSettingError(
            "--profile", profile, f"more than {max_sessions} sessions at once",
            hint="Lower the counts or raise --max-concurrency.",
        )  # fmt: skip
    return counts


def _positive(name: str, value: float) -> None:
    if not value > 0 or math.isinf(value):
        raise InvalidSettingError(name, value, "must be a positive number of seconds")


@dataclass(frozen=True, slots=True)
class DuplexConfig:
    """A duplex benchmark: per phase, N sessions stream audio for ``duration`` seconds each.

    A session waits at most ``handshake_timeout`` seconds for the server's handshake, then
    streams for ``duration`` seconds; a phase is cut after both plus a few seconds to close,
    whatever the server does.
    """

    url: str
    profile: str = "synchronous"
    #: Seconds each session streams after its handshake.
    duration: float = 10.0
    handshake_timeout: float = 30.0
    #: A handshake this many seconds later than the phase's fastest, while another session
    #: was being served, counts the session as queued.
    queue_after: float = 1.0
    #: A WAV file to send (looped), or None for a generated tone.
    audio: str | None = None
    codec: str = "auto"
    text_prompt: str | None = None
    voice_prompt: str | None = None
    max_sessions: int = 256
    #: Keep the run valid when the client falls behind (results may then measure the client).
    no_client_check: bool = False

    @property
    def ws_url(self) -> str:
        return chat_url(self.url, text_prompt=self.text_prompt, voice_prompt=self.voice_prompt)

    def phases(self) -> list[tuple[str, int]]:
        return session_counts(self.profile, self.max_sessions)

    def validate(self) -> None:
        """Check every value; the WAV file is read (and checked) when the run starts."""
        _positive("--duration", self.duration)
        _positive("--handshake-timeout", self.handshake_timeout)
        if not self.queue_after >= 0 or math.isinf(self.queue_after):
            raise InvalidSettingError("--queue-after", self.queue_after, "must be 0 or more")
        if self.max_sessions < 1:
            raise InvalidSettingError("--max-concurrency", self.max_sessions, "must be at least 1")
        if self.codec not in CODECS:
            raise InvalidSettingError("--codec", self.codec, f"not one of {', '.join(CODECS)}")
        self.ws_url  # noqa: B018 - parsing is the check
        self.phases()
