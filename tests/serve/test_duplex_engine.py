"""A frame for every conversation: audio in, Moshi's audio and text out; batched conversations
get exactly the audio and text each would get alone."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers.models.moshi")

from hfdeploy.serve.duplex.engine import DuplexEngine, FrameOutput  # noqa: E402
from hfdeploy.serve.duplex.lockstep import Sampling  # noqa: E402
from tests.serve._duplex import tiny_moshi  # noqa: E402

FRAMES = 7
JOINS = {"a": 0, "b": 2, "c": 1}
LEAVES = {"c": 5}


@pytest.fixture(scope="module")
def model() -> Any:
    return tiny_moshi()


def _pcm(key: str, frame: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 * ord(key) + frame)
    return torch.randn(1920, generator=g, dtype=torch.float64) * 0.1


def _alone(model: Any, key: str, frames: int) -> list[FrameOutput]:
    engine = DuplexEngine(model)
    engine.join(key, Sampling(seed=ord(key)))
    with torch.no_grad():
        return [engine.step({key: _pcm(key, f)})[key] for f in range(frames)]


def test_batched_frames_equal_each_conversation_alone(model: Any) -> None:
    lengths = {k: LEAVES.get(k, FRAMES) - j for k, j in JOINS.items()}
    alone = {k: _alone(model, k, n) for k, n in lengths.items()}
    engine = DuplexEngine(model)
    got: dict[str, list[FrameOutput]] = {k: [] for k in JOINS}
    with torch.no_grad():
        for frame in range(FRAMES):
            for k in [k for k, at in LEAVES.items() if at == frame]:
                engine.leave(k)
            for k in [k for k, at in JOINS.items() if at == frame]:
                engine.join(k, Sampling(seed=ord(k)))
            outs = engine.step({k: _pcm(k, frame - JOINS[k]) for k in engine.conversations})
            for k, out in outs.items():
                got[k].append(out)
    for k in JOINS:
        assert [o.text for o in got[k]] == [o.text for o in alone[k]], k
        assert got[k][0].audio is None and alone[k][0].audio is None  # warm-up
        for a, b in zip(got[k][1:], alone[k][1:], strict=True):
            assert a.audio.shape == (1920,)
            assert torch.allclose(a.audio, b.audio, atol=1e-10, rtol=0), k


def test_a_frame_for_every_conversation_and_no_other(model: Any) -> None:
    engine = DuplexEngine(model)
    engine.join("a")
    with pytest.raises(ValueError, match="already"):
        engine.join("a")
    with pytest.raises(ValueError, match="every conversation"):
        engine.step({"b": _pcm("b", 0)})


def test_a_conversation_after_the_batch_emptied_equals_it_alone(model: Any) -> None:
    """Every conversation leaves; the next one starts a fresh timeline (it used to crash on
    the empty index, and a stale empty cache would not have taken the new row)."""
    engine = DuplexEngine(model)
    with torch.no_grad():
        for k in "ab":
            engine.join(k, Sampling(seed=ord(k)))
        for f in range(3):
            engine.step({k: _pcm(k, f) for k in "ab"})
        engine.leave("a")
        engine.leave("b")
        engine.join("c", Sampling(seed=ord("c")))
        got = [engine.step({"c": _pcm("c", f)})["c"] for f in range(4)]
    alone = _alone(model, "c", 4)
    assert [o.text for o in got] == [o.text for o in alone]
    for a, b in zip(got[1:], alone[1:], strict=True):
        assert torch.allclose(a.audio, b.audio, atol=1e-10, rtol=0)
