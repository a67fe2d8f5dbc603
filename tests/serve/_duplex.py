"""A tiny random-weight Moshi (Transformers' classes) for the duplex serving tests: Moshi's
layout (4 codebooks here, 1920-sample frames at 12.5 Hz) at a few thousand parameters."""

from __future__ import annotations

from typing import Any

MIMI = dict(hidden_size=16, num_filters=4, upsampling_ratios=[8, 6, 5, 4], num_hidden_layers=1,
            num_attention_heads=2, num_key_value_heads=2, intermediate_size=32, codebook_size=32,
            codebook_dim=8, vector_quantization_hidden_dimension=8, num_quantizers=4,
            upsample_groups=16, sliding_window=5)  # fmt: skip


def tiny_moshi() -> Any:
    """float64, so that batched and alone can be compared to the last bits."""
    import torch
    from transformers import MoshiConfig, MoshiForConditionalGeneration

    torch.manual_seed(0)
    cfg = MoshiConfig(
        vocab_size=48, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, ffn_dim=32,
        num_codebooks=4, sliding_window=5, audio_encoder_config=MIMI,
        depth_decoder_config=dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                  ffn_dim=32, sliding_window=4, max_position_embeddings=5),
    )  # fmt: skip
    return MoshiForConditionalGeneration(cfg).eval().double()


def save_moshi_folder(model: Any, path: Any) -> Any:
    """``model`` saved as a Transformers folder (safetensors and config) with a word-level
    tokenizer over its text vocabulary whose ids 0-3 are special: what ``hfdeploy serve``
    loads."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    model.save_pretrained(path, safe_serialization=True)
    special = ["<unk>", "<s>", "</s>", "<pad>"]
    words = [f"▁w{i}" for i in range(len(special), model.config.vocab_size)]
    vocab = {tok: i for i, tok in enumerate(special + words)}
    PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<unk>")),
        unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>",
    ).save_pretrained(path)  # fmt: skip
    return path


def tiny_moshi_folder(path: Any) -> Any:
    """The tiny Moshi (float32) as ``hfdeploy serve`` loads it."""
    return save_moshi_folder(tiny_moshi().float(), path)
