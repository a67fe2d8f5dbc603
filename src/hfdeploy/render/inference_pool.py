"""The Gateway API Inference Extension: an ``InferencePool`` over the serving pods, its
endpoint picker (EPP: Deployment, Service, ConfigMap, ServiceAccount, Role, RoleBinding) and
an ``HTTPRoute`` from a Gateway to the pool. Pure.

The gateway asks the endpoint picker which pod takes each request; the picker scores pods
by queue length, KV-cache use and prefix-cache hits from the engine's own metrics (vLLM's by
default; SGLang's when the pod's ``inference.networking.k8s.io/engine-type`` label says so,
which the k8s target sets). Pinned to the extension's v1.5.0 (``inference.networking.k8s.io/v1``)
and Gateway API v1.6.1's standard channel. What must already be in the cluster (a Gateway
implementation that supports the extension, its CRDs) is in the deployment's README.
"""

from __future__ import annotations

from typing import Any

from hfdeploy.plan.result import Plan
from hfdeploy.render.common import dump_yaml, labels, slug
from hfdeploy.render.kubernetes import serving_labels

__all__ = ["EPP_IMAGE", "GAIE_VERSION", "GATEWAY_API_VERSION", "files", "inference_pool"]

GAIE_VERSION = "v1.5.0"
GATEWAY_API_VERSION = "v1.6.1"
EPP_IMAGE = f"registry.k8s.io/gateway-api-inference-extension/epp:{GAIE_VERSION}"
POOL_API = "inference.networking.k8s.io"
_GRPC, _HEALTH, _METRICS = 9002, 9003, 9090
#: A request to a generator may stream for minutes; Gateway API's default has no timeout,
#: but implementations apply their own (often 15-60 s) unless the route sets one.
ROUTE_TIMEOUT = "600s"


def files(plan: Plan) -> dict[str, str]:
    """``inference-pool/*.yaml``; nothing when the plan cannot use a pool."""
    if plan.blocked_reason("inference-pool") is not None:
        return {}
    return inference_pool(plan)


def _plugins(engine: str) -> str:
    """The endpoint picker's plugins: the upstream chart's default scoring (queue 2, KV cache
    2, prefix cache 3), with the engine whose metric names it reads."""
    extractor: dict[str, Any] = {"type": "core-metrics-extractor"}
    if engine != "vllm":
        extractor["parameters"] = {"defaultEngine": engine}
    return dump_yaml({
        "apiVersion": "inference.networking.x-k8s.io/v1alpha1", "kind": "EndpointPickerConfig",
        "plugins": [
            {"type": "queue-scorer"}, {"type": "kv-cache-utilization-scorer"},
            {"type": "prefix-cache-scorer"},
            {"type": "metrics-data-source", "parameters": {
                "scheme": "http", "path": "/metrics", "insecureSkipVerify": True}},
            extractor,
        ],
        "schedulingProfiles": [{"name": "default", "plugins": [
            {"pluginRef": "queue-scorer", "weight": 2},
            {"pluginRef": "kv-cache-utilization-scorer", "weight": 2},
            {"pluginRef": "prefix-cache-scorer", "weight": 3}]}],
    })  # fmt: skip


def _epp_deployment(name: str, pool: str, labels: dict[str, str]) -> dict[str, Any]:
    probe = {"grpc": {"port": _HEALTH, "service": "inference-extension"}}
    env = [{"name": k, "valueFrom": {"fieldRef": {"fieldPath": f"metadata.{f}"}}}
           for k, f in (("NAMESPACE", "namespace"), ("POD_NAME", "name"))]  # fmt: skip
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1, "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"inferencepool": name}},
            "template": {"metadata": {"labels": {**labels, "inferencepool": name}}, "spec": {
                "serviceAccountName": name,
                "terminationGracePeriodSeconds": 130,
                "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
                "containers": [{
                    "name": "epp", "image": EPP_IMAGE,
                    "args": ["--pool-name", pool, "--pool-group", POOL_API,
                             "--config-file", "/config/default-plugins.yaml",
                             "--zap-encoder", "json", "--v", "1", "--tracing=false",
                             # Its own /metrics without token review (no cluster-wide RBAC).
                             "--metrics-endpoint-auth=false"],
                    "env": env,
                    "ports": [{"name": "grpc", "containerPort": _GRPC},
                              {"name": "grpc-health", "containerPort": _HEALTH},
                              {"name": "metrics", "containerPort": _METRICS}],
                    "livenessProbe": {**probe, "initialDelaySeconds": 5, "periodSeconds": 10},
                    "readinessProbe": {**probe, "periodSeconds": 2},
                    "resources": {"requests": {"cpu": "4", "memory": "8Gi"},
                                  "limits": {"memory": "16Gi"}},
                    "volumeMounts": [{"name": "plugins-config", "mountPath": "/config",
                                      "readOnly": True}],
                    "securityContext": {"allowPrivilegeEscalation": False,
                                        "capabilities": {"drop": ["ALL"]}},
                }],
                "volumes": [{"name": "plugins-config", "configMap": {"name": name}}],
            }},
        },
    }  # fmt: skip


def _rbac(name: str, labels: dict[str, str]) -> list[dict[str, Any]]:
    """The picker watches the pool's pods and the pool (and the alpha objective kinds when
    their CRDs are installed), in its own namespace only."""
    meta = {"name": name, "labels": labels}
    read = ["get", "watch", "list"]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": read},
                   {"apiGroups": [POOL_API], "resources": ["inferencepools"], "verbs": read},
                   {"apiGroups": ["inference.networking.x-k8s.io"],
                    "resources": ["inferenceobjectives", "inferencemodelrewrites"],
                    "verbs": read}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
         "subjects": [{"kind": "ServiceAccount", "name": name}],
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}},
    ]  # fmt: skip


def inference_pool(plan: Plan) -> dict[str, str]:
    pool = slug(plan.served_name)
    epp = f"{pool}-epp"
    server = serving_labels(pool)
    epp_labels = labels(epp)
    pool_doc = {
        "apiVersion": f"{POOL_API}/v1", "kind": "InferencePool",
        "metadata": {"name": pool, "labels": server},
        "spec": {
            # The serving pods (the k8s target's Deployment), on the engine's port.
            "selector": {"matchLabels": server},
            "targetPorts": [{"number": plan.routes.port}],
            # FailOpen: with the picker down, the gateway still routes (without scoring).
            "endpointPickerRef": {"name": epp, "port": {"number": _GRPC},
                                  "failureMode": "FailOpen"},
        },
    }  # fmt: skip
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": pool, "labels": server},
        "spec": {
            "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                            "name": plan.destination.scale_out.gateway}],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [{"group": POOL_API, "kind": "InferencePool", "name": pool}],
                "timeouts": {"request": ROUTE_TIMEOUT},
            }],
        },
    }  # fmt: skip
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": epp, "labels": epp_labels},
        "spec": {"selector": {"inferencepool": epp},
                 "ports": [{"name": "grpc-ext-proc", "port": _GRPC, "targetPort": _GRPC},
                           {"name": "http-metrics", "port": _METRICS, "targetPort": _METRICS}]},
    }  # fmt: skip
    config = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": epp, "labels": epp_labels},
              "data": {"default-plugins.yaml": _plugins(plan.engine.name)}}  # fmt: skip
    picker = [config, _epp_deployment(epp, pool, epp_labels), service, *_rbac(epp, epp_labels)]
    return {
        "inference-pool/inferencepool.yaml": dump_yaml(pool_doc),
        "inference-pool/httproute.yaml": dump_yaml(route),
        "inference-pool/endpoint-picker.yaml": dump_yaml(*picker),
    }
