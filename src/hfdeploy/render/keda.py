"""KEDA: a ScaledObject that scales the serving workload on the engine's own queue (and KV
cache, where the engine exports its usage), read from Prometheus; a TriggerAuthentication
when Prometheus wants a bearer token. Pure.

Thresholds are per replica (KEDA's default AverageValue: replicas = ceil(sum / threshold))
and come from the plan (:func:`hfdeploy.plan.scale_out.thresholds`). The replica range is the
plan's; the minimum is 0 only where the plan's cost model finds scaling to zero cheaper, and
then the first request after an idle period waits for a cold start (the README says how long).
"""

from __future__ import annotations

from typing import Any

from hfdeploy.plan.result import Plan
from hfdeploy.plan.scale_out import KV_METRICS, Thresholds, thresholds
from hfdeploy.render.common import dump_yaml, labels, slug

__all__ = ["files", "keda_files", "plan_thresholds", "pod_regex", "replica_range"]

API = "keda.sh/v1alpha1"
#: How often KEDA queries Prometheus (its default is 30 s; a queue moves faster).
POLLING_S = 15
#: Scale down one pod at a time, after the queue has stayed low for this long.
SCALE_DOWN_WINDOW_S = 300


def files(plan: Plan) -> dict[str, str]:
    """``k8s/scaledobject.yaml`` (and ``k8s/keda-auth.yaml``); nothing when blocked."""
    if plan.blocked_reason("keda") is not None:
        return {}
    return keda_files(plan)


def plan_thresholds(plan: Plan) -> Thresholds:
    """The plan's per-replica autoscaling targets."""
    cap = plan.scaling.capacity
    return thresholds(
        plan.engine.name, plan.command.args, flags=plan.deploy.flags,
        batch_estimate=cap.batch_per_replica if cap else None,
        rps_estimate=cap.rps_per_replica if cap else None,
        measured_rps=plan.destination.scale_out.measured_rps,
    )  # fmt: skip


def replica_range(plan: Plan) -> tuple[int, int]:
    """(min, max) replicas: the plan's count up to twice it; 0 at the bottom where the cost
    model finds scaling to zero cheaper."""
    replicas = plan.scaling.replicas
    low = 0 if plan.cost is not None and plan.cost.cheaper == "scale-to-zero" else replicas
    return low, max(2, replicas * 2)


def pod_regex(plan: Plan) -> str:
    """The serving pods' names: a Deployment's ``NAME-HASH-XXXXX``, or a LeaderWorkerSet
    group's leader ``NAME-N`` (the only pod of a group that serves)."""
    name = slug(plan.served_name)
    return f"{name}-[0-9]+" if plan.pp > 1 else f"{name}-[a-z0-9]+-[a-z0-9]{{5}}"


def _query(metric: str, plan: Plan) -> str:
    return f'sum({metric}{{pod=~"{pod_regex(plan)}"}})'


def keda_files(plan: Plan) -> dict[str, str]:
    name = slug(plan.served_name)
    meta = labels(name)
    opts = plan.destination.scale_out
    t = plan_thresholds(plan)
    auth = {"authModes": "bearer"} if opts.prometheus_secret else {}
    ref = {"authenticationRef": {"name": f"{name}-prometheus"}} if opts.prometheus_secret else {}

    def trigger(what: str, metric: str, threshold: str, activation: str) -> dict[str, Any]:
        return {"type": "prometheus", "name": what, "metadata": {
            "serverAddress": opts.prometheus, "query": _query(metric, plan),
            "threshold": threshold, "activationThreshold": activation, **auth}, **ref}  # fmt: skip

    # Any queued request wakes a replica from zero; the KV cache never does (it is empty).
    triggers = [trigger("queue", plan.routes.queue_metric, str(t.queue), "0")]
    if t.kv_cache is not None:
        triggers.append(trigger("kv-cache", KV_METRICS[plan.engine.name], f"{t.kv_cache:g}", "1"))
    low, high = replica_range(plan)
    kind = ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet") if plan.pp > 1 else (
        "apps/v1", "Deployment")  # fmt: skip
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": kind[0], "kind": kind[1], "name": name},
        "pollingInterval": POLLING_S,
        "minReplicaCount": low, "maxReplicaCount": high,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
            "scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_WINDOW_S,
                          "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}}},
        "triggers": triggers,
    }  # fmt: skip
    if low == 0 and plan.cost is not None:  # back to zero after the cost model's idle timeout
        spec["cooldownPeriod"] = round(plan.cost.idle_timeout_s)
    out = {"k8s/scaledobject.yaml": dump_yaml({
        "apiVersion": API, "kind": "ScaledObject",
        "metadata": {"name": name, "labels": meta}, "spec": spec})}  # fmt: skip
    if opts.prometheus_secret:
        out["k8s/keda-auth.yaml"] = dump_yaml({
            "apiVersion": API, "kind": "TriggerAuthentication",
            "metadata": {"name": f"{name}-prometheus", "labels": meta},
            "spec": {"secretTargetRef": [
                {"parameter": "bearerToken", "name": opts.prometheus_secret, "key": "token"}]},
        })  # fmt: skip
    return out
