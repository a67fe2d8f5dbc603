"""MemoryEstimate: weights, KV cache, activations, overhead; fit over the GPU catalog."""

from hfdeploy.catalog.gpus import GPU, find_gpu, gpu_catalog
from hfdeploy.sizing.estimate import MemoryEstimate, estimate_memory
from hfdeploy.sizing.fit import FitRow, fit_table
from hfdeploy.sizing.report import SizeReport, size_model
from hfdeploy.sizing.settings import ServingSettings, resolve_settings

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
