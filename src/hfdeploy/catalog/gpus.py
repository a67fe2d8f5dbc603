"""The GPU catalog (package data ``gpus.json``), read once and typed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from hfdeploy.envelope import Envelope
from hfdeploy.errors import UnknownGPUError

__all__ = ["GPU", "GPUCatalog", "find_gpu", "gpu_catalog"]

MIB = 1024**2


@dataclass(frozen=True, slots=True)
class GPU:
    """One accelerator model: memory, bandwidth, peak dense throughput, indicative price."""

    name: str
    aliases: tuple[str, ...]
    vendor: str
    memory_gib_nominal: float
    memory_mib: int
    bandwidth_gbps: float
    bf16_tflops: float | None
    fp16_tflops: float | None
    fp8_tflops: float | None
    arch: str
    compute_capability: str
    nvlink_gbps: float | None
    price_per_hour: float | None
    price_instance: str
    #: (label, value) of the node labels that name this GPU: GPU feature discovery's
    #: ``nvidia.com/gpu.product``, GKE's ``cloud.google.com/gke-accelerator``.
    node_labels: tuple[tuple[str, str], ...] = ()

    def node_label(self, key: str) -> str | None:
        """This GPU's value of node label ``key``; None when it has none."""
        return dict(self.node_labels).get(key)

    @property
    def memory_bytes(self) -> int:
        """Memory visible to the runtime, in bytes."""
        return self.memory_mib * MIB

    @property
    def supports_bf16(self) -> bool:
        return self.bf16_tflops is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            "vendor": self.vendor,
            "memory_gib_nominal": self.memory_gib_nominal,
            "memory_bytes": self.memory_bytes,
            "bandwidth_gbps": self.bandwidth_gbps,
            "bf16_tflops": self.bf16_tflops,
            "fp16_tflops": self.fp16_tflops,
            "fp8_tflops": self.fp8_tflops,
            "arch": self.arch,
            "compute_capability": self.compute_capability,
            "nvlink_gbps": self.nvlink_gbps,
            "price_per_hour": self.price_per_hour,
            "price_instance": self.price_instance,
            "node_labels": dict(self.node_labels),
        }


@dataclass(frozen=True, slots=True)
class GPUCatalog:
    """Every GPU in the catalog, with where the prices came from."""

    gpus: tuple[GPU, ...]
    price_source: str
    price_date: str

    def names(self) -> list[str]:
        return [g.name for g in self.gpus]

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpus": [g.to_dict() for g in self.gpus],
            "price_source": self.price_source,
            "price_date": self.price_date,
        }

    def envelope(self) -> Envelope:
        return Envelope(
            f"{len(self.gpus)} GPUs: {', '.join(self.names())}",
            "medium",
            "memory, bandwidth and throughput from vendor datasheets; prices indicative",
            (
                f"prices from {self.price_source} ({self.price_date}), not verified: "
                "check your provider's current rates",
                "visible memory is below the nominal size (ECC, driver reservations)",
            ),
            ("nvidia-smi --query-gpu=name,memory.total --format=csv on the target machine",),
        )


@cache
def gpu_catalog() -> GPUCatalog:
    """The packaged GPU catalog."""
    raw = json.loads(resources.files("hfdeploy.catalog").joinpath("gpus.json").read_text("utf-8"))
    gpus = tuple(
        GPU(**{**g, "aliases": tuple(g.get("aliases", ())),
               "node_labels": tuple(sorted(g.get("node_labels", {}).items()))})
        for g in raw["gpus"]
    )  # fmt: skip
    return GPUCatalog(gpus=gpus, price_source=raw["price_source"], price_date=raw["price_date"])


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(" ", "-")


def find_gpu(name: str) -> GPU:
    """Look a GPU up by name or alias, case-insensitively.

    Raises:
        UnknownGPUError: with the catalog's names.
    """
    catalog = gpu_catalog()
    wanted = _norm(name)
    for gpu in catalog.gpus:
        if wanted == _norm(gpu.name) or wanted in (_norm(a) for a in gpu.aliases):
            return gpu
    raise UnknownGPUError(name, catalog.names())
