"""``model-does-not-fit``: the sizing module applied to what a deployment asks for.

Runs only when the model can be resolved without the network (a local folder, or a
repo in the local Hugging Face cache) and the GPU type is known (a node selector).
"""

from __future__ import annotations

from hfdeploy.audit.gpus import gpu_from_label
from hfdeploy.audit.model import MAX_LEN_FLAGS, MEM_FRACTION_FLAGS, Workload
from hfdeploy.catalog.engines import engine_catalog
from hfdeploy.errors import HfDeployError

__all__ = ["does_not_fit"]

#: Engines whose memory the audit sizes from their flags: each runs its own memory model on a
#: safetensors checkpoint named in its arguments (not Triton: its model is in model.json).
_SIZED = frozenset(
    name
    for name, e in engine_catalog().items()
    if e.deploy and e.sizing and e.sizing.name == name and "safetensors" in e.formats
)


def does_not_fit(w: Workload) -> str | None:
    """A message when the workload's model cannot fit its GPUs; None when it fits or is unknown."""
    from hfdeploy.model.resolve import inspect_model
    from hfdeploy.sizing.report import size_model

    if w.invocation is None or w.engine not in _SIZED or not w.node_gpu:
        return None
    gpu = gpu_from_label(w.node_gpu)
    model = w.model()
    if gpu is None or not model:
        return None
    try:
        profile = inspect_model(model, environ={"HF_HUB_OFFLINE": "1"})
    except HfDeployError:
        return None  # not resolvable offline: no verdict
    tp = w.tp()
    raw_len = w.invocation.flag(*MAX_LEN_FLAGS)
    raw_frac = w.invocation.flag(*MEM_FRACTION_FLAGS)
    try:
        report = size_model(
            profile,
            gpu=gpu.name,
            engine=w.engine,
            tp=tp,
            context=int(raw_len) if raw_len else None,
            gpu_memory_utilization=float(raw_frac) if raw_frac else None,
        )
    except (HfDeployError, ValueError):
        return None
    fit = report.fits[0]
    if fit.fits:
        return None
    return (
        f"{model} needs {report.estimate.total_bytes / 2**30:.1f} GiB per GPU at TP {tp} "
        f"(context {report.estimate.settings.context:,}); {gpu.name} has "
        f"{gpu.memory_bytes / 2**30:.1f} GiB: {fit.reason}"
    )
