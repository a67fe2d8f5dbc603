"""How fast `hfdeploy bench`'s client can send, and that it fails loudly past that.

Against a trivial loopback endpoint (tests/bench/fake_server.py: asyncio + uvloop, answers
/embed at once) in its own process:
  1. closed loop, 64 connections, 10 s: the client's ceiling on this machine, next to the
     same load from the bare keep-alive loop in serve_throughput.py (the baseline, same run,
     same server: a client that only writes and reads, and records nothing);
  2. open loop at 2,000 req/s for 10 s: must be a valid run (no client check failing) with
     the dispatched rate within 1% of the offered rate;
  3. open loop at 3x the measured ceiling: must fail loudly (pre-flight refusal or an
     invalid run), never report numbers as if they were the server's.

Run from the repository root: .venv-dev/bin/python benchmarks/bench_client.py
Writes benchmarks/results/bench_client.json.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from tests.serve._fixtures import free_port  # noqa: E402

from _results import header  # noqa: E402
from hfdeploy.bench import BenchConfig, run_bench  # noqa: E402
from hfdeploy.errors import ClientBottleneckError  # noqa: E402

OUT = Path(__file__).parent / "results" / "bench_client.json"
SECONDS = 10.0


def bare_closed(port: int, conns: int, seconds: float) -> float:
    """The baseline: serve_throughput.py's bare loop, on uvloop like the bench client."""
    import uvloop

    from serve_throughput import load

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        run = load("bare", port, "/embed", {"inputs": ["hello world"]}, conns, seconds, 1.0)
    finally:
        asyncio.set_event_loop_policy(None)
    return float(run.rps)


def main() -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/bench/fake_server.py"), "--port", str(port)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "ready"
    url = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = header("bench_client")
    try:
        base = dict(api="tei-embed", input_tokens="4", warmup=200)
        closed = run_bench(
            BenchConfig(url, profile="concurrent:64", duration=SECONDS, no_client_check=True,
                        **base)  # type: ignore[arg-type]
        ).to_dict(records=False)  # fmt: skip
        ceiling = closed["summary"]["request_throughput"]
        baseline = bare_closed(port, 64, SECONDS)
        result["closed_64"] = {
            "hfdeploy_rps": ceiling,
            "client_cpu_share": closed["phases"][0]["client"]["cpu_share_of_one_core"],
            "bare_loop_rps": round(baseline, 1),
            "ratio_vs_bare_loop": round(ceiling / baseline, 2),
        }
        print("closed loop, 64 connections:", result["closed_64"])

        rate = 2000.0
        open_run = run_bench(
            BenchConfig(url, profile=f"constant:{rate:g}", duration=SECONDS, **base)  # type: ignore[arg-type]
        )
        o = open_run.to_dict(records=False)
        client = o["phases"][0]["client"]
        result["open_2000"] = {
            "valid": open_run.valid,
            "invalid_reason": open_run.invalid_reason,
            "offered": rate,
            "dispatched_rate": client["dispatched_rate"],
            "completed_rate": o["summary"]["request_throughput"],
            "dispatch_lag_p99_ms": client["dispatch_lag_ms"]["p99"],
            "client_cpu_share": client["cpu_share_of_one_core"],
            "e2e_p50_ms": o["summary"]["e2e_ms"]["p50"],
            "e2e_p99_ms": o["summary"]["e2e_ms"]["p99"],
            "errors": o["summary"]["errors"],
        }
        print("open loop, 2,000 req/s:", result["open_2000"])

        too_much = round(3 * ceiling)
        try:
            r = run_bench(
                BenchConfig(url, profile=f"constant:{too_much}", duration=3.0, **base)  # type: ignore[arg-type]
            )
            outcome = {"failed_loudly": not r.valid, "how": "invalid run",
                       "reason": r.invalid_reason}  # fmt: skip
        except ClientBottleneckError as e:
            outcome = {"failed_loudly": True, "how": "pre-flight refusal", "reason": e.message}
        result["over_ceiling"] = {"offered": too_much, **outcome}
        print("open loop at 3x the ceiling:", result["over_ceiling"])
        # Without the warm-up there is no pre-flight: the in-run checks must catch it.
        r = run_bench(
            BenchConfig(url, profile=f"constant:{too_much}", duration=3.0,
                        **(base | {"warmup": 0}))  # type: ignore[arg-type]
        )  # fmt: skip
        result["over_ceiling_no_preflight"] = {
            "offered": too_much, "failed_loudly": not r.valid, "reason": r.invalid_reason,
        }  # fmt: skip
        print("same, no pre-flight:", result["over_ceiling_no_preflight"])
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()
    result["verdict"] = {
        "sustains_2000": bool(
            result["open_2000"]["valid"]
            and result["open_2000"]["dispatched_rate"] >= 0.99 * 2000
            and result["open_2000"]["completed_rate"] >= 0.99 * 2000
        ),
        "fails_loudly_past_its_ceiling": bool(
            result["over_ceiling"]["failed_loudly"]
            and result["over_ceiling_no_preflight"]["failed_loudly"]
        ),
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["verdict"]))


if __name__ == "__main__":
    main()
