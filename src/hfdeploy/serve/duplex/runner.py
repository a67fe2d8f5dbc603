"""A Moshi-architecture folder loaded for lockstep serving: model, codec, text pieces, and
the session limit that the warm-up measures.

Everything but :func:`check_duplex` runs on the frame loop's model thread.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hfdeploy.errors import ModelLoadError
from hfdeploy.model.profile import ModelProfile
from hfdeploy.serve.duplex.engine import DuplexEngine, FrameOutput
from hfdeploy.serve.duplex.lockstep import Sampling
from hfdeploy.serve.duplex.protocol import AudioOut
from hfdeploy.serve.runtime import load_kwargs
from hfdeploy.serve.settings import ServeSettings

__all__ = ["DUPLEX_TASK", "FRAME_S", "DuplexRunner", "Joining", "StepResult", "check_duplex"]

log = logging.getLogger("hfdeploy.serve")

DUPLEX_TASK = "audio-to-audio"
FRAME_S = 0.08
#: A step may take this share of a frame; the rest is the loop's, the network's and jitter's.
STEP_BUDGET = 0.75
#: Session counts the warm-up times (up to the limit asked, when there is one).
_LADDER = (1, 2, 4, 8, 16, 32, 64, 128)
#: Frames stepped per rung; the median of the last three is kept (the first steps of a
#: batch join its rows and allocate, and the first has no audio to decode).
_RUNG_STEPS = 6


def check_duplex(profile: ModelProfile) -> None:
    """Refuse, before the port is bound, a duplex folder this server cannot load."""
    spec = profile.duplex
    if spec is not None and spec.layout != "transformers":
        raise ModelLoadError(
            profile.location,
            "this is a Kyutai-layout folder (the LM, Mimi and SentencePiece files); "
            "hfdeploy serve runs the Transformers layout of Moshi",
            hint="Convert it with Transformers' convert_moshi_transformers.py (or download "
            "a Transformers-format Moshi repository), or serve it with the reference server "
            "(--engine moshi).",
        )


@dataclass(frozen=True, slots=True)
class Joining:
    """A conversation that joins the batch at this step: its sampling and audio format."""

    key: int
    sampling: Sampling
    audio_format: str


@dataclass(frozen=True, slots=True)
class StepResult:
    """What a step gives one conversation: its text piece (None: padding) and its audio
    message (empty at warm-up)."""

    text: str | None
    audio: bytes


class DuplexRunner:
    """Transformers' ``MoshiForConditionalGeneration`` and its tokenizer, stepped in lockstep."""

    task = DUPLEX_TASK
    max_input_tokens = 0

    def __init__(self, folder: Path, settings: ServeSettings, profile: ModelProfile) -> None:
        import torch
        from transformers import AutoTokenizer, MoshiForConditionalGeneration

        self._torch = torch
        self.settings = settings
        self.threads = torch.get_num_threads()  # as setup_torch set them for this thread
        kwargs = load_kwargs(settings, profile)
        model = MoshiForConditionalGeneration.from_pretrained(str(folder), **kwargs)
        self.model = model.to(settings.device).eval()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as e:
            raise ModelLoadError(
                str(folder), f"no text tokenizer the server can load ({e})",
                hint="The folder needs the model's tokenizer files (tokenizer.json) to send "
                "its text tokens.",
            ) from e  # fmt: skip
        self._special = set(self.tokenizer.all_special_ids)
        self.engine = DuplexEngine(self.model)
        self.frame_samples = self.engine.frame_samples
        self.sample_rate = int(self.model.audio_encoder.config.sampling_rate)
        self._out: dict[int, AudioOut] = {}
        self.step_seconds: dict[int, float] = {}
        self.session_limit = 1
        self.limit_source = "not measured"

    # -- the frame loop's calls (model thread) ---------------------------------------------

    def bind_thread(self) -> None:
        """On the model thread, once: torch's threads as set up (a count is per thread)."""
        self._torch.set_num_threads(self.threads)

    def reset(self) -> None:
        """Drop every conversation: a fresh engine (after a step that failed part-way)."""
        self.engine = DuplexEngine(self.model)
        self._out.clear()

    def step(
        self, joins: list[Joining], leaves: list[int], frames: dict[int, Any]
    ) -> dict[int, StepResult]:
        """Leave, join, then one frame for every conversation in the batch."""
        for key in leaves:
            self.engine.leave(key)
            self._out.pop(key, None)
        for j in joins:
            self.engine.join(j.key, j.sampling)
            self._out[j.key] = AudioOut(j.audio_format, self.sample_rate)  # type: ignore[arg-type]
        if not frames:
            return {}
        device, dtype = self.model.device, self.model.dtype
        pcm = {k: self._torch.from_numpy(v).to(device=device, dtype=dtype)
               for k, v in frames.items()}  # fmt: skip
        with self._torch.inference_mode():
            outs = self.engine.step(pcm)
        return {k: self._result(k, o) for k, o in outs.items()}

    def _result(self, key: int, out: FrameOutput) -> StepResult:
        text = None
        if out.text not in self._special:
            piece = self.tokenizer.convert_ids_to_tokens(out.text)
            text = piece.replace("▁", " ") if isinstance(piece, str) else None
        audio = (b"" if out.audio is None
                 else self._out[key].encode(out.audio.float().cpu().numpy()))  # fmt: skip
        return StepResult(text, audio)

    # -- warm-up: the session limit ---------------------------------------------------------

    def warm(self) -> None:
        """Step growing batches of silent conversations; keep the largest that fits a frame
        (:data:`STEP_BUDGET`) and the memory, or ``--max-sessions`` when given."""
        import numpy as np

        asked = self.settings.max_sessions
        silence = np.zeros(self.frame_samples, dtype=np.float32)
        fits = 0
        for n in _LADDER:
            if asked is not None and n > asked and fits:
                break
            keys = list(range(-n, 0))  # warm-up keys never clash with sessions' (>= 0)
            joins = [Joining(k, Sampling(seed=k), "pcm16") for k in keys]
            times = []
            for i in range(_RUNG_STEPS):
                started = time.perf_counter()
                self.step(joins if i == 0 else [], [], dict.fromkeys(keys, silence))
                times.append(time.perf_counter() - started)
            self.step([], keys, {})
            seconds = sorted(times[-3:])[1]
            self.step_seconds[n] = round(seconds, 5)
            log.info("warmup: %d session(s) step in %.1f ms", n, seconds * 1000)
            if seconds > STEP_BUDGET * FRAME_S:
                break
            fits = n
        self.session_limit, self.limit_source = self._limit(asked, fits)
        log.info("session limit %d (%s)", self.session_limit, self.limit_source)

    def _limit(self, asked: int | None, fits: int) -> tuple[int, str]:
        budget = f"a step within {STEP_BUDGET:.0%} of {FRAME_S * 1000:.0f} ms"
        if asked is not None:
            return asked, "--max-sessions"
        if fits == 0:
            log.warning("one session does not step in real time on %s", self.settings.device)
            return 1, f"one session: even one misses {budget} on this device"
        limit, source = fits, f"measured at warm-up: {budget}"
        memory = self._memory_limit()
        if memory is not None and memory < limit:
            limit, source = max(1, memory), "free GPU memory for the sessions' KV caches"
        return limit, source

    def _memory_limit(self) -> int | None:
        """Sessions whose full KV ring buffers fit the free GPU memory (None on CPU)."""
        torch = self._torch
        if self.settings.device != "cuda":
            return None
        cfg = self.model.config
        per_frame = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim
        frames = int(getattr(cfg, "sliding_window", None) or cfg.max_position_embeddings)
        per_session = per_frame * frames * self.model.dtype.itemsize
        free, _ = torch.cuda.mem_get_info()
        return int(free * 0.9 // per_session)

    def info(self) -> dict[str, Any]:
        return {
            "frame_ms": FRAME_S * 1000,
            "sample_rate": self.sample_rate,
            "max_sessions": self.session_limit,
            "max_sessions_source": self.limit_source,
            "warmup_step_seconds": {str(n): s for n, s in self.step_seconds.items()},
        }
