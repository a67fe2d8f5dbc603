"""One 80 ms frame for every conversation: user audio in, Moshi's audio and text out.

The frame: Mimi encodes every conversation's 1920 samples together
(:class:`StreamingMimiEncoder`), the temporal and depth transformers step all conversations
together (:class:`LockstepLM`), and Mimi decodes all the frames that are complete
(:class:`StreamingMimiDecoder`). A conversation's first step is
warm-up (Moshi's acoustic delay) and gives no audio; every later step gives one frame. A
conversation with a prompt (PersonaPlex's) is stepped on its forced tokens first, without
audio from its user (it joins the encoder when its prompt is over); its frames are given
from the prompt's last on.

Conversations are keys the caller chooses; they join and leave between frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hfdeploy.serve.duplex.forced import ForcedTokens
from hfdeploy.serve.duplex.lockstep import LockstepLM, Sampling
from hfdeploy.serve.duplex.mimi_stream import StreamingMimiDecoder, StreamingMimiEncoder

__all__ = ["DuplexEngine", "FrameOutput"]


@dataclass(frozen=True, slots=True)
class FrameOutput:
    """A conversation's frame: its text token and audio samples (None at warm-up)."""

    text: int | None
    audio: Any
    ready: bool = False


class DuplexEngine:
    """Frames for a batch of conversations on one Transformers ``MoshiForConditionalGeneration``."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.codec = model.audio_encoder
        self.frame_samples = int(self.codec.config.frame_size)
        self.lm = LockstepLM(model)
        self.encoder = StreamingMimiEncoder(self.codec, self.lm.codebooks)
        self.decoder = StreamingMimiDecoder(self.codec)
        self._keys: list[Any] = []  # the LM's rows
        self._encoding: list[Any] = []  # the encoder's rows (past their prompt)
        self._decoding: list[Any] = []  # the decoder's rows (from a conversation's 1st frame)

    @property
    def conversations(self) -> list[Any]:
        return list(self._keys)

    def join(self, key: Any, sampling: Sampling | None = None,
             forced: ForcedTokens | None = None) -> None:  # fmt: skip
        if key in self._keys:
            raise ValueError(f"conversation {key!r} is already in the batch")
        self.lm.join(sampling, forced)
        self._keys.append(key)

    def prompting(self, key: Any) -> bool:
        """Whether the conversation's next step is still its prompt's (no audio from it)."""
        return self.lm.prompting(self._keys.index(key))

    def leave(self, key: Any) -> None:
        row = self._keys.index(key)
        self.lm.leave(row)
        self._keys.remove(key)
        if key in self._encoding:
            self.encoder.leave(self._encoding.index(key))
            self._encoding.remove(key)
        if key in self._decoding:
            self.decoder.leave(self._decoding.index(key))
            self._decoding.remove(key)

    def step(self, pcm: dict[Any, Any]) -> dict[Any, FrameOutput]:
        """``pcm``: each conversation's frame of samples (every one in the batch but those
        still in their prompt)."""
        import torch

        listening = [k for k in self._keys if not self.prompting(k)]
        if set(pcm) != set(listening):
            raise ValueError("one frame for every conversation past its prompt, and only those")
        for key in listening:
            if key not in self._encoding:
                self.encoder.join()
                self._encoding.append(key)
        codes = torch.zeros(len(self._keys), self.lm.codebooks, dtype=torch.long)
        if self._encoding:
            heard = self.encoder.step(torch.stack([pcm[k].reshape(1, -1) for k in self._encoding]))
            codes = codes.to(heard.device)
            codes[[self._keys.index(k) for k in self._encoding]] = heard.long()
        outs = dict(zip(self._keys, self.lm.step(codes), strict=True))
        for key, out in outs.items():  # a conversation's first frame joins the decoder
            if out.codes is not None and key not in self._decoding:
                self.decoder.join()
                self._decoding.append(key)
        audio: dict[Any, Any] = {}
        if self._decoding:
            codes = [outs[k].codes for k in self._decoding]
            frame = torch.tensor(codes, device=self.codec.device)[..., None]
            decoded = self.decoder.step(frame)
            audio = {k: decoded[i, 0] for i, k in enumerate(self._decoding)}
        return {k: FrameOutput(o.text, audio.get(k), o.ready) for k, o in outs.items()}
