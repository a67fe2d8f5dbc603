"""PersonaPlex's system prompts: what a conversation is stepped on before its handshake.

As PersonaPlex's server does for ``text_prompt`` and ``voice_prompt``: the voice prompt's
frames (the model speaks them: their codes in the model's stream, text padding), half a
second of silence, the text prompt one token a frame (in ``<system>`` tags, the model
silent), half a second of silence again; the user's stream hears a 440 Hz sine throughout.
A voice prompt is a file in the model's voice folder: a ``.pt`` of saved input embeddings
(PersonaPlex's published voices) or audio (WAV and the like), which is read, brought to
-24 LUFS and encoded with the model's Mimi.

Silence and the sine are Mimi codes: the reference's own for the published Mimi (8
codebooks of 2,048 codes), the model's Mimi's codes of a silent frame and of a sine frame
otherwise.
"""

from __future__ import annotations

import re
from pathlib import Path
from pickle import UnpicklingError
from typing import Any

from hfdeploy.serve.duplex.forced import ForcedFrame, ForcedTokens, Replay, forced_tokens

__all__ = ["PromptError", "Prompts", "system_tags"]

#: The text stream's padding token: what the model "says" while it speaks or is silent.
TEXT_PAD = 3
#: Frames of silence after the voice prompt and after the text prompt (0.5 s).
SILENCE_FRAMES = 6
#: Loudness a voice prompt is brought to, as the reference does.
VOICE_LUFS = -24.0
# The reference's Mimi codes of silence and of its sine, for the published Mimi.
_REFERENCE = {
    (8, 2048): ((948, 243, 1178, 546, 1736, 1030, 1978, 2008),
                (430, 1268, 381, 1611, 1095, 1495, 56, 472)),
}  # fmt: skip
_VOICE_NAME = re.compile(r"^[\w.-]+$")


class PromptError(ValueError):
    """A prompt the conversation cannot start with (the client's: HTTP 400)."""


def system_tags(text: str) -> str:
    """The text prompt as the model was trained on it: in ``<system>`` tags."""
    cleaned = text.strip()
    if cleaned.startswith("<system>") and cleaned.endswith("<system>"):
        return cleaned
    return f"<system> {cleaned} <system>"


def _sine(samples: int, rate: int) -> Any:
    import numpy as np

    t = np.arange(samples) / rate
    return (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)


class Prompts:
    """A PersonaPlex model's prompts: its text tokenizer, its voices, its silence."""

    def __init__(self, model: Any, tokenizer: Any, voices: Path | None) -> None:
        self.model, self.tokenizer, self.voices = model, tokenizer, voices
        self.codec = model.audio_encoder
        self.k = int(model.config.num_codebooks)
        self.frame = int(self.codec.config.frame_size)
        self.rate = int(self.codec.config.sampling_rate)
        key = (self.k, int(self.codec.config.codebook_size))
        silence, sine = _REFERENCE.get(key) or (
            self._codes(_zeros(self.frame))[0],
            self._codes(_sine(self.frame, self.rate))[0],
        )
        self.silence, self.sine = tuple(silence), tuple(sine)
        self._voices: dict[str, list[tuple[int, ...]] | Replay] = {}

    def _codes(self, pcm: Any) -> list[tuple[int, ...]]:
        """Mimi's codes of ``pcm`` (whole frames), a frame each."""
        import torch

        x = torch.as_tensor(pcm, dtype=self.model.dtype, device=self.model.device).view(1, 1, -1)
        with torch.inference_mode():
            codes = self.codec.encode(x, num_quantizers=self.k).audio_codes[0]
        return [tuple(int(c) for c in frame) for frame in codes.T.tolist()]

    def forced(self, text: str, voice: str) -> ForcedTokens:
        """The conversation's prompt frames (on the model thread: a voice may be encoded).

        Raises:
            PromptError: a voice that is not in the voice folder, or not readable.
        """
        silence = [ForcedFrame(TEXT_PAD, self.silence, self.sine)] * SILENCE_FRAMES
        frames: list[ForcedFrame] = []
        replay = None
        if voice:
            loaded = self._voice(voice)
            if isinstance(loaded, Replay):
                replay = loaded
            else:
                frames += [ForcedFrame(TEXT_PAD, codes, self.sine) for codes in loaded]
        frames += silence
        if text.strip():
            pieces = self.tokenizer.encode(system_tags(text))
            frames += [ForcedFrame(int(t), self.silence, self.sine) for t in pieces]
        frames += silence
        return forced_tokens(frames, self.k, replay)

    def _voice(self, name: str) -> list[tuple[int, ...]] | Replay:
        if name in self._voices:
            return self._voices[name]
        if self.voices is None:
            raise PromptError("voice_prompt: this model folder has no voices (voices/ or "
                              "voices.tgz, unpacked by `hfdeploy fetch --prepare`)")  # fmt: skip
        path = self.voices / name
        if not _VOICE_NAME.match(name) or not path.is_file():
            raise PromptError(f"voice_prompt: no voice {name!r} in the model's voices")
        try:
            loaded = self._replay(path) if path.suffix == ".pt" else self._audio(path)
        except (OSError, RuntimeError, ValueError, KeyError, EOFError, UnpicklingError) as e:
            raise PromptError(f"voice_prompt: {name} is not a voice prompt ({e})") from e
        self._voices[name] = loaded
        return loaded

    def _replay(self, path: Path) -> Replay:
        """A saved voice prompt: its steps' input embeddings and the token ring after them."""
        import torch

        saved = torch.load(path, map_location="cpu", weights_only=True)
        embeds, ring = saved["embeddings"], saved["cache"]
        dim = int(self.model.config.hidden_size)
        if embeds.shape[-1] != dim or ring.shape[-2] != 1 + 2 * self.k:
            raise ValueError(
                f"embeddings {tuple(embeds.shape)} and cache {tuple(ring.shape)} are not this "
                f"model's ({dim} wide, {1 + 2 * self.k} streams)"
            )
        return Replay(embeds.reshape(-1, dim), ring.reshape(ring.shape[-2], ring.shape[-1]))

    def _audio(self, path: Path) -> list[tuple[int, ...]]:
        """An audio voice prompt: mono at the codec's rate, -24 LUFS, padded to whole frames,
        encoded."""
        import numpy as np

        try:
            import pyloudnorm
            import sphn
        except ImportError as e:
            raise ValueError(f"{e.name} is needed to read audio voice prompts: pip install "
                             "'hfdeploy[duplex]'") from e  # fmt: skip

        pcm, rate = sphn.read(str(path))
        wav = sphn.resample(pcm, src_sample_rate=rate, dst_sample_rate=self.rate)[0]
        loudness = pyloudnorm.Meter(self.rate).integrated_loudness(wav)
        wav = pyloudnorm.normalize.loudness(wav, loudness, VOICE_LUFS).astype(np.float32)
        frames = -(-len(wav) // self.frame)
        return self._codes(np.pad(wav, (0, frames * self.frame - len(wav))))


def _zeros(samples: int) -> Any:
    import numpy as np

    return np.zeros(samples, dtype=np.float32)
