"""``hfdeploy plan MODEL``: the engine, GPUs, flags, throughput, replicas and cost."""

from __future__ import annotations

import re
from typing import Annotated

import typer
from rich.table import Table

from hfdeploy.cli._output import Output, handle_errors
from hfdeploy.cli.inspect import JsonOpt, ModelArg
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
from hfdeploy.errors import InvalidSettingError
from hfdeploy.model.resolve import inspect_model
from hfdeploy.plan.planner import plan_deployment
from hfdeploy.plan.result import Plan
from hfdeploy.plan.search import Prefer

__all__ = [
    "PreferOpt", "RegistryOpt", "RepoOpt", "StorageClassOpt", "parse_prefer", "parse_slo",
    "plan_command", "render_plan",
]  # fmt: skip


def parse_slo(raw: str | None) -> float | None:
    """``p95=500ms`` or ``p95=2s`` → milliseconds."""
    if raw is None:
        return None
    m = re.fullmatch(r"\s*p95\s*=\s*([\d.]+)\s*(ms|s)\s*", raw)
    if not m:
        raise InvalidSettingError(
            "slo", raw, "use p95=<number>ms or p95=<number>s", hint="--slo p95=2s"
        )
    value = float(m.group(1))
    return value * 1000 if m.group(2) == "s" else value


def render_plan(out: Output, p: Plan) -> None:
    out.print(
        f"[bold]{p.served_name}[/]  {p.profile.task.task}, {p.profile.parameters:,} parameters"
    )
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold")
    t.add_row("engine", f"{p.engine.name}  ({p.image})")
    for reason in p.reasons:
        t.add_row("  why", reason)
    for name, why in p.rejected:
        t.add_row("  not " + name, why)
    t.add_row("gpus", p.placement)
    for a in [a for a in p.alternatives if not a.chosen][:3]:
        t.add_row("  or", f"{a.placement}: ${a.per_month:,.0f}/month, {a.why}")
    t.add_row("memory", p.memory_text)
    t.add_row("command", " ".join([*p.deploy.entrypoint, *p.command.args]))
    r, s = p.roofline, p.scaling
    if r is not None:
        t.add_row(
            "roofline",
            f"{r.regime}; ceiling {r.decode_tokens_per_s_per_replica:,} tokens/s per "
            f"replica at {r.at_concurrency} sequences (expected "
            f"{r.expected_decode_tokens_per_s_per_replica:,} at {r.efficiency:g} of it); "
            f"single stream {r.single_stream_tokens_per_s:,} tokens/s",
        )
    if r is not None and (cap := s.capacity) is not None:
        t.add_row(
            "under load",
            f"{cap.batch_per_replica} sequences per replica: {cap.rps_per_replica:g} "
            f"req/s, {cap.e2e_ms_estimate:,} ms for {r.output_tokens} output tokens "
            "(expected speed)",
        )
    if (rt := p.realtime) is not None:
        t.add_row(
            "real time",
            f"a frame step of {rt.step_ms:g} ms predicted on {rt.gpu} (temporal "
            f"{rt.temporal_ms:g} + depformer {rt.depformer_ms:g} + codec {rt.codec_ms:g}), "
            f"rtf {rt.rtf:g} of the {rt.frame_ms} ms frame: "
            + ("holds real time" if rt.ok else "does not hold real time"),
        )
    t.add_row("replicas", f"{s.replicas} ({s.basis}); {s.direction}")
    c = p.cold_start
    t.add_row(
        "cold start",
        f"{c.total_s}s (pull {c.image_pull_s}s, weights {c.weight_load_s}s, "
        f"warmup {c.warmup_s}s); startupProbe budget {c.startup_probe_budget_s}s",
    )
    if (cost := p.cost) is not None and s.sessions_per_replica:
        per_session = cost.price_per_gpu_hour * p.gpu_count / s.sessions_per_replica
        t.add_row(
            "cost",
            f"${per_session:,.2f} per session-hour; ${cost.dedicated_per_month:,}/month for "
            f"{s.replicas} replica(s) up round the clock",
        )
    elif (cost := p.cost) is not None:
        share = cost.cold_start_share_of_requests
        t.add_row(
            "cost",
            f"${cost.dedicated_per_month:,}/month dedicated; "
            f"${cost.scale_to_zero_per_month:,}/month scale-to-zero "
            f"({cost.scale_to_zero_billed_hours_per_day:g} billed h/day"
            + (f", {share:.2%} of requests wait for a cold start" if share is not None else "")
            + f"); {cost.cheaper} is cheaper. Scale-to-zero saves under 5% above "
            f"{cost.break_even_requests_per_hour:g} requests/hour round the clock "
            f"(idle timeout {cost.idle_timeout_s / 60:g} min)",
        )
    out.print(t)
    out.print(p.envelope.to_text())


def parse_prefer(raw: str) -> Prefer:
    """``cost`` or ``latency``."""
    match raw.strip().lower():
        case "cost":
            return "cost"
        case "latency":
            return "latency"
    raise InvalidSettingError("prefer", raw, "unknown", hint="Use --prefer cost or latency.")


def parse_targets(text: str | None) -> tuple[str, ...] | None:
    """``docker,k8s`` -> ("docker", "k8s"); None stays None (any target)."""
    if text is None:
        return None
    return tuple(t.strip() for t in text.split(",") if t.strip())


RegistryOpt = Annotated[
    str | None,
    typer.Option(
        help="Where hfdeploy's own images are pushed (e.g. ghcr.io/acme): the hfdeploy engine's "
        "cluster and Endpoints files, and the Kubernetes fetch Job, need it."
    ),
]
RepoOpt = Annotated[
    str | None,
    typer.Option(
        help="For a local folder: the Hub repository it is published at, pinned "
        "(OWNER/NAME@COMMIT). Inference Endpoints and the fetch Job load it from there."
    ),
]
PreferOpt = Annotated[
    str,
    typer.Option(
        help="cost: the cheapest configuration that meets the request (a smaller prefill "
        "budget or an fp8 KV cache before more GPUs); latency: the engine's defaults."
    ),
]
StorageClassOpt = Annotated[
    str | None,
    typer.Option(
        help="A StorageClass offering ReadWriteMany: with it, more than one pod (replicas, "
        "autoscaling, pipeline stages) can mount the model volume."
    ),
]


def plan_command(
    model: ModelArg,
    gpu: Annotated[
        str | None, typer.Option(help="GPU name or alias (h100, a100-80gb, l4), or 'cpu'.")
    ] = None,
    engine: Annotated[str | None, typer.Option(help="Force an engine (default: chosen).")] = None,
    context: Annotated[int | None, typer.Option(help="Tokens per request to hold.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Requests held at once.")] = None,
    traffic: Annotated[float | None, typer.Option(help="Target requests per second.")] = None,
    slo: Annotated[str | None, typer.Option(help="Latency target, e.g. p95=2s.")] = None,
    active_hours: Annotated[float, typer.Option(help="Hours a day with traffic (cost).")] = 8.0,
    target: Annotated[
        str | None,
        typer.Option(
            help="Plan for these targets only (comma-separated: docker,compose,k8s,kserve,"
            "hf-endpoint, and on request keda,inference-pool,rayservice); multi-node plans "
            "need k8s."
        ),
    ] = None,
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
    json_: JsonOpt = False,
) -> None:
    """The engine with reasons, GPUs and TP, engine flags, throughput ceiling, replicas, cost."""
    out = Output(json_mode=json_)
    with handle_errors(json_mode=json_):
        profile = inspect_model(model)
        plan = plan_deployment(
            profile,
            gpu=gpu,
            engine=engine,
            context=context,
            concurrency=concurrency,
            traffic_rps=traffic,
            slo_p95_ms=parse_slo(slo),
            active_hours_per_day=active_hours,
            targets=parse_targets(target),
            registry=registry,
            repo=repo,
            storage_class=storage_class,
            prefer=parse_prefer(prefer),
            scale_out=scale_out_options(
                autoscaler=autoscaler, gpu_label=gpu_label, priority_class=priority_class,
                prometheus=prometheus, prometheus_secret=prometheus_secret, gateway=gateway,
                bench=bench,
            ),
        )  # fmt: skip
    if json_:
        out.data(plan.to_dict())
    else:
        render_plan(out, plan)
