"""PersonaPlex on hfdeploy's server: its checkpoint (older attention names, a depth
transformer over both streams) and its persona prompts give the tokens NVIDIA's own
package gives.

``tests/fixtures/personaplex_tiny`` holds a tiny PersonaPlex-shaped checkpoint and what
PersonaPlex's ``LMGen`` gives, greedy, for 10 frames of user codes after its system prompts:
with a voice prompt read from a WAV file, with the embeddings it saved from it (``.pt``, as
the published voices are), and with the text prompt alone. Its ``make_fixture.py`` writes
them, where that package imports.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers.models.moshi")
pytest.importorskip("sentencepiece")
pytest.importorskip("pyloudnorm")
pytest.importorskip("sphn")

from safetensors.torch import load_file  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import InvalidStatus  # noqa: E402

from hfdeploy.model.duplex import kyutai_files  # noqa: E402
from hfdeploy.serve.duplex.kyutai import SentencePieceText, load_kyutai  # noqa: E402
from hfdeploy.serve.duplex.lockstep import LockstepLM, Sampling  # noqa: E402
from hfdeploy.serve.duplex.prompts import PromptError, Prompts, system_tags  # noqa: E402
from tests.serve._fixtures import serving  # noqa: E402

FIXTURE = Path(__file__).parents[1] / "fixtures" / "personaplex_tiny"
TEXT = "You are a tiny test model. Answer briefly."
K = 4


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return load_file(str(FIXTURE / "reference.safetensors"))


@pytest.fixture(scope="module")
def prompts() -> Prompts:
    files = kyutai_files(p.name for p in FIXTURE.iterdir())
    assert files is not None
    model = load_kyutai(FIXTURE, files, dtype=torch.float32, device="cpu")
    text = SentencePieceText(FIXTURE / "tokenizer_spm_tiny.model")
    return Prompts(model, text, FIXTURE / "voices")


def _converse(prompts: Prompts, voice: str, user: Any) -> list[list[int]]:
    """The frames a conversation is sent (text token and codes), as the reference's."""
    forced = prompts.forced(TEXT, voice)
    lm = LockstepLM(prompts.model)
    lm.join(Sampling(temp=0.0, temp_text=0.0), forced)
    outs = []
    with torch.inference_mode():
        for _ in range(forced.length):  # the prompt: no audio from the user
            outs.append(lm.step(torch.zeros(1, K, dtype=torch.long))[0])
        outs += [lm.step(codes[None])[0] for codes in user]
    sent = [o for o in outs if o.codes is not None]
    assert sent[0].ready and not any(o.ready for o in sent[1:])
    assert len(sent) == len(user) + 1  # the prompt's last frame is sent after the handshake
    return [[o.text, *o.codes] for o in sent]


@pytest.mark.parametrize(("voice", "runs"), [("tiny.wav", "wav_out"), ("tiny.pt", "pt_out"),
                                             ("", "text_out")])  # fmt: skip
def test_prompts_give_the_references_tokens(
    prompts: Prompts, reference: dict[str, Any], voice: str, runs: str
) -> None:
    """Greedy, after the voice prompt (from audio, or its saved embeddings), silence, the
    text prompt and silence: the same text tokens and codes as PersonaPlex's ``LMGen``."""
    want = reference[runs][:, : 1 + K].tolist()
    got = _converse(prompts, voice, reference["user_codes"])
    assert got[: len(want)] == want


def test_the_voice_prompt_counts(prompts: Prompts, reference: dict[str, Any]) -> None:
    assert not torch.equal(reference["pt_out"], reference["text_out"])  # the fixture's worth
    assert prompts.forced(TEXT, "tiny.pt").length != prompts.forced(TEXT, "").length


def test_silence_and_sine_are_the_codecs_own(prompts: Prompts, reference: dict[str, Any]) -> None:
    assert list(prompts.silence) == reference["silence"].tolist()
    assert list(prompts.sine) == reference["sine"].tolist()
    forced = prompts.forced(TEXT, "")
    text = reference["text_tokens"].tolist()
    # silence, then the text one token a frame, then silence: text at positions 6...
    assert [forced.at(6 + i)[0] for i in range(len(text))] == text


def test_system_tags() -> None:
    assert system_tags("  Be kind. ") == "<system> Be kind. <system>"
    assert system_tags("<system> Be kind. <system>") == "<system> Be kind. <system>"


@pytest.mark.parametrize("voice", ["missing.pt", "../config.json", "voices/tiny.pt"])
def test_a_voice_not_in_the_folder_is_refused(prompts: Prompts, voice: str) -> None:
    with pytest.raises(PromptError, match="no voice"):
        prompts.forced(TEXT, voice)


def test_a_file_that_is_no_voice_is_refused(prompts: Prompts, tmp_path: Path) -> None:
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVE")
    p = Prompts(prompts.model, prompts.tokenizer, tmp_path)
    for name in ("bad.pt", "bad.wav"):
        with pytest.raises(PromptError, match="not a voice prompt"):
            p.forced(TEXT, name)
    with pytest.raises(PromptError, match="no voices"):
        Prompts(prompts.model, prompts.tokenizer, None).forced(TEXT, "tiny.pt")


def test_serve_holds_a_persona_conversation(tmp_path: Path) -> None:
    """``hfdeploy serve`` on PersonaPlex's files: the handshake once the prompts are
    stepped, then a frame of audio per frame; an unknown voice refused with 400."""
    folder = tmp_path / "tiny-personaplex"
    shutil.copytree(FIXTURE, folder, ignore=shutil.ignore_patterns("*.py", "reference.*"))
    frames = 8

    async def session(url: str) -> tuple[list[int], int]:
        query = "text_prompt=You+are+kind.&voice_prompt=tiny.pt"
        async with connect(url.replace("http://", "ws://") + "/api/chat?" + query) as ws:
            first = await asyncio.wait_for(ws.recv(), 30)
            assert first == b"\x00", "the handshake first, once the prompt is over"
            kinds: list[int] = []
            for k in range(frames):
                pcm = torch.randn(1920, generator=torch.Generator().manual_seed(k)) * 3000
                await ws.send(b"\x01" + pcm.to(torch.int16).numpy().astype("<i2").tobytes())
                await asyncio.sleep(0.08)
            while kinds.count(1) < frames:
                m = await asyncio.wait_for(ws.recv(), 30)
                assert isinstance(m, bytes)
                kinds.append(m[0])
                if m[0] == 1:
                    assert len(m) == 1 + 2 * 1920
        try:
            async with connect(url.replace("http://", "ws://") + "/api/chat?voice_prompt=x.pt"):
                status = 101
        except InvalidStatus as e:
            status = int(e.response.status_code)
        return kinds, status

    async def late_client(url: str) -> int:
        """A client that sends its first audio 3 s after the handshake: the frames made
        meanwhile wait for its format (the last 2 s of them), then come in it."""
        async with connect(url.replace("http://", "ws://") + "/api/chat?text_prompt=Hi") as ws:
            assert await asyncio.wait_for(ws.recv(), 30) == b"\x00"
            await asyncio.sleep(3.0)
            await ws.send(b"\x01" + bytes(2 * 1920))
            audio = 0
            while audio < 25:
                m = await asyncio.wait_for(ws.recv(), 30)
                audio += isinstance(m, bytes) and m[0] == 1 and len(m) == 1 + 2 * 1920
        return audio

    with serving(folder, tmp_path / "serve.log", "--max-sessions", "2") as url:
        kinds, status = asyncio.run(session(url))
        assert asyncio.run(late_client(url)) >= 25
        metrics = httpx.get(url + "/metrics").text
    assert 5 not in kinds and status == 400
    name = 'hfdeploy_duplex_frames_dropped_total{reason="format_unknown"}'
    dropped = next(line for line in metrics.splitlines() if line.startswith(name))
    assert float(dropped.split()[-1]) >= 1


def test_a_prompted_conversation_beside_others_gets_its_tokens_alone(
    reference: dict[str, Any],
) -> None:
    """Lockstep with prompts changes the cost, not the answers: a conversation replaying its
    voice prompt beside one that joins later (and hears audio) gets the tokens it gets
    alone (float64, so that batched and alone agree to the last bit)."""
    files = kyutai_files(p.name for p in FIXTURE.iterdir())
    assert files is not None
    model = load_kyutai(FIXTURE, files, dtype=torch.float64, device="cpu")
    p = Prompts(model, SentencePieceText(FIXTURE / "tokenizer_spm_tiny.model"), FIXTURE / "voices")
    user = reference["user_codes"]
    greedy = Sampling(temp=0.0, temp_text=0.0)

    def steps(lm: LockstepLM, n: int, other: int | None) -> list[Any]:
        outs = []
        for s in range(n):
            if other is not None and s == other:
                lm.join(Sampling(seed=3))
            rows = [user[s % len(user)]] + ([user[(s + 5) % len(user)]] if len(lm.rows) > 1 else [])
            outs.append(lm.step(torch.stack(rows))[0])
        return outs

    forced = p.forced(TEXT, "tiny.pt")
    n = forced.length + len(user)
    with torch.inference_mode():
        alone = LockstepLM(model)
        alone.join(greedy, forced)
        want = steps(alone, n, None)
        beside = LockstepLM(model)
        beside.join(greedy, p.forced(TEXT, "tiny.pt"))
        got = steps(beside, n, other=4)
    assert got == want
