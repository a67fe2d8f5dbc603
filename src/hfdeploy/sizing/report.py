"""ModelProfile → SizeReport: the estimate and its fit table, as ``hfdeploy size`` shows it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Unpack

from hfdeploy.catalog.engines import sizing_engines
from hfdeploy.catalog.gpus import find_gpu, gpu_catalog
from hfdeploy.envelope import Envelope, lowest
from hfdeploy.model.profile import ModelProfile
from hfdeploy.sizing.estimate import MemoryEstimate, estimate_memory
from hfdeploy.sizing.fit import FitRow, fit_table
from hfdeploy.sizing.settings import SettingsKnobs, resolve_settings

__all__ = ["SizeReport", "size_model"]


@dataclass(frozen=True, slots=True)
class SizeReport:
    """The estimate under the chosen settings and the fit over GPUs."""

    profile: ModelProfile
    estimate: MemoryEstimate
    fits: tuple[FitRow, ...]

    def envelope(self) -> Envelope:
        """The estimate as an answer: total, fit, the weakest terms, how to check."""
        e, s = self.estimate, self.estimate.settings
        fitting = [f"{r.gpu} x{r.count}" for r in self.fits if r.fits]
        total = e.total_bytes / 2**30
        result = (
            f"{total:.2f} GiB per GPU rank for {self.profile.repo_id or self.profile.location} "
            f"on {s.engine} ({s.dtype}, context {s.context:,}, concurrency {s.concurrency}, "
            f"TP {s.tp}); fits: {', '.join(fitting) if fitting else 'none of the GPUs checked'}"
        )
        terms = {
            "weights": e.weights,
            "kv cache": e.kv_cache,
            "activations": e.activations,
            "cuda context": e.cuda_context,
            "non-torch": e.non_torch,
            "cuda graphs": e.cuda_graphs,
        }
        # The answer is as sure as its weakest term that matters (over 5% of the total).
        big = {k: t for k, t in terms.items() if t.bytes > 0.05 * e.total_bytes} or terms
        confidence = lowest(*(t.confidence for t in big.values()))
        weakest = [k for k, t in big.items() if t.confidence == confidence]
        why = f"weakest large term: {', '.join(weakest)} ({confidence})"
        factors = [
            f"{name}: {t.bytes / 2**30:.2f} GiB, {t.confidence} ({t.basis})"
            for name, t in terms.items()
            if t.confidence != "high" and t.bytes
        ]
        factors.extend(e.notes)
        verification = [f"hfdeploy size {self.profile.ref} --json"]
        if sizing_engines()[s.engine].kv_cache_log:
            verification.append(
                "start the engine with these settings and read its KV-cache line "
                "(vLLM: 'GPU KV cache size'; SGLang: 'KV Cache is allocated')"
            )
        else:
            verification.append(
                "start the server with these settings and compare nvidia-smi's memory.used"
            )
        verification.append(
            "benchmarks/gpu_memory.py on a GPU: estimate vs torch.cuda.max_memory_allocated"
        )
        return Envelope(result, confidence, why, tuple(factors), tuple(verification))

    def to_dict(self) -> dict[str, Any]:
        """The ``hfdeploy size --json`` object."""
        out = self.estimate.to_dict()
        out["model"] = {
            "ref": self.profile.ref,
            "repo_id": self.profile.repo_id,
            "commit_sha": self.profile.commit_sha,
            "task": self.profile.task.task,
            "kind": self.profile.task.kind,
            "weights_source": self.profile.weights_source,
        }
        out["parameters"] = {
            "total": self.profile.parameters,
            "experts": self.profile.weights.expert_parameters,
        }
        out["fits"] = [r.to_dict() for r in self.fits]
        return out


def size_model(
    profile: ModelProfile, *, gpu: str | None = None, **knobs: Unpack[SettingsKnobs]
) -> SizeReport:
    """Estimate GPU memory for a profiled model and fit it to GPUs.

    Args:
        profile: from :func:`hfdeploy.inspect_model`.
        gpu: one catalog GPU to fit against (default: the whole catalog).
        knobs: serving settings, see :class:`SettingsKnobs` and ``hfdeploy size --help``.

    Raises:
        InvalidSettingError: a setting out of range; UnknownGPUError: a GPU not in the catalog.
    """
    one = find_gpu(gpu) if gpu else None
    # The engine's defaults on that GPU (without one: its defaults when it sees none); each
    # row of the fit table takes the defaults of its own GPU.
    est = estimate_memory(profile, resolve_settings(profile, gpu=one, **knobs))
    gpus = [one] if one else list(gpu_catalog().gpus)
    return SizeReport(profile=profile, estimate=est, fits=tuple(fit_table(profile, gpus, knobs)))
