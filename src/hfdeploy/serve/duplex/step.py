"""What the frame loop and the runner exchange each 80 ms step."""

from __future__ import annotations

from dataclasses import dataclass

from hfdeploy.model.duplex import FRAME_MS
from hfdeploy.serve.duplex.forced import ForcedTokens
from hfdeploy.serve.duplex.lockstep import Sampling

__all__ = ["FRAME_S", "Joining", "StepResult"]

#: One frame in seconds (1,920 samples at 24 kHz).
FRAME_S = FRAME_MS / 1000


@dataclass(frozen=True, slots=True)
class Joining:
    """A conversation that joins the batch at this step: its sampling and its prompt's
    forced tokens (its audio format comes with the step that first knows it)."""

    key: int
    sampling: Sampling
    forced: ForcedTokens | None = None


@dataclass(frozen=True, slots=True)
class StepResult:
    """What a step gives one conversation: its text piece (None: padding) and its audio
    messages, a frame each (none at warm-up; more than one when frames waited for the
    client's audio format); ``ready``: its prompt is over, the handshake goes first."""

    text: str | None
    audio: tuple[bytes, ...]
    ready: bool = False
    #: Frames dropped while the audio format was not known (the oldest past 2 s).
    dropped: int = 0
