"""The audio a duplex session sends: a WAV file or a generated tone as 24 kHz mono 16-bit
frames of 80 ms, and the codec that wraps each frame (Ogg-Opus, or raw PCM).

Reading and resampling use the standard library only; Ogg-Opus needs the optional ``sphn``
package (with numpy), imported when first asked for.
"""

from __future__ import annotations

import math
import sys
import wave
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hfdeploy.bench.duplex_config import FRAME_SAMPLES, SAMPLE_RATE
from hfdeploy.errors import InvalidSettingError, MissingDependencyError

__all__ = ["Audio", "Encoder", "load_wav", "pick_encoder", "tone"]

#: Only this much of a WAV file is read; the frames loop over it.
MAX_AUDIO_S = 120
_MIN_RATE, _MAX_RATE = 8_000, 192_000
_CONVERT = "Convert it: ffmpeg -i IN -ac 1 -ar 24000 -c:a pcm_s16le OUT.wav"
_FRAME_BYTES = FRAME_SAMPLES * 2


@dataclass(frozen=True, slots=True)
class Audio:
    """Mono 16-bit little-endian PCM at 24 kHz, a whole number of 80 ms frames."""

    pcm: bytes
    #: Where it came from: the file's path, or the tone's description.
    source: str
    #: What was done to it: "24000 Hz mono", or the resampling and mixing applied.
    note: str

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / SAMPLE_RATE

    def frames(self) -> Iterator[bytes]:
        """80 ms frames, from the start again after the last one, without end."""
        n = len(self.pcm) // _FRAME_BYTES
        while True:
            for i in range(n):
                yield self.pcm[i * _FRAME_BYTES : (i + 1) * _FRAME_BYTES]


def _pad(samples: array[int]) -> bytes:
    if sys.byteorder != "little":  # pragma: no cover - WAV and the wire are little-endian
        samples.byteswap()
    data = samples.tobytes()
    return data + bytes(-len(data) % _FRAME_BYTES)


def tone(seconds: float = 10.0, *, freq: float = 440.0, level: float = 0.25) -> Audio:
    """A sine at ``freq`` Hz, ``level`` of full scale, ``seconds`` long (whole frames)."""
    n = math.ceil(seconds * SAMPLE_RATE / FRAME_SAMPLES) * FRAME_SAMPLES
    amp = level * 32767
    w = 2 * math.pi * freq / SAMPLE_RATE
    samples = array("h", (round(amp * math.sin(w * i)) for i in range(n)))
    return Audio(_pad(samples), f"tone {freq:g} Hz", f"{SAMPLE_RATE} Hz mono, generated")


def _mono(samples: array[int], channels: int) -> array[int]:
    if channels == 1:
        return samples
    return array(
        "h", (sum(samples[i : i + channels]) // channels for i in range(0, len(samples), channels))
    )


def _resample(x: array[int], src: int, dst: int) -> array[int]:
    """Linear interpolation from ``src`` to ``dst`` Hz (no anti-alias filter: enough to
    drive a server, not for listening tests)."""
    n = len(x) * dst // src
    step = src / dst
    last = len(x) - 1
    out = array("h", bytes(2 * n))
    for i in range(n):
        pos = i * step
        j = int(pos)
        a = x[j]
        b = x[j + 1] if j < last else a
        out[i] = round(a + (b - a) * (pos - j))
    return out


def load_wav(path: str | Path) -> Audio:
    """A 16-bit PCM WAV file as 24 kHz mono frames: channels are mixed, other rates from 8
    to 192 kHz resampled (linear interpolation); the first 120 s are used.

    Raises:
        InvalidSettingError: unreadable, not 16-bit PCM WAV, empty, or a rate out of range.
    """
    p = Path(path)

    def bad(reason: str, hint: str = _CONVERT) -> InvalidSettingError:
        return InvalidSettingError("--audio", str(p), reason, hint=hint)

    try:
        with wave.open(str(p), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            if width != 2:
                raise bad(f"{8 * width}-bit samples; 16-bit PCM is expected")
            if not _MIN_RATE <= rate <= _MAX_RATE:
                raise bad(f"sample rate {rate} Hz is outside {_MIN_RATE}-{_MAX_RATE} Hz")
            data = w.readframes(min(w.getnframes(), MAX_AUDIO_S * rate))
    except OSError as e:
        raise bad(f"cannot read it: {e.strerror or e}", "Pass a readable WAV file.") from e
    except (wave.Error, EOFError) as e:
        raise bad(f"not a PCM WAV file ({e or 'truncated'})") from e
    samples = array("h")
    samples.frombytes(data[: len(data) // (2 * channels) * 2 * channels])
    if sys.byteorder != "little":  # pragma: no cover
        samples.byteswap()
    if not samples:
        raise bad("it holds no audio", "Pass a WAV file with at least one frame (80 ms).")
    mono = _mono(samples, channels)
    notes = [] if channels == 1 else [f"{channels} channels mixed to mono"]
    if rate != SAMPLE_RATE:
        mono = _resample(mono, rate, SAMPLE_RATE)
        notes.append(f"resampled from {rate} Hz (linear)")
    note = f"{SAMPLE_RATE} Hz mono" + (f"; {', '.join(notes)}" if notes else "")
    return Audio(_pad(mono), str(p), note)


class Encoder(Protocol):
    """Turns one 80 ms PCM frame into the bytes of one audio message (after the 0x01)."""

    def encode(self, frame: bytes) -> bytes: ...


class _Pcm:
    def encode(self, frame: bytes) -> bytes:
        return frame


class _Opus:
    """One Ogg-Opus stream per session (the first message carries the Ogg headers)."""

    def __init__(self, sphn: Any, numpy: Any) -> None:
        self._np = numpy
        self._writer = sphn.OpusStreamWriter(SAMPLE_RATE)

    def encode(self, frame: bytes) -> bytes:
        pcm = self._np.frombuffer(frame, dtype="<i2").astype(self._np.float32) / 32768.0
        return bytes(self._writer.append_pcm(pcm))


def _import_opus() -> tuple[Any, Any]:
    """sphn and numpy, or the ImportError that stops them."""
    import numpy
    import sphn

    return sphn, numpy


def pick_encoder(codec: str) -> tuple[str, Callable[[], Encoder], str]:
    """The codec's wire name, a factory of one encoder per session, and a note for the report.

    Raises:
        MissingDependencyError: ``opus`` asked for and sphn (or numpy) is missing.
    """
    if codec != "pcm":
        try:
            sphn, numpy = _import_opus()
        except ImportError as e:
            if codec == "opus":
                raise MissingDependencyError(
                    "sphn", extra="opus", purpose="send Ogg-Opus audio (--codec opus)", failure=e
                ) from e
        else:
            return "ogg-opus", lambda: _Opus(sphn, numpy), "Ogg-Opus (sphn)"
    note = "raw 16-bit PCM"
    if codec == "auto":
        note += (
            " (sphn is not installed: the reference servers expect Ogg-Opus; "
            "pip install 'hfdeploy[opus]')"
        )
    return "pcm16", _Pcm, note
