"""The frame step of a PersonaPlex-shaped model on a GPU, against hfdeploy's prediction.

Builds the moshi package's LM with random weights in bf16 (the 7B shape, 16 depformer
steps as PersonaPlex's loader sets, or 8 for Moshi), and its Mimi codec; streams frames
through ``LMGen.step`` as the servers do, first filling the KV ring buffer to its context
(the steady state of a long conversation), then timing steps. Each step is synchronised:
a frame's wall time. Runs twice, with CUDA graphs (the servers' default) and eager
(``NO_CUDA_GRAPH=1``), in separate processes. Mimi's encode and decode of one frame are
timed too. Recorded beside ``plan.realtime.frame_step``'s prediction for the same GPU from
the catalog, so ``DEPFORMER_STEP_FLOOR_MS`` and ``CODEC_MS`` can be calibrated.

Needs the moshi package (it pins torch<2.10; installed without its dependencies it runs on
newer torch): ``pip install --no-deps --target /tmp/moshi-pkg moshi==0.2.13 einops
sentencepiece``, then from the repository root:

    PYTHONPATH=/tmp/moshi-pkg .venv-dev/bin/python benchmarks/gpu_duplex_step.py

``--layers``, ``--context`` and ``--steps`` shrink the run to check it on CPU first.
Writes benchmarks/results/gpu_duplex_step.json (or $OUT/gpu_duplex_step.json), naming
the device.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _results import header


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(dep_q: int, layers: int, context: int, steps: int) -> dict[str, Any]:
    """One process: fill the ring buffer, then time ``steps`` frames; time Mimi."""
    import torch
    from moshi.models import loaders
    from moshi.models.lm import LMGen, LMModel

    device = "cuda" if torch.cuda.is_available() else "cpu"
    kwargs = dict(loaders._lm_kwargs) | {"dep_q": dep_q, "num_layers": layers,
                                           "context": context}  # fmt: skip
    torch.manual_seed(0)
    lm = LMModel(device=device, dtype=torch.bfloat16, **kwargs).eval()
    gen = LMGen(lm)
    gen.streaming_forever(1)
    codes = torch.zeros(1, 8, 1, dtype=torch.long, device=device)

    def step() -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            gen.step(codes)
        if device == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) * 1000

    for _ in range(context + 8):  # the ring buffer full: every step attends to all of it
        step()
    times = [step() for _ in range(steps)]
    mimi = loaders.get_mimi(None, device=device)
    mimi.streaming_forever(1)
    frame = torch.zeros(1, 1, 1920, device=device)
    codec = []
    for i in range(steps // 4 + 4):
        t0 = time.perf_counter()
        with torch.no_grad():
            enc = mimi.encode(frame)
            mimi.decode(enc[:, :8])
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 4:
            codec.append((time.perf_counter() - t0) * 1000)
    return {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "dep_q": dep_q, "layers": layers, "context_frames": context, "steps": steps,
        "cuda_graphs": os.environ.get("NO_CUDA_GRAPH", "") in ("", "0", "no", "n"),
        "step_ms_p50": round(statistics.median(times), 2),
        "step_ms_p95": round(_percentile(times, 0.95), 2),
        "step_ms_max": round(max(times), 2),
        "mimi_encode_decode_ms_p50": round(statistics.median(codec), 2),
        "peak_memory_bytes": int(torch.cuda.max_memory_allocated()) if device == "cuda" else None,
    }  # fmt: skip


def _prediction(device: str, dep_q: int, context: int) -> dict[str, Any] | None:
    from hfdeploy.catalog.gpus import gpu_catalog
    from hfdeploy.plan.realtime import frame_step, reference_spec

    name = device.lower()
    gpu = next((g for g in gpu_catalog().gpus
                if g.name.lower().split("-")[0] in name), None)  # fmt: skip
    if gpu is None:
        return None
    spec = reference_spec("personaplex" if dep_q == 16 else "moshi")
    codecs = 2 if dep_q == 16 else 1
    return {
        mode: frame_step(spec, gpu, context_frames=context, codec_instances=codecs,
                         mode=mode).to_dict()
        for mode in ("cuda-graphs", "eager")
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dep-q", type=int, default=16, help="16: PersonaPlex; 8: Moshi")
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--context", type=int, default=3000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.dep_q, args.layers, args.context, args.steps)))
        return 0
    runs = []
    for graphs in (True, False):
        env = {**os.environ, "NO_CUDA_GRAPH": "" if graphs else "1", "NO_TORCH_COMPILE": "1"}
        sizes = ["--layers", str(args.layers), "--context", str(args.context)]
        cmd = [sys.executable, __file__, "--child", "--dep-q", str(args.dep_q), *sizes,
               "--steps", str(args.steps)]  # fmt: skip
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(runs[-1]))
    result = header("gpu_duplex_step") | {
        "runs": runs,
        "predicted": _prediction(runs[0]["device"], args.dep_q, args.context)
        if args.layers == 32 else None,
    }  # fmt: skip
    results = Path(__file__).parent / "results"
    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else results
    suffix = "" if runs[0]["device"] != "cpu" else "_cpu_check"
    out = out_dir / f"gpu_duplex_step{suffix}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
