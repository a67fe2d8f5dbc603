"""Where a model runs when one node does not hold it: 2-4 nodes of 8 with pipeline parallelism
(one node: ``plan.search``), the GPUs to look at, and the nearest options when nothing fits.

Pure: every candidate is sized with ``size_model`` against the GPU catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hfdeploy.catalog.engines import EngineSpec
from hfdeploy.catalog.gpus import GPU, find_gpu, gpu_catalog
from hfdeploy.errors import DoesNotFitError, HfDeployError, InvalidSettingError
from hfdeploy.model.profile import ModelProfile
from hfdeploy.plan.search import Alternative
from hfdeploy.sizing.report import SizeReport, size_model

__all__ = ["Placement", "candidate_gpus", "fit_nodes", "no_fit"]

_TP_DEGREES = (1, 2, 4, 8)
#: Nodes tried, of 8 GPUs each, when one node is not enough (vLLM pipeline parallelism).
_NODES = (2, 3, 4)


@dataclass(frozen=True, slots=True)
class Placement:
    """A GPU type and count that hold the model, and the sizing that says so."""

    gpu: GPU
    tp: int
    report: SizeReport
    pp: int = 1
    quantization: str | None = None
    #: The other configurations looked at, with their cost (one-node plans).
    alternatives: tuple[Alternative, ...] = ()


def candidate_gpus(gpu: str | None) -> list[GPU]:
    """The GPU asked for, or every priced NVIDIA GPU in the catalog."""
    if gpu:
        return [find_gpu(gpu)]
    return [g for g in gpu_catalog().gpus if g.vendor.lower() == "nvidia" and g.price_per_hour]


def fit_nodes(
    p: ModelProfile, engine: EngineSpec, gpus: list[GPU], knobs: dict[str, Any]
) -> Placement | None:
    """The cheapest (GPU, TP 8, PP nodes) that fits, fewest nodes first; vLLM only, and only
    GPUs with NVLink (TP 8 over PCIe inside each node would dominate every decode step)."""
    if engine.name != "vllm":
        return None
    for nodes in _NODES:
        best: tuple[float, Placement] | None = None
        for g in gpus:
            if not g.nvlink_gbps:
                continue
            try:
                report = size_model(p, gpu=g.name, engine="vllm", tp=8, pp=nodes, **knobs)
            except InvalidSettingError:
                continue
            if report.fits[0].fits:
                cost = (g.price_per_hour or 1e6) * 8 * nodes
                if best is None or cost < best[0]:
                    best = (cost, Placement(g, 8, report, pp=nodes))
        if best is not None:
            return best[1]
    return None


def no_fit(
    p: ModelProfile, spec: EngineSpec, gpu: str | None, knobs: dict[str, Any]
) -> DoesNotFitError:
    """The error for a model nothing holds, with the nearest options."""
    options: list[str] = []
    gpus = candidate_gpus(gpu)
    for g in gpus[-1:] if gpu else sorted(gpus, key=lambda g: -g.memory_bytes)[:1]:
        try:
            r = size_model(p, gpu=g.name, engine=spec.name, tp=8, **knobs)
            row = r.fits[0]
            if row.max_context:
                options.append(f"a context of {row.max_context:,} tokens or less on 8 x {g.name}")
        except HfDeployError:
            pass
    options.append(
        "int4 weights (an AWQ or GPTQ checkpoint): `hfdeploy size MODEL --quantization int4`"
    )
    if gpu:
        options.append("a GPU with more memory (drop --gpu to let the planner pick)")
    options.append("more than 8 GPUs: pipeline parallelism across nodes (LeaderWorkerSet)")
    return DoesNotFitError(
        p.repo_id or p.location, f"up to 8 x {gpu}" if gpu else "any catalog GPU up to 8", options
    )
