"""``hfdeploy profile coldstart -- COMMAND``: time any server's start from the outside.

Each run starts the command in a new process group and polls, from the spawn:
  - listening: a TCP connect to the URL's port succeeds;
  - ready: the readiness route answers 200 (``/ready`` for hfdeploy, else ``/health``, which
    vLLM, TGI and TEI answer 200 only once the model is loaded; ``--ready-path`` to choose);
  - first request: one request of the benchmark's API answers 2xx.
For hfdeploy's own server it also reads the start-up phases from ``/metrics``
(``hfdeploy_startup_phase_seconds``: imports, preflight, torch_setup, model_load, warmup).
Then it stops the server (SIGTERM to the group, SIGKILL after 10 s) and starts the next run.

What "cold" means here: a new process each run. The OS page cache is not dropped (that
needs root), so from the second run on weights are usually read from memory; the report
says which run is first.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from hfdeploy.bench.apis import api_by_name
from hfdeploy.bench.dataset import Dist, synthetic_items
from hfdeploy.bench.http import Endpoint, Pool
from hfdeploy.bench.process import listening, spawn, stop
from hfdeploy.errors import BenchError, InvalidSettingError

__all__ = ["parse_startup_phases", "profile_coldstart"]

_POLL_S = 0.02
_MILESTONES = ("listening_s", "ready_s", "first_request_s")
_PHASE_ORDER = ("imports", "preflight", "torch_setup", "model_load", "warmup")


def parse_startup_phases(text: str) -> dict[str, float]:
    """hfdeploy's ``hfdeploy_startup_phase_seconds{phase=...}`` gauges from Prometheus text."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "hfdeploy_startup_phase_seconds" and "phase" in s.labels:
                    out[s.labels["phase"]] = round(float(s.value), 4)
    except ValueError:
        return {}
    return out


async def _status(pool: Pool, method: str, path: str, body: bytes = b"") -> int | None:
    try:
        res = await pool.request(method, path, body, headers={"Content-Type": "application/json"})
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return None
    return res.status


async def _one_run(
    command: list[str], endpoint: Endpoint, api: str, ready_path: str | None, timeout: float,
    log: Path,
) -> dict[str, Any]:  # fmt: skip
    adapter = api_by_name(api)
    item = synthetic_items(1, input_tokens=Dist("fixed", 8), output_tokens=Dist("fixed", 4),
                           batch=2 if api == "tei-rerank" else 1, seed=0)[0]  # fmt: skip
    t0 = time.perf_counter()
    proc = spawn(command, log=log)
    out: dict[str, Any] = dict.fromkeys(_MILESTONES)
    pool = Pool(endpoint, 1, timeout=5.0)
    paths = [ready_path] if ready_path else ["/ready", "/health"]
    try:
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-1500:]
                raise BenchError(
                    f"the server exited with code {proc.returncode} before it was ready; "
                    f"last output:\n{tail}",
                    hint="Run the command by hand to see why it fails; fix it, then profile.",
                )
            if out["listening_s"] is None:
                if listening(endpoint.host, endpoint.port):
                    out["listening_s"] = round(time.perf_counter() - t0, 4)
                else:
                    await asyncio.sleep(_POLL_S)
                    continue
            if out["ready_s"] is None:
                status = await _status(pool, "GET", paths[0])
                if status == 404 and len(paths) > 1:
                    paths.pop(0)  # no such route on this server: use the next one
                    continue
                if status != 200:
                    await asyncio.sleep(_POLL_S)
                    continue
                out["ready_s"] = round(time.perf_counter() - t0, 4)
                out["ready_path"] = paths[0]
            status = await _status(pool, "POST", adapter.path, adapter.encode(item, None))
            if status is not None and 200 <= status < 300:
                out["first_request_s"] = round(time.perf_counter() - t0, 4)
                break
            await asyncio.sleep(_POLL_S)
        else:
            raise BenchError(
                f"not ready within {timeout:g} s: {out}",
                hint="Raise --timeout, or check --url and --ready-path.",
            )
        metrics = await pool.request("GET", "/metrics")
        if metrics.status == 200:
            phases = parse_startup_phases(metrics.body.decode("utf-8", "replace"))
            if phases:
                out["server_phases"] = phases
    finally:
        await pool.close()
        stop(proc, grace=10)
    return out


def profile_coldstart(
    command: list[str],
    *,
    url: str,
    runs: int = 3,
    api: str = "tei-embed",
    ready_path: str | None = None,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Start ``command`` ``runs`` times; time listening, ready and first request (medians).

    Raises:
        InvalidSettingError: no command, or runs < 1. BenchError: the server exited or was
        not ready in time.
    """
    if not command:
        raise InvalidSettingError(
            "COMMAND", "", "give the server command after --",
            hint="hfdeploy profile coldstart -- hfdeploy serve ./model",
        )  # fmt: skip
    if runs < 1:
        raise InvalidSettingError("--runs", runs, "must be at least 1")
    if api == "auto":
        raise InvalidSettingError("--api", api, "name the API: the server is not up to ask")
    endpoint = Endpoint.parse(url)
    if listening(endpoint.host, endpoint.port):
        raise BenchError(
            f"something already listens on {endpoint.host}:{endpoint.port}",
            hint="Stop it first: the measurement would time that server, not a new one.",
        )
    rows = []
    with tempfile.TemporaryDirectory(prefix="hfdeploy-coldstart-") as tmp:
        for i in range(runs):
            log = Path(tmp) / f"run{i}.log"
            row = asyncio.run(_one_run(command, endpoint, api, ready_path, timeout, log))
            row["run"] = i + 1
            rows.append(row)
            deadline = time.monotonic() + 10
            while listening(endpoint.host, endpoint.port) and time.monotonic() < deadline:
                time.sleep(0.05)  # the port must be free before the next run

    def median(key: str) -> float | None:
        vals = [r[key] for r in rows if r.get(key) is not None]
        return round(statistics.median(vals), 4) if vals else None

    summary: dict[str, Any] = {k: median(k) for k in _MILESTONES}
    order = {p: i for i, p in enumerate(_PHASE_ORDER)}
    phase_names = sorted(
        {p for r in rows for p in r.get("server_phases", {})}, key=lambda p: order.get(p, 99)
    )
    if phase_names:
        summary["server_phases"] = {
            p: round(statistics.median(r["server_phases"].get(p, 0.0) for r in rows), 4)
            for p in phase_names
        }
    return {
        "hfdeploy": "profile coldstart",
        "command": command,
        "url": url,
        "runs": rows,
        "median": summary,
        "notes": [
            "times from the process spawn; medians over runs",
            "the OS page cache is not dropped between runs: run 1 may read weights from disk, "
            "later runs usually from memory",
        ],
    }
