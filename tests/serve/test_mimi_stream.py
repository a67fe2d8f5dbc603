"""Mimi decoded one 80 ms frame at a time equals the offline decode of the whole stream,
for every row of a batch whose rows joined and left at different frames."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers.models.mimi")

from transformers import MimiConfig, MimiModel  # noqa: E402

from hfdeploy.serve.duplex.mimi_stream import StreamingMimiDecoder  # noqa: E402

# A tiny Mimi with Mimi's layout: 24 kHz, 1920 samples per 12.5 Hz frame, a decoder
# transformer with a sliding window shorter than the test (so the window is exercised).
TINY = dict(hidden_size=16, num_filters=4, upsampling_ratios=[8, 6, 5, 4], num_hidden_layers=1,
            num_attention_heads=2, num_key_value_heads=2, head_dim=8, intermediate_size=32,
            codebook_size=32, codebook_dim=8, vector_quantization_hidden_dimension=8,
            num_quantizers=4, num_semantic_quantizers=1, upsample_groups=16, sliding_window=5,
            layer_scale_initial_scale=1.0)  # fmt: skip
FRAMES = 8


@pytest.fixture(scope="module")
def mimi() -> MimiModel:
    torch.manual_seed(0)
    model = MimiModel(MimiConfig(**TINY)).eval().double()
    assert model.config.frame_size == 1920
    return model


def _codes(seed: int, frames: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 32, (1, 4, frames), generator=g)


@pytest.mark.parametrize("stale", [False, True], ids=["empty", "stale-cache"])
def test_frames_equal_the_offline_decode_with_rows_joining_and_leaving(
    mimi: MimiModel, stale: bool
) -> None:
    joins = {0: 0, 1: 3, 2: 1}  # stream -> the frame it joins at
    leaves = {2: 5}  # stream 2 leaves after frame 4
    lengths = {s: leaves.get(s, FRAMES) - j for s, j in joins.items()}
    codes = {s: _codes(s, n) for s, n in lengths.items()}
    with torch.no_grad():
        offline = {s: mimi.decode(codes[s]).audio_values for s in codes}
        dec = StreamingMimiDecoder(mimi)
        rows: list[int] = []  # stream of each row
        got: dict[int, list[torch.Tensor]] = {s: [] for s in codes}
        for frame in range(FRAMES):
            for s in [s for s, at in leaves.items() if at == frame]:
                dec.leave(rows.index(s))
                rows.remove(s)
            for s in [s for s, at in joins.items() if at == frame]:
                row = dec.join()
                assert row == len(rows)
                rows.append(s)
                if stale and dec._cache is not None:  # what a reused slot would hold
                    for layer in dec._cache.layers:
                        layer.keys[row] = torch.randn_like(layer.keys[row])
                        layer.values[row] = torch.randn_like(layer.values[row])
            batch = torch.cat(
                [codes[s][..., frame - joins[s] : frame - joins[s] + 1] for s in rows]
            )
            audio = dec.step(batch)
            assert audio.shape == (len(rows), 1, 1920)
            for i, s in enumerate(rows):
                got[s].append(audio[i : i + 1])
    for s in codes:
        streamed = torch.cat(got[s], dim=-1)
        assert streamed.shape == offline[s].shape == (1, 1, 1920 * lengths[s])
        assert torch.allclose(streamed, offline[s], atol=1e-10, rtol=0), s


def test_without_the_streaming_state_the_frames_are_wrong(mimi: MimiModel) -> None:
    # What the decoder fixes: transformers' decode frame by frame breaks at frame boundaries.
    codes = _codes(7, 4)
    with torch.no_grad():
        offline = mimi.decode(codes).audio_values
        cache = None
        naive = []
        for f in range(4):
            out = mimi.decode(codes[..., f : f + 1], decoder_cache=cache)
            cache = out.decoder_cache
            naive.append(out.audio_values)
    assert not torch.allclose(torch.cat(naive, dim=-1), offline, atol=1e-6)


def test_a_batch_that_does_not_match_the_rows_is_refused(mimi: MimiModel) -> None:
    dec = StreamingMimiDecoder(mimi)
    dec.join()
    with pytest.raises(ValueError, match="expected"):
        dec.step(_codes(1, 1).repeat(2, 1, 1))


def test_encoding_rows_in_a_batch_equals_each_alone(mimi: MimiModel) -> None:
    from hfdeploy.serve.duplex.mimi_stream import StreamingMimiEncoder

    def pcm(stream: int, frame: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(100 * stream + frame)
        return torch.randn(1, 1, 1920, generator=g, dtype=torch.float64)

    joins, leaves = {0: 0, 1: 2, 2: 1, 3: 2}, {2: 4}
    lengths = {s: leaves.get(s, FRAMES) - j for s, j in joins.items()}
    with torch.no_grad():
        alone = {}
        for s, n in lengths.items():
            enc = StreamingMimiEncoder(mimi, 4)
            enc.join()
            alone[s] = []
            for f in range(n):
                code = enc.step(pcm(s, f))[0]
                alone[s].append((code, enc.latents[0]))
        enc = StreamingMimiEncoder(mimi, 4)
        rows: list[int] = []
        got: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {s: [] for s in joins}
        for frame in range(FRAMES):
            for s in [s for s, at in leaves.items() if at == frame]:
                enc.leave(rows.index(s))
                rows.remove(s)
            for s in [s for s, at in joins.items() if at == frame]:
                assert enc.join() == len(rows)
                rows.append(s)
            codes = enc.step(torch.cat([pcm(s, frame - joins[s]) for s in rows]))
            for i, s in enumerate(rows):
                got[s].append((codes[i], enc.latents[i]))
    for s in joins:
        assert [c.tolist() for c, _ in got[s]] == [c.tolist() for c, _ in alone[s]], s
        for (_, a), (_, b) in zip(got[s], alone[s], strict=True):
            assert torch.allclose(a, b, atol=1e-10, rtol=0), s
