"""Plans for full-duplex speech models: a GPU that holds the model and runs a frame in real
time, one replica per concurrent conversation. Pure.

A GPU is planned only when the estimate fits it and the predicted frame step
(``plan.realtime``) holds real time; a GPU that fits but is too slow is refused with its
step, not planned. The reference servers hold one session per process, so replicas are the
concurrent sessions, and the cost is per session-hour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hfdeploy.catalog.engines import EngineSpec
from hfdeploy.catalog.gpus import GPU
from hfdeploy.errors import DoesNotFitError
from hfdeploy.model.duplex_files import HF_CACHE
from hfdeploy.model.profile import ModelProfile
from hfdeploy.plan.flags import MODEL_DIR
from hfdeploy.plan.placement import candidate_gpus
from hfdeploy.plan.realtime import Realtime, frame_step
from hfdeploy.plan.roofline import Scaling
from hfdeploy.plan.search import Alternative
from hfdeploy.sizing.report import SizeReport, size_model

__all__ = ["DuplexChoice", "duplex_env", "duplex_placement", "duplex_scaling"]

_HOURS_PER_MONTH = 730


@dataclass(frozen=True, slots=True)
class DuplexChoice:
    """The GPU chosen, its estimate and frame step, why, and the GPUs looked at."""

    gpu: GPU
    report: SizeReport
    realtime: Realtime
    reasons: tuple[str, ...]
    alternatives: tuple[Alternative, ...]
    notes: tuple[str, ...]


def _blocked_arch(spec: EngineSpec, gpu: GPU) -> str | None:
    """Why the engine's pinned build cannot run on this GPU (PersonaPlex's torch<2.5 has no
    Blackwell kernels), or None."""
    major = gpu.compute_capability.split(".")[0]
    if spec.name == "personaplex" and major.isdigit() and int(major) >= 10:
        return (
            f"{gpu.name} is Blackwell (sm_{gpu.compute_capability.replace('.', '')}): "
            "PersonaPlex pins torch<2.5, built without its kernels"
        )
    return None


def duplex_placement(
    profile: ModelProfile, spec: EngineSpec, gpu: str | None, context: int | None
) -> DuplexChoice:
    """The cheapest GPU that holds one replica's sessions and runs a frame in real time.

    Raises:
        DoesNotFitError: no GPU does (or the one asked for does not), with each one's reason.
    """
    assert spec.sizing is not None
    assert profile.duplex is not None
    per_replica = spec.sizing.sessions_per_process or 1
    looked: list[tuple[GPU, SizeReport, Realtime, str | None]] = []
    for g in candidate_gpus(gpu):
        report = size_model(profile, engine=spec.name, gpu=g.name, context=context,
                            concurrency=per_replica)  # fmt: skip
        rt = frame_step(profile.duplex, g, batch=per_replica,
                        context_frames=report.estimate.settings.context,
                        codec_instances=spec.sizing.codec_instances)  # fmt: skip
        fit = report.fits[0]
        why = _blocked_arch(spec, g)
        if why is None and not fit.fits:
            why = (f"{report.estimate.total_bytes / 2**30:.1f} GiB per replica over its "
                   f"{g.memory_bytes / 2**30:.0f} GiB")  # fmt: skip
        if why is None and not rt.ok:
            why = (f"not real time: a frame step of {rt.step_ms:g} ms predicted (rtf "
                   f"{rt.rtf:g}) over the {rt.frame_ms} ms frame's budget")  # fmt: skip
        looked.append((g, report, rt, why))
    able = [x for x in looked if x[3] is None and x[0].price_per_hour]
    able = able or [x for x in looked if x[3] is None]
    if not able:
        only = f" ({looked[0][3]})" if gpu and looked else ""
        raise DoesNotFitError(
            profile.repo_id or profile.location,
            f"a real-time {spec.name} replica on {gpu or 'any catalog GPU'}{only}",
            [f"{g.name}: {why}" for g, _, _, why in looked]
            or ["no GPU in the catalog to plan on"],
        )  # fmt: skip
    g, report, rt, _ = min(able, key=lambda x: x[0].price_per_hour or math.inf)
    reasons = [
        f"1 x {g.name}: {report.estimate.total_bytes / 2**30:.1f} GiB for {per_replica} "
        f"session(s); a frame step of {rt.step_ms:g} ms predicted, {rt.rtf:.0%} of the "
        f"{rt.frame_ms} ms frame (real time)"
        + ("" if gpu else "; the cheapest GPU that holds the model and real time")
    ]
    notes = []
    if rt.rtf > 0.7:
        notes.append(
            f"{g.name} is predicted at {rt.rtf:.0%} of the frame: little margin for jitter; "
            "measure a session with `hfdeploy bench URL --api duplex` before relying on it"
        )
    alternatives = tuple(
        Alternative(
            placement=f"1 x {x.name}",
            fits=why is None,
            per_month=(x.price_per_hour or 0) * _HOURS_PER_MONTH,
            chosen=x is g,
            why=why or f"frame step {r.step_ms:g} ms, {gib_of(rep):.1f} GiB",
        )
        for x, rep, r, why in looked
    )
    return DuplexChoice(g, report, rt, tuple(reasons), alternatives, tuple(notes))


def gib_of(report: SizeReport) -> float:
    return report.estimate.total_bytes / 2**30


def duplex_scaling(spec: EngineSpec, sessions: int) -> Scaling:
    """One replica per ``sessions_per_process`` concurrent conversations."""
    per_replica = (spec.sizing.sessions_per_process if spec.sizing else None) or 1
    replicas = max(1, math.ceil(sessions / per_replica))
    return Scaling(
        traffic_rps=None, replicas=replicas,
        basis=f"{sessions} concurrent session(s) at {per_replica} per replica ({spec.name} "
        "holds one conversation per process; a second client waits)",
        direction="horizontal: one replica per concurrent conversation; scale on sessions "
        "in use, not on CPU or GPU utilisation",
        sessions=sessions, sessions_per_replica=per_replica,
    )  # fmt: skip


def duplex_env(spec: EngineSpec) -> dict[str, str]:
    """The engine's environment, and for PersonaPlex the Hub cache ``fetch`` prepares (its
    server looks config.json up at every start, offline too)."""
    assert spec.deploy is not None
    env = dict(spec.deploy.env)
    if spec.name == "personaplex":
        env["HF_HUB_CACHE"] = f"{MODEL_DIR}/{HF_CACHE}"
    return env
