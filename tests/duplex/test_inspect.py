"""Full-duplex models are recognised and counted: the Kyutai layout with and without a
config.json, PersonaPlex told from Moshi, and Transformers' Moshi layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hfdeploy import inspect_model
from hfdeploy.cli.main import app
from tests._synthetic import MIMI_FILE, duplex_tensors, kyutai_checkpoint

# The counts the moshi package's LMModel and Mimi give (tests/data/duplex, from the package).
PERSONAPLEX_LM, MOSHIKO_LM, MIMI = 8_371_408_896, 7_687_729_152, 96_151_393


def _params(table: str) -> int:
    total = 0
    for t in duplex_tensors(table).values():
        n = 1
        for d in t["shape"]:
            n *= d
        total += n
    return total


def test_tables_hold_the_package_counts() -> None:
    assert _params("personaplex_lm") == PERSONAPLEX_LM
    assert _params("moshiko_lm") == MOSHIKO_LM
    assert _params("mimi") == MIMI


@pytest.mark.parametrize(
    ("variant", "lm", "dep_q", "voices"),
    [("personaplex", PERSONAPLEX_LM, 16, True), ("moshiko", MOSHIKO_LM, 8, False)],
)
def test_kyutai_layout_without_config(
    tmp_path: Path, variant: str, lm: int, dep_q: int, voices: bool
) -> None:
    folder = kyutai_checkpoint(tmp_path / variant, variant, voices=voices)
    p = inspect_model(str(folder))
    d = p.to_dict()
    assert d["kind"] == "full-duplex-speech"
    assert d["task"] == "audio-to-audio"
    assert d["parameters"]["total"] == lm + MIMI
    parts = d["parameters"]["components"]
    assert parts["lm"]["parameters"] == lm and parts["lm"]["files"] == ["model.safetensors"]
    assert parts["codec"]["parameters"] == MIMI and parts["codec"]["files"] == [MIMI_FILE]
    assert parts["codec"]["dtype"] == "F32" and parts["lm"]["dtype"] == "BF16"
    spec = d["duplex"]
    assert spec["variant"] == ("personaplex" if variant == "personaplex" else "moshi")
    assert (spec["layers"], spec["dim"], spec["dep_q"], spec["codebooks"]) == (32, 4096, dep_q, 16)
    assert (spec["depformer_layers"], spec["depformer_dim"]) == (6, 1024)
    assert spec["context_frames"] == 3000 and spec["frame_ms"] == 80
    assert spec["shape_source"] == "safetensors headers"
    # 2 (K, V) x 32 layers x 4096 x 2 bytes
    assert spec["kv_bytes_per_frame_bf16"] == 2 * 32 * 4096 * 2 == 512 * 1024
    assert any("num_heads = 32" in a for a in spec["assumed"])
    assert p.tokenizer


def test_kyutai_config_keys_win(tmp_path: Path) -> None:
    cfg = {"dim": 4096, "num_layers": 32, "num_heads": 32, "context": 1500, "dep_q": 16,
           "n_q": 16, "moshi_name": "model.safetensors"}  # fmt: skip
    folder = kyutai_checkpoint(tmp_path / "pp", "personaplex", config=cfg)
    spec = inspect_model(str(folder)).to_dict()["duplex"]
    assert spec["context_frames"] == 1500
    assert spec["shape_source"].startswith("config.json (Kyutai keys)")
    assert not any(a.startswith("num_heads") for a in spec["assumed"])


def test_transformers_moshi_layout(tmp_path: Path) -> None:
    import torch
    import transformers

    cfg = transformers.MoshiConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, num_codebooks=4, audio_vocab_size=32,
        depth_decoder_config={"hidden_size": 16, "num_hidden_layers": 1,
                              "num_attention_heads": 2, "num_codebooks": 4},
        audio_encoder_config={"hidden_size": 16, "num_hidden_layers": 1,
                              "num_attention_heads": 2, "num_key_value_heads": 2,
                              "head_dim": 8, "intermediate_size": 32, "codebook_size": 32,
                              "codebook_dim": 16, "num_filters": 8, "upsample_groups": 16,
                              "num_quantizers": 4, "num_semantic_quantizers": 1},
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.MoshiForConditionalGeneration(cfg)
    model.save_pretrained(tmp_path / "hf-moshi")
    p = inspect_model(str(tmp_path / "hf-moshi"))
    d = p.to_dict()
    assert d["kind"] == "full-duplex-speech"
    codec = sum(v.numel() for k, v in model.state_dict().items() if k.startswith("audio_encoder."))
    assert d["parameters"]["components"]["codec"]["parameters"] == codec
    assert d["duplex"]["layout"] == "transformers"
    assert (d["duplex"]["layers"], d["duplex"]["dim"], d["duplex"]["dep_q"]) == (2, 32, 4)


def test_inspect_text_shows_the_split(tmp_path: Path) -> None:
    folder = kyutai_checkpoint(tmp_path / "pp", "personaplex", voices=True)
    out = CliRunner().invoke(app, ["inspect", str(folder)])
    assert out.exit_code == 0, out.output
    assert "full-duplex-speech" in out.output
    assert "8,371,408,896" in out.output and "96,151,393" in out.output
    js = CliRunner().invoke(app, ["inspect", str(folder), "--json"])
    assert json.loads(js.output)["duplex"]["voices"] == "voices.tgz"
