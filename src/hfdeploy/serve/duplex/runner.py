"""A Moshi-architecture folder loaded for lockstep serving: model, codec, text pieces, and
the session limit that the warm-up measures.

Everything but :func:`check_duplex` runs on the frame loop's model thread.
"""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path
from typing import Any

from hfdeploy.errors import ModelLoadError
from hfdeploy.model.duplex import KyutaiFiles, kyutai_files
from hfdeploy.model.duplex_files import VOICES
from hfdeploy.model.profile import ModelProfile
from hfdeploy.serve.duplex.engine import DuplexEngine, FrameOutput
from hfdeploy.serve.duplex.forced import ForcedTokens
from hfdeploy.serve.duplex.kyutai import SentencePieceText, check_kyutai, load_kyutai
from hfdeploy.serve.duplex.prompts import PromptError, Prompts
from hfdeploy.serve.duplex.protocol import AudioOut
from hfdeploy.serve.duplex.step import FRAME_S, Joining, StepResult
from hfdeploy.serve.runtime import load_kwargs
from hfdeploy.serve.settings import ServeSettings

__all__ = ["DUPLEX_TASK", "DuplexRunner", "check_duplex"]

log = logging.getLogger("hfdeploy.serve")

#: Frames kept for a conversation whose audio format is not known yet (2 s).
PENDING_FRAMES = 25

DUPLEX_TASK = "audio-to-audio"


def _voices(folder: Path) -> Path | None:
    """The model's voice prompts: ``voices.tgz`` as ``hfdeploy fetch`` unpacks it, or a
    ``voices/`` folder."""
    for path in (folder / VOICES, folder / "voices"):
        if path.is_dir():
            return path
    return None


def _kyutai(folder: Path) -> KyutaiFiles | None:
    return kyutai_files(p.name for p in folder.iterdir() if p.is_file())


def check_duplex(folder: Path, profile: ModelProfile) -> None:
    """Refuse, before the port is bound, a duplex folder this server cannot load (a Kyutai
    layout with what Transformers' Moshi classes do not have)."""
    files = _kyutai(folder) if profile.duplex is not None else None
    if files is not None:
        check_kyutai(folder, files)


def _transformers_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as e:
        raise ModelLoadError(
            str(folder), f"no text tokenizer the server can load ({e})",
            hint="The folder needs the model's tokenizer files (tokenizer.json) to send "
            "its text tokens.",
        ) from e  # fmt: skip


class DuplexRunner:
    """Transformers' ``MoshiForConditionalGeneration`` and its tokenizer, stepped in lockstep:
    from a Transformers folder, or from Kyutai's files (:mod:`hfdeploy.serve.duplex.kyutai`)."""

    task = DUPLEX_TASK
    max_input_tokens = 0

    def __init__(self, folder: Path, settings: ServeSettings, profile: ModelProfile) -> None:
        import torch
        from transformers import MoshiForConditionalGeneration

        self._torch = torch
        self.settings = settings
        self.threads = torch.get_num_threads()  # as setup_torch set them for this thread
        kwargs = load_kwargs(settings, profile)
        files = _kyutai(folder)
        if files is not None:  # checked: it has a text tokenizer
            self.model = load_kyutai(folder, files, dtype=kwargs["dtype"], device=settings.device)
            self.tokenizer: Any = SentencePieceText(folder / str(files.text_tokenizer))
        else:
            model = MoshiForConditionalGeneration.from_pretrained(str(folder), **kwargs)
            self.model = model.to(settings.device).eval()
            self.tokenizer = _transformers_tokenizer(folder)
        self._special = set(self.tokenizer.all_special_ids)
        # PersonaPlex takes persona prompts; a Moshi model none.
        self.prompts = (Prompts(self.model, self.tokenizer, _voices(folder))
                        if profile.duplex is not None and profile.duplex.variant == "personaplex"
                        else None)  # fmt: skip
        self.engine = DuplexEngine(self.model)
        self.frame_samples = self.engine.frame_samples
        self.sample_rate = int(self.model.audio_encoder.config.sampling_rate)
        self._out: dict[int, AudioOut] = {}
        # Frames for a conversation whose audio format is not known yet (a prompted one
        # gives audio before its client sends any): the last PENDING_FRAMES.
        self._pending: dict[int, deque[Any]] = {}
        self.limit: Any = None  # warmup.Limit, once measured

    # -- the frame loop's calls (model thread) ---------------------------------------------

    def bind_thread(self) -> None:
        """On the model thread, once: torch's threads as set up (a count is per thread)."""
        self._torch.set_num_threads(self.threads)

    def reset(self) -> None:
        """Drop every conversation: a fresh engine (after a step that failed part-way)."""
        self.engine = DuplexEngine(self.model)
        self._out.clear()
        self._pending.clear()

    def prompt(self, text: str, voice: str) -> ForcedTokens | None:
        """A conversation's persona prompt (on the model thread: a voice may be encoded);
        None for a model without prompts, which takes empty ones only.

        Raises:
            PromptError: a prompt this model does not take, or a voice it does not have.
        """
        if self.prompts is None:
            if text or voice:
                raise PromptError("text_prompt, voice_prompt: this model takes no persona "
                                  "prompt (PersonaPlex's); connect without them")  # fmt: skip
            return None
        return self.prompts.forced(text, voice)

    def step(
        self, joins: list[Joining], leaves: list[int], frames: dict[int, Any],
        formats: dict[int, str] | None = None,
    ) -> dict[int, StepResult]:  # fmt: skip
        """Leave, join, then one frame for every conversation in the batch (those past their
        prompt give audio); ``formats``: each conversation's audio format, once, with the
        first step that knows it (its audio waits until then)."""
        for key in leaves:
            self.engine.leave(key)
            self._out.pop(key, None)
            self._pending.pop(key, None)
        for j in joins:
            self.engine.join(j.key, j.sampling, j.forced)
            self._pending[j.key] = deque(maxlen=PENDING_FRAMES)
        for key, fmt in (formats or {}).items():
            if key in self._pending:
                self._out[key] = AudioOut(fmt, self.sample_rate)  # type: ignore[arg-type]
        if not self.engine.conversations:
            return {}
        device, dtype = self.model.device, self.model.dtype
        pcm = {k: self._torch.from_numpy(v).to(device=device, dtype=dtype)
               for k, v in frames.items()}  # fmt: skip
        with self._torch.inference_mode():
            outs = self.engine.step(pcm)
        return {k: self._result(k, o) for k, o in outs.items()}

    def _result(self, key: int, out: FrameOutput) -> StepResult:
        text = None
        if out.text is not None and out.text not in self._special:
            piece = self.tokenizer.convert_ids_to_tokens(out.text)
            text = piece.replace("▁", " ") if isinstance(piece, str) else None
        pending = self._pending[key]
        dropped = 0
        if out.audio is not None:
            dropped = int(len(pending) == pending.maxlen)
            pending.append(out.audio.float().cpu().numpy())
        writer = self._out.get(key)
        audio: tuple[bytes, ...] = ()
        if writer is not None:
            audio = tuple(writer.encode(pending.popleft()) for _ in range(len(pending)))
        return StepResult(text, audio, out.ready, dropped)

    # -- warm-up: the session limit ---------------------------------------------------------

    def warm(self) -> None:
        """Measure the session limit (:func:`hfdeploy.serve.duplex.warmup.session_limit`)."""
        from hfdeploy.serve.duplex.warmup import session_limit

        self.limit = session_limit(self)
        log.info("session limit %d (%s)", self.limit.sessions, self.limit.source)

    @property
    def session_limit(self) -> int:
        """Conversations taken at once: the warm-up's measure (1 before it ran)."""
        return int(self.limit.sessions) if self.limit is not None else 1

    def kv_bytes_per_session(self) -> int:
        """A conversation's temporal-transformer K and V once its window is full."""
        cfg = self.model.config
        per_frame = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim
        frames = int(getattr(cfg, "sliding_window", None) or cfg.max_position_embeddings)
        return int(per_frame * frames * self.model.dtype.itemsize)

    def info(self) -> dict[str, Any]:
        out = {"frame_ms": FRAME_S * 1000, "sample_rate": self.sample_rate,
               "max_sessions": self.session_limit}  # fmt: skip
        if self.limit is not None:
            out |= self.limit.to_info()
        return out
