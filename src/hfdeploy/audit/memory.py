"""``model-does-not-fit``: the sizing module applied to what a deployment asks for.

The GPU type comes from the node labels the pod is scheduled by (a node selector, or each
type a required node affinity allows), the model's config and headers from where the audit
may read them (``FileFacts.models``: the audited files' own tree, the local Hugging Face cache
from the CLI). Where it cannot read them, or the label names no GPU it knows, the finding says
it could not check, as information. Pure, but for the injected reader.
"""

from __future__ import annotations

from dataclasses import dataclass

from hfdeploy.audit.extract import ModelReader
from hfdeploy.audit.gpus import gpu_from_label
from hfdeploy.audit.model import HUB_ID, MAX_LEN_FLAGS, MEM_FRACTION_FLAGS, Value, Workload
from hfdeploy.catalog.engines import engine_catalog
from hfdeploy.errors import HfDeployError

__all__ = ["Fit", "fit_findings"]

#: Engines whose memory the audit sizes from their flags: each runs its own memory model on a
#: safetensors checkpoint named in its arguments (not Triton: its model is in model.json).
_SIZED = frozenset(
    name
    for name, e in engine_catalog().items()
    if e.deploy and e.sizing and e.sizing.name == name and "safetensors" in e.formats
)


@dataclass(frozen=True, slots=True)
class Fit:
    """One verdict of the fit check: a model that does not fit (``checked``), or a check that
    could not be made, and why."""

    line: int
    message: str
    checked: bool


def fit_findings(w: Workload, models: ModelReader | None) -> list[Fit]:
    """The model against each GPU type the workload may run on; none when there is no GPU
    label to check against, or the engine is not one hfdeploy sizes."""
    labels = list(dict.fromkeys(w.node_gpus)) or ([(w.node_gpu, w.line)] if w.node_gpu else [])
    model = w.model_value()
    if w.invocation is None or w.engine not in _SIZED or not labels or model is None:
        return []
    line = labels[0][1]
    gpus = [(label, at, gpu_from_label(label)) for label, at in labels]
    unknown = [(label, at) for label, at, gpu in gpus if gpu is None]
    if len(unknown) == len(gpus):
        label, at = unknown[0]
        return [Fit(at, f"could not check whether {model.text} fits: the node label value "
                        f"{label!r} names no GPU hfdeploy knows (a MIG slice, or a GPU not in "
                        "its catalog)", False)]  # fmt: skip
    if (unresolved := model.unresolved) is not None:
        return [Fit(model.line, f"could not check whether the model fits: the model id is "
                                f"from {unresolved.where(w.file)}", False)]  # fmt: skip
    profile = _profile(w, model, models)
    if isinstance(profile, str):
        return [Fit(line, f"could not check whether {model.text} fits the GPUs the node labels "
                          f"ask for: {profile}", False)]  # fmt: skip
    out: list[Fit] = []
    sized: set[str] = set()
    for label, at, gpu in gpus:
        if gpu is not None and gpu.name in sized:
            continue  # two labels of one GPU (two instance sizes): one verdict
        if gpu is None:
            out.append(Fit(at, f"could not check whether {model.text} fits: the node label "
                               f"value {label!r} names no GPU hfdeploy knows (a MIG slice, "
                               "or a GPU not in its catalog)", False))  # fmt: skip
            continue
        sized.add(gpu.name)
        message = _does_not_fit(w, profile, gpu.name, gpu.memory_bytes)
        if message:
            out.append(Fit(at, f"{model.text}{model.via(w.file)} {message}", True))
    return out


def _profile(w: Workload, model: Value, models: ModelReader | None) -> object:
    """The model's profile, or why it cannot be read: a Hub id from the cache, a path as
    written (a pod's path is in its container: only a folder of the audited tree is read)."""
    if models is None:
        return "the audit reads no model here (no files or cache to read it from)"
    if HUB_ID.match(model.text) and not model.text.startswith((".", "/")):
        revision = w.revision()
        return models(model.text, revision, None)
    found = models(model.text, None, model.text)  # a folder of the audited tree, as written
    if isinstance(found, str):
        return f"{model.text} is a path in the container, not a folder the audit may read"
    return found


def _does_not_fit(w: Workload, profile: object, gpu: str, memory: int) -> str | None:
    """Why the model does not fit one GPU of ``gpu`` at the workload's settings, or None."""
    from hfdeploy.model.profile import ModelProfile
    from hfdeploy.sizing.report import size_model

    if w.invocation is None or w.engine is None or not isinstance(profile, ModelProfile):
        return None
    tp = w.tp()
    raw_len = w.invocation.flag(*MAX_LEN_FLAGS)
    raw_frac = w.invocation.flag(*MEM_FRACTION_FLAGS)
    try:
        report = size_model(
            profile,
            gpu=gpu,
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
        f"needs {report.estimate.total_bytes / 2**30:.1f} GiB per GPU at TP {tp} "
        f"(context {report.estimate.settings.context:,}); {gpu} has "
        f"{memory / 2**30:.1f} GiB: {fit.reason}"
    )
