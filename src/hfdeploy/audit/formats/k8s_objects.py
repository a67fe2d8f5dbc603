"""Kubernetes objects that are not pods → facts: HorizontalPodAutoscaler,
PodDisruptionBudget, PersistentVolumeClaim, ConfigMap."""

from __future__ import annotations

from typing import Any

from hfdeploy.audit.objects import (
    Autoscaler,
    ConfigMapData,
    DisruptionBudget,
    ScalingMetric,
    VolumeClaim,
)
from hfdeploy.audit.yamlsrc import Doc

__all__ = ["K8sObject", "k8s_objects"]

K8sObject = Autoscaler | DisruptionBudget | VolumeClaim | ConfigMapData

_METRIC_KEYS = {"Pods": "pods", "Object": "object", "External": "external"}


def k8s_objects(doc: Doc) -> list[K8sObject]:
    """The autoscaler, budget, claim or ConfigMap one YAML document declares, if any."""
    data = doc.data
    if not isinstance(data, dict):
        return []
    meta, spec = _dict(data.get("metadata")), _dict(data.get("spec"))
    name = str(meta.get("name", ""))
    ns = str(meta["namespace"]) if meta.get("namespace") is not None else None
    match data.get("kind"):
        case "HorizontalPodAutoscaler":
            return [_autoscaler(doc, name, ns, spec)]
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
            return [ConfigMapData(name, ns, doc.start, tuple(str(k) for k in keys))]
    return []


def _autoscaler(doc: Doc, name: str, ns: str | None, spec: dict[str, Any]) -> Autoscaler:
    ref = _dict(spec.get("scaleTargetRef"))
    metrics = []
    for i, m in enumerate(_list(spec.get("metrics"))):
        key = _METRIC_KEYS.get(m.get("type", "")) if isinstance(m, dict) else None
        body = m.get(key) if key else None
        metric = body.get("metric") if isinstance(body, dict) else None
        if isinstance(metric, dict) and metric.get("name"):
            line = doc.line("spec", "metrics", i, key or "", "metric", "name")
            metrics.append(ScalingMetric(str(m["type"]), str(metric["name"]), line))
    low = spec.get("minReplicas", 1)
    return Autoscaler(
        name, ns, doc.start, str(ref.get("kind", "")), str(ref.get("name", "")),
        low if isinstance(low, int) else 1, tuple(metrics),
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
