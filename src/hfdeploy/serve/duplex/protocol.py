"""The ``/api/chat`` wire format of the reference Moshi and PersonaPlex servers.

Every message is binary and its first byte is its kind: 0x00 handshake (the server's, once
the session is set up), 0x01 audio, 0x02 text (one UTF-8 token piece), 0x03 control,
0x04 metadata (JSON), 0x05 error (UTF-8), 0x06 ping.

Audio is 24 kHz mono. The reference clients send and expect Ogg-Opus; hfdeploy also takes
raw 16-bit little-endian PCM, so that a client without an Opus library works. The format
of a session's first audio message decides both directions: Ogg-Opus answers in Ogg-Opus
(which needs ``sphn``, the ``opus`` extra), PCM in PCM.
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = [
    "AUDIO",
    "ERROR",
    "HANDSHAKE",
    "TEXT",
    "AudioFormatError",
    "AudioIn",
    "AudioOut",
    "detect_format",
]

HANDSHAKE = b"\x00"
AUDIO = 0x01
TEXT = b"\x02"
ERROR = b"\x05"

Format = Literal["pcm16", "ogg-opus"]


class AudioFormatError(ValueError):
    """Audio the server cannot take (the message says what to send instead)."""


def detect_format(payload: bytes) -> Format:
    """Ogg-Opus when the payload starts an Ogg page, else raw PCM16."""
    return "ogg-opus" if payload[:4] == b"OggS" else "pcm16"


def _sphn() -> Any:
    try:
        import sphn
    except ImportError as e:
        raise AudioFormatError(
            "this server cannot decode Ogg-Opus (sphn is not installed: "
            "pip install 'hfdeploy[opus]'); send raw 16-bit PCM at 24 kHz instead"
        ) from e
    return sphn


class AudioIn:
    """A session's incoming audio, cut into frames of ``frame`` samples (float32 arrays)."""

    def __init__(self, fmt: Format, frame: int, rate: int) -> None:
        import numpy as np

        self._np = np
        self.format = fmt
        self.frame = frame
        self._pending = np.zeros(0, dtype=np.float32)
        self._odd = b""  # a PCM16 sample split across two messages
        self._reader = _sphn().OpusStreamReader(rate) if fmt == "ogg-opus" else None

    def feed(self, payload: bytes) -> list[Any]:
        """The whole frames this message completes (none, one or several)."""
        np = self._np
        if self._reader is not None:
            # sphn 0.2: the samples the bytes complete come back from the call.
            samples = np.asarray(self._reader.append_bytes(payload), dtype=np.float32).reshape(-1)
        else:
            data = self._odd + payload
            cut = len(data) - len(data) % 2
            self._odd = data[cut:]
            samples = np.frombuffer(data[:cut], dtype="<i2").astype(np.float32) / 32768.0
        buf = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        whole = len(buf) // self.frame
        self._pending = buf[whole * self.frame :]
        return [buf[i * self.frame : (i + 1) * self.frame] for i in range(whole)]


class AudioOut:
    """A session's outgoing audio: one message per frame, in the session's format."""

    def __init__(self, fmt: Format, rate: int) -> None:
        import numpy as np

        self._np = np
        self._writer = _sphn().OpusStreamWriter(rate) if fmt == "ogg-opus" else None

    def encode(self, samples: Any) -> bytes:
        """The message for one frame of float samples in [-1, 1] (empty: nothing to send)."""
        np = self._np
        x = np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0)
        if self._writer is not None:
            data = bytes(self._writer.append_pcm(x))
        else:
            data = (x * 32767.0).round().astype("<i2").tobytes()
        return bytes([AUDIO]) + data if data else b""
