"""hfdeploy: from a Hugging Face model id or folder to a sized, pinned, measured deployment.

The library is the product; the CLI (``hfdeploy``) is a thin face over these calls.

Example:
    >>> from hfdeploy import inspect_model, size_model
    >>> profile = inspect_model("/models/all-MiniLM-L6-v2")  # doctest: +SKIP
    >>> size_model(profile, gpu="L4").estimate.total_bytes  # doctest: +SKIP
"""

from hfdeploy._version import __version__
from hfdeploy.envelope import Envelope
from hfdeploy.errors import HfDeployError
from hfdeploy.model.arch import ArchSpec, arch_from_config
from hfdeploy.model.profile import ModelProfile, build_profile
from hfdeploy.model.resolve import inspect_model, parse_ref, resolve
from hfdeploy.sizing import (
    GPU,
    FitRow,
    MemoryEstimate,
    ServingSettings,
    SizeReport,
    estimate_memory,
    find_gpu,
    fit_table,
    gpu_catalog,
    resolve_settings,
    size_model,
)

__all__ = [
    "GPU",
    "ArchSpec",
    "Envelope",
    "FitRow",
    "HfDeployError",
    "MemoryEstimate",
    "ModelProfile",
    "ServingSettings",
    "SizeReport",
    "__version__",
    "arch_from_config",
    "build_profile",
    "estimate_memory",
    "find_gpu",
    "fit_table",
    "gpu_catalog",
    "inspect_model",
    "parse_ref",
    "resolve",
    "resolve_settings",
    "size_model",
]
