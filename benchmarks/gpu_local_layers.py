"""Chunked and sliding layers: hfdeploy's KV estimate against the cache Transformers fills.

Two models with random weights and the real cache shapes, but few layers and a narrow
hidden size (the KV cache depends on KV heads x head_dim, not on the width):

- Llama-4-shaped: 8 layers, 3 chunked in 4 (attention chunk 8,192), 8 KV heads of 128;
- gpt-oss-shaped: 8 layers, even ones sliding (window 128), 8 KV heads of 64; its config is
  saved without ``layer_types``, as older checkpoints are.

Each is saved as safetensors, profiled by hfdeploy (engine ``transformers``), loaded, and run
through a prefill of each context into a ``DynamicCache``. Recorded per context:

- ``cache_bytes``: the bytes of the cache's key and value tensors after the prefill;
- ``estimate_bytes``: the estimate's KV cache per request (one more token per local layer
  than the cache keeps at rest: the one attended while decoding);
- on CUDA: ``peak_delta_bytes``, ``max_memory_allocated`` during the prefill minus the
  memory held before it (the cache plus the prefill's transient activations).

Runs on CUDA when there is one, else on CPU (cache bytes only). From the repository root:
  .venv-dev/bin/python benchmarks/gpu_local_layers.py [--contexts 1024,16384]
Writes benchmarks/results/local_layers_<cpu|cuda>.json (or under $OUT when set).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _results import header

SHAPES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "llama4": ("Llama4TextConfig", "Llama4ForCausalLM", dict(
        vocab_size=1024, hidden_size=256, intermediate_size=256, intermediate_size_mlp=512,
        num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=8, head_dim=128,
        attention_chunk_size=8192, num_local_experts=2, num_experts_per_tok=1,
        max_position_embeddings=65536,
    )),
    "gpt_oss": ("GptOssConfig", "GptOssForCausalLM", dict(
        vocab_size=1024, hidden_size=256, intermediate_size=256, num_hidden_layers=8,
        num_attention_heads=8, num_key_value_heads=8, head_dim=64, sliding_window=128,
        num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=65536,
    )),
}  # fmt: skip


def _save(name: str, folder: Path) -> None:
    import torch
    import transformers

    cfg_cls, model_cls, kwargs = SHAPES[name]
    torch.manual_seed(0)
    cfg = getattr(transformers, cfg_cls)(**kwargs, dtype="bfloat16")
    getattr(transformers, model_cls)(cfg).to(torch.bfloat16).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config.pop("layer_types", None)
    (folder / "config.json").write_text(json.dumps(config))


def _measure(name: str, folder: Path, contexts: list[int], device: str) -> list[dict[str, Any]]:
    import torch
    import transformers

    from hfdeploy import inspect_model, size_model

    profile = inspect_model(str(folder))
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
    model.to(device).eval()
    rows = []
    for context in contexts:
        est = size_model(profile, engine="transformers", context=context).estimate
        ids = torch.randint(0, 1024, (1, context), device=device)
        cache = transformers.DynamicCache(config=model.config)
        base = 0
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        with torch.inference_mode():
            model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        held = sum(
            t.numel() * t.element_size()
            for layer in cache.layers
            for t in (layer.keys, layer.values)
        )
        row = {
            "model": name, "context": context,
            "groups": [{k: g[k] for k in ("kind", "layers", "tokens_held")} for g in est.kv_groups],
            "cache_bytes": held, "estimate_bytes": est.kv_bytes_per_sequence,
            "estimate_over_cache": round(est.kv_bytes_per_sequence / held, 4),
        }  # fmt: skip
        if device == "cuda":
            torch.cuda.synchronize()
            row["peak_delta_bytes"] = int(torch.cuda.max_memory_allocated()) - base
            row["peak_over_estimate"] = round(
                row["peak_delta_bytes"] / est.kv_bytes_per_sequence, 4
            )
        rows.append(row)
        print(json.dumps(row))
        del cache
    return rows


def main() -> int:
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--contexts", default="1024,9000,16384")
    args = parser.parse_args()
    contexts = [int(c) for c in args.contexts.split(",")]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    result = header("gpu_local_layers") | {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "rows": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in SHAPES:
            folder = Path(tmp) / name
            _save(name, folder)
            result["rows"] += _measure(name, folder, contexts, device)
    out_dir = (
        Path(os.environ["OUT"]) if os.environ.get("OUT") else Path(__file__).parent / "results"
    )
    out = out_dir / f"local_layers_{device}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
