"""KV cache, weights and fit against sizing.md's formulas, computed here independently."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from hfdeploy import inspect_model, size_model
from hfdeploy.errors import InvalidSettingError, UnknownGPUError
from hfdeploy.model.profile import ModelProfile


def _cfg(folder: Path) -> dict[str, Any]:
    cfg: dict[str, Any] = json.loads((folder / "config.json").read_text())
    return cfg


def _blocks(tokens: int, block: int = 16) -> int:
    return math.ceil(tokens / block) * block


@pytest.fixture(scope="module")
def profiles(tiny_models: dict[str, Path]) -> dict[str, ModelProfile]:
    return {name: inspect_model(str(path)) for name, path in tiny_models.items()}


def test_llama_gqa(profiles: dict[str, ModelProfile], tiny_models: dict[str, Path]) -> None:
    c = _cfg(tiny_models["llama"])
    per_token = c["num_hidden_layers"] * 2 * c["num_key_value_heads"] * c["head_dim"] * 2  # bf16
    r = size_model(profiles["llama"], engine="vllm", context=1000, concurrency=3)
    assert r.estimate.kv_bytes_per_token == per_token
    assert r.estimate.kv_bytes_per_sequence == _blocks(1000) * per_token
    assert r.estimate.kv_cache.bytes == 3 * _blocks(1000) * per_token
    # contiguous cache (transformers): no block rounding
    r2 = size_model(profiles["llama"], engine="transformers", context=1000)
    assert r2.estimate.kv_bytes_per_sequence == 1000 * per_token


def test_fp8_kv_halves_the_cache(profiles: dict[str, ModelProfile]) -> None:
    bf16 = size_model(profiles["llama"], engine="vllm", context=512)
    fp8 = size_model(profiles["llama"], engine="vllm", context=512, kv_dtype="fp8")
    assert fp8.estimate.kv_bytes_per_token * 2 == bf16.estimate.kv_bytes_per_token
    assert fp8.estimate.settings.kv_dtype == "fp8"


def test_gemma2_sliding_layers(
    profiles: dict[str, ModelProfile], tiny_models: dict[str, Path]
) -> None:
    c = _cfg(tiny_models["gemma2"])
    per_layer = 2 * c["num_key_value_heads"] * c["head_dim"] * 2
    n_full = n_slide = c["num_hidden_layers"] // 2
    window, ctx = c["sliding_window"], 4096
    r = size_model(profiles["gemma2"], engine="transformers", context=ctx)
    assert r.estimate.kv_bytes_per_token == c["num_hidden_layers"] * per_layer
    assert r.estimate.kv_bytes_per_sequence == (n_full * ctx + n_slide * window) * per_layer
    # vLLM pads the window by the tokens in flight (two batches of prefill under async
    # scheduling) plus one block (its sliding-window manager)
    r2 = size_model(profiles["gemma2"], engine="vllm", context=ctx, max_batched_tokens=64)
    held = (math.ceil(min(window - 1 + 2 * 64, ctx) / 16) + 1) * 16
    assert r2.estimate.kv_bytes_per_sequence == (n_full * _blocks(ctx) + n_slide * held) * per_layer
    # SGLang has no SWA pool for Gemma-2: every layer holds the whole context
    r3 = size_model(profiles["gemma2"], engine="sglang", context=ctx)
    assert r3.estimate.kv_bytes_per_sequence == c["num_hidden_layers"] * ctx * per_layer


def test_deepseek_mla(profiles: dict[str, ModelProfile], tiny_models: dict[str, Path]) -> None:
    c = _cfg(tiny_models["deepseek_v2"])
    latent = c["kv_lora_rank"] + c["qk_rope_head_dim"]
    per_token = c["num_hidden_layers"] * latent * 2  # no factor 2 for K and V
    r = size_model(profiles["deepseek_v2"], engine="vllm", context=512)
    assert r.estimate.kv_bytes_per_token == per_token
    mha = c["num_hidden_layers"] * c["num_attention_heads"] * (
        c["qk_nope_head_dim"] + c["qk_rope_head_dim"] + c["v_head_dim"]) * 2  # fmt: skip
    r2 = size_model(profiles["deepseek_v2"], engine="transformers", context=512)
    assert r2.estimate.kv_bytes_per_token == mha  # transformers caches expanded K/V
    # MLA's single latent is held in full on every TP rank
    r4 = size_model(profiles["deepseek_v2"], engine="vllm", context=512, tp=4)
    assert r4.estimate.kv_bytes_per_sequence_per_rank == r4.estimate.kv_bytes_per_sequence


def test_gqa_kv_replicated_beyond_kv_heads(profiles: dict[str, ModelProfile]) -> None:
    one = size_model(profiles["llama"], engine="vllm", context=512)
    two = size_model(profiles["llama"], engine="vllm", context=512, tp=2)
    four = size_model(profiles["llama"], engine="vllm", context=512, tp=4)
    seq = one.estimate.kv_bytes_per_sequence_per_rank
    assert two.estimate.kv_bytes_per_sequence_per_rank == seq // 2
    # 2 KV heads over 4 ranks: each rank keeps one head, as at TP 2
    assert four.estimate.kv_bytes_per_sequence_per_rank == seq // 2


def test_whisper_cross_attention(
    profiles: dict[str, ModelProfile], tiny_models: dict[str, Path]
) -> None:
    c = _cfg(tiny_models["whisper"])
    head_dim = c["d_model"] // c["decoder_attention_heads"]
    per_layer = 2 * c["decoder_attention_heads"] * head_dim * 4  # float32 checkpoint, no auto cast
    r = size_model(profiles["whisper"], engine="transformers")
    assert r.estimate.settings.context == c["max_target_positions"] == 448
    self_attn = c["decoder_layers"] * 448 * per_layer
    cross = c["decoder_layers"] * c["max_source_positions"] * per_layer
    assert r.estimate.kv_bytes_per_token == c["decoder_layers"] * per_layer
    assert r.estimate.kv_bytes_per_sequence == self_attn + cross


def test_encoder_has_no_kv_and_weights_follow_dtype(minilm_dir: Path) -> None:
    p = inspect_model(str(minilm_dir))
    r = size_model(p)
    assert r.estimate.settings.engine == "tei"
    assert r.estimate.kv_bytes_per_token == 0
    assert r.estimate.kv_cache.bytes == 0
    # float16 on GPU: the float32 checkpoint halves; the int64 position_ids buffer stays
    assert r.estimate.weights_total_bytes == 22_713_216 * 2 + 512 * 8
    r32 = size_model(p, dtype="float32")
    assert r32.estimate.weights_total_bytes == 22_713_216 * 4 + 512 * 8


def test_moe_weights_count_every_expert(profiles: dict[str, ModelProfile]) -> None:
    p = profiles["mixtral"]
    r = size_model(p, engine="vllm", context=256)
    assert r.estimate.weights_total_bytes == p.parameters * 2
    assert r.to_dict()["parameters"]["experts"] == p.weights.expert_parameters


def test_quantization_what_if(profiles: dict[str, ModelProfile]) -> None:
    p = profiles["llama"]
    w = p.weights
    base = size_model(p, engine="vllm", context=256).estimate.weights_total_bytes
    int8 = size_model(p, engine="vllm", context=256, quantization="int8").estimate
    expected = (w.float_parameters - w.linear_float_parameters) * 2 + w.linear_float_parameters + (
        w.linear_rows * 2)  # fmt: skip
    assert int8.weights_total_bytes == expected
    int4 = size_model(p, engine="vllm", context=256, quantization="int4").estimate
    assert int4.weights_total_bytes < int8.weights_total_bytes < base


def test_settings_are_validated(profiles: dict[str, ModelProfile]) -> None:
    p = profiles["llama"]
    with pytest.raises(InvalidSettingError, match="exceeds the model's maximum"):
        size_model(p, context=10**6)
    with pytest.raises(InvalidSettingError, match="does not divide"):
        size_model(p, tp=8)
    with pytest.raises(InvalidSettingError, match="unknown"):
        size_model(p, kv_dtype="int3")
    with pytest.raises(UnknownGPUError) as e:
        size_model(p, gpu="RTX-9999")
    assert "H100-SXM" in e.value.hint


def test_context_default_is_capped(profiles: dict[str, ModelProfile]) -> None:
    assert size_model(profiles["gemma2"]).estimate.settings.context == 8192  # model max 8192
    assert size_model(profiles["llama"]).estimate.settings.context == 4096


def test_json_contract(profiles: dict[str, ModelProfile]) -> None:
    d = size_model(profiles["llama"], context=1024, concurrency=2).to_dict()
    assert isinstance(d["parameters"]["total"], int)
    assert isinstance(d["weights"]["bytes"], int)
    assert isinstance(d["kv_cache"]["bytes_per_token"], int)
    assert isinstance(d["kv_cache"]["bytes_per_sequence"], int)
    assert d["kv_cache"]["dtype"] == "bfloat16"
    assert isinstance(d["total"]["bytes"], int)
    assert d["fits"] and {"gpu", "count", "fits"} <= set(d["fits"][0])
    assert d["total"]["bytes"] == (
        d["weights"]["bytes_per_rank"] + d["kv_cache"]["bytes"] + d["activations"]["bytes"]
        + d["overhead"]["bytes"]
    )  # fmt: skip


def test_pipeline_stages_split_weights_and_kv(profiles: dict[str, ModelProfile]) -> None:
    one = size_model(profiles["llama"], engine="vllm", context=512, concurrency=4).estimate
    two = size_model(profiles["llama"], engine="vllm", context=512, concurrency=4, pp=2).estimate
    assert two.weights.bytes == math.ceil(one.weights.bytes / 2)
    assert two.kv_cache.bytes == 4 * math.ceil(one.kv_bytes_per_sequence_per_rank / 2)
    assert two.activations.bytes == one.activations.bytes  # every stage sees the whole batch
    assert two.weights.drivers["pp"] == 2
    with pytest.raises(InvalidSettingError, match="tei has no pipeline parallelism"):
        size_model(profiles["llama"], engine="tei", pp=2)
    with pytest.raises(InvalidSettingError, match="more stages than"):
        size_model(profiles["llama"], engine="vllm", pp=1000)
