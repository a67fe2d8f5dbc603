"""``hfdeploy up``: the whole flow on one machine, ending in a measured endpoint and a report.

inspect → size and plan → generate (with the lock) → audit the generated files (an error
finding stops here) → serve the model with hfdeploy's own server in a child process → wait
for ready → a short bench, with the server's memory sampled → stop the server → report.

Serving is skipped, with the exact command to run instead, when this machine cannot do it:
a Hub model not yet on disk, a task hfdeploy's server does not run, or weights larger than
half of the free memory. Every step is timed; a failure names its step and the next action.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hfdeploy.envelope import Envelope, lowest
from hfdeploy.errors import UpError
from hfdeploy.up.local import serve_and_bench, serve_blocker
from hfdeploy.up.report import write_up_reports
from hfdeploy.up.steps import Flow, OnStep, UpResult

__all__ = ["run_up"]


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

    Args:
        model: a local folder, a ``.gguf`` file or ``owner/name[@rev]``.
        out: folder for the deployment files, ``serve.log`` and the reports.
        engine: engine for the plan; None chooses.
        gpu: GPU for the plan; None takes the cheapest that fits.
        port: loopback port for the local server.
        bench_duration: seconds of benchmark in all (two phases).
        serve: False stops after the report of the generated files.
        ready_timeout: seconds to wait for the local server's ``/ready``.
        on_step: called as each step ends (progress).

    Returns:
        The steps with their timings, every step's data (``report.json``) and the envelope.

    Raises:
        UpError: a step failed (the audit found an error, the server did not start, ...).
        HfDeployError: inspect, size, plan or generate refused the input.
    """
    from hfdeploy.audit import audit_paths, load_config
    from hfdeploy.model.resolve import inspect_model
    from hfdeploy.plan.planner import plan_deployment
    from hfdeploy.render.generate import generate_deployment

    result = UpResult(model, out)
    flow = Flow(result, on_step)
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
        blocker = serve_blocker(profile, plan)
    compose = f"docker compose -f {out / 'compose.yaml'} up"
    if blocker is not None:
        why = f"{blocker}; run it with: {compose}"
        for name in ("serve", "bench", "stop"):
            flow.skip(name, why)
        data["serve"] = {"skipped": blocker, "command": compose}
    else:
        serve_and_bench(flow, profile.location, port, bench_duration, ready_timeout, out,
                        duplex=profile.duplex is not None)  # fmt: skip
    with flow.step("report") as s:
        result.envelope = _envelope(result, plan)
        s.detail = ", ".join(write_up_reports(result))
    return result


def _envelope(result: UpResult, plan: Any) -> Envelope:
    data = result.data
    pe = plan.envelope
    parts = [f"{plan.engine.name} on {plan.placement}",
             f"{len(data.get('files', []))} files generated and audited"]  # fmt: skip
    confidence = pe.confidence
    why = f"plan: {pe.confidence_why}"
    factors = list(pe.uncertainty_factors)
    checks = list(pe.verification)
    bench, duplex = data.get("bench"), data.get("duplex_bench")
    if duplex:
        n = duplex["largest_realtime_sessions"]
        parts.append(f"served here: {n if n is not None else 'no'} conversation(s) held in real "
                     "time")  # fmt: skip
        be = duplex["envelope"]
        confidence = lowest(confidence, be["confidence"])
        why += f"; bench: {be['confidence_why']}"
        factors += be["uncertainty_factors"]
        if plan.gpu is not None:
            factors.append(f"served on this machine's CPU, not the planned {plan.placement}: "
                           "the conversations a GPU holds are the plan's prediction")  # fmt: skip
        checks += be["verification"]
    elif bench:
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
