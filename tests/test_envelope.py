"""The answer envelope of inspect and size: confidence follows what the answer rests on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hfdeploy import inspect_model, size_model
from hfdeploy.envelope import Envelope, lowest


def test_lowest_and_text() -> None:
    assert lowest("high", "low", "medium") == "low"
    text = Envelope("42", "medium", "a reason", ("one factor",), ("check it",)).to_text()
    assert text.splitlines() == [
        "Result: 42",
        "Confidence: medium (a reason)",
        "Uncertainty Factors:",
        "- one factor",
        "Verification:",
        "- check it",
    ]


def test_profile_from_headers_is_high_and_config_only_is_medium(
    minilm_dir: Path, tmp_path: Path
) -> None:
    env = inspect_model(str(minilm_dir)).envelope()
    assert env.confidence == "high"
    assert "22,713,216 parameters" in env.result
    assert any("no commit sha" in f for f in env.uncertainty_factors)
    config_only = tmp_path / "cfg"
    config_only.mkdir()
    shutil.copy(minilm_dir / "config.json", config_only / "config.json")
    env = inspect_model(str(config_only)).envelope()
    assert env.confidence == "medium"
    assert "meta device" in env.confidence_why


def test_size_confidence_is_its_weakest_large_term(tmp_path: Path) -> None:
    from tests._synthetic import LLAMA3_70B, llama_shaped_checkpoint

    folder = tmp_path / "llama"
    llama_shaped_checkpoint(folder, LLAMA3_70B, shards=2)
    report = size_model(inspect_model(str(folder)), gpu="H100", context=8192, concurrency=16, tp=4)
    env = report.envelope()
    big = [
        t for t in (report.estimate.weights, report.estimate.kv_cache, report.estimate.activations)
        if t.bytes > 0.05 * report.estimate.total_bytes
    ]  # fmt: skip
    assert env.confidence == lowest(*(t.confidence for t in big))
    assert env.result.startswith(f"{report.estimate.total_bytes / 2**30:.2f} GiB per GPU rank")
    assert any("GPU KV cache size" in v for v in env.verification)  # vLLM by default
    json.dumps(env.to_dict())
