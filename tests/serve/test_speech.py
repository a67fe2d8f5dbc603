"""Speech recognition: WAV and FLAC uploads, resampling, the OpenAI client."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from hfdeploy.serve.app import create_app
from hfdeploy.serve.settings import ServeSettings
from hfdeploy.serve.speech import decode_audio
from tests.serve._fixtures import running


def _tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def _encode(samples: np.ndarray, rate: int, fmt: str) -> bytes:
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, samples, rate, format=fmt)
    return buf.getvalue()


def _direct(folder: Path, audio: np.ndarray) -> str:
    """What transformers itself transcribes for 16 kHz mono ``audio``."""
    import torch
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

    proc = AutoProcessor.from_pretrained(folder)
    model = AutoModelForSpeechSeq2Seq.from_pretrained(folder).eval()
    feats = proc.feature_extractor([audio], sampling_rate=16000, return_tensors="pt").input_features
    with torch.inference_mode():
        ids = model.generate(input_features=feats, max_new_tokens=32)
    return str(proc.tokenizer.batch_decode(ids, skip_special_tokens=True)[0]).strip()


@pytest.fixture(scope="module")
def speech_url(serving_models: dict[str, Path]) -> Iterator[str]:
    settings = ServeSettings(model=str(serving_models["speech"]), served_model_name="tiny-whisper")
    with running(create_app(settings)) as url:
        yield url


def test_openai_client_transcribes_wav(speech_url: str, serving_models: dict[str, Path]) -> None:
    import openai

    audio = _tone(1.0, 16000)
    client = openai.OpenAI(base_url=speech_url + "/v1", api_key="unused", max_retries=0)
    res = client.audio.transcriptions.create(
        model="tiny-whisper", file=("a.wav", _encode(audio, 16000, "WAV"))
    )
    assert res.text == _direct(serving_models["speech"], audio)


def test_flac_stereo_at_8khz_is_mixed_and_resampled(speech_url: str) -> None:
    flac = _encode(_tone(1.0, 8000, channels=2), 8000, "FLAC")
    r = httpx.post(
        speech_url + "/v1/audio/transcriptions",
        files={"file": ("a.flac", flac)},
        data={"response_format": "text"},
        timeout=60,
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")


def test_not_audio_is_422(speech_url: str) -> None:
    r = httpx.post(speech_url + "/v1/audio/transcriptions", files={"file": ("a.wav", b"not audio")})
    assert r.status_code == 422
    assert r.json()["error"]["param"] == "file"


def test_inference_client_posts_raw_audio(speech_url: str, serving_models: dict[str, Path]) -> None:
    from huggingface_hub import InferenceClient

    audio = _tone(0.5, 16000)
    out = InferenceClient(base_url=speech_url).automatic_speech_recognition(
        _encode(audio, 16000, "WAV")
    )
    assert out.text == _direct(serving_models["speech"], audio)


def test_decode_audio_resamples_to_the_model_rate() -> None:
    samples = decode_audio(_encode(_tone(2.0, 44100, channels=2), 44100, "WAV"), 16000)
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert abs(len(samples) - 32000) <= 1


def test_a_soundfile_that_fails_to_import_is_not_called_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: a soundfile that is installed but cannot load (its C library, say) was
    # reported as "not installed", sending users to reinstall what they have.
    from hfdeploy.errors import MissingDependencyError

    (tmp_path / "soundfile.py").write_text("raise ImportError('cannot load libsndfile')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "soundfile", raising=False)
    with pytest.raises(MissingDependencyError, match="fails to import: cannot load libsndfile"):
        decode_audio(b"RIFF", 16000)
