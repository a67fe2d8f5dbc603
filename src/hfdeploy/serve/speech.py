"""Speech recognition (Whisper-style seq2seq): WAV/FLAC in, text out.

Audio is decoded with soundfile (libsndfile: WAV, FLAC, OGG), mixed to mono and
resampled to the feature extractor's rate; audio longer than one 30 s window is cut
into windows that are transcribed in one batch and joined.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np

from hfdeploy.errors import BadRequestError, MissingDependencyError
from hfdeploy.model.profile import ModelProfile
from hfdeploy.serve.runtime import WarmupShape, import_torch, load_kwargs
from hfdeploy.serve.settings import ServeSettings

__all__ = ["SpeechInput", "SpeechRunner", "decode_audio"]

WINDOW_S = 30


@dataclass(frozen=True, slots=True)
class SpeechInput:
    audio: np.ndarray  # mono float32 at the model's sampling rate
    language: str | None = None


def decode_audio(data: bytes, rate: int) -> np.ndarray:
    """Mono float32 samples at ``rate`` from a WAV/FLAC/OGG file's bytes.

    Raises:
        BadRequestError: not an audio file soundfile can read, or empty.
    """
    try:
        import soundfile
    except ImportError as e:
        raise MissingDependencyError(
            "soundfile", extra="serve", purpose="decode audio", failure=e
        ) from e
    try:
        samples, source_rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises its own LibsndfileError and RuntimeError
        raise BadRequestError(
            f"cannot decode audio (WAV, FLAC or OGG expected): {e}", param="file"
        ) from None
    mono = samples.mean(axis=1)
    if mono.size == 0:
        raise BadRequestError("the audio file holds no samples", param="file")
    if source_rate != rate:
        from scipy.signal import resample_poly

        g = gcd(int(source_rate), int(rate))
        mono = resample_poly(mono, rate // g, int(source_rate) // g).astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32)


class SpeechRunner:
    """A speech seq2seq model with its processor (feature extractor and tokenizer)."""

    task = "automatic-speech-recognition"

    def __init__(self, folder: Path, settings: ServeSettings, profile: ModelProfile) -> None:
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

        self.torch = import_torch()
        self.settings = settings
        self.processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
        self.model = AutoModelForSpeechSeq2Seq.from_pretrained(
            folder, **load_kwargs(settings, profile)
        )
        self.model.to(settings.device).eval()
        self.rate = int(self.processor.feature_extractor.sampling_rate)
        self.max_input_tokens = int(getattr(self.model.config, "max_target_positions", 448))
        self.dtype = next(self.model.parameters()).dtype

    def info(self) -> dict[str, Any]:
        return {"sampling_rate": self.rate, "window_seconds": WINDOW_S}

    def _transcribe(self, windows: list[np.ndarray], language: str | None) -> list[str]:
        torch = self.torch
        feats = self.processor.feature_extractor(
            windows, sampling_rate=self.rate, return_tensors="pt"
        ).input_features.to(self.settings.device, self.dtype)
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_input_tokens // 2}
        if language is not None:
            kwargs["language"] = language
        with torch.inference_mode():
            ids = self.model.generate(input_features=feats, **kwargs)
        texts = self.processor.tokenizer.batch_decode(ids, skip_special_tokens=True)
        return [t.strip() for t in texts]

    def run(self, payloads: list[Any]) -> list[Any]:
        items: list[SpeechInput] = payloads
        out: list[Any] = [None] * len(items)
        step = WINDOW_S * self.rate
        for language in dict.fromkeys(p.language for p in items):
            idx = [i for i, p in enumerate(items) if p.language == language]
            windows: list[np.ndarray] = []
            owner: list[int] = []
            for i in idx:
                audio = items[i].audio
                for start in range(0, len(audio), step):
                    windows.append(audio[start : start + step])
                    owner.append(i)
            try:
                texts = self._transcribe(windows, language)
            except ValueError as e:  # e.g. an unknown language code
                for i in idx:
                    out[i] = BadRequestError(str(e), param="language")
                continue
            for i in idx:
                out[i] = " ".join(t for t, o in zip(texts, owner, strict=True) if o == i and t)
        return out

    def warmup_shapes(self, settings: ServeSettings) -> list[WarmupShape]:
        return [
            WarmupShape(1, WINDOW_S * self.rate),
            WarmupShape(min(4, settings.max_batch_size), WINDOW_S * self.rate),
        ]

    def warm(self, shape: WarmupShape) -> None:
        silence = np.zeros(shape.tokens, dtype=np.float32)
        self._transcribe([silence] * shape.batch, None)
