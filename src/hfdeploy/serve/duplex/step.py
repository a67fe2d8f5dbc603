"""What the frame loop and the runner exchange each 80 ms step."""

from __future__ import annotations

from dataclasses import dataclass

from hfdeploy.model.duplex import FRAME_MS
from hfdeploy.serve.duplex.lockstep import Sampling

__all__ = ["FRAME_S", "Joining", "StepResult"]

#: One frame in seconds (1,920 samples at 24 kHz).
FRAME_S = FRAME_MS / 1000


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
