"""Which Hugging Face Inference Endpoints instance runs a plan (package data ``endpoints.json``).

Pure: from the plan's GPU, TP degree and memory to an instance type and size that the
service offers, or the reason there is none. A GPU the service does not offer (or no
longer offers) is replaced by the cheapest offered one with at least its memory and
bandwidth; a TP degree between two offered sizes takes the larger size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from hfdeploy.catalog.gpus import GPU, find_gpu

__all__ = ["EndpointChoice", "endpoint_instance", "no_endpoint"]


@dataclass(frozen=True, slots=True)
class EndpointChoice:
    """An instance for ``hf-endpoint.json`` (``instance_type`` None: none fits, see ``note``)."""

    vendor: str
    region: str
    accelerator: str
    instance_type: str | None
    instance_size: str | None
    #: Why the instance differs from the plan (another GPU, more GPUs), or why there is none.
    note: str = ""
    #: Minutes idle before the endpoint scales to zero (None: it keeps its replicas).
    scale_to_zero_minutes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "vendor": self.vendor, "region": self.region, "accelerator": self.accelerator,
            "instance_type": self.instance_type, "instance_size": self.instance_size,
            "note": self.note or None, "scale_to_zero_minutes": self.scale_to_zero_minutes,
        }  # fmt: skip


@cache
def _offers() -> dict[str, Any]:
    text = resources.files("hfdeploy.plan").joinpath("endpoints.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def no_endpoint(reason: str) -> EndpointChoice:
    """No instance for a plan, for a reason of the engine's (the note says it)."""
    return EndpointChoice(_offers()["vendor"], _offers()["region"], "gpu", None, None, reason)


def endpoint_instance(gpu: GPU | None, tp: int, memory_bytes: int) -> EndpointChoice:
    """The instance for a one-node plan of ``tp`` x ``gpu`` (None: CPU, ``memory_bytes``)."""
    data = _offers()
    vendor, region = data["vendor"], data["region"]
    if gpu is None:
        cpu = data["cpu"]
        # Room for the model's memory x 1.5 (tokenizer, server, request buffers), 2 vCPUs at least.
        need = memory_bytes * 1.5
        size = next(
            (n for n in cpu["sizes"] if n >= 2 and n * cpu["gib_per_vcpu"] * 2**30 >= need), None
        )
        if size is None:
            return EndpointChoice(vendor, region, "cpu", None, None,
                f"no {cpu['type']} size holds {need / 2**30:.1f} GiB: hf-endpoint.json is not "
                "written (plan for a GPU with --gpu)")  # fmt: skip
        return EndpointChoice(vendor, region, "cpu", cpu["type"], f"x{size}")
    offers = [(name, find_gpu(o["gpu"]), o["sizes"]) for name, o in data["gpu"].items()]
    same = [o for o in offers if o[1].name == gpu.name]
    bigger = sorted(
        (o for o in offers
         if o[1].memory_mib >= gpu.memory_mib and o[1].bandwidth_gbps >= gpu.bandwidth_gbps
         and o[1].vendor == gpu.vendor and o[1].name != gpu.name),
        key=lambda o: o[1].price_per_hour or float("inf"),
    )  # fmt: skip
    for name, offered, sizes in [*same, *bigger]:
        size = next((n for n in sizes if n >= tp), None)
        if size is None:
            continue
        notes = []
        if offered.name != gpu.name:
            why = (
                f"Inference Endpoints offers {same[0][0]} up to x{same[0][2][-1]}"
                if same
                else _missing(gpu, vendor)
            )
            notes.append(
                f"{why}: hf-endpoint.json asks for {name} ({offered.name}: more memory and "
                "bandwidth, so the plan fits there too)"
            )
        if size != tp:
            notes.append(
                f"{name} comes in sizes {', '.join(f'x{n}' for n in sizes)}: hf-endpoint.json "
                f"asks for x{size} and the engine uses {tp} of its {size} GPUs"
            )
        return EndpointChoice(vendor, region, "gpu", name, f"x{size}", "; ".join(notes))
    return EndpointChoice(vendor, region, "gpu", None, None,
        f"{_missing(gpu, vendor)}, and no instance of {tp} x a larger GPU: hf-endpoint.json "
        "is not written")  # fmt: skip


def _missing(gpu: GPU, vendor: str) -> str:
    retired = _offers()["retired"].get(gpu.name)
    if retired:
        return f"Inference Endpoints deprecated {retired[0]} on {vendor} from {retired[1]}"
    return f"Inference Endpoints has no {gpu.name} instance on {vendor}"
