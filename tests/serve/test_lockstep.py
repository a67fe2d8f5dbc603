"""Moshi stepped in lockstep: B conversations batched give each one's tokens exactly as it
run alone, with conversations joining and leaving between steps and each sampling with its own
settings and seed."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers.models.moshi")

from transformers import MoshiForConditionalGeneration  # noqa: E402

from hfdeploy.serve.duplex.lockstep import LockstepLM, Sampling, StepOutput  # noqa: E402
from tests.serve._duplex import tiny_moshi  # noqa: E402

FRAMES = 9
JOINS = {0: 0, 1: 3, 2: 1}  # conversation -> the frame it joins at
LEAVES = {2: 6}
SAMPLING = {0: Sampling(seed=11), 1: Sampling(temp=1.2, top_k=8, seed=22),
            2: Sampling(temp=0.0, temp_text=0.0)}  # fmt: skip


@pytest.fixture(scope="module")
def model() -> MoshiForConditionalGeneration:
    return tiny_moshi()


def _user(conv: int, frame: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 * conv + frame)
    return torch.randint(0, 32, (4,), generator=g)


def _alone(model: MoshiForConditionalGeneration, conv: int, frames: int) -> list[StepOutput]:
    lm = LockstepLM(model)
    lm.join(SAMPLING[conv])
    with torch.no_grad():
        return [lm.step(_user(conv, f)[None])[0] for f in range(frames)]


def test_batched_equals_alone_with_joins_leaves_and_own_sampling(
    model: MoshiForConditionalGeneration,
) -> None:
    lengths = {c: LEAVES.get(c, FRAMES) - j for c, j in JOINS.items()}
    alone = {c: _alone(model, c, n) for c, n in lengths.items()}
    lm = LockstepLM(model)
    rows: list[int] = []
    got: dict[int, list[StepOutput]] = {c: [] for c in JOINS}
    with torch.no_grad():
        for frame in range(FRAMES):
            for c in [c for c, at in LEAVES.items() if at == frame]:
                lm.leave(rows.index(c))
                rows.remove(c)
            for c in [c for c, at in JOINS.items() if at == frame]:
                assert lm.join(SAMPLING[c]) == len(rows)
                rows.append(c)
            user = torch.stack([_user(c, frame - JOINS[c]) for c in rows])
            for c, out in zip(rows, lm.step(user), strict=True):
                got[c].append(out)
    for c in JOINS:
        assert got[c] == alone[c], c
    # Warm-up: no frame after the first step; every later step completes one.
    assert got[0][0].codes is None
    assert all(o.codes is not None and len(o.codes) == 4 for o in got[0][1:])
    # Different seeds sample differently: the test is not passing on greedy ties.
    assert [o.text for o in alone[0]] != [o.text for o in _alone_seed(model, 99)]


def _alone_seed(model: MoshiForConditionalGeneration, seed: int) -> list[StepOutput]:
    lm = LockstepLM(model)
    lm.join(Sampling(seed=seed))
    with torch.no_grad():
        return [lm.step(_user(0, f)[None])[0] for f in range(FRAMES)]


def test_user_codes_must_match_the_rows(model: MoshiForConditionalGeneration) -> None:
    lm = LockstepLM(model)
    lm.join()
    with pytest.raises(ValueError, match="expected"):
        lm.step(torch.zeros(2, 4, dtype=torch.long))


def test_the_delayed_layout_is_transformers_own_past_the_start(
    model: MoshiForConditionalGeneration,
) -> None:
    """A step's user input: from step 2 on, Transformers' own delay pattern (codebook 0 of
    this frame, 1..K-1 of the last); steps 0 and 1 read the initial token where LMGen does
    (everywhere, then in the delayed codebooks)."""
    frames = 5
    codes = torch.stack([_user(7, f) for f in range(frames)], dim=1)[None]  # [1, K, T]
    bos = model.config.audio_vocab_size
    want, _ = model.build_delay_pattern_mask(codes, bos_token_id=bos, pad_token_id=-2,
                                             max_length=frames + 1)  # fmt: skip
    lm = LockstepLM(model)
    lm.join(Sampling(temp=0.0, temp_text=0.0))
    for f in range(frames):
        _, _, users = lm._inputs(codes[..., f].tolist())
        if f == 0:
            assert users[0] == [bos] * 4
        elif f == 1:
            assert users[0] == [int(codes[0, 0, 1])] + [bos] * 3
        else:
            assert users[0] == want[0, :, f].tolist(), f
        lm.step(codes[..., f])


def test_a_rows_top_k_holds_beside_a_wider_one(model: MoshiForConditionalGeneration) -> None:
    """Rows are sampled together over the widest top-k: a row's own k must still bound its
    candidates (top_k=1 always takes the best token, whatever its neighbour's k)."""
    lm = LockstepLM(model)
    lm.join(Sampling(temp=1.0, top_k=1, seed=5))
    lm.join(Sampling(temp=1.0, top_k=32, seed=6))
    g = torch.Generator().manual_seed(0)
    for frame in range(200):
        lm.rows[0].frame = lm.rows[1].frame = frame
        logits = torch.randn(2, 32, generator=g, dtype=torch.float64) * 0.1  # nearly flat
        out = lm._sample(logits, [1.0, 1.0], [1, 32], stream=1)
        assert int(out[0]) == int(logits[0].argmax()), frame
