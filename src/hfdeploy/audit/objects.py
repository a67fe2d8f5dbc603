"""What a deployment declares besides its server processes: the Kubernetes objects around
the pods (autoscalers, disruption budgets, volume claims, ConfigMaps, Services and the
proxies in front of them), Inference Endpoints' creation arguments, and a Dockerfile's
build-context sources. Pure data, read by
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
    "Frontend",
    "ProxyTimeout",
    "ScalingMetric",
    "Service",
    "VolumeClaim",
]


@dataclass(frozen=True, slots=True)
class ScalingMetric:
    """One metric of an autoscaler: a HorizontalPodAutoscaler's ``Resource`` (named ``cpu``,
    ``memory``), ``ContainerResource``, ``Pods``, ``Object`` or ``External`` metric; a KEDA
    trigger: ``cpu`` and ``memory`` as ``Resource``, a Prometheus query as ``External``."""

    type: str
    name: str
    line: int
    #: False: no metric is written and this is Kubernetes' default (CPU at 80%).
    written: bool = True


@dataclass(frozen=True, slots=True)
class Autoscaler:
    """A HorizontalPodAutoscaler or a KEDA ScaledObject: the object it scales and on what."""

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
    #: Each string entry of ``data``: key, value and line, for the containers that read it.
    values: tuple[tuple[str, str, int], ...] = ()
    #: The file that declares it.
    file: str = ""


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


@dataclass(frozen=True, slots=True)
class Service:
    """A Kubernetes Service: the pods it sends traffic to."""

    name: str
    namespace: str | None
    line: int
    #: ``spec.selector``; None when it has none (endpoints managed by hand).
    selector: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class ProxyTimeout:
    """A timeout a proxy applies to the connections it carries, in seconds."""

    #: The annotation or field that sets it.
    setting: str
    seconds: float
    line: int
    #: False: the setting is absent and ``seconds`` is the proxy's default.
    written: bool = True


@dataclass(frozen=True, slots=True)
class Frontend:
    """What carries client connections to Services: an Ingress, a Gateway API HTTPRoute, or
    a Service of type LoadBalancer (its own cloud load balancer)."""

    kind: str
    name: str
    namespace: str | None
    line: int
    #: The Services it sends traffic to (a LoadBalancer Service: itself).
    services: tuple[str, ...]
    #: Its timeouts that can end a long-lived connection, written or defaulted.
    timeouts: tuple[ProxyTimeout, ...]
