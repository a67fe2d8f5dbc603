"""MemoryEstimate: weights, KV cache, activations, overhead; fit over the GPU catalog."""

from hfdeploy.sizing.estimate import (
    MemoryEstimate,
    ServingSettings,
    estimate_memory,
    resolve_settings,
)
from hfdeploy.sizing.fit import FitRow, fit_table
from hfdeploy.sizing.gpus import GPU, find_gpu, gpu_catalog
from hfdeploy.sizing.report import SizeReport, size_model

__all__ = [
    "GPU",
    "FitRow",
    "MemoryEstimate",
    "ServingSettings",
    "SizeReport",
    "estimate_memory",
    "find_gpu",
    "fit_table",
    "gpu_catalog",
    "resolve_settings",
    "size_model",
]
