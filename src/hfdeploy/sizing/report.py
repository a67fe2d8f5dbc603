"""ModelProfile → SizeReport: the estimate and its fit table, as ``hfdeploy size`` shows it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Unpack

from hfdeploy.model.profile import ModelProfile
from hfdeploy.sizing.estimate import (
    MemoryEstimate,
    SettingsKnobs,
    estimate_memory,
    resolve_settings,
)
from hfdeploy.sizing.fit import FitRow, fit_table
from hfdeploy.sizing.gpus import find_gpu, gpu_catalog

__all__ = ["SizeReport", "size_model"]


@dataclass(frozen=True, slots=True)
class SizeReport:
    """The estimate under the chosen settings and the fit over GPUs."""

    profile: ModelProfile
    estimate: MemoryEstimate
    fits: tuple[FitRow, ...]

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
    settings = resolve_settings(profile, **knobs)
    est = estimate_memory(profile, settings)
    gpus = [find_gpu(gpu)] if gpu else list(gpu_catalog().gpus)
    return SizeReport(profile=profile, estimate=est, fits=tuple(fit_table(profile, est, gpus)))
