"""The plan as an answer: result, confidence (the weakest of memory and throughput), the
uncertainty factors that drove it, and how to verify it. Pure."""

from __future__ import annotations

from hfdeploy.catalog.engines import EngineSpec
from hfdeploy.catalog.gpus import GPU
from hfdeploy.envelope import Confidence, Envelope, lowest
from hfdeploy.model.profile import ModelProfile
from hfdeploy.plan.cost import ColdStart
from hfdeploy.plan.realtime import Realtime
from hfdeploy.plan.result import memory_bytes, placement
from hfdeploy.plan.roofline import Roofline, Scaling
from hfdeploy.sizing.report import SizeReport

__all__ = ["plan_envelope"]


def plan_envelope(
    p: ModelProfile,
    spec: EngineSpec,
    report: SizeReport,
    *,
    gpu: GPU | None,
    tp: int,
    pp: int,
    roof: Roofline | None,
    scaling: Scaling,
    cold: ColdStart,
    notes: list[str],
    realtime: Realtime | None = None,
) -> Envelope:
    """Result, confidence, uncertainty factors and verification steps of a plan."""
    where = placement(gpu, tp, pp)
    need = memory_bytes(report.estimate, gpu) / 2**30
    memory = f"{need:.1f} GiB per GPU" if gpu else f"{need:.2f} GiB on CPU"
    result = (
        f"{spec.name} on {where} for {p.repo_id or p.location} ({p.task.task}); "
        f"{memory}; {scaling.replicas} replica(s)"
    )
    size_env = report.envelope()
    timed = roof is not None or realtime is not None  # a speed predicted from priors
    confidence: Confidence = lowest(size_env.confidence, "medium" if timed else "high")
    size_factors = [
        f for f in size_env.uncertainty_factors
        if gpu is not None or not f.startswith(("cuda context", "non-torch", "cuda graphs"))
    ]  # fmt: skip
    factors = [
        *size_factors[:3],
        f"cold start {cold.total_s}s from priors ({cold.basis})",
        *notes,
    ]
    if roof:
        factors.append(
            f"throughput: the roofline ceiling x {roof.efficiency:g}, the efficiency a "
            "minimal CUDA-graph decode reached on an H200; a real engine's differs: measure "
            "one replica with `hfdeploy bench`"
        )
    if realtime is not None:
        factors.append(
            f"real time: a frame step of {realtime.step_ms:g} ms predicted ({realtime.basis})"
        )
    verification = (
        f"hfdeploy size {p.ref} --engine {spec.name} --json",
        "hfdeploy audit on the deployment files that run it",
        "start the engine and read its KV-cache and ready lines; measure with a load test",
    )
    speed = "real time" if realtime is not None else "throughput"
    why = f"memory: {size_env.confidence}; {speed} and cold start: priors"
    return Envelope(result, confidence, why, tuple(factors), verification)
