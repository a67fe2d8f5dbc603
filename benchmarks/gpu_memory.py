"""hfdeploy's estimate against torch.cuda memory, on a real GPU.

Three checks, each against `hfdeploy size` (the library's `size_model`) at the same settings:

1. Generators (engine `transformers`): random-weight Llama-shaped models from 20M to 8B
   parameters. The small ones are saved as safetensors and profiled from their headers,
   then loaded with `from_pretrained`; the 8B one is profiled from its config.json alone
   (meta-device count, as for a folder without weights) and built on the GPU. Each runs
   prefill plus 16 greedy decode steps at several batch x context shapes.
     - weights: bytes allocated after loading vs the estimate's `weights`;
     - peak: `max_memory_allocated` vs weights + KV cache + activations.
2. Encoders (engine `hfdeploy`, what `hfdeploy serve` runs): a BERT-base-shaped model
   forwarded at batches that fill the batch-token budget; peak vs weights + activations.
3. CUDA context: device memory in use (NVML's view via `mem_get_info`) minus torch's
   reserved bytes, right after the first allocation, vs the estimate's `cuda_context`.

Needs CUDA: prints a message and exits 0 without one. Run from the repository root:
  .venv-dev/bin/python benchmarks/gpu_memory.py
Writes benchmarks/results/gpu_memory.json (or $OUT/gpu_memory.json when OUT is set),
naming the GPU.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _results import header

RESULTS = Path(__file__).parent / "results" / "gpu_memory.json"
GEN_SHAPES = [(1, 4096), (8, 1024), (32, 512)]  # (batch, context)
LLAMAS = {
    "tiny-20M": dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4,
                     num_attention_heads=4, num_key_value_heads=2, vocab_size=32000),
    "small-160M": dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                       num_attention_heads=12, num_key_value_heads=4, vocab_size=32000),
    "1B": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
               num_attention_heads=32, num_key_value_heads=4, vocab_size=32000),
    "8B-config-only": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                           num_attention_heads=32, num_key_value_heads=8, vocab_size=128256),
}  # fmt: skip
ENCODER_SHAPES = [(32, 512), (128, 128), (512, 32)]  # fills 16,384 batch tokens each
BERT_BASE = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, vocab_size=30522, max_position_embeddings=512)  # fmt: skip
GIB = 1024**3


def _reset(torch: Any) -> int:
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    return int(torch.cuda.memory_allocated())


def _ratio(measured: int, estimate: int) -> float | None:
    return round(measured / estimate, 3) if estimate else None


def _row(est: Any, weights: int, peak: int, **about: Any) -> dict[str, Any]:
    """One measurement against the estimate: weights, then peak vs weights + KV + activations."""
    predicted = est.weights.bytes + est.kv_cache.bytes + est.activations.bytes
    return {
        **about,
        "weights_estimate": est.weights.bytes, "weights_measured": weights,
        "weights_ratio": _ratio(weights, est.weights.bytes),
        "kv_estimate": est.kv_cache.bytes, "activations_estimate": est.activations.bytes,
        "peak_estimate": predicted, "peak_measured": peak, "peak_ratio": _ratio(peak, predicted),
        "peak_above_weights_measured": peak - weights,
        "peak_above_weights_estimate": predicted - est.weights.bytes,
    }  # fmt: skip


def _generators(torch: Any, transformers: Any, rows: list[dict[str, Any]]) -> None:
    from hfdeploy import inspect_model, size_model

    for name, shape in LLAMAS.items():
        cfg = transformers.LlamaConfig(**shape, max_position_embeddings=8192,
                                       tie_word_embeddings=False, dtype="bfloat16",
                                       architectures=["LlamaForCausalLM"])  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            try:
                torch.manual_seed(0)
                base = _reset(torch)
                t0 = time.perf_counter()
                if name.endswith("config-only"):
                    cfg.save_pretrained(tmp)
                    profile = inspect_model(tmp)
                    with torch.device("cuda"):
                        torch.set_default_dtype(torch.bfloat16)
                        model = transformers.LlamaForCausalLM(cfg).eval()
                        torch.set_default_dtype(torch.float32)
                else:
                    transformers.LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(tmp)
                    profile = inspect_model(tmp)
                    model = transformers.AutoModelForCausalLM.from_pretrained(
                        tmp, dtype=torch.bfloat16, device_map="cuda"
                    ).eval()
                load_s = time.perf_counter() - t0
                weights = int(torch.cuda.memory_allocated()) - base
                for batch, context in GEN_SHAPES:
                    est = size_model(profile, engine="transformers", context=context,
                                     concurrency=batch).estimate  # fmt: skip
                    torch.cuda.reset_peak_memory_stats()
                    ids = torch.randint(100, 1000, (batch, context - 16), device="cuda")
                    with torch.inference_mode():
                        model.generate(ids, attention_mask=torch.ones_like(ids),
                                       max_new_tokens=16, min_new_tokens=16, do_sample=False,
                                       pad_token_id=0)  # fmt: skip
                    del ids
                    peak = int(torch.cuda.max_memory_allocated()) - base
                    rows.append(_row(est, weights, peak, kind="generator", model=name,
                                     parameters=profile.parameters,
                                     weights_source=profile.weights_source, batch=batch,
                                     context=context, load_s=round(load_s, 2)))  # fmt: skip
                    print(json.dumps(rows[-1]), flush=True)
                del model
            except Exception as exc:  # one model's failure must not lose the others
                traceback.print_exc()
                rows.append({"kind": "generator", "model": name, "error": repr(exc)})


def _encoders(torch: Any, transformers: Any, rows: list[dict[str, Any]]) -> None:
    from hfdeploy import inspect_model, size_model

    cfg = transformers.BertConfig(**BERT_BASE)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            torch.manual_seed(0)
            transformers.BertModel(cfg).save_pretrained(tmp)
            profile = inspect_model(tmp)
            base = _reset(torch)
            model = transformers.AutoModel.from_pretrained(
                tmp, dtype=torch.float32, device_map="cuda"
            ).eval()
            weights = int(torch.cuda.memory_allocated()) - base
            for batch, seq in ENCODER_SHAPES:
                est = size_model(profile, engine="hfdeploy", context=seq, concurrency=batch,
                                 max_batched_tokens=batch * seq).estimate  # fmt: skip
                torch.cuda.reset_peak_memory_stats()
                ids = torch.randint(1000, 2000, (batch, seq), device="cuda")
                with torch.inference_mode():
                    model(input_ids=ids, attention_mask=torch.ones_like(ids))
                del ids
                peak = int(torch.cuda.max_memory_allocated()) - base
                rows.append(_row(est, weights, peak, kind="encoder", model="bert-base-shaped",
                                 dtype="float32", parameters=profile.parameters, batch=batch,
                                 context=seq))  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
            del model
        except Exception as exc:
            traceback.print_exc()
            rows.append({"kind": "encoder", "error": repr(exc)})


def main() -> int:
    import torch
    import transformers

    if not torch.cuda.is_available():
        print("no CUDA device: nothing measured (this script needs a GPU)")
        return 0
    from hfdeploy.sizing.estimate import CUDA_CONTEXT_BYTES

    torch.zeros(1, device="cuda")
    free, total = torch.cuda.mem_get_info()
    context = (total - free) - int(torch.cuda.memory_reserved())
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    _generators(torch, transformers, rows)
    _encoders(torch, transformers, rows)
    ok = [r for r in rows if "peak_ratio" in r]
    result = {
        **header("gpu_memory"),
        "gpu": torch.cuda.get_device_name(0),
        "gpu_total_bytes": total,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda_context": {
            "measured": context,
            "estimate": CUDA_CONTEXT_BYTES,
            "ratio": _ratio(context, CUDA_CONTEXT_BYTES),
        },
        "summary": {
            "weights_ratio": sorted({r["weights_ratio"] for r in ok}),
            "peak_ratio_min": min((r["peak_ratio"] for r in ok), default=None),
            "peak_ratio_max": max((r["peak_ratio"] for r in ok), default=None),
            "underestimates": [
                f"{r['model']} {r['batch']}x{r['context']}" for r in ok if r["peak_ratio"] > 1.0
            ],
        },
        "seconds": round(time.perf_counter() - t0, 1),
        "rows": rows,
    }
    out = Path(os.environ["OUT"]) / "gpu_memory.json" if os.environ.get("OUT") else RESULTS
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"]), json.dumps(result["cuda_context"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
