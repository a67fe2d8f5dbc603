"""The decode roofline `hfdeploy plan` reports, against decode steps timed on a real GPU.

`hfdeploy plan` gives, per replica, a decode step time: the bytes one step must read
(weights on the rank plus the KV cache at half the context, on average) at the GPU's
catalog bandwidth, or the step's FLOPs (2 x active parameters x concurrency) at its dense
peak when that is longer. The plan calls the resulting tokens/s a ceiling. This script
checks that it is one, and how tight, on the GPU it runs on.

For a Llama-3-8B-shaped model in bf16 (random weights allocated on the GPU; no download)
it times a minimal decode step at several (concurrency, context) points: per layer RMSNorm,
fused QKV projection, attention of each new token over a KV buffer holding half the
context (grouped-query, as SDPA over [batch, kv_heads, group, head_dim]), output
projection, SwiGLU MLP; then the final norm and the LM head. This is what an engine's
decode does with CUDA graphs, minus sampling and paged-cache indexing, so it is close to
the best a real engine can reach. The step is timed eagerly and replayed from a CUDA graph.

Reported per point: the plan's step time and regime, the measured step time (graph and
eager; the graph step with weights as x @ W and as F.linear(x, W^T), the faster counted),
measured / plan (at least 1 if the plan's figure is a ceiling), and the bandwidth the
graph step reached (bytes it must read / its time). Also the bandwidth of a plain
streaming read (a sum over 8 GiB), for what the memory system gives at best.

Needs CUDA (prints a message and exits 0 without it). From the repository root:
  PYTHONPATH=src python benchmarks/gpu_roofline.py
Writes benchmarks/results/gpu_roofline.json (or $OUT/gpu_roofline.json when OUT is set).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from _results import header

RESULTS = Path(__file__).parent / "results" / "gpu_roofline.json"
# (concurrency, context): the plan's KV term is the cache at half the context.
POINTS = [(1, 4096), (8, 4096), (32, 4096), (128, 4096), (512, 512)]
GPU_NAMES = {"H200": "h200", "H100": "h100", "A100": "a100-80gb", "L4": "l4", "L40S": "l40s"}


def _plan_roofline(folder: Path, gpu: str, conc: int, ctx: int) -> dict[str, Any]:
    from hfdeploy import inspect_model
    from hfdeploy.plan.planner import plan_deployment

    plan = plan_deployment(inspect_model(str(folder)), gpu=gpu, context=ctx, concurrency=conc)
    if plan.tp != 1 or plan.quantization is not None:
        raise SystemExit(f"{conc} x {ctx}: planned TP {plan.tp}, {plan.quantization}; want 1 GPU")
    if plan.roofline is None:
        raise SystemExit(f"{conc} x {ctx}: the plan has no roofline")
    return plan.roofline.to_dict()


def _shapes() -> dict[str, dict[str, Any]]:
    from tests._synthetic import LLAMA3_8B, LLAMA3_70B

    # The 70B shape's matrices (8192 wide, 28672 inner) with 10 of its 80 layers, so it
    # fits one GPU: the per-layer efficiency is what a 70B on TP ranks sees.
    return {
        "llama3-8b": LLAMA3_8B,
        "llama3-70b-shape-10-layers": {**LLAMA3_70B, "num_hidden_layers": 10},
    }


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return 0
    name = torch.cuda.get_device_name(0)
    gpu = next((v for k, v in GPU_NAMES.items() if k in name), None)
    if gpu is None:
        print(f"{name} is not one this script maps to the catalog: {sorted(GPU_NAMES)}")
        return 0
    dev = torch.device("cuda")
    # What the memory system gives a plain streaming read (a reduction over 8 GiB).
    big = torch.empty(4 * 2**30, device=dev, dtype=torch.bfloat16).normal_()
    big.sum()
    reduce = big.sum
    read_ms = _time_it(torch, reduce, 10)
    read_tb_s = round(big.numel() * 2 / read_ms / 1e9, 2)
    del reduce, big
    torch.cuda.empty_cache()
    print(f"{name}: streaming read {read_tb_s} TB/s")
    rows = []
    for label, config in _shapes().items():
        rows += _measure(torch, dev, gpu, label, config)
        torch.cuda.empty_cache()
    out = {
        **header("gpu_roofline"),
        "gpu": name,
        "catalog_gpu": gpu,
        "torch": torch.__version__,
        "models": "Llama-3 shapes from tests/_synthetic.py, bf16, random weights",
        "streaming_read_tb_per_s": read_tb_s,
        "rows": rows,
        "summary": {
            label: {
                "graph_over_plan_min": min(r["graph_over_plan"] for r in rs),
                "graph_over_plan_max": max(r["graph_over_plan"] for r in rs),
            }
            for label in _shapes()
            if (rs := [r for r in rows if r["model"] == label])
        }
        | {"plan_is_a_ceiling": all(r["graph_over_plan"] >= 1 for r in rows)},
    }
    dest = Path(os.environ["OUT"]) / RESULTS.name if os.environ.get("OUT") else RESULTS
    dest.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out["summary"]))
    return 0


def _time_it(torch: Any, fn: Any, n: int) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(n):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return float(times[len(times) // 2])  # median, ms


def _measure(torch: Any, dev: Any, gpu: str, label: str, c: dict[str, Any]) -> list[dict[str, Any]]:
    import torch.nn.functional as F
    from tests._synthetic import config_folder

    hid, inter, layers = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    heads, kvh, vocab = c["num_attention_heads"], c["num_key_value_heads"], c["vocab_size"]
    hd = hid // heads
    group = heads // kvh
    torch.manual_seed(0)
    bf = torch.bfloat16

    def w(*shape: int) -> Any:
        return torch.randn(*shape, device=dev, dtype=bf) * 0.02

    t0 = time.perf_counter()
    weights = [
        {
            "ln1": torch.ones(hid, device=dev, dtype=bf),
            "qkv": w(hid, (heads + 2 * kvh) * hd),
            "o": w(heads * hd, hid),
            "ln2": torch.ones(hid, device=dev, dtype=bf),
            "gate_up": w(hid, 2 * inter),
            "down": w(inter, hid),
        }
        for _ in range(layers)
    ]
    # nn.Linear's layout, [out, in], as the engines hold weights (F.linear): timed too.
    for lw in weights:
        for key in ("qkv", "o", "gate_up", "down"):
            lw[key + "_t"] = lw[key].t().contiguous()
    embed = w(vocab, hid)
    norm = torch.ones(hid, device=dev, dtype=bf)
    lm_head = w(hid, vocab)
    torch.cuda.synchronize()
    weight_bytes = sum(
        t.numel() * t.element_size() for lw in weights for k, t in lw.items() if k[-2:] != "_t"
    )
    weight_bytes += (norm.numel() + lm_head.numel()) * 2  # the embedding is gathered, not read
    print(f"{label}: weights allocated in {time.perf_counter() - t0:.1f}s, "
          f"{weight_bytes / 2**30:.2f} GiB read per step")  # fmt: skip

    def rms(x: Any, g: Any) -> Any:
        return F.rms_norm(x, (x.shape[-1],), g, 1e-5)

    def make_step(tokens: Any, kv: list[tuple[Any, Any]], linear: bool) -> Any:
        b = tokens.shape[0]

        def mm(x: Any, lw: dict[str, Any], key: str) -> Any:
            return F.linear(x, lw[key + "_t"]) if linear else x @ lw[key]

        def step() -> Any:
            x = embed[tokens]
            for lw, (k_cache, v_cache) in zip(weights, kv, strict=True):
                qkv = mm(rms(x, lw["ln1"]), lw, "qkv")
                q, k, v = qkv.split([heads * hd, kvh * hd, kvh * hd], dim=-1)
                # the new token's K and V go to the last slot of the buffer
                k_cache[:, :, -1] = k.view(b, kvh, hd)
                v_cache[:, :, -1] = v.view(b, kvh, hd)
                a = F.scaled_dot_product_attention(q.view(b, kvh, group, hd), k_cache, v_cache)
                x = x + mm(a.reshape(b, heads * hd), lw, "o")
                gate, up = mm(rms(x, lw["ln2"]), lw, "gate_up").chunk(2, dim=-1)
                x = x + mm(F.silu(gate) * up, lw, "down")
            return rms(x, norm) @ lm_head

        return step

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = config_folder(Path(tmp) / label, c)
        for conc, ctx in POINTS:
            roof = _plan_roofline(folder, gpu, conc, ctx)
            filled = ctx // 2
            kv = [
                (torch.randn(conc, kvh, filled, hd, device=dev, dtype=bf),
                 torch.randn(conc, kvh, filled, hd, device=dev, dtype=bf))
                for _ in range(layers)
            ]  # fmt: skip
            kv_bytes = 2 * layers * conc * kvh * filled * hd * 2
            tokens = torch.randint(0, vocab, (conc,), device=dev)
            graph_by_layout = {}
            eager_ms = 0.0
            for linear in (False, True):
                step = make_step(tokens, kv, linear)
                for _ in range(3):
                    step()
                if not linear:
                    eager_ms = _time_it(torch, step, 10)
                graph = torch.cuda.CUDAGraph()
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(3):
                        step()
                torch.cuda.current_stream().wait_stream(side)
                with torch.cuda.graph(graph):
                    step()
                graph.replay()
                graph_by_layout["linear" if linear else "matmul"] = _time_it(
                    torch, graph.replay, 30
                )
                del graph
            graph_ms = min(graph_by_layout.values())
            plan_ms = roof["decode_step_ms"]
            row = {
                "model": label,
                "concurrency": conc,
                "context": ctx,
                "kv_tokens_per_sequence": filled,
                "plan_regime": roof["regime"],
                "plan_step_ms": plan_ms,
                "plan_tokens_per_s": roof["decode_tokens_per_s_per_replica"],
                "measured_graph_step_ms": round(graph_ms, 3),
                "graph_step_ms_by_layout": {k: round(v, 3) for k, v in graph_by_layout.items()},
                "measured_eager_step_ms": round(eager_ms, 3),
                "graph_over_plan": round(graph_ms / plan_ms, 3),
                "eager_over_plan": round(eager_ms / plan_ms, 3),
                "measured_tokens_per_s": round(conc / graph_ms * 1000, 1),
                "bytes_per_step": weight_bytes + kv_bytes,
                "achieved_tb_per_s": round((weight_bytes + kv_bytes) / graph_ms / 1e9, 2),
            }
            rows.append(row)
            print(json.dumps(row))
            del kv, step
            torch.cuda.empty_cache()
    return rows  # the weights go with this frame


if __name__ == "__main__":
    sys.exit(main())
