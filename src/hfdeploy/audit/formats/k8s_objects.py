"""Kubernetes objects that are not pods → facts: HorizontalPodAutoscaler and KEDA
ScaledObject, PodDisruptionBudget, PersistentVolumeClaim, ConfigMap; Services and the proxies
in front of them through ``formats/k8s_network.py``."""

from __future__ import annotations

from typing import Any

from hfdeploy.audit.formats.k8s_network import http_route, ingress, service
from hfdeploy.audit.objects import (
    Autoscaler,
    ConfigMapData,
    DisruptionBudget,
    Frontend,
    ScalingMetric,
    Service,
    VolumeClaim,
)
from hfdeploy.audit.yamlsrc import Doc

__all__ = ["K8sObject", "k8s_objects"]

K8sObject = Autoscaler | DisruptionBudget | VolumeClaim | ConfigMapData | Service | Frontend

_METRIC_KEYS = {"Pods": "pods", "Object": "object", "External": "external",
                "Resource": "resource", "ContainerResource": "containerResource"}  # fmt: skip
_RESOURCE_KEYS = ("resource", "containerResource")


def k8s_objects(doc: Doc, path: str = "") -> list[K8sObject]:
    """The objects one YAML document declares that the audit reads, if any."""
    data = doc.data
    if not isinstance(data, dict):
        return []
    meta, spec = _dict(data.get("metadata")), _dict(data.get("spec"))
    name = str(meta.get("name", ""))
    ns = str(meta["namespace"]) if meta.get("namespace") is not None else None
    match data.get("kind"):
        case "HorizontalPodAutoscaler":
            return [_autoscaler(doc, name, ns, spec)]
        case "ScaledObject":
            return [_scaled_object(doc, name, ns, spec)]
        case "Service":
            return [*service(doc, name, ns, spec)]
        case "Ingress":
            return [ingress(doc, name, ns, spec)]
        case "HTTPRoute":
            return [http_route(doc, name, ns, spec)]
        case "PodDisruptionBudget":
            return [_budget(doc, name, ns, spec)]
        case "PersistentVolumeClaim":
            modes = _list(spec.get("accessModes"))
            sc = spec.get("storageClassName")
            return [VolumeClaim(
                name, doc.start, tuple(str(m) for m in modes),
                doc.line("spec", "accessModes"), None if sc is None else str(sc),
                str(spec["volumeName"]) if spec.get("volumeName") else None,
            )]  # fmt: skip
        case "ConfigMap":
            keys = [k for part in ("data", "binaryData")
                    if isinstance(data.get(part), dict) for k in data[part]]  # fmt: skip
            data_ = _dict(data.get("data"))
            values = tuple((str(k), str(v), doc.line("data", k)) for k, v in data_.items()
                           if isinstance(v, str | int | float | bool))  # fmt: skip
            return [ConfigMapData(name, ns, doc.start, tuple(str(k) for k in keys), values, path)]
    return []


def _autoscaler(doc: Doc, name: str, ns: str | None, spec: dict[str, Any]) -> Autoscaler:
    ref = _dict(spec.get("scaleTargetRef"))
    metrics = []
    for i, m in enumerate(_list(spec.get("metrics"))):
        key = _METRIC_KEYS.get(m.get("type", "")) if isinstance(m, dict) else None
        body = _dict(m.get(key)) if key else {}
        # Resource metrics name the resource itself; the others a metric.
        metric = body if key in _RESOURCE_KEYS else _dict(body.get("metric"))
        if metric.get("name"):
            at = ("spec", "metrics", i, key or "", *(() if key in _RESOURCE_KEYS else ("metric",)))
            line = doc.line(*at, "name")
            metrics.append(ScalingMetric(str(m["type"]), str(metric["name"]), line))
    if "targetCPUUtilizationPercentage" in spec:  # autoscaling/v1
        line = doc.line("spec", "targetCPUUtilizationPercentage")
        metrics.append(ScalingMetric("Resource", "cpu", line))
    elif not spec.get("metrics"):  # both versions scale on CPU when no metric is given
        metrics.append(ScalingMetric("Resource", "cpu", doc.line("spec"), written=False))
    low = spec.get("minReplicas", 1)
    return Autoscaler(
        name, ns, doc.start, str(ref.get("kind", "")), str(ref.get("name", "")),
        low if isinstance(low, int) else 1, tuple(metrics),
    )  # fmt: skip


def _scaled_object(doc: Doc, name: str, ns: str | None, spec: dict[str, Any]) -> Autoscaler:
    """A KEDA ScaledObject: its cpu and memory triggers as Resource metrics, a Prometheus
    trigger's query as an External one (other triggers are not read)."""
    ref = _dict(spec.get("scaleTargetRef"))
    metrics = []
    for i, t in enumerate(_list(spec.get("triggers"))):
        kind = str(_dict(t).get("type", ""))
        if kind in ("cpu", "memory"):
            metrics.append(ScalingMetric("Resource", kind, doc.line("spec", "triggers", i, "type")))
        elif kind == "prometheus" and (query := _dict(_dict(t).get("metadata")).get("query")):
            line = doc.line("spec", "triggers", i, "metadata", "query")
            metrics.append(ScalingMetric("External", str(query), line))
    low = spec.get("minReplicaCount", 0)
    return Autoscaler(
        name, ns, doc.start, str(ref.get("kind") or "Deployment"), str(ref.get("name", "")),
        low if isinstance(low, int) else 0, tuple(metrics),
    )  # fmt: skip


def _budget(doc: Doc, name: str, ns: str | None, spec: dict[str, Any]) -> DisruptionBudget:
    selector = _dict(spec.get("selector"))
    labels = _dict(selector.get("matchLabels"))
    plain = bool(labels) and not selector.get("matchExpressions")
    key = "maxUnavailable" if "maxUnavailable" in spec else "minAvailable"
    return DisruptionBudget(
        name, ns, doc.start, spec.get("minAvailable"), spec.get("maxUnavailable"),
        doc.line("spec", key),
        {str(k): str(v) for k, v in labels.items()} if plain else None,
    )  # fmt: skip


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
