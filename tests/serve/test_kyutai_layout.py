"""A Moshi checkpoint in Kyutai's layout (the LM, Mimi and SentencePiece files), loaded into
Transformers' Moshi classes, computes what Kyutai's own package computes with it; and
``hfdeploy serve`` holds conversations on it.

``tests/fixtures/kyutai_moshi`` holds a tiny random-weight checkpoint in Kyutai's names and
what the ``moshi`` package (0.2.13) gives for 12 frames of noise: Mimi's codes, the greedy
text tokens and audio codes of its ``LMGen``, and Mimi's decoding of those codes. Its
``make_fixture.py`` writes them, where that package imports.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers.models.moshi")
pytest.importorskip("sentencepiece")

from safetensors.torch import load_file  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from hfdeploy.errors import ModelLoadError  # noqa: E402
from hfdeploy.model.duplex import kyutai_files  # noqa: E402
from hfdeploy.model.duplex_files import KYUTAI_LM_ARGS, KYUTAI_MIMI_ARGS  # noqa: E402
from hfdeploy.serve.duplex.kyutai import (  # noqa: E402
    SentencePieceText,
    check_kyutai,
    lm_state,
    load_kyutai,
    mimi_state,
    moshi_config,
)
from hfdeploy.serve.duplex.lockstep import LockstepLM, Sampling  # noqa: E402
from hfdeploy.serve.duplex.mimi_stream import (  # noqa: E402
    StreamingMimiDecoder,
    StreamingMimiEncoder,
)
from tests._synthetic import duplex_tensors  # noqa: E402
from tests.serve._fixtures import serving  # noqa: E402

FIXTURE = Path(__file__).parents[1] / "fixtures" / "kyutai_moshi"
MODEL_FILES = (
    "config.json",
    "mimi-config.json",
    "model.safetensors",
    "tokenizer-tiny.safetensors",
    "tokenizer_spm_tiny.model",
)
FRAME = 1920
GREEDY = Sampling(temp=0.0, temp_text=0.0)


def _folder(dest: Path, **config: Any) -> Path:
    """The fixture's model files (with ``config`` over its config.json) in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        shutil.copy(FIXTURE / name, dest / name)
    if config:
        data = json.loads((dest / "config.json").read_text()) | config
        (dest / "config.json").write_text(json.dumps(data))
    return dest


def _files(folder: Path) -> Any:
    files = kyutai_files(p.name for p in folder.iterdir())
    assert files is not None
    return files


@pytest.fixture(scope="module")
def model() -> Any:
    return load_kyutai(FIXTURE, _files(FIXTURE), dtype=torch.float32, device="cpu")


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return load_file(str(FIXTURE / "reference.safetensors"))


def test_mimi_encodes_as_kyutai_does(model: Any, reference: dict[str, Any]) -> None:
    encoder = StreamingMimiEncoder(model.audio_encoder, 4)
    encoder.join()
    pcm = reference["pcm"]
    with torch.inference_mode():
        codes = [
            encoder.step(pcm[i * FRAME : (i + 1) * FRAME].reshape(1, 1, -1)).reshape(-1)
            for i in range(len(reference["user_codes"]))
        ]
    assert torch.equal(torch.stack(codes), reference["user_codes"])


def test_lm_steps_as_kyutai_lmgen_does(model: Any, reference: dict[str, Any]) -> None:
    """Greedy, frame by frame: the same text tokens and audio codes as Kyutai's ``LMGen``,
    with its schedule (the first step gives nothing, delayed codebooks start one frame
    late)."""
    lm = LockstepLM(model)
    lm.join(GREEDY)
    with torch.inference_mode():
        outs = [lm.step(codes[None])[0] for codes in reference["user_codes"]]
    assert outs[0].text is None and outs[0].codes is None
    assert [o.text for o in outs[1:]] == reference["text"].tolist()
    assert [o.codes for o in outs[1:]] == reference["audio_codes"].tolist()


def test_mimi_decodes_as_kyutai_does(model: Any, reference: dict[str, Any]) -> None:
    """Against Kyutai's whole-signal decoding: its streaming decoder keeps a ring of exactly
    the window and writes a frame's two positions at once, so one of them sees a position
    fewer (``reference["decoded"]`` drifts from the whole-signal decoding from frame 3 on,
    here where the window is 5 positions; 250 in the published Mimi)."""
    decoder = StreamingMimiDecoder(model.audio_encoder)
    decoder.join()
    with torch.inference_mode():
        pcm = [
            decoder.step(torch.tensor(c)[None, :, None])[0, 0]
            for c in reference["audio_codes"].tolist()
        ]
    want = reference["decoded_whole"]
    assert torch.allclose(torch.stack(pcm), want, atol=1e-5 * float(want.abs().max()))
    # and Kyutai's streaming decoding agrees until its ring drops a position
    assert torch.allclose(pcm[0], reference["decoded"][0], atol=1e-5 * float(want.abs().max()))


def _meta(table: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {k: torch.empty(v["shape"], device="meta") for k, v in table.items()}


@pytest.mark.parametrize("table", ["moshiko_lm"])
def test_published_moshi_maps_onto_transformers_shapes(table: str, tmp_path: Path) -> None:
    """Kyutai's 7B Moshi (its real tensor names and shapes, no config.json: the package's
    defaults) renames onto every tensor of ``MoshiForConditionalGeneration``, shape for
    shape, Mimi included."""
    from transformers import MoshiForConditionalGeneration

    config = moshi_config(tmp_path, dict(KYUTAI_LM_ARGS), KYUTAI_MIMI_ARGS)
    with torch.device("meta"):
        want = {
            k: tuple(v.shape) for k, v in MoshiForConditionalGeneration(config).state_dict().items()
        }
    got = lm_state(_meta(duplex_tensors(table)), config)
    codec = mimi_state(_meta(duplex_tensors("mimi")), config.audio_encoder_config)
    got |= {f"audio_encoder.{k}": v for k, v in codec.items()}
    assert {k: tuple(v.shape) for k, v in got.items()} == want


def test_text_tokens_are_sentencepiece_pieces() -> None:
    text = SentencePieceText(FIXTURE / "tokenizer_spm_tiny.model")
    assert text.convert_ids_to_tokens(3) == "<pad>"
    assert text.convert_ids_to_tokens(10_000) is None
    assert {0, 3} == set(text.all_special_ids)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"depformer_multi_linear": False}, "depformer_multi_linear=False"),
        ({"dep_q": 3}, "3 depth steps"),
        ({"delays": [0, 1, 1, 1, 1, 0, 1, 1, 1]}, "delays"),
        ({"conditioners": {"control": {}}}, "conditioners"),
    ],
)
def test_what_transformers_moshi_lacks_is_refused_by_name(
    tmp_path: Path, change: dict[str, Any], said: str
) -> None:
    folder = _folder(tmp_path / "m", **change)
    with pytest.raises(ModelLoadError, match=said) as err:
        check_kyutai(folder, _files(folder))
    assert "--engine moshi" in str(err.value.hint)


def test_quantized_weights_and_missing_tokenizer_are_refused(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "q8")
    (folder / "model.safetensors").rename(folder / "model.q8.safetensors")
    with pytest.raises(ModelLoadError, match="8-bit"):
        check_kyutai(folder, _files(folder))
    folder = _folder(tmp_path / "nospm")
    (folder / "tokenizer_spm_tiny.model").unlink()
    with pytest.raises(ModelLoadError, match="SentencePiece"):
        check_kyutai(folder, _files(folder))


def test_weights_that_do_not_match_the_config_are_refused(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "m", num_layers=3)
    with pytest.raises(ModelLoadError, match="does not match its configuration"):
        load_kyutai(folder, _files(folder), dtype=torch.float32, device="cpu")


def test_serve_holds_conversations_on_a_kyutai_folder(tmp_path: Path) -> None:
    """``hfdeploy serve`` on Kyutai's files: two conversations over real WebSockets, the
    handshake, a frame of audio per frame after the first, text as SentencePiece pieces."""
    folder = _folder(tmp_path / "tiny-kyutai-moshi")
    frames = 10

    async def session(url: str, seed: int) -> dict[int, list[bytes]]:
        seen: dict[int, list[bytes]] = {}
        ws_url = url.replace("http://", "ws://") + f"/api/chat?seed={seed}"
        async with connect(ws_url) as ws:
            assert await ws.recv() == b"\x00"
            for k in range(frames):
                pcm = torch.randn(FRAME, generator=torch.Generator().manual_seed(k)) * 3000
                await ws.send(b"\x01" + pcm.to(torch.int16).numpy().astype("<i2").tobytes())
                await asyncio.sleep(0.08)
            while len(seen.get(1, [])) < frames - 1:
                m = await asyncio.wait_for(ws.recv(), 30)
                assert isinstance(m, bytes)
                seen.setdefault(m[0], []).append(m)
        return seen

    async def main(url: str) -> list[dict[int, list[bytes]]]:
        return await asyncio.gather(session(url, 1), session(url, 2))

    with serving(folder, tmp_path / "serve.log", "--max-sessions", "4") as url:
        results = asyncio.run(main(url))
    pieces = {p.replace("▁", " ") for p in _pieces()}
    for seen in results:
        assert {len(m) for m in seen[1]} == {1 + 2 * FRAME}
        assert not seen.get(5), seen.get(5)
        for m in seen.get(2, []):
            assert m[1:].decode() in pieces and m[1:].decode() not in ("<unk>", "<pad>")


def _pieces() -> list[str]:
    text = SentencePieceText(FIXTURE / "tokenizer_spm_tiny.model")
    return [str(text.convert_ids_to_tokens(i)) for i in range(64)]
