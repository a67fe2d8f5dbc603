"""Kubernetes: a Deployment (a LeaderWorkerSet for a multi-node plan), Service, HPA on the
engine's queue metric, PodDisruptionBudget, the model's PVC and the Job that fetches it. Pure.

Probes cannot kill a loading pod: a startup probe sized from the cold-start estimate holds
the liveness probe back until the model is ready.
"""

from __future__ import annotations

import math
import shlex
from typing import Any

from hfdeploy.plan.flags import MODEL_DIR, TRITON_REPOSITORY
from hfdeploy.plan.result import Plan
from hfdeploy.render.common import (
    CONSTRAINTS,
    FETCH_IMAGE,
    command,
    constraints,
    dump_yaml,
    env,
    gib,
    pinned_ref,
    shm,
    slug,
)
from hfdeploy.render.docker import fetch_dockerfile
from hfdeploy.render.triton import triton_config_map, triton_repository

__all__ = ["container", "files", "kubernetes", "pod_spec"]


def files(plan: Plan) -> dict[str, str]:
    """The manifests under ``k8s/``, and the fetch Job's Dockerfile with its constraints."""
    return kubernetes(plan) | {"fetch.Dockerfile": fetch_dockerfile(), CONSTRAINTS: constraints()}


def container(plan: Plan) -> dict[str, Any]:
    e, r = plan.engine, plan.routes
    budget = plan.cold_start.startup_probe_budget_s
    c: dict[str, Any] = {
        "name": "server",
        "image": plan.image,
        **({"command": list(plan.deploy.entrypoint)} if plan.deploy.entrypoint else {}),
        **({} if e.name == "hfdeploy" else {"args": command(plan)}),
        "env": [{"name": k, "value": v} for k, v in env(plan).items()],
        "ports": [{"name": "http", "containerPort": r.port}],
        # Startup covers download-free load + warmup; liveness only starts after it.
        "startupProbe": {"httpGet": {"path": r.ready, "port": "http"}, "periodSeconds": 10,
                         "failureThreshold": max(12, math.ceil(budget / 10))},
        "readinessProbe": {"httpGet": {"path": r.ready, "port": "http"}, "periodSeconds": 5,
                           "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": r.live, "port": "http"}, "periodSeconds": 15,
                          "failureThreshold": 4, "timeoutSeconds": 5},
        "resources": _resources(plan),
        "volumeMounts": [{"name": "model", "mountPath": MODEL_DIR, "readOnly": True},
                         {"name": "cache", "mountPath": "/cache"}],
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
    }  # fmt: skip
    if plan.tp > 1:
        c["volumeMounts"].append({"name": "shm", "mountPath": "/dev/shm"})
    if r.metrics_port:
        c["ports"].append({"name": "metrics", "containerPort": r.metrics_port})
    if e.name == "triton":
        c["volumeMounts"].append(
            {"name": "triton", "mountPath": TRITON_REPOSITORY, "readOnly": True}
        )
    return c


def _resources(plan: Plan) -> dict[str, Any]:
    weights = plan.profile.weights.bytes
    if plan.gpu is None:
        # CPU serving holds the weights in RAM, plus activations and the runtime.
        mem = gib(weights * 2 + 2 * 2**30)
        return {"requests": {"cpu": "2", "memory": mem}, "limits": {"memory": mem}}
    shm_gib = int(shm(plan).removesuffix("Gi")) if plan.tp > 1 else 0
    mem = f"{16 + shm_gib}Gi"  # host RAM for the runtime; memory-backed /dev/shm counts here
    gpus = str(plan.tp)
    return {
        "requests": {"cpu": "4", "memory": mem, "nvidia.com/gpu": gpus},
        "limits": {"memory": mem, "nvidia.com/gpu": gpus},
    }


def pod_spec(plan: Plan, name: str) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [
        {
            "name": "model",
            "persistentVolumeClaim": {"claimName": f"{name}-model", "readOnly": True},
        },
        {"name": "cache", "emptyDir": {}},
    ]
    if plan.tp > 1:
        volumes.append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": shm(plan)}})
    if plan.engine.name == "triton":
        # The model repository from its ConfigMap, laid out as Triton reads it.
        items = [{"key": path.rsplit("/", 1)[1], "path": path.removeprefix("triton/")}
                 for path in triton_repository(plan)]  # fmt: skip
        volumes.append({"name": "triton", "configMap": {"name": f"{name}-triton", "items": items}})
    spec: dict[str, Any] = {"containers": [container(plan)], "volumes": volumes,
                            "terminationGracePeriodSeconds": 60}  # fmt: skip
    uid = plan.deploy.run_as_user
    if uid is not None:
        spec["securityContext"] = {"runAsNonRoot": True, "runAsUser": uid, "fsGroup": uid}
    return spec


def kubernetes(plan: Plan) -> dict[str, str]:
    name = slug(plan.served_name)
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "hfdeploy"}
    replicas = plan.scaling.replicas
    size = gib(plan.profile.weights.bytes * 1.2 + 2**30)
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec(plan, name)},
        },
    }  # fmt: skip
    # Only the leader serves HTTP in a multi-node group; workers run Ray and hold stages.
    selector = {**labels, "role": "leader"} if plan.pp > 1 else labels
    service: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels},
        "spec": {"selector": selector,
                 "ports": [{"name": "http", "port": plan.routes.port, "targetPort": "http"}]},
    }  # fmt: skip
    hpa: dict[str, Any] = {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": replicas, "maxReplicas": max(2, replicas * 2),
            # Queue length per pod, from the engine's metrics via a Prometheus adapter.
            "metrics": [{"type": "Pods", "pods": {
                "metric": {"name": plan.routes.queue_metric},
                "target": {"type": "AverageValue", "averageValue": "8"}}}],
        },
    }  # fmt: skip
    pdb = {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "labels": labels},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}},
    }  # fmt: skip
    pvc = {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"{name}-model", "labels": labels},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": size}}},
    }  # fmt: skip
    fetch = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": f"{name}-fetch", "labels": labels},
        "spec": {"backoffLimit": 3, "template": {"metadata": {"labels": labels}, "spec": {
            "restartPolicy": "OnFailure",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000},
            "containers": [{
                "name": "fetch", "image": FETCH_IMAGE,
                "command": ["hfdeploy", "fetch", pinned_ref(plan), "--to", MODEL_DIR],
                "env": [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
                    "name": "hf-token", "key": "token", "optional": True}}},
                    {"name": "HF_HOME", "value": "/tmp/hf"}],
                "volumeMounts": [{"name": "model", "mountPath": MODEL_DIR}],
                "resources": {"requests": {"cpu": "1", "memory": "2Gi"},
                              "limits": {"memory": "2Gi"}},
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
            "volumes": [{"name": "model", "persistentVolumeClaim": {"claimName": f"{name}-model"}}],
        }}},
    }  # fmt: skip
    workload = {"k8s/deployment.yaml": dump_yaml(deployment)}
    if plan.engine.name == "triton":
        workload["k8s/triton-config.yaml"] = dump_yaml(triton_config_map(plan, name, labels))
    if plan.pp > 1:
        lws = _leader_worker_set(plan, name, labels, replicas)
        workload = {"k8s/leaderworkerset.yaml": dump_yaml(lws)}
        hpa["spec"]["scaleTargetRef"] = {
            "apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "name": name,
        }  # fmt: skip
    return {
        **workload,
        "k8s/service.yaml": dump_yaml(service),
        "k8s/hpa.yaml": dump_yaml(hpa),
        "k8s/pdb.yaml": dump_yaml(pdb),
        "k8s/pvc.yaml": dump_yaml(pvc),
        "k8s/fetch-job.yaml": dump_yaml(fetch),
    }


def _leader_worker_set(
    plan: Plan, name: str, labels: dict[str, str], replicas: int
) -> dict[str, Any]:
    """Multi-node vLLM: one leader (Ray head + the API server) and ``pp - 1`` workers (Ray)."""
    # The image's own entrypoint (`vllm serve`), after ray start in the same shell.
    serve = shlex.join(["vllm", "serve", *command(plan)])
    leader = pod_spec(plan, name)
    leader["containers"][0]["command"] = ["/bin/sh", "-c"]
    leader["containers"][0]["args"] = [f"ray start --head --port=6379 && exec {serve}"]
    worker = pod_spec(plan, name)
    wc = worker["containers"][0]
    wc["command"] = ["/bin/sh", "-c"]
    # LWS sets LWS_LEADER_ADDRESS in every pod of the group.
    wc["args"] = ["exec ray start --address=$(LWS_LEADER_ADDRESS):6379 --block"]
    for key in ("ports", "startupProbe", "readinessProbe", "livenessProbe"):
        wc.pop(key, None)
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "startupPolicy": "LeaderCreated",
            "leaderWorkerTemplate": {
                "size": plan.pp,
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": {"metadata": {"labels": {**labels, "role": "leader"}},
                                   "spec": leader},
                "workerTemplate": {"metadata": {"labels": {**labels, "role": "worker"}},
                                   "spec": worker},
            },
        },
    }  # fmt: skip
