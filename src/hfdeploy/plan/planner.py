"""``hfdeploy plan``: the engine, GPUs, flags, throughput, replicas and cost, as one ``Plan``.

Pure: a ModelProfile in, a Plan out, using the sizing model and the engine and GPU catalogs.
Each concern lives in its own module; this one runs them in order:

engine_choice → placement (GPU type, TP, nodes) → flags → roofline and scaling → cost →
endpoints (the Inference Endpoints instance) → envelope.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hfdeploy.catalog.engines import EngineSpec, engine_catalog
from hfdeploy.catalog.gpus import GPU
from hfdeploy.errors import DoesNotFitError, InvalidSettingError
from hfdeploy.model.profile import ModelProfile
from hfdeploy.plan.cost import Cost, cold_start, cost
from hfdeploy.plan.destination import Destination, ScaleOut, destination
from hfdeploy.plan.duplex import duplex_env, duplex_placement, duplex_scaling
from hfdeploy.plan.endpoints import EndpointChoice, endpoint_instance, no_endpoint
from hfdeploy.plan.engine_choice import EngineChoice, choose_engine
from hfdeploy.plan.envelope import plan_envelope
from hfdeploy.plan.flags import engine_args
from hfdeploy.plan.placement import Placement, candidate_gpus, fit_nodes, no_fit
from hfdeploy.plan.result import (
    ALL_TARGETS,
    MULTI_NODE_TARGETS,
    TARGETS,
    Command,
    Plan,
    memory_bytes,
    served_name,
)
from hfdeploy.plan.roofline import roofline, scaling
from hfdeploy.plan.scale_out import scale_out_blocked
from hfdeploy.plan.search import Prefer, explain, search
from hfdeploy.sizing.report import SizeReport, size_model

__all__ = ["plan_deployment"]


@dataclass(frozen=True, slots=True)
class Ask:
    """What the placement search weighs besides memory: preference, traffic, SLO."""

    prefer: Prefer
    traffic: float | None
    slo_ms: float | None
    output_tokens: int


def plan_deployment(
    profile: ModelProfile,
    *,
    gpu: str | None = None,
    engine: str | None = None,
    context: int | None = None,
    concurrency: int | None = None,
    traffic_rps: float | None = None,
    slo_p95_ms: float | None = None,
    output_tokens: int = 256,
    active_hours_per_day: float = 8.0,
    targets: tuple[str, ...] | None = None,
    registry: str | None = None,
    repo: str | None = None,
    storage_class: str | None = None,
    prefer: Prefer = "cost",
    scale_out: ScaleOut | None = None,
) -> Plan:
    """Choose engine, GPUs and flags for ``profile``; estimate throughput, replicas, cost.

    ``registry``, ``repo`` and ``storage_class`` say what no model can tell of where it runs
    (see ``plan.destination``); the targets that need one it lacks are listed as not written.
    ``prefer``: ``cost`` takes the cheapest configuration that meets the request, trading
    prefill speed, KV precision or context for memory before adding GPUs; ``latency`` pays for
    the engine's defaults when a configuration at them fits.

    Raises:
        DoesNotFitError: nothing up to TP 8 (or fp8) fits, nor 2-4 nodes of 8 for vLLM on
            NVLink GPUs, with the nearest options.
        InvalidSettingError, UnknownGPUError: bad inputs, naming the valid values.
    """
    _check_targets(targets)
    dest = destination(profile, registry=registry, repo=repo, storage_class=storage_class,
                       scale_out=_scale_out(scale_out, targets))  # fmt: skip
    cpu = gpu is not None and gpu.lower() == "cpu"
    choice = choose_engine(profile, engine, cpu=cpu)
    if profile.duplex is not None:
        return _plan_duplex(
            profile, choice, gpu=gpu, context=context, concurrency=concurrency or 1,
            hours=active_hours_per_day, targets=targets, dest=dest,
        )  # fmt: skip
    spec, reasons = choice.spec, choice.reasons
    notes: list[str] = []
    knobs: dict[str, Any] = {}
    if context:
        knobs["context"] = context
    if concurrency:
        knobs["concurrency"] = concurrency
    where: Placement | None = None
    if cpu or (not spec.gpu and gpu is None):
        sized = size_model(profile, engine=spec.name, **knobs)
        report = SizeReport(sized.profile, sized.estimate, ())
        reasons.append(
            "no GPU asked for: CPU deployment"
            if cpu
            else f"{spec.name} runs on CPU; pass --gpu for a GPU"
        )
    else:
        ask = Ask(prefer, traffic_rps, slo_p95_ms, output_tokens)
        where = _place(profile, spec, gpu, knobs, targets, reasons, notes, ask)
        report = where.report
    chosen, tp, pp = (where.gpu, where.tp, where.pp) if where else (None, 1, 1)
    quant = where.quantization if where else None
    args = engine_args(spec, profile, report, tp=tp, pp=pp, quant=quant, gpu=chosen,
                       served=served_name(profile))  # fmt: skip
    d = spec.deploy
    if d is None:  # choose_engine picks deployable engines only
        raise InvalidSettingError("engine", spec.name, "hfdeploy does not deploy it")
    # hfdeploy's own image is built from the generated Dockerfile: it is where it is pushed.
    image = (
        dest.image(d.image, d.tag)
        if spec.name == "hfdeploy"
        else d.image_ref(chosen.compute_capability if chosen else "cpu")
    )
    roof = roofline(profile, report, chosen, tp, output_tokens)
    scale = scaling(roof, traffic_rps, slo_p95_ms, tp)
    cold = cold_start(spec.name, d, profile)
    money = cost(chosen, tp * pp, scale, cold, active_hours_per_day)
    endpoint = _endpoint(spec, chosen, tp, pp, report, targets, money, traffic_rps, notes)
    blocked = _blocked(spec.name, profile, dest, scale.replicas, pp, targets)
    notes += [f"{t}: not written: {why}" for t, why in blocked]
    if targets is None or "k8s" in targets:
        notes += _volume_note(dest, blocked)
    if d.requires and chosen is not None:
        notes.append(f"the image {image} needs {d.requires}")
    if d.tag_source.startswith("unverified"):
        notes.append(f"the {spec.name} image tag {d.tag} is not verified here: check the registry")
    envelope = plan_envelope(profile, spec, report, gpu=chosen, tp=tp, pp=pp, roof=roof,
                             scaling=scale, cold=cold, notes=notes)  # fmt: skip
    return Plan(
        profile=profile, engine=spec, reasons=tuple(reasons), rejected=tuple(choice.rejected),
        gpu=chosen, tp=tp, quantization=quant, size=report, image=image,
        command=Command(tuple(args), dict(d.env)), roofline=roof, scaling=scale,
        cold_start=cold, cost=money, envelope=envelope, notes=tuple(notes), pp=pp,
        targets=targets, endpoint=endpoint, destination=dest, blocked=tuple(blocked),
        alternatives=where.alternatives if where else (),
    )  # fmt: skip


def _check_targets(targets: tuple[str, ...] | None) -> None:
    if targets is not None:
        unknown = [t for t in targets if t not in ALL_TARGETS]
        if unknown or not targets:
            raise InvalidSettingError(
                "target", ",".join(targets), "unknown" if unknown else "empty",
                hint="Use a comma-separated subset of: " + ",".join(ALL_TARGETS),
            )  # fmt: skip


def _place(
    profile: ModelProfile,
    spec: EngineSpec,
    gpu: str | None,
    knobs: dict[str, Any],
    targets: tuple[str, ...] | None,
    reasons: list[str],
    notes: list[str],
    ask: Ask,
) -> Placement:
    """One node if one holds it (the cheapest configuration, see ``plan.search``), else
    several; the reasons and notes say which and why."""
    chosen, seen = search(
        profile, spec, candidate_gpus(gpu), knobs, prefer=ask.prefer, traffic=ask.traffic,
        slo_ms=ask.slo_ms, output_tokens=ask.output_tokens,
    )  # fmt: skip
    if chosen is not None:
        why, alternatives = explain(profile, spec, chosen, seen, gpu_given=bool(gpu),
                                    prefer=ask.prefer)  # fmt: skip
        reasons += why
        return Placement(
            chosen.gpu, chosen.tp, chosen.report,
            quantization=chosen.trades.quantization, alternatives=alternatives,
        )  # fmt: skip
    multi = fit_nodes(profile, spec, candidate_gpus(gpu), knobs)
    if multi is None:
        raise no_fit(profile, spec, gpu, knobs)
    if targets is not None and not MULTI_NODE_TARGETS & set(targets):
        err = no_fit(profile, spec, gpu, knobs)
        raise DoesNotFitError(
            profile.repo_id or profile.location, f"one node for {','.join(targets)}",
            [f"--target k8s: a LeaderWorkerSet of {multi.pp} nodes x {multi.tp} x "
             f"{multi.gpu.name}", *err.options],
        )  # fmt: skip
    s, fit = multi.report.estimate.settings, multi.report.fits[0]
    reasons.append(
        f"{multi.pp} nodes x {multi.tp} x {multi.gpu.name}: one node of 8 does not hold the "
        f"weights and KV cache at {s.context:,} tokens x {s.concurrency}; tensor parallel "
        f"within a node, pipeline parallel across {multi.pp} nodes (vLLM over Ray), deployed "
        f"as a LeaderWorkerSet ({fit.headroom_bytes / 2**30:.1f} GiB headroom per GPU)"
    )
    notes.append(
        "multi-node: Kubernetes only (k8s/leaderworkerset.yaml needs the LeaderWorkerSet "
        "controller); compose, KServe and Inference Endpoints files are not written"
    )
    return multi


def _endpoint(
    spec: EngineSpec,
    gpu: GPU | None,
    tp: int,
    pp: int,
    report: SizeReport,
    targets: tuple[str, ...] | None,
    money: Cost | None,
    traffic_rps: float | None,
    notes: list[str],
) -> EndpointChoice | None:
    """The Inference Endpoints instance, when the plan is for that target and one node."""
    if targets is not None and "hf-endpoint" not in targets:
        return None
    if spec.name == "triton":
        endpoint = no_endpoint(
            "Triton reads its model repository from a volume beside the model, which "
            "Inference Endpoints does not mount: hf-endpoint.json is not written"
        )
        notes.append(endpoint.note)
        return endpoint
    if pp > 1:
        return None
    endpoint = endpoint_instance(gpu, tp, memory_bytes(report.estimate, gpu))
    if endpoint.note:
        notes.append(endpoint.note)
    if endpoint.instance_type and money and money.cheaper == "scale-to-zero" and traffic_rps:
        # Traffic known and scale-to-zero cheaper: the Endpoints file scales to zero.
        minutes = round(money.idle_timeout_s / 60)
        endpoint = dataclasses.replace(endpoint, scale_to_zero_minutes=minutes)
        notes.append(
            f"hf-endpoint.json scales to zero after {minutes} min idle: "
            f"${money.scale_to_zero_per_month:,}/month against "
            f"${money.dedicated_per_month:,} dedicated, with "
            f"{money.cold_start_share_of_requests:.1%} of requests waiting for a "
            f"{money.cold_start_penalty_s}s cold start"
        )
    return endpoint


def _blocked(
    engine: str,
    profile: ModelProfile,
    dest: Destination,
    replicas: int,
    pp: int,
    targets: tuple[str, ...] | None,
) -> list[tuple[str, str]]:
    """The planned targets whose files would need a flag that was not given, and why."""
    out: list[tuple[str, str]] = []
    deploy = engine_catalog()[engine].deploy
    built = engine == "hfdeploy" or bool(deploy and deploy.build)
    if built and dest.registry is None:
        what = "hfdeploy's server image" if engine == "hfdeploy" else f"the {engine} image"
        why = (
            f"it pulls {what}, which is built from the generated Dockerfile: "
            "push it to a registry and pass --registry"
        )
        out += [("k8s", why), ("kserve", why), ("hf-endpoint", why)]
    if profile.source == "local" and dest.repo_id is None:
        out.append((
            "hf-endpoint",
            "Inference Endpoints loads the model from the Hub, and this one is a local "
            "folder: publish it and pass --repo OWNER/NAME@COMMIT",
        ))  # fmt: skip
    pods = max(replicas, pp)
    if pods > 1 and dest.storage_class is None:
        why = (
            f"{pods} pods ({'pipeline stages' if pp > 1 else 'replicas'}) read the model from "
            "one volume, which needs a ReadWriteMany storage class: pass --storage-class"
        )
        out += [("k8s", why), ("kserve", why)]
    out += scale_out_blocked(engine_catalog()[engine], profile, dest, pods, pp)
    # One reason per target, the first found; only the targets planned for (the scale-out
    # ones only when named; a multi-node plan runs on Kubernetes only: its note says so).
    first = dict(reversed(out))
    planned = targets if targets is not None else TARGETS
    return [(t, first[t]) for t in dict.fromkeys(t for t, _ in out)
            if t in planned and (pp == 1 or t in MULTI_NODE_TARGETS)]  # fmt: skip


def _scale_out(options: ScaleOut | None, targets: tuple[str, ...] | None) -> ScaleOut:
    """The scale-out options; asking for the ``keda`` target picks KEDA as the autoscaler."""
    options = options or ScaleOut()
    if targets is not None and "keda" in targets and options.autoscaler != "keda":
        return dataclasses.replace(options, autoscaler="keda")
    return options


def _volume_note(dest: Destination, blocked: list[tuple[str, str]]) -> list[str]:
    if dest.storage_class is not None or any(t == "k8s" for t, _ in blocked):
        return []
    return [
        "k8s: one replica on a ReadWriteOnce model volume (the cluster's default storage "
        "class), so no autoscaler: pass --storage-class (a ReadWriteMany class) to scale out"
    ]


def _plan_duplex(
    profile: ModelProfile,
    choice: EngineChoice,
    *,
    gpu: str | None,
    context: int | None,
    concurrency: int,
    hours: float,
    targets: tuple[str, ...] | None,
    dest: Destination,
) -> Plan:
    """A full-duplex speech model: a GPU that holds it in real time, a replica per session."""
    spec = choice.spec
    d = spec.deploy
    if d is None:
        raise InvalidSettingError("engine", spec.name, "hfdeploy does not deploy it")
    where = duplex_placement(profile, spec, gpu, context, concurrency)
    report = where.report
    args = engine_args(spec, profile, report, tp=1, pp=1, quant=None, gpu=where.gpu,
                       served=served_name(profile))  # fmt: skip
    if spec.sizing is not None and spec.sizing.lockstep_sessions:
        args += ["--max-sessions", str(where.sessions)]
    scale = duplex_scaling(spec, concurrency, where.sessions)
    cold = cold_start(spec.name, d, profile)
    money = cost(where.gpu, 1, scale, cold, hours)
    notes = list(where.notes)
    if where.realtime.rtf <= 0.7:
        notes.append(
            f"frame step predicted from priors ({where.realtime.basis}); measure a session "
            "with `hfdeploy bench URL --api duplex`"
        )
    blocked = _blocked(spec.name, profile, dest, scale.replicas, 1, targets)
    blocked = [b for b in blocked if b[0] != "hf-endpoint"]
    if targets is None or "hf-endpoint" in targets:
        blocked.append((
            "hf-endpoint",
            "a conversation holds a WebSocket to one replica for minutes: Inference "
            "Endpoints' request routing is not planned for that here",
        ))  # fmt: skip
    notes += [f"{t}: not written: {why}" for t, why in blocked]
    if d.requires:
        notes.append(f"the {spec.name} image needs {d.requires}")
    image = dest.image(d.image, d.tag)
    envelope = plan_envelope(profile, spec, report, gpu=where.gpu, tp=1, pp=1, roof=None,
                             scaling=scale, cold=cold, notes=notes,
                             realtime=where.realtime)  # fmt: skip
    return Plan(
        profile=profile, engine=spec, reasons=(*choice.reasons, *where.reasons),
        rejected=tuple(choice.rejected), gpu=where.gpu, tp=1, quantization=None, size=report,
        image=image, command=Command(tuple(args), duplex_env(spec)), roofline=None,
        scaling=scale, cold_start=cold, cost=money, envelope=envelope, notes=tuple(notes),
        targets=targets, endpoint=None, destination=dest, blocked=tuple(blocked),
        alternatives=where.alternatives, realtime=where.realtime,
    )  # fmt: skip
