"""hfdeploy's estimate against torch.cuda.max_memory_allocated, on a real GPU.

Random-weight Llama-shaped models from tiny to about 1B parameters are built from
configs (no download), saved as safetensors, profiled by hfdeploy from their headers,
then loaded on the GPU in bfloat16 and run once with a KV cache at a fixed
batch x context. Compared per model:
  - weights: bytes allocated after loading vs `weights.bytes`;
  - peak: max_memory_allocated during prefill + 16 decode steps vs weights + KV cache +
    activations of `hfdeploy size --engine transformers` at the same settings.
CUDA context and non-torch memory are outside torch's allocator and are not compared.

Needs CUDA: prints a message and exits 0 without one. Run from the repository root:
  .venv-dev/bin/python benchmarks/gpu_memory.py
Writes benchmarks/results/gpu_memory.json with the GPU's name.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).parent / "results" / "gpu_memory.json"
BATCH, CONTEXT = 8, 1024
SHAPES = {
    "tiny-20M": dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4,
                     num_attention_heads=4, num_key_value_heads=2, vocab_size=32000),
    "small-160M": dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                       num_attention_heads=12, num_key_value_heads=4, vocab_size=32000),
    "mid-500M": dict(hidden_size=1280, intermediate_size=3584, num_hidden_layers=20,
                     num_attention_heads=20, num_key_value_heads=4, vocab_size=50000),
    "1B": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
               num_attention_heads=32, num_key_value_heads=4, vocab_size=32000),
}  # fmt: skip


def main() -> None:
    import torch
    import transformers

    from hfdeploy import inspect_model, size_model

    if not torch.cuda.is_available():
        print("no CUDA device: nothing measured (this script needs a GPU)")
        return
    gpu = torch.cuda.get_device_name(0)
    rows = []
    for name, shape in SHAPES.items():
        cfg = transformers.LlamaConfig(**shape, max_position_embeddings=4096,
                                       tie_word_embeddings=False, dtype="bfloat16")  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(0)
            transformers.LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(tmp)
            profile = inspect_model(tmp)
            est = size_model(profile, engine="transformers", context=CONTEXT,
                             concurrency=BATCH).estimate  # fmt: skip
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            model = transformers.AutoModelForCausalLM.from_pretrained(
                tmp, dtype=torch.bfloat16, device_map="cuda"
            ).eval()
            weights = torch.cuda.memory_allocated() - base
            ids = torch.randint(100, 1000, (BATCH, CONTEXT - 16), device="cuda")
            with torch.inference_mode():
                model.generate(ids, max_new_tokens=16, min_new_tokens=16, do_sample=False)
            peak = torch.cuda.max_memory_allocated() - base
            del model
        predicted = est.weights.bytes + est.kv_cache.bytes + est.activations.bytes
        rows.append({
            "model": name, "parameters": profile.parameters,
            "weights_estimate": est.weights.bytes, "weights_measured": weights,
            "weights_ratio": round(weights / est.weights.bytes, 3),
            "peak_estimate": predicted, "peak_measured": peak,
            "peak_ratio": round(peak / predicted, 3),
        })  # fmt: skip
        print(rows[-1])
    result = {"gpu": gpu, "batch": BATCH, "context": CONTEXT, "torch": torch.__version__}
    OUT.write_text(json.dumps({**result, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
