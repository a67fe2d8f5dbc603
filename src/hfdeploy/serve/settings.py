"""Settings of ``hfdeploy serve``, resolved once: flag > environment > default.

Pure: the environment is passed in as a mapping. Every variable is the flag's name
upper-cased with an ``HFDEPLOY_`` prefix (``--max-batch-size`` →
``HFDEPLOY_MAX_BATCH_SIZE``), so a container can be configured without a command line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from hfdeploy.errors import InvalidSettingError

__all__ = ["Device", "DtypeName", "LogFormat", "ServeSettings", "resolve_serve_settings"]

Device = Literal["cpu", "cuda"]
DtypeName = Literal["auto", "float32", "float16", "bfloat16"]
LogFormat = Literal["text", "json"]

TASKS = (
    "feature-extraction",
    "sentence-similarity",
    "text-ranking",
    "text-classification",
    "token-classification",
    "text-generation",
    "automatic-speech-recognition",
    "audio-to-audio",
)

_ENV_PREFIX = "HFDEPLOY_"


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """What the server runs and how it sheds load.

    Attributes:
        model: local model folder (``/repository`` in a container).
        task: override the task detected from the model's files.
        max_batch_size: inputs per forward pass at most.
        max_wait_ms: how long the first queued input waits for company.
        max_batch_tokens: padded tokens in forward passes at once, shared out between the
            model workers (splits a batch).
        max_queue: inputs waiting or running at most; past it, 503 + Retry-After.
        max_input_tokens: tokens per input at most (default: the model's own limit).
        max_client_batch_size: inputs per request at most (413 past it).
        max_payload_bytes: request body size at most (413 past it); default 2 MB,
            25 MB for speech models.
        request_timeout: seconds before a request gets 504 and frees its slot.
        api_key: when set, every route but health and readiness needs
            ``Authorization: Bearer <key>``.
        max_sessions: full-duplex conversations at once at most (default: what the
            warm-up measures to step within a frame); past it, 503 + Retry-After.
    """

    model: str
    task: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_batch_tokens: int = 16384
    max_queue: int = 1024
    max_input_tokens: int | None = None
    max_client_batch_size: int = 64
    max_payload_bytes: int | None = None
    request_timeout: float = 60.0
    api_key: str | None = None
    device: Device = "cpu"
    dtype: DtypeName = "auto"
    allow_pickle: bool = False
    trust_remote_code: bool = False
    served_model_name: str | None = None
    warmup: bool = True
    threads: int | None = None
    workers: int | None = None
    log_format: LogFormat = "text"
    log_level: str = "info"
    drain_timeout: float = 30.0
    max_sessions: int | None = None

    def __post_init__(self) -> None:
        _check(self)

    def public(self) -> dict[str, Any]:
        """The settings as JSON, with the API key masked."""
        data = asdict(self)
        if data["api_key"]:
            data["api_key"] = "***"
        return data


def _positive(name: str, value: float | None, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value <= 0:
        raise InvalidSettingError(name, value, "must be greater than 0")


def _check(s: ServeSettings) -> None:
    for name in ("max_batch_size", "max_batch_tokens", "max_queue", "max_client_batch_size"):
        _positive(name, getattr(s, name))
    for name in ("max_input_tokens", "max_payload_bytes", "threads", "workers", "max_sessions"):
        _positive(name, getattr(s, name), allow_none=True)
    _positive("request_timeout", s.request_timeout)
    if s.max_wait_ms < 0:
        raise InvalidSettingError("max_wait_ms", s.max_wait_ms, "must be 0 or more")
    if s.drain_timeout < 0:
        raise InvalidSettingError("drain_timeout", s.drain_timeout, "must be 0 or more")
    if not 0 <= s.port <= 65535:
        raise InvalidSettingError("port", s.port, "must be between 0 and 65535")
    if s.max_queue < s.max_batch_size:
        raise InvalidSettingError(
            "max_queue",
            s.max_queue,
            f"smaller than max_batch_size ({s.max_batch_size}): batches could never fill",
        )
    if s.max_client_batch_size > s.max_queue:
        raise InvalidSettingError(
            "max_client_batch_size",
            s.max_client_batch_size,
            f"larger than max_queue ({s.max_queue}): such a request could never be queued",
        )
    if s.task is not None and s.task not in TASKS:
        raise InvalidSettingError("task", s.task, "not a task the server runs: " + ", ".join(TASKS))
    for name, allowed in (
        ("device", ("cpu", "cuda")),
        ("dtype", ("auto", "float32", "float16", "bfloat16")),
        ("log_format", ("text", "json")),
        ("log_level", ("critical", "error", "warning", "info", "debug")),
    ):
        if getattr(s, name) not in allowed:
            raise InvalidSettingError(name, getattr(s, name), "use one of " + ", ".join(allowed))


def _coerce(name: str, raw: str, default: Any) -> Any:
    """An environment string turned into the type of the field's default."""
    if isinstance(default, bool):
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise InvalidSettingError(_ENV_PREFIX + name.upper(), raw, "use true or false")
    try:
        if isinstance(default, int) or name in (
            "max_input_tokens", "max_payload_bytes", "threads", "workers", "max_sessions",
        ):  # fmt: skip
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        raise InvalidSettingError(_ENV_PREFIX + name.upper(), raw, "not a number") from None
    return raw


def resolve_serve_settings(
    model: str, *, environ: Mapping[str, str] | None = None, **flags: Any
) -> ServeSettings:
    """Settings from flags (those not ``None``), then ``HFDEPLOY_*`` variables, then defaults.

    Raises:
        InvalidSettingError: a value out of range, naming the flag or variable.
    """
    env = os.environ if environ is None else environ
    known = {f.name: f for f in fields(ServeSettings)}
    unknown = set(flags) - set(known)
    if unknown:
        raise TypeError(f"unknown serve settings: {sorted(unknown)}")
    values: dict[str, Any] = {}
    base = ServeSettings(model=model)
    for name in known:
        if name == "model":
            continue
        if flags.get(name) is not None:
            values[name] = flags[name]
        elif (raw := env.get(_ENV_PREFIX + name.upper())) not in (None, ""):
            values[name] = _coerce(name, str(raw), getattr(base, name))
    return replace(base, **values)
