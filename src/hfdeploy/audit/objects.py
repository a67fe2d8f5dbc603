"""What a deployment declares besides its server processes: the Kubernetes objects around
the pods (autoscalers, disruption budgets, volume claims, ConfigMaps), Inference Endpoints'
creation arguments, and a Dockerfile's build-context sources. Pure data, read by
``audit/formats/`` and checked by ``audit/checks/``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Autoscaler",
    "ConfigMapData",
    "CopySource",
    "DisruptionBudget",
    "Endpoint",
    "ScalingMetric",
    "VolumeClaim",
]


@dataclass(frozen=True, slots=True)
class ScalingMetric:
    """One metric of a HorizontalPodAutoscaler (``Pods``, ``Object``, ``External``)."""

    type: str
    name: str
    line: int


@dataclass(frozen=True, slots=True)
class Autoscaler:
    """A HorizontalPodAutoscaler: the object it scales and on what."""

    name: str
    namespace: str | None
    line: int
    target_kind: str
    target_name: str
    min_replicas: int
    metrics: tuple[ScalingMetric, ...]


@dataclass(frozen=True, slots=True)
class DisruptionBudget:
    """A PodDisruptionBudget: how many pods a drain may take, and which pods."""

    name: str
    namespace: str | None
    line: int
    min_available: int | str | None
    max_unavailable: int | str | None
    #: The line of ``minAvailable`` or ``maxUnavailable``.
    value_line: int
    #: ``matchLabels``; None when the selector uses expressions (not matched here).
    selector: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class VolumeClaim:
    """A PersistentVolumeClaim's access modes and class."""

    name: str
    line: int
    access_modes: tuple[str, ...]
    modes_line: int
    #: ``storageClassName`` as written; None when the key is absent (the default class).
    storage_class: str | None
    #: A pre-provisioned volume named by ``volumeName``.
    volume_name: str | None


@dataclass(frozen=True, slots=True)
class ConfigMapData:
    """A ConfigMap: its name and the keys of ``data`` and ``binaryData``."""

    name: str
    namespace: str | None
    line: int
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """``hf-endpoint.json``: the arguments of ``HfApi.create_inference_endpoint``."""

    repository: str | None
    repository_line: int
    revision: str | None
    revision_line: int
    image: str | None
    image_line: int


@dataclass(frozen=True, slots=True)
class CopySource:
    """A source of a Dockerfile ``COPY`` or ``ADD`` read from the build context."""

    path: str
    line: int
