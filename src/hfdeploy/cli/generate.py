"""``hfdeploy generate MODEL --out DIR``: the deployment files, the plan and a README."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hfdeploy.cli._output import Output, handle_errors
from hfdeploy.cli.inspect import ModelArg
from hfdeploy.cli.plan import (
    PreferOpt,
    RegistryOpt,
    RepoOpt,
    StorageClassOpt,
    parse_prefer,
    parse_targets,
)
from hfdeploy.cli.scale_out import (
    DEFAULTS,
    AutoscalerOpt,
    BenchOpt,
    GatewayOpt,
    GpuLabelOpt,
    PriorityClassOpt,
    PrometheusOpt,
    PrometheusSecretOpt,
    scale_out_options,
)
from hfdeploy.model.resolve import inspect_model
from hfdeploy.plan.planner import plan_deployment
from hfdeploy.plan.result import SCALE_OUT_TARGETS, TARGETS
from hfdeploy.render.generate import generate_deployment

__all__ = ["generate_command"]


def generate_command(
    model: ModelArg,
    out: Annotated[Path, typer.Option(help="Folder to write the deployment into.")],
    target: Annotated[
        str,
        typer.Option(
            help="Comma-separated: "
            + ",".join(TARGETS)
            + "; on request also "
            + ",".join(SCALE_OUT_TARGETS)
            + "."
        ),
    ] = ",".join(TARGETS),
    engine: Annotated[str | None, typer.Option(help="Force an engine (default: planned).")] = None,
    gpu: Annotated[str | None, typer.Option(help="GPU name or alias, or 'cpu'.")] = None,
    context: Annotated[int | None, typer.Option(help="Tokens per request to hold.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Requests held at once.")] = None,
    traffic: Annotated[float | None, typer.Option(help="Target requests per second.")] = None,
    registry: RegistryOpt = None,
    repo: RepoOpt = None,
    storage_class: StorageClassOpt = None,
    prefer: PreferOpt = "cost",
    autoscaler: AutoscalerOpt = DEFAULTS.autoscaler,
    gpu_label: GpuLabelOpt = DEFAULTS.gpu_label,
    priority_class: PriorityClassOpt = None,
    prometheus: PrometheusOpt = DEFAULTS.prometheus,
    prometheus_secret: PrometheusSecretOpt = None,
    gateway: GatewayOpt = DEFAULTS.gateway,
    bench: BenchOpt = None,
    no_lock: Annotated[
        bool, typer.Option("--no-lock", help="Do not hash a local model into model.lock.json.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the written files as JSON.")] = False,
) -> None:
    """Write Dockerfile, compose, Kubernetes, KServe and Inference Endpoints files for MODEL."""
    output = Output(json_mode=json_)
    with handle_errors(json_mode=json_):
        targets = parse_targets(target) or ()
        plan = plan_deployment(
            inspect_model(model), gpu=gpu, engine=engine, context=context,
            concurrency=concurrency, traffic_rps=traffic, targets=targets, registry=registry,
            repo=repo, storage_class=storage_class, prefer=parse_prefer(prefer),
            scale_out=scale_out_options(
                autoscaler=autoscaler, gpu_label=gpu_label, priority_class=priority_class,
                prometheus=prometheus, prometheus_secret=prometheus_secret, gateway=gateway,
                bench=bench),
        )  # fmt: skip
        written = generate_deployment(plan, out, targets=targets, lock=not no_lock)
    rel = [str(p.relative_to(out)) for p in written]
    if json_:
        output.data({"out": str(out), "files": rel, "plan": plan.to_dict()})
        return
    output.print(
        f"{plan.engine.name} on {plan.placement} ({plan.image}); {len(rel)} files in {out}:"
    )
    for r in rel:
        output.print(f"  {r}")
    for target, why in plan.blocked:
        output.print(f"not written: {target}: {why}")
    output.print(f"next: read {out / 'README.md'}; check with `hfdeploy audit {out}`")
