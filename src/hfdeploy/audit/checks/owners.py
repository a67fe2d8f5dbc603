"""The objects of a run that others name: the replicated workloads an autoscaler scales, a
disruption budget or a Service selects, matched in the folder nearest the object that names
them (one run may audit several deployments with the same names)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from hfdeploy.audit.extract import FileFacts
from hfdeploy.audit.model import Workload
from hfdeploy.audit.objects import Autoscaler
from hfdeploy.catalog.engines import engine_catalog

__all__ = ["Owner", "in_nearest_folder", "owners_of", "same_namespace", "scaled_target"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Owner:
    """A replicated object of the run, once per object (not per container)."""

    file: str
    kind: str
    name: str
    namespace: str | None
    replicas: int
    labels: dict[str, str]
    engine: str | None


def owners_of(files: Sequence[FileFacts]) -> list[Owner]:
    """Every replicated Kubernetes object of the run, with the engine its pods serve."""
    seen: dict[tuple[str, str, str, str | None], Owner] = {}
    for f in files:
        for w in f.workloads:
            if w.source != "kubernetes" or not w.object_name:
                continue
            key = (f.path, w.kind, w.object_name, w.namespace)
            known = seen.get(key)
            engine = (known.engine if known else None) or _served(w)
            seen[key] = Owner(f.path, w.kind, w.object_name, w.namespace, w.replicas or 0,
                               w.pod_labels, engine)  # fmt: skip
    return list(seen.values())


def _served(w: Workload) -> str | None:
    spec = engine_catalog().get(w.engine or "")
    return spec.name if spec and spec.deploy else None


def same_namespace(a: str | None, b: str | None) -> bool:
    return a is None or b is None or a == b


def in_nearest_folder(path: str, items: list[T], file_of: Callable[[T], str]) -> list[T]:
    """The items in the folder nearest ``path``'s: one run may audit several deployments,
    each in its own folder, with the same object names."""

    def shared(item: T) -> int:
        a, b = os.path.dirname(path).split(os.sep), os.path.dirname(file_of(item)).split(os.sep)
        return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                    min(len(a), len(b)))  # fmt: skip

    best = max((shared(i) for i in items), default=0)
    return [i for i in items if shared(i) == best]


def scaled_target(hpa: Autoscaler, path: str, owners: list[Owner]) -> Owner | None:
    """The workload an autoscaler scales, the nearest one when several have its name."""
    named = [o for o in owners if o.kind == hpa.target_kind and o.name == hpa.target_name
             and same_namespace(o.namespace, hpa.namespace)]  # fmt: skip
    found = in_nearest_folder(path, named, lambda o: o.file)
    return found[0] if len(found) == 1 else None
