"""Soak: hfdeploy serve at ~80% of its measured capacity for 5 minutes.

Measures capacity first (closed loop, 64 clients), then sends requests at a
constant rate of ``--load`` x capacity from a pool of keep-alive connections,
sampling the server's RSS every 5 s. Verdict: RSS growth from the end of the
warm-up minute to the end, and every non-2xx response counted.

    python benchmarks/serve_soak.py                       # 5 min + ~1 min
    python benchmarks/serve_soak.py --seconds 60 --load 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from _results import header
from serve_throughput import (
    PY,
    SENTENCE,
    _model_path,
    _port,
    _request,
    _start,
    _stop,
    load,
)

RESULTS = Path(__file__).resolve().parent / "results" / "serve_soak.json"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def _read_response(reader: asyncio.StreamReader) -> int:
    status = int((await reader.readline()).split(b" ", 2)[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def soak(port: int, pid: int, rate: float, seconds: float, connections: int) -> dict:
    req = _request("/embed", {"inputs": SENTENCE}, port)
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    late = 0
    samples: list[tuple[float, int]] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        conn = await pool.get()
        t = time.perf_counter()
        conn[1].write(req)
        code = await _read_response(conn[0])
        latencies.append(time.perf_counter() - t)
        statuses[code] = statuses.get(code, 0) + 1
        pool.put_nowait(conn)

    start = time.perf_counter()
    next_sample = start
    n = 0
    while (now := time.perf_counter()) - start < seconds:
        if now >= next_sample:
            samples.append((round(now - start, 1), rss_bytes(pid)))
            next_sample += 5
        due = start + n / rate
        if due > now:
            await asyncio.sleep(due - now)
        elif now - due > 0.05:
            late += 1
        if pool.empty():
            late += 1
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
    await asyncio.gather(*tasks)
    samples.append((round(time.perf_counter() - start, 1), rss_bytes(pid)))
    while not pool.empty():
        pool.get_nowait()[1].close()
    latencies.sort()
    warm = [rss for t, rss in samples if t >= 60] or [samples[0][1]]
    growth = (samples[-1][1] - warm[0]) / warm[0]
    return {
        "sent": n,
        "statuses": statuses,
        "non_2xx": sum(c for s, c in statuses.items() if not 200 <= s < 300),
        "late_sends": late,
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "rss_mib": [(t, round(b / 2**20, 1)) for t, b in samples],
        "rss_after_warmup_mib": round(warm[0] / 2**20, 1),
        "rss_end_mib": round(samples[-1][1] / 2**20, 1),
        "rss_growth_after_warmup": round(growth, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--load", type=float, default=0.8, help="fraction of measured capacity")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    port = _port()
    model = _model_path(PY)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            str(PY.with_name("hfdeploy")),
            "serve",
            model,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        proc = _start(cmd, f"http://127.0.0.1:{port}/ready", Path(tmp) / "server.log")
        try:
            capacity = load("hfdeploy", port, "/embed", {"inputs": SENTENCE}, 64, 20, 3)
            rate = capacity.rps * args.load
            print(
                f"capacity {capacity.rps} req/s; soaking at {rate:.1f} req/s"
                f" for {args.seconds:.0f}s"
            )
            result = asyncio.run(soak(port, proc.pid, rate, args.seconds, args.connections))
        finally:
            _stop(proc)
    out = {
        **header("serve_soak"),
        "capacity_rps": capacity.rps,
        "rate_rps": round(rate, 1),
        "seconds": args.seconds,
        **result,
        "verdict": {
            "rss_growth_under_5pct": result["rss_growth_after_warmup"] < 0.05,
            "no_non_2xx": result["non_2xx"] == 0,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "rss_mib"}, indent=2))


if __name__ == "__main__":
    main()
