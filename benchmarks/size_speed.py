"""How fast is `hfdeploy size` on a 70B checkpoint, and how many bytes does it read?

Builds a Llama-3-70B-shaped checkpoint (30 bf16 shards, 141 GB apparent size) whose
headers are real and whose data regions are sparse, then times, in the same run:
  - `hfdeploy size DIR --json` as a user runs it (a fresh process each time), and
  - reading every shard whole (what a tool that loads or hashes weights pays), the baseline.

Run from the repository root:  .venv-dev/bin/python benchmarks/size_speed.py
Writes benchmarks/results/size_speed.json and prints a summary.
"""

from __future__ import annotations

import json
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests._synthetic import LLAMA3_70B, llama_shaped_checkpoint

WORK = Path(__file__).parent / "_work" / "llama70b"
OUT = Path(__file__).parent / "results" / "size_speed.json"
RUNS = 5


def main() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    apparent = llama_shaped_checkpoint(WORK, LLAMA3_70B, shards=30)
    hfdeploy = Path(sys.executable).with_name("hfdeploy")
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [str(hfdeploy), "size", str(WORK), "--json", "--concurrency", "16"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        times.append(time.perf_counter() - t0)
    report = json.loads(proc.stdout)

    from hfdeploy import inspect_model

    bytes_read = inspect_model(str(WORK)).bytes_read
    t0 = time.perf_counter()
    whole = 0
    for shard in sorted(WORK.glob("*.safetensors")):
        with open(shard, "rb") as f:
            while chunk := f.read(64 * 2**20):
                whole += len(chunk)
    whole_s = time.perf_counter() - t0

    size_s = statistics.median(times)
    result = {
        "what": "hfdeploy size on a Llama-3-70B-shaped checkpoint, 30 sparse bf16 shards",
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, Python "
        f"{platform.python_version()}",
        "parameters": report["parameters"]["total"],
        "apparent_bytes": apparent,
        "hfdeploy_size_seconds_median": round(size_s, 3),
        "hfdeploy_size_seconds_all": [round(t, 3) for t in times],
        "hfdeploy_bytes_read": bytes_read,
        "read_whole_seconds": round(whole_s, 2),
        "read_whole_bytes": whole,
        "speedup_vs_read_whole": round(whole_s / size_s, 1),
        "bytes_ratio": round(whole / bytes_read),
        "note": "the data regions are sparse, so 'read whole' never touches a disk: on real "
        "weights it is slower still (disk or network bound)",
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
