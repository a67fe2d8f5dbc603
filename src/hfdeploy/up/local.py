"""The local part of ``hfdeploy up``: can this machine serve the model, then serve, wait for
ready, bench with the server's memory sampled, and stop it.

The server is hfdeploy's own (``python -m hfdeploy serve``) in a child process with a session
of its own; it is stopped in a ``finally`` (SIGTERM, then SIGKILL), whatever happened.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hfdeploy.errors import UpError
from hfdeploy.up.steps import Flow

__all__ = ["serve_and_bench", "serve_blocker"]


def _has_gpu() -> bool:
    return Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi") is not None


def serve_blocker(profile: Any, plan: Any) -> str | None:
    """Why this machine cannot serve the model with hfdeploy's server, or None."""
    import psutil

    if profile.source == "hub":
        return "the model is not on disk here (a Hub model is fetched first)"
    from hfdeploy.serve.runtime import SERVED_TASKS

    if profile.task.task not in SERVED_TASKS:
        return f"hfdeploy's server does not run {profile.task.task!r} models"
    if not profile.formats.safetensors:
        return "the folder has no safetensors weights for hfdeploy's server to load"
    # A full-duplex model on hfdeploy's server runs here on CPU too: the server measures the
    # conversations it holds in real time at warm-up (a small model's; a 7B one's memory
    # check below stops it).
    cpu_duplex = profile.duplex is not None and plan.engine.name == "hfdeploy"
    if plan.gpu is not None and not _has_gpu() and not cpu_duplex:
        return (
            f"the plan needs {plan.placement} for {plan.engine.name} "
            "and this machine has no NVIDIA GPU"
        )
    free = psutil.virtual_memory().available
    if profile.size_on_disk > free / 2:
        return (f"the model ({profile.size_on_disk / 2**30:.1f} GiB) is more than half of this "
                f"machine's free memory ({free / 2**30:.1f} GiB)")  # fmt: skip
    return None


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float) -> float:
    import httpx

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-1200:]
            raise UpError(
                "serve", f"the server exited with code {proc.returncode}:\n{tail}",
                hint=f"See {log}; run the server by hand: hfdeploy serve MODEL",
            )  # fmt: skip
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/ready", timeout=2.0).status_code == 200:
                return time.perf_counter() - t0
        time.sleep(0.1)
    raise UpError("serve", f"not ready after {timeout:g} s",
                  hint=f"See {log}; a large model on CPU needs longer")  # fmt: skip


def serve_and_bench(
    flow: Flow,
    location: str,
    port: int,
    seconds: float,
    timeout: float,
    out: Path,
    *,
    duplex: bool = False,
) -> None:
    """The serve, bench and stop steps; their figures go into ``flow.result.data``
    (``duplex``: conversations on ``/api/chat``, in ``duplex_bench``).

    Raises:
        UpError: the port is taken, the server exited or was not ready in ``timeout``
            seconds, or the benchmark client fell behind.
    """
    from hfdeploy.bench import BenchConfig, run_bench
    from hfdeploy.bench.process import listening, spawn, stop

    data = flow.result.data
    url = f"http://127.0.0.1:{port}"
    log = out / "serve.log"
    proc = None
    try:
        with flow.step("serve") as s:
            if listening("127.0.0.1", port):
                raise UpError("serve", f"something already listens on port {port}",
                              hint="Stop it, or pass another --port")  # fmt: skip
            proc = spawn([sys.executable, "-m", "hfdeploy", "serve", location,
                          "--port", str(port), "--host", "127.0.0.1"], log=log)  # fmt: skip
            waited = _wait_ready(proc, url, log, timeout)
            s.detail = f"ready at {url} in {waited:.1f} s (pid {proc.pid}, log {log.name})"
            data["serve"] = {"url": url, "pid": proc.pid, "ready_s": round(waited, 3),
                             "command": f"hfdeploy serve {location} --port {port}"}  # fmt: skip
        if duplex:
            with flow.step("bench") as s:
                s.detail = _duplex_bench(data, url, seconds)
            return
        with flow.step("bench") as s:
            bench = run_bench(
                BenchConfig(
                    url,
                    profile="concurrent:1,4",
                    duration=max(seconds / 2, 0.5),
                    input_tokens="uniform:8:64",
                    output_tokens="32",
                    memory_pid=proc.pid,
                    memory_interval=0.25,
                )
            )
            bd = bench.to_dict()
            data["bench"] = bd
            summary = bd["summary"] or {}
            s.detail = (f"{summary.get('request_throughput', 0):,.1f} req/s, E2E p50 "
                        f"{(summary.get('e2e_ms') or {}).get('p50')} ms at "
                        f"{bd['summary_phase']}; {summary.get('errors', 0)} errors")  # fmt: skip
            if not bench.valid:
                raise UpError(
                    "bench", f"the benchmark client fell behind: {bench.invalid_reason}",
                    hint="Rerun with a longer --bench-duration on a quieter machine",
                )  # fmt: skip
    finally:
        if proc is not None:
            with flow.step("stop") as s:
                code = stop(proc, grace=30)
                s.detail = f"server stopped (exit code {code})"
                data.setdefault("serve", {})["exit_code"] = code


def _duplex_bench(data: dict[str, Any], url: str, seconds: float) -> str:
    """One and two conversations at once, each for half of ``seconds``; the step's detail.

    Raises:
        UpError: the benchmark client fell behind.
    """
    from hfdeploy.bench.duplex import run_duplex_bench
    from hfdeploy.bench.duplex_config import DuplexConfig

    cfg = DuplexConfig(url, profile="concurrent:1,2", duration=max(seconds / 2, 1.0))
    result = run_duplex_bench(cfg)
    data["duplex_bench"] = result.to_dict(records=False)
    if not result.valid:
        raise UpError(
            "bench", f"the benchmark client fell behind: {result.invalid_reason}",
            hint="Rerun with a longer --bench-duration on a quieter machine",
        )  # fmt: skip
    n = result.largest_realtime_sessions
    return (f"{n if n is not None else 'no'} conversation(s) held in real time of "
            f"{max(p.sessions for p in result.phases)} tried ({result.codec})")  # fmt: skip
