"""Plans for full-duplex speech models: a GPU that holds the model and runs a frame in real
time, and the conversations each replica holds. Pure.

A GPU is planned only when the estimate fits it and the predicted frame step
(``plan.realtime``) holds real time; a GPU that fits but is too slow is refused with its
step, not planned. The reference servers hold one session per process, so replicas are the
concurrent sessions. hfdeploy's server steps every conversation of a replica together: a
replica holds the most conversations whose step (eager, each conversation's tokens drawn
on their own) still holds real time and whose KV caches still fit. The GPU chosen is the
one on which the conversations asked for cost least (replicas x price), then the cheapest
per conversation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

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
#: Conversations per replica tried for a lockstep server (the server's own warm-up ladder).
_LADDER = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True, slots=True)
class DuplexChoice:
    """The GPU chosen, its estimate and frame step, why, and the GPUs looked at."""

    gpu: GPU
    report: SizeReport
    realtime: Realtime
    reasons: tuple[str, ...]
    alternatives: tuple[Alternative, ...]
    notes: tuple[str, ...]
    #: Conversations one replica holds.
    sessions: int = 1


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


class _Looked(NamedTuple):
    """One GPU looked at: a replica's estimate and step, why not (None: it holds), and the
    conversations it holds."""

    gpu: GPU
    report: SizeReport
    realtime: Realtime
    why: str | None
    sessions: int


def _one(
    profile: ModelProfile, spec: EngineSpec, g: GPU, context: int | None, sessions: int
) -> _Looked:
    """A replica of ``sessions`` conversations on ``g``: its estimate, step, and why not."""
    assert spec.sizing is not None
    assert profile.duplex is not None
    lockstep = spec.sizing.lockstep_sessions
    report = size_model(profile, engine=spec.name, gpu=g.name, context=context,
                        concurrency=sessions)  # fmt: skip
    rt = frame_step(profile.duplex, g, batch=sessions,
                    context_frames=report.estimate.settings.context,
                    codec_instances=spec.sizing.codec_instances,
                    mode="eager" if lockstep else "cuda-graphs",
                    sampled_per_row=lockstep,
                    depth_steps=profile.duplex.codebooks // 2 if lockstep else None)  # fmt: skip
    why = _blocked_arch(spec, g)
    if why is None and not report.fits[0].fits:
        why = (f"{report.estimate.total_bytes / 2**30:.1f} GiB per replica over its "
               f"{g.memory_bytes / 2**30:.0f} GiB")  # fmt: skip
    if why is None and not rt.ok:
        why = (f"not real time: a frame step of {rt.step_ms:g} ms predicted (rtf "
               f"{rt.rtf:g}) over the {rt.frame_ms} ms frame's budget")  # fmt: skip
    return _Looked(g, report, rt, why, sessions)


def _replica(profile: ModelProfile, spec: EngineSpec, g: GPU, context: int | None) -> _Looked:
    """The largest replica ``g`` holds: a fixed one for a one-conversation server, the top
    of the ladder that still fits and holds real time for a lockstep one."""
    assert spec.sizing is not None
    if not spec.sizing.lockstep_sessions:
        return _one(profile, spec, g, context, spec.sizing.sessions_per_process or 1)
    best = _one(profile, spec, g, context, 1)
    if best.why is not None:
        return best
    for n in _LADDER[1:]:
        tried = _one(profile, spec, g, context, n)
        if tried.why is not None:
            break
        best = tried
    return best


def _cost(sessions: int) -> Callable[[_Looked], tuple[float, float]]:
    """Order: the hourly price of the replicas ``sessions`` conversations need, then the
    price per conversation at capacity."""

    def key(x: _Looked) -> tuple[float, float]:
        price = x.gpu.price_per_hour or math.inf
        return math.ceil(sessions / x.sessions) * price, price / x.sessions

    return key


def duplex_placement(
    profile: ModelProfile,
    spec: EngineSpec,
    gpu: str | None,
    context: int | None,
    sessions: int = 1,
) -> DuplexChoice:
    """The GPU on which ``sessions`` concurrent conversations cost least, each replica
    holding its conversations in real time.

    Raises:
        DoesNotFitError: no GPU does (or the one asked for does not), with each one's reason.
    """
    assert spec.sizing is not None
    assert profile.duplex is not None
    looked = [_replica(profile, spec, g, context) for g in candidate_gpus(gpu)]
    able = [x for x in looked if x.why is None and x.gpu.price_per_hour]
    able = able or [x for x in looked if x.why is None]
    if not able:
        only = f" ({looked[0][3]})" if gpu and looked else ""
        options = [f"{g.name}: {why}" for g, _, _, why, _ in looked]
        if gpu:  # the GPU asked for cannot: name the cheapest one that can
            try:
                best = duplex_placement(profile, spec, None, context, sessions)
                step = best.realtime.step_ms
                options.append(f"--gpu {best.gpu.name.lower()} holds real time ({step:g} ms a "
                               "frame predicted), the cheapest that does")  # fmt: skip
            except DoesNotFitError:
                pass
        raise DoesNotFitError(
            profile.repo_id or profile.location,
            f"a real-time {spec.name} replica on {gpu or 'any catalog GPU'}{only}",
            options or ["no GPU in the catalog to plan on"],
        )  # fmt: skip
    g, report, rt, _, n = min(able, key=_cost(sessions))
    lockstep = spec.sizing.lockstep_sessions
    reasons = [
        f"1 x {g.name}: {report.estimate.total_bytes / 2**30:.1f} GiB for {n} "
        f"session(s); a frame step of {rt.step_ms:g} ms predicted, {rt.rtf:.0%} of the "
        f"{rt.frame_ms} ms frame (real time)"
        + (f"; {n} conversations stepped together, the most that hold real time and fit"
           if lockstep else "")
        + ("" if gpu else f"; the cheapest GPU for {sessions} conversation(s) that holds the "
           "model and real time")
    ]  # fmt: skip
    notes = []
    if rt.rtf > 0.7:
        notes.append(
            f"{g.name} is predicted at {rt.rtf:.0%} of the frame: little margin for jitter; "
            "measure a session with `hfdeploy bench URL --api duplex` before relying on it"
        )
    if lockstep:
        notes.append(
            f"{n} conversations per replica is a prediction from priors (eager steps, "
            "per-conversation sampling); the server measures its own limit at warm-up and "
            "`--max-sessions` (set to it here) caps it: check `/info` and "
            "`hfdeploy bench URL --api duplex --profile concurrent:...` on the GPU"
        )
    alternatives = tuple(
        Alternative(
            placement=f"1 x {x.name}",
            fits=why is None,
            per_month=(x.price_per_hour or 0) * _HOURS_PER_MONTH,
            chosen=x is g,
            why=why or f"frame step {r.step_ms:g} ms for {k} session(s), {gib_of(rep):.1f} GiB",
        )
        for x, rep, r, why, k in looked
    )
    return DuplexChoice(g, report, rt, tuple(reasons), alternatives, tuple(notes), n)


def gib_of(report: SizeReport) -> float:
    return report.estimate.total_bytes / 2**30


def duplex_scaling(spec: EngineSpec, sessions: int, per_replica: int = 1) -> Scaling:
    """One replica per ``per_replica`` concurrent conversations."""
    replicas = max(1, math.ceil(sessions / per_replica))
    how = ("steps every conversation of a replica together; past its limit a new one is "
           "refused with 503" if spec.sizing and spec.sizing.lockstep_sessions
           else "holds one conversation per process; a second client waits")  # fmt: skip
    return Scaling(
        traffic_rps=None, replicas=replicas,
        basis=f"{sessions} concurrent session(s) at {per_replica} per replica ({spec.name} "
        f"{how})",
        direction=f"horizontal: one replica per {per_replica} concurrent conversation(s); "
        "scale on sessions in use, not on CPU or GPU utilisation",
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
