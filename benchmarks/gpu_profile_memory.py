"""`hfdeploy profile memory` on a real GPU: does NVML see a CUDA process's memory, and is the
leak verdict right for GPU memory?

Two child processes, each watched for 10 s at 0.2 s intervals by the real CLI, the first 4 s
(python, torch and CUDA start-up) left out of the fit with --warmup 4:
  - leaking: allocates 64 MiB more of device memory every 0.2 s and keeps it;
  - stable: allocates 1 GiB once, then only computes on it.
Expected: GPU verdict leak-suspected for the first and stable for the second, with the scope
("processes" when NVML lists the child's pid, "device" when it cannot).

Needs CUDA and nvidia-ml-py: prints a message and exits 0 without them. Run from the
repository root: .venv-dev/bin/python benchmarks/gpu_profile_memory.py
Writes benchmarks/results/gpu_profile_memory.json (or $OUT/gpu_profile_memory.json).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _results import header

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "gpu_profile_memory.json"
LEAKING = (
    "import time, torch\nkeep = []\ntorch.zeros(1, device='cuda')\nwhile True:\n"
    "    keep.append(torch.ones(64 * 2**20, dtype=torch.uint8, device='cuda'))\n"
    "    time.sleep(0.2)\n"
)
STABLE = (
    "import time, torch\nx = torch.ones(2**30, dtype=torch.uint8, device='cuda')\n"
    "while True:\n    x.add_(1)\n    torch.cuda.synchronize()\n    time.sleep(0.2)\n"
)


def profile(code: str) -> dict[str, Any]:
    cmd = [
        sys.executable, "-c", "from hfdeploy.cli.main import main; main()",
        "profile", "memory", "--duration", "10", "--interval", "0.2", "--warmup", "4", "--json",
        "--", sys.executable, "-c", code,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    data = json.loads(proc.stdout)
    gpu_series = [s["gpu"] for s in data["samples"]]
    return {
        "gpu": data["gpu"],
        "gpu_scope": data.get("gpu_scope"),
        "gpu_first_bytes": gpu_series[0] if gpu_series else None,
        "gpu_last_bytes": data.get("gpu_last_bytes"),
        "device_last_bytes": data["samples"][-1]["gpu_device"] if data["samples"] else None,
        "rss_verdict": data["rss"]["verdict"],
        "samples": len(data["samples"]),
    }


def main() -> int:
    try:
        import pynvml
        import torch
    except ImportError as e:
        print(f"needs torch and nvidia-ml-py: {e}")
        return 0
    if not torch.cuda.is_available():
        print("no CUDA device: nothing measured (this script needs a GPU)")
        return 0
    pynvml.nvmlInit()
    result = {
        **header("gpu_profile_memory"),
        "gpu": torch.cuda.get_device_name(0),
        "driver": pynvml.nvmlSystemGetDriverVersion(),
        "leaking": profile(LEAKING),
        "stable": profile(STABLE),
    }
    result["verdict_right"] = (
        result["leaking"].get("gpu", {}).get("verdict") == "leak-suspected"
        and result["stable"].get("gpu", {}).get("verdict") == "stable"
    )
    out = Path(os.environ["OUT"]) / RESULTS.name if os.environ.get("OUT") else RESULTS
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
