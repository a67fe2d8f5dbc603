"""The engine catalog (package data ``engines.json``), read once and typed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from hfdeploy.errors import InvalidSettingError

__all__ = ["EngineSpec", "engine_catalog", "find_engine"]


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """One serving engine: image, routes, flags, what it serves."""

    name: str
    image: str
    tag: str
    tag_source: str
    port: int
    health: str
    ready: str
    live: str
    metrics: str
    metrics_prefix: str
    kinds: tuple[str, ...]
    gpu: bool
    tensor_parallel: bool
    formats: tuple[str, ...]
    args: dict[str, str]
    env: dict[str, str]
    image_gb: float
    warmup_s: float
    maintenance: bool
    note: str
    min_startup_s: float = 120
    # The model path is the first argument (``vllm serve MODEL``), not a flag's value.
    model_positional: bool = False
    requires: str = ""  # what the image needs of the node (driver), stated in plans
    #: The command that starts the server when the image's ENTRYPOINT does not (SGLang).
    entrypoint: tuple[str, ...] = ()
    #: The port of the metrics route when it is not the serving port (Triton: 8002).
    metrics_port: int | None = None
    tag_by_arch: dict[str, str] = field(default_factory=dict)
    model_types: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()

    def image_ref(self, compute_capability: str | None = None) -> str:
        """``image:tag``, with the GPU-architecture tag when the engine has one."""
        tag = (
            self.tag_by_arch.get(compute_capability or "", self.tag)
            if self.tag_by_arch
            else self.tag
        )
        return f"{self.image}:{tag}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "image": self.image, "tag": self.tag, "tag_source": self.tag_source,
            "port": self.port, "health": self.health, "ready": self.ready, "live": self.live,
            "metrics": self.metrics, "metrics_prefix": self.metrics_prefix,
            "kinds": list(self.kinds), "gpu": self.gpu, "tensor_parallel": self.tensor_parallel,
            "formats": list(self.formats), "args": dict(self.args), "env": dict(self.env),
            "maintenance": self.maintenance, "note": self.note,
            "min_startup_s": self.min_startup_s, "model_positional": self.model_positional,
            "requires": self.requires, "entrypoint": list(self.entrypoint),
            "metrics_port": self.metrics_port,
            "tag_by_arch": dict(self.tag_by_arch), "model_types": list(self.model_types),
            "tasks": list(self.tasks),
        }  # fmt: skip


@cache
def engine_catalog() -> dict[str, EngineSpec]:
    raw = json.loads(resources.files("hfdeploy.plan").joinpath("engines.json").read_text("utf-8"))
    out = {}
    for name, e in raw["engines"].items():
        values: dict[str, Any] = {
            k: tuple(v) if k in ("kinds", "formats", "model_types", "tasks", "entrypoint") else v
            for k, v in e.items()
        }
        out[name] = EngineSpec(name=name, **values)
    return out


def find_engine(name: str) -> EngineSpec:
    """An engine by name, case-insensitively.

    Raises:
        InvalidSettingError: listing the catalog's engines.
    """
    catalog = engine_catalog()
    key = name.strip().lower().replace("llamacpp", "llama.cpp")
    if key not in catalog:
        raise InvalidSettingError(
            "engine", name, "not in the engine catalog", hint="Use one of: " + ", ".join(catalog)
        )
    return catalog[key]
