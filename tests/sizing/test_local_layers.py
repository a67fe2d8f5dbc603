"""Chunked and sliding layers, per engine: Llama 4's chunked attention and gpt-oss without a
``layer_types`` list. Expected bytes are computed here from the configs' fields."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hfdeploy import inspect_model, size_model
from hfdeploy.catalog.engines import sizing_engines
from hfdeploy.cli.main import app
from hfdeploy.errors import UnknownLayerTypeError
from hfdeploy.model.arch import arch_from_config
from hfdeploy.sizing.estimate import local_rules
from hfdeploy.sizing.kv import kv_layout
from hfdeploy.sizing.settings import ServingSettings

# Llama 4 Scout's text model, as its config.json gives it (no layer_types list).
SCOUT: dict[str, Any] = {
    "architectures": ["Llama4ForConditionalGeneration"],
    "model_type": "llama4",
    "text_config": {
        "model_type": "llama4_text", "num_hidden_layers": 48, "hidden_size": 5120,
        "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128,
        "attention_chunk_size": 8192, "intermediate_size": 8192,
        "intermediate_size_mlp": 16384, "num_local_experts": 16, "num_experts_per_tok": 1,
        "vocab_size": 202048, "max_position_embeddings": 10485760,
        "no_rope_layers": [int((i + 1) % 4 != 0) for i in range(48)],
    },
}  # fmt: skip

# gpt-oss-20b's shape, without the layer_types list newer configs carry.
GPT_OSS: dict[str, Any] = {
    "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss",
    "num_hidden_layers": 24, "hidden_size": 2880, "num_attention_heads": 64,
    "num_key_value_heads": 8, "head_dim": 64, "sliding_window": 128,
    "intermediate_size": 2880, "num_local_experts": 32, "num_experts_per_tok": 4,
    "vocab_size": 201088, "max_position_embeddings": 131072,
}  # fmt: skip


def _settings(engine: str, *, context: int, batched: int = 2048, pp: int = 1) -> ServingSettings:
    eng = sizing_engines()[engine]
    return ServingSettings(
        engine=engine, dtype="bf16", kv_dtype="auto", context=context, concurrency=1, tp=1,
        pp=pp, batched_tokens=batched, block_size=eng.block_size,
        gpu_memory_utilization=None, quantization=None,
    )  # fmt: skip


def _per_seq(config: dict[str, Any], engine: str, context: int, **kw: Any) -> int:
    arch = arch_from_config(config)
    s = _settings(engine, context=context, **kw)
    eng = sizing_engines()[engine]
    rules = local_rules(eng, s, tuple(config["architectures"]))
    layout = kv_layout(arch, context=context, kv_bytes=2, state_bytes=2,
                       block_size=eng.block_size, tp=1, mla_latent=True, local=rules)  # fmt: skip
    return layout.bytes_per_sequence


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def test_llama4_every_layer_is_counted_chunked_or_full() -> None:
    t = SCOUT["text_config"]
    arch = arch_from_config(SCOUT)
    kinds = {g.kind: (g.count, g.window) for g in arch.groups}
    assert kinds == {"chunked": (36, 8192), "full": (12, None)}
    assert sum(g.count for g in arch.groups) == t["num_hidden_layers"]
    per_layer = 2 * t["num_key_value_heads"] * t["head_dim"] * 2  # K and V, bf16
    layout = kv_layout(arch, context=8192, kv_bytes=2, state_bytes=2, block_size=0, tp=1,
                       mla_latent=False)  # fmt: skip
    assert layout.bytes_per_token == 48 * per_layer == 196_608
    # At 8,192 tokens the chunk covers the whole context: every layer holds every token.
    assert layout.bytes_per_sequence == 48 * 8192 * per_layer


@pytest.mark.parametrize("context", [8192, 32768])
def test_llama4_chunked_layers_per_engine(context: int) -> None:
    t = SCOUT["text_config"]
    per_layer = 2 * t["num_key_value_heads"] * t["head_dim"] * 2
    chunk, n_chunked, n_full = t["attention_chunk_size"], 36, 12
    # Transformers: the chunk on chunked layers, the context on full ones.
    want = (n_chunked * min(chunk, context) + n_full * context) * per_layer
    assert _per_seq(SCOUT, "transformers", context) == want
    # vLLM turns its hybrid allocator off for chunked attention: all 48 hold the context.
    blocks = _cdiv(context, 16) * 16
    assert _per_seq(SCOUT, "vllm", context) == 48 * blocks * per_layer
    # TGI: one full cache for every layer.
    assert _per_seq(SCOUT, "tgi", context) == 48 * blocks * per_layer
    # llama.cpp: chunk + 512-token ubatch on chunked layers, padded to 256 cells.
    swa = _cdiv(min(context, chunk + 512), 256) * 256
    full = _cdiv(context, 256) * 256
    assert _per_seq(SCOUT, "llama.cpp", context) == (n_chunked * swa + n_full * full) * per_layer
    # SGLang's SWA pool is 0.8 of the full pool, which must hold each request's chunk + 129.
    need = min(context, chunk + 129)
    full_pool = max(context, math.ceil(need / 0.8))
    want_sgl = (n_full * full_pool + n_chunked * math.ceil(0.8 * full_pool)) * per_layer
    assert _per_seq(SCOUT, "sglang", context) == want_sgl


def test_llama4_causal_lm_gets_no_sglang_pool() -> None:
    causal = {**SCOUT, "architectures": ["Llama4ForCausalLM"]}
    per_layer = 2 * 8 * 128 * 2
    assert _per_seq(causal, "sglang", 8192) == 48 * 8192 * per_layer


def test_gpt_oss_without_layer_types_alternates() -> None:
    arch = arch_from_config(GPT_OSS)
    kinds = {g.kind: (g.count, g.window) for g in arch.groups}
    assert kinds == {"sliding": (12, 128), "full": (12, None)}
    assert "gpt-oss" in arch.layer_types_source
    per_layer = 2 * GPT_OSS["num_key_value_heads"] * GPT_OSS["head_dim"] * 2
    ctx, window = 8192, GPT_OSS["sliding_window"]
    assert _per_seq(GPT_OSS, "transformers", ctx) == (12 * ctx + 12 * window) * per_layer
    # vLLM: window - 1 + two batches of 2,048 prefill tokens in flight, + 1 block.
    held = (_cdiv(min(window - 1 + 2 * 2048, ctx), 16) + 1) * 16
    assert _per_seq(GPT_OSS, "vllm", ctx) == (12 * ctx + 12 * held) * per_layer
    # Pipeline parallelism adds a batch in flight per stage.
    held_pp = (_cdiv(min(window - 1 + 3 * 2048, ctx), 16) + 1) * 16
    assert _per_seq(GPT_OSS, "vllm", ctx, pp=2) == (12 * ctx + 12 * held_pp) * per_layer


def test_unknown_layer_type_is_refused_by_name(tmp_path: Path) -> None:
    cfg = {**GPT_OSS, "layer_types": ["full_attention", "warp_attention"] * 12}
    arch = arch_from_config(cfg)
    assert dict(arch.unknown_layers) == {"warp_attention": 12}
    assert sum(g.count for g in arch.groups) == 12  # the known ones only; the rest refused


def _tiny(tmp_path: Path, name: str) -> Path:
    import torch
    import transformers

    torch.manual_seed(0)
    if name == "gpt_oss":
        cfg = transformers.GptOssConfig(
            vocab_size=256, hidden_size=64, intermediate_size=64, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=32,
            num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=4096,
            dtype="bfloat16",
        )  # fmt: skip
        model = transformers.GptOssForCausalLM(cfg)
    else:
        cfg = transformers.Llama4TextConfig(
            vocab_size=256, hidden_size=64, intermediate_size=64, intermediate_size_mlp=128,
            num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            attention_chunk_size=64, num_local_experts=2, num_experts_per_tok=1,
            max_position_embeddings=4096, dtype="bfloat16",
        )  # fmt: skip
        model = transformers.Llama4ForCausalLM(cfg)
    out = tmp_path / name
    model.to(torch.bfloat16).save_pretrained(out)
    config = json.loads((out / "config.json").read_text())
    config.pop("layer_types", None)  # as older Hub configs are written
    (out / "config.json").write_text(json.dumps(config))
    return out


@pytest.mark.parametrize("name", ["gpt_oss", "llama4"])
def test_size_json_counts_every_layer(tmp_path: Path, name: str) -> None:
    folder = _tiny(tmp_path, name)
    cfg = json.loads((folder / "config.json").read_text())
    result = CliRunner().invoke(
        app, ["size", str(folder), "--engine", "transformers", "--context", "1024", "--json"]
    )
    assert result.exit_code == 0, result.output
    kv = json.loads(result.output)["kv_cache"]
    groups = kv["layer_groups"]
    assert sum(g["layers"] for g in groups) == cfg["num_hidden_layers"]
    per_layer = 2 * cfg["num_key_value_heads"] * cfg["head_dim"] * 2
    local = cfg.get("attention_chunk_size") or cfg["sliding_window"]
    n_local = 3 if name == "llama4" else 2  # Llama 4: 3 chunked in 4; gpt-oss: even layers
    n_full = cfg["num_hidden_layers"] - n_local
    assert kv["bytes_per_token"] == cfg["num_hidden_layers"] * per_layer
    assert kv["bytes_per_sequence"] == (n_full * 1024 + n_local * local) * per_layer


def test_estimate_refuses_unknown_layers(tmp_path: Path) -> None:
    folder = _tiny(tmp_path, "gpt_oss")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["layer_types"] = ["full_attention", "warp_attention"] * 2
    (folder / "config.json").write_text(json.dumps(cfg))
    result = CliRunner().invoke(app, ["size", str(folder), "--json"])
    assert result.exit_code != 0
    assert "warp_attention (2 layers)" in result.output
    profile = inspect_model(str(folder))  # inspecting still works: only sizing the cache fails
    assert dict(profile.arch.unknown_layers) == {"warp_attention": 2}
    with pytest.raises(UnknownLayerTypeError, match="warp_attention"):
        size_model(profile, engine="vllm")


@pytest.mark.parametrize("name", ["gpt_oss", "llama4"])
def test_transformers_estimate_matches_its_cache(tmp_path: Path, name: str) -> None:
    """The transformers estimate against the bytes its DynamicCache holds after a prefill
    longer than the window: local layers keep window - 1 tokens at rest, and the estimate
    counts the one more they hold while a new token is attended."""
    import torch
    import transformers

    folder = _tiny(tmp_path, name)
    cfg = json.loads((folder / "config.json").read_text())
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
    context = 200
    ids = torch.randint(0, cfg["vocab_size"], (1, context))
    cache = transformers.DynamicCache(config=model.config)
    with torch.inference_mode():
        model(input_ids=ids, past_key_values=cache, use_cache=True)
    held = sum(
        t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values)
    )
    est = size_model(inspect_model(str(folder)), engine="transformers", context=context).estimate
    per_layer = 2 * cfg["num_key_value_heads"] * cfg["head_dim"] * 2
    n_local = 3 if name == "llama4" else 2
    assert est.kv_bytes_per_sequence == held + n_local * per_layer


@pytest.mark.parametrize(
    ("arch", "pattern", "want"),
    [
        ("gpt-oss", None, {"sliding": 2, "full": 2}),  # llama.cpp's default: even layers
        ("gemma3", [True, True, False, True], {"sliding": 3, "full": 1}),  # one flag a layer
        ("llama4", None, {"chunked": 3, "full": 1}),  # three chunked in four, chunk 8,192
    ],
)
def test_gguf_layers_follow_llama_cpp(
    tmp_path: Path, arch: str, pattern: list[bool] | None, want: dict[str, int]
) -> None:
    import gguf
    import numpy as np

    from hfdeploy.model.gguf import gguf_config, read_gguf

    path = tmp_path / "m.gguf"
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(4)
    w.add_context_length(16384)
    w.add_embedding_length(64)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    if arch != "llama4":
        w.add_sliding_window(128)
    if pattern is not None:
        w.add_sliding_window_pattern(pattern)
    w.add_tensor("token_embd.weight", np.ones((32, 64), np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    arch_spec = arch_from_config(gguf_config(read_gguf(path)))
    assert {g.kind: g.count for g in arch_spec.groups} == want
    assert all(g.window == (8192 if arch == "llama4" else 128) for g in arch_spec.groups
               if g.kind != "full")  # fmt: skip
