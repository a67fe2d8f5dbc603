"""How exactly `hfdeploy bench --api duplex` measures, and how many sessions its client drives.

Against the fake full-duplex server (tests/bench/fake_duplex.py, its own process):
  1. accuracy, repeated --repeats times: a server with a 300 ms handshake, 200 ms to the
     first audio and one 400 ms gap (its schedule 320 ms late after it); the error of each
     measured value against what was injected. Once on a quiet machine, once with a busy
     loop holding one core (the noisy neighbour a CI machine has);
  2. capacity: 1, 16, 64 and 128 sessions of 10 s against a server with no cost per frame:
     the client's CPU share of one core and how late it sent its frames (p99), and whether
     every session stayed real time (a server that cannot fall behind, so a session that
     did not stay real time was the client's doing).

Run from the repository root: .venv-dev/bin/python benchmarks/duplex_client.py
Writes benchmarks/results/duplex_client.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from tests.bench.conftest import start_duplex  # noqa: E402

from _results import header  # noqa: E402
from hfdeploy.bench import DuplexConfig, run_duplex_bench  # noqa: E402

OUT = Path(__file__).parent / "results" / "duplex_client.json"
INJECTED = {"handshake_ms": 300.0, "first_audio_ms": 200.0, "longest_gap_ms": 400.0,
            "drift_ms": 320.0}  # fmt: skip


def accuracy(repeats: int, *, burn: bool) -> dict[str, Any]:
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if burn else None
    try:
        errors = _errors(repeats)
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()
    return {
        "one_core_busy": burn,
        "errors_ms": errors,
        "min_error_ms": {k: min(v) for k, v in errors.items()},
        "max_error_ms": {k: max(v) for k, v in errors.items()},
    }


def _errors(repeats: int) -> dict[str, list[float]]:
    errors: dict[str, list[float]] = {k: [] for k in INJECTED}
    for _ in range(repeats):
        fake = start_duplex("--handshake-ms", "300", "--first-audio-ms", "200",
                            "--stall-at", "0.8", "--stall-ms", "400")  # fmt: skip
        try:
            r = run_duplex_bench(DuplexConfig(fake.url, duration=2.0)).to_dict()
        finally:
            fake.stop()
        row = r["phases"][0]["sessions"][0]
        for key, truth in INJECTED.items():
            errors[key].append(round(row[key] - truth, 3))
    return errors


def capacity(counts: list[int], seconds: float) -> list[dict[str, Any]]:
    fake = start_duplex()
    try:
        profile = "concurrent:" + ",".join(map(str, counts))
        r = run_duplex_bench(
            DuplexConfig(fake.url, profile=profile, duration=seconds, no_client_check=True)
        ).to_dict()
    finally:
        fake.stop()
    return [
        {
            "sessions": p["concurrency"],
            "cpu_share_of_one_core": p["client"]["cpu_share_of_one_core"],
            "send_lag_p99_ms": p["client"]["send_lag_ms"]["p99"],
            "send_lag_max_ms": p["client"]["send_lag_ms"]["max"],
            "jitter_p99_ms": p["summary"]["jitter_ms"]["p99"],
            "realtime_sessions": p["summary"]["realtime_sessions"],
        }
        for p in r["phases"]
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds per capacity phase")
    args = ap.parse_args()
    result: dict[str, Any] = header("duplex_client")
    result["injected_ms"] = INJECTED
    result["accuracy"] = [accuracy(args.repeats, burn=b) for b in (False, True)]
    result["capacity"] = capacity([1, 16, 64, 128], args.seconds)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    summary = [{k: a[k] for k in ("one_core_busy", "min_error_ms", "max_error_ms")}
               for a in result["accuracy"]]  # fmt: skip
    print(json.dumps({"accuracy": summary, "capacity": result["capacity"]}, indent=2))


if __name__ == "__main__":
    main()
