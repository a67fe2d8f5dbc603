"""Tiny random-weight models built from transformers configs and saved as safetensors.

Each entry's config is small enough to build in well under a second, yet keeps the
family's distinguishing shape: GQA, sliding/global alternation, MLA, MoE,
encoder-decoder cross-attention, encoder-only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["CONFIGS", "build_all", "build_model", "count_parameters"]

CONFIGS: dict[str, tuple[str, str, dict[str, Any]]] = {
    # name: (config class, model class, config kwargs)
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        max_position_embeddings=4096, tie_word_embeddings=False, dtype="bfloat16",
    )),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", dict(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=1, head_dim=16, sliding_window=32,
        max_position_embeddings=8192, dtype="bfloat16",
    )),
    "deepseek_v2": ("DeepseekV2Config", "DeepseekV2ForCausalLM", dict(
        vocab_size=256, hidden_size=64, intermediate_size=128, moe_intermediate_size=32,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=32,
        q_lora_rank=None, qk_rope_head_dim=8, qk_nope_head_dim=16, v_head_dim=16,
        n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1, first_k_dense_replace=1,
        max_position_embeddings=4096, dtype="bfloat16",
    )),
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", dict(
        vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
        num_experts_per_tok=2, max_position_embeddings=4096, sliding_window=None,
        dtype="bfloat16",
    )),
    "whisper": ("WhisperConfig", "WhisperForConditionalGeneration", dict(
        vocab_size=256, d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
        decoder_ffn_dim=128, max_source_positions=1500, max_target_positions=448,
        num_mel_bins=80, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        decoder_start_token_id=3, begin_suppress_tokens=None, suppress_tokens=None,
        dtype="float32",
    )),
    "bert": ("BertConfig", "BertForSequenceClassification", dict(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=512, num_labels=3,
    )),
}  # fmt: skip


def build_model(name: str) -> Any:
    """Instantiate one tiny model with random weights (seeded)."""
    import torch
    import transformers

    cfg_cls, model_cls, kwargs = CONFIGS[name]
    torch.manual_seed(0)
    config = getattr(transformers, cfg_cls)(**kwargs)
    model = getattr(transformers, model_cls)(config)
    dtype = kwargs.get("dtype")
    if dtype == "bfloat16":
        model = model.to(torch.bfloat16)
    return model.eval()


def count_parameters(model: Any) -> int:
    """Parameters as PyTorch counts them (tied weights once)."""
    return sum(p.numel() for p in model.parameters())


def build_all(root: Path) -> dict[str, Path]:
    """Save every tiny model under ``root/<name>``; also record its true parameter count."""
    out: dict[str, Path] = {}
    for name in CONFIGS:
        model = build_model(name)
        folder = root / name
        model.save_pretrained(folder, safe_serialization=True)
        (folder / "params.txt").write_text(str(count_parameters(model)))
        out[name] = folder
    return out
