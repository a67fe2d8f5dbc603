"""Frames a conversation is stepped on before it hears its user: PersonaPlex's system
prompts, with the tokens its reference ``LMGen`` forces, placed where it places them.

A forced frame holds a token for every stream: the text, the model's codebooks and the
user's. The reference writes a frame taken at its call ``o`` at position ``o`` plus each
stream's delay (codebooks 1..K-1 one frame late) and reads position ``p`` as the input of
the step that predicts ``p + 1``. So a forced token at position ``p`` is both what step
``p`` reads and what step ``p - 1`` gives (the sampled token is replaced). A voice prompt
saved as a ``.pt`` file replays the transformer's input embeddings of its frames instead
of their tokens, then the reference's token ring as it stood after them.

Stream indices: 0 the text, ``1..K`` the model's codebooks, ``K+1..2K`` the user's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hfdeploy.model.duplex import moshi_delays

__all__ = ["ForcedFrame", "ForcedTokens", "Replay", "forced_tokens"]


@dataclass(frozen=True, slots=True)
class ForcedFrame:
    """One prompt frame: its text token, the model's codes and the user's (K each)."""

    text: int
    moshi: tuple[int, ...]
    user: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Replay:
    """A saved voice prompt: the input embeddings of its steps ([steps, dim]) and the
    reference's token ring after them ([streams, ring]; position ``p`` at ``p % ring``)."""

    embeds: Any
    ring: Any


@dataclass(slots=True)
class ForcedTokens:
    """A conversation's forced tokens by position and stream, the embeddings replayed by
    step, and ``length``: the first step that reads the user's own audio."""

    tokens: dict[int, dict[int, int]] = field(default_factory=dict)
    embeds: dict[int, Any] = field(default_factory=dict)
    length: int = 0

    def at(self, position: int) -> dict[int, int]:
        return self.tokens.get(position, {})


def forced_tokens(
    frames: Sequence[ForcedFrame], k: int, replay: Replay | None = None
) -> ForcedTokens:
    """The positions of ``frames`` taken one per call from the conversation's start, after
    ``replay`` when given (its steps first, then its ring's last two positions)."""
    out = ForcedTokens()
    start = 0
    delays = moshi_delays(k)
    if replay is not None:
        steps = int(replay.embeds.shape[0])
        out.embeds = {s: replay.embeds[s] for s in range(steps)}
        ring = replay.ring.tolist()
        size = len(ring[0])
        # After the replay the reference's next step reads position `steps`, whole; the
        # delayed streams of `steps + 1` were written by its last call.
        out.tokens[steps] = {i: int(ring[i][steps % size]) for i in range(len(ring))}
        out.tokens[steps + 1] = {
            i: int(ring[i][(steps + 1) % size]) for i in range(len(ring)) if delays[i]
        }
        start = steps + 1
    for o, f in enumerate(frames, start):
        values = [f.text, *f.moshi, *f.user]
        if len(values) != 1 + 2 * k:
            raise ValueError(f"a forced frame has {k} codes per stream, got {len(values)}")
        for stream, (token, delay) in enumerate(zip(values, delays, strict=True)):
            out.tokens.setdefault(o + delay, {})[stream] = int(token)
    out.length = start + len(frames)
    return out
