"""``hfdeploy up``: the whole flow on one machine, ending in a measured endpoint and a report.

inspect → size and plan → generate (with the lock) → audit the generated files (an error
finding stops here) → serve the model with hfdeploy's own server in a child process → wait
for ready → a short bench, with the server's memory sampled → stop the server → report.

Serving is skipped, with the exact command to run instead, when this machine cannot do it:
a Hub model not yet on disk, a task hfdeploy's server does not run, or weights larger than
half of the free memory. Every step is timed; a failure names its step and the next action.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfdeploy.envelope import Envelope, lowest
from hfdeploy.errors import HfDeployError

__all__ = ["Step", "UpError", "UpResult", "run_up"]


class UpError(HfDeployError):
    """A step of ``hfdeploy up`` failed; the message names the step."""

    def __init__(self, step: str, message: str, *, hint: str) -> None:
        super().__init__(f"step {step}: {message}", hint=hint)
        self.step = step

    def fields(self) -> dict[str, Any]:
        return {"step": self.step}


@dataclass(slots=True)
class Step:
    name: str
    status: str = "ok"  # ok, skipped, failed
    seconds: float = 0.0
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "seconds": round(self.seconds, 3),
                "detail": self.detail}  # fmt: skip


@dataclass(slots=True)
class UpResult:
    model: str
    out: Path
    steps: list[Step] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    envelope: Envelope | None = None

    @property
    def ok(self) -> bool:
        return all(s.status != "failed" for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "hfdeploy": "up",
            "model": self.model,
            "out": str(self.out),
            "ok": self.ok,
            "steps": [s.to_dict() for s in self.steps],
            **self.data,
            "envelope": self.envelope.to_dict() if self.envelope else None,
        }


OnStep = Callable[[Step], None]


class _Flow:
    def __init__(self, result: UpResult, on_step: OnStep | None) -> None:
        self.result = result
        self.on_step = on_step

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[Step]:
        step = Step(name)
        t0 = time.perf_counter()
        try:
            yield step
        except UpError:
            step.status = "failed"
            raise
        except HfDeployError as e:  # name the step, keep the library's message and hint
            step.status = "failed"
            step.detail = e.message
            raise UpError(name, e.message, hint=e.hint) from e
        except BaseException:
            step.status = "failed"
            raise
        finally:
            step.seconds = time.perf_counter() - t0
            self.result.steps.append(step)
            if self.on_step:
                self.on_step(step)

    def skip(self, name: str, detail: str) -> None:
        with self.step(name) as s:
            s.status, s.detail = "skipped", detail


def _has_gpu() -> bool:
    return Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi") is not None


def _serve_blocker(profile: Any, plan: Any) -> str | None:
    """Why this machine cannot serve the model with hfdeploy's server, or None."""
    import psutil

    if profile.source == "hub":
        return "the model is not on disk here (a Hub model is fetched first)"
    from hfdeploy.serve.runtime import SERVED_TASKS

    if profile.task.task not in SERVED_TASKS:
        return f"hfdeploy's server does not run {profile.task.task!r} models"
    if not profile.formats.safetensors:
        return "the folder has no safetensors weights for hfdeploy's server to load"
    if plan.gpu is not None and not _has_gpu():
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


def run_up(
    model: str,
    out: Path,
    *,
    engine: str | None = None,
    gpu: str | None = None,
    port: int = 8080,
    bench_duration: float = 10.0,
    serve: bool = True,
    ready_timeout: float = 600.0,
    on_step: OnStep | None = None,
) -> UpResult:
    """Run the whole flow for ``model`` into ``out`` (see the module docstring).

    Raises:
        UpError: a step failed (the audit found an error, the server did not start, ...).
        HfDeployError: inspect, size, plan or generate refused the input.
    """
    from hfdeploy.audit import audit_paths, load_config
    from hfdeploy.model.resolve import inspect_model
    from hfdeploy.plan.planner import plan_deployment
    from hfdeploy.render.generate import generate_deployment

    result = UpResult(model, out)
    flow = _Flow(result, on_step)
    data = result.data
    with flow.step("inspect") as s:
        profile = inspect_model(model)
        s.detail = f"{profile.task.task}, {profile.parameters:,} parameters"
        data["profile"] = profile.to_dict()
    with flow.step("size and plan") as s:
        plan = plan_deployment(profile, gpu=gpu, engine=engine)
        gib = f"{plan.memory_bytes / 2**30:.2f} GiB" + (" per GPU" if plan.gpu else "")
        s.detail = f"{plan.engine.name} ({plan.image}) on {plan.placement}: {gib}"
        data["plan"] = plan.to_dict()
        data["size"] = plan.size.to_dict()
    with flow.step("generate") as s:
        written = generate_deployment(plan, out, lock=True)
        s.detail = f"{len(written)} files in {out}"
        data["files"] = sorted(str(p.relative_to(out)) for p in written)
    if (out / "model.lock.json").is_file():
        with flow.step("lock") as s:
            s.detail = "model.lock.json: sha256 of every model file"
    else:
        flow.skip("lock", f"not a local folder: hfdeploy fetch {model} --to DIR writes the lock")
    with flow.step("audit") as s:
        audit = audit_paths([out], load_config(out))
        errors = [f for f in audit.findings if f.severity == "error"]
        data["audit"] = audit.to_dict()
        s.detail = f"{len(audit.findings)} findings, {len(errors)} errors"
        if errors:
            first = errors[0]
            raise UpError(
                "audit", f"{len(errors)} error findings in the generated files, first: "
                f"{first.rule_id} {first.title} at {first.file}:{first.line}",
                hint=f"hfdeploy audit {out} shows each with its fix; report it as a bug",
            )  # fmt: skip
    blocker = None if serve else "--no-serve"
    if serve:
        blocker = _serve_blocker(profile, plan)
    compose = f"docker compose -f {out / 'compose.yaml'} up"
    if blocker is not None:
        why = f"{blocker}; run it with: {compose}"
        for name in ("serve", "bench", "stop"):
            flow.skip(name, why)
        data["serve"] = {"skipped": blocker, "command": compose}
    else:
        _serve_and_bench(flow, profile.location, port, bench_duration, ready_timeout, out)
    with flow.step("report") as s:
        result.envelope = _envelope(result, plan)
        from hfdeploy.up_report import write_up_reports

        s.detail = ", ".join(write_up_reports(result))
    return result


def _serve_and_bench(
    flow: _Flow, location: str, port: int, seconds: float, timeout: float, out: Path
) -> None:
    from hfdeploy.bench.process import listening, spawn, stop
    from hfdeploy.bench.run import BenchConfig, run_bench

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


def _envelope(result: UpResult, plan: Any) -> Envelope:
    data = result.data
    pe = plan.envelope
    parts = [f"{plan.engine.name} on {plan.placement}",
             f"{len(data.get('files', []))} files generated and audited"]  # fmt: skip
    confidence = pe.confidence
    why = f"plan: {pe.confidence_why}"
    factors = list(pe.uncertainty_factors)
    checks = list(pe.verification)
    bench = data.get("bench")
    if bench:
        s = bench["summary"]
        parts.append(f"served here at {s['request_throughput']:,.1f} req/s, E2E p50 "
                     f"{s['e2e_ms']['p50']} ms ({bench['summary_phase']})")  # fmt: skip
        be = bench["envelope"]
        confidence = lowest(confidence, be["confidence"])
        why += f"; bench: {be['confidence_why']}"
        factors += be["uncertainty_factors"]
        factors.append("the bench ran hfdeploy's own server on this machine, not the planned "
                       f"{plan.engine.name} on the planned hardware")  # fmt: skip
        checks += be["verification"]
    else:
        skipped = data.get("serve", {}).get("skipped")
        if skipped:
            parts.append(f"not served here: {skipped}")
            factors.append("no measurement on this machine: figures are the plan's estimates")
    checks.append(f"hfdeploy audit {result.out}")
    return Envelope("; ".join(parts), confidence, why, tuple(factors), tuple(checks))
