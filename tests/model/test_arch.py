"""config.json → layer classification, from configs transformers writes."""

from __future__ import annotations

from typing import Any

import pytest
import transformers

from hfdeploy.model.arch import arch_from_config


def _kinds(config: dict[str, Any]) -> dict[str, int]:
    return {g.kind: g.count for g in arch_from_config(config).groups}


def _cfg(cls: str, **kwargs: Any) -> dict[str, Any]:
    d: dict[str, Any] = getattr(transformers, cls)(**kwargs).to_dict()
    d["architectures"] = [cls.replace("Config", "ForCausalLM")]
    return d


def test_gemma2_alternation_with_and_without_layer_types() -> None:
    written = _cfg("Gemma2Config", num_hidden_layers=6, sliding_window=4096)
    assert "layer_types" in written
    stripped = {k: v for k, v in written.items() if k != "layer_types"}  # older Hub configs
    assert _kinds(written) == _kinds(stripped) == {"full": 3, "sliding": 3}


def test_mistral_v01_window_without_layer_info_slides_everywhere() -> None:
    cfg = _cfg("MistralConfig", num_hidden_layers=4, sliding_window=4096)
    assert _kinds(cfg) == {"sliding": 4}
    spec = arch_from_config(cfg)
    assert spec.groups[0].window == 4096


def test_qwen2_use_sliding_window_false_is_all_full() -> None:
    cfg = _cfg("Qwen2Config", num_hidden_layers=4, sliding_window=4096, use_sliding_window=False)
    assert _kinds(cfg) == {"full": 4}
    raw = {"model_type": "qwen2", "num_hidden_layers": 4, "num_attention_heads": 4,
           "hidden_size": 64, "sliding_window": 4096, "use_sliding_window": False}  # fmt: skip
    assert _kinds(raw) == {"full": 4}


def test_gemma3_pattern_every_sixth_layer_global() -> None:
    raw = {"model_type": "gemma3_text", "num_hidden_layers": 12, "num_attention_heads": 8,
           "num_key_value_heads": 4, "head_dim": 256, "hidden_size": 2560,
           "sliding_window": 1024, "sliding_window_pattern": 6}  # fmt: skip
    assert _kinds(raw) == {"full": 2, "sliding": 10}


def test_multimodal_wrapper_reads_text_config() -> None:
    raw = {"model_type": "llava", "architectures": ["LlavaForConditionalGeneration"],
           "text_config": {"num_hidden_layers": 3, "num_attention_heads": 8,
                           "num_key_value_heads": 2, "hidden_size": 512,
                           "head_dim": 64}}  # fmt: skip
    spec = arch_from_config(raw)
    assert spec.groups[0].count == 3
    assert spec.groups[0].elements_per_token == 2 * 2 * 64


def test_explicit_head_dim_wins_over_hidden_over_heads() -> None:
    raw = {"model_type": "qwen3", "num_hidden_layers": 2, "num_attention_heads": 16,
           "num_key_value_heads": 8, "hidden_size": 1024, "head_dim": 128}  # fmt: skip
    assert arch_from_config(raw).groups[0].head_dim_k == 128  # not 1024 // 16 = 64


def test_hybrid_linear_attention_layers_hold_state_not_kv() -> None:
    raw = {"model_type": "qwen3_next", "num_hidden_layers": 4, "num_attention_heads": 16,
           "num_key_value_heads": 2, "hidden_size": 2048, "head_dim": 256,
           "layer_types": ["linear_attention"] * 3 + ["full_attention"],
           "linear_num_value_heads": 32, "linear_num_key_heads": 16, "linear_key_head_dim": 128,
           "linear_value_head_dim": 128, "linear_conv_kernel_dim": 4}  # fmt: skip
    spec = arch_from_config(raw)
    groups = {g.kind: g for g in spec.groups}
    assert groups["full"].count == 1
    assert groups["linear"].count == 3
    assert groups["linear"].elements_per_token == 0
    assert groups["linear"].state_elements == 32 * 128 * 128 + (2 * 16 * 128 + 32 * 128) * 3


def test_mamba_model_has_only_state() -> None:
    cfg = _cfg("MambaConfig", num_hidden_layers=3, hidden_size=64, state_size=16, expand=2,
               conv_kernel=4)  # fmt: skip
    spec = arch_from_config(cfg)
    assert [g.kind for g in spec.groups] == ["mamba"]
    inner = cfg["intermediate_size"]
    assert spec.groups[0].state_elements == inner * 3 + inner * 16
    assert not spec.has_kv_cache


def test_jamba_period_offset() -> None:
    raw = {"model_type": "jamba", "num_hidden_layers": 8, "num_attention_heads": 8,
           "num_key_value_heads": 2, "hidden_size": 256, "attn_layer_period": 8,
           "attn_layer_offset": 4, "mamba_d_state": 16, "mamba_d_conv": 4,
           "mamba_expand": 2}  # fmt: skip
    assert _kinds(raw) == {"full": 1, "mamba": 7}


@pytest.mark.parametrize("model_type", ["bert", "xlm-roberta", "modernbert"])
def test_encoders_have_no_kv(model_type: str) -> None:
    raw = {"model_type": model_type, "num_hidden_layers": 2, "num_attention_heads": 2,
           "hidden_size": 32}  # fmt: skip
    spec = arch_from_config(raw)
    assert spec.family == "encoder"
    assert spec.groups == ()
