"""Kubernetes: a Deployment (a LeaderWorkerSet for a multi-node plan), Service, the model's
PVC and how the model gets into it, and with a shared (ReadWriteMany) volume an HPA on the
engine's queue metric and a PodDisruptionBudget. Pure.

Probes cannot kill a loading pod: a startup probe sized from the cold-start estimate holds
the liveness probe back until the model is ready. The model gets into its volume by a Job
that runs ``hfdeploy fetch`` when the model is pinned on the Hub and the fetch image has a
registry to be pulled from; otherwise by an upload pod that ``kubectl exec`` streams the
folder into.
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
    labels,
    pinned_ref,
    shm,
    slug,
)
from hfdeploy.render.docker import IGNORE, fetch_dockerfile
from hfdeploy.render.duplex import ingress, session_bound
from hfdeploy.render.keda import keda_files, plan_thresholds, replica_range
from hfdeploy.render.triton import triton_config_map, triton_repository

__all__ = [
    "UPLOAD_IMAGE",
    "container",
    "fetch_image",
    "fetches_in_cluster",
    "files",
    "kubernetes",
    "placement",
    "pod_metadata",
    "pod_spec",
    "resources",
    "rolling_update",
    "serving_labels",
    "volume_files",
]

#: The upload pod only needs ``tar`` (busybox's) to receive the model folder.
UPLOAD_IMAGE = "busybox:1.36.1"


def files(plan: Plan) -> dict[str, str]:
    """The manifests under ``k8s/``, and the fetch Job's Dockerfile with its constraints when a
    Job fetches the model; nothing when the plan says k8s cannot be written."""
    if plan.blocked_reason("k8s") is not None:
        return {}
    return kubernetes(plan) | volume_files(plan)


def volume_files(plan: Plan) -> dict[str, str]:
    """The model's volume and how the model gets into it: a fetch Job (with its image's
    Dockerfile) or an upload pod. KServe's predictor mounts the same volume."""
    name = slug(plan.served_name)
    out = {"k8s/pvc.yaml": dump_yaml(_pvc(plan, name, labels(name)))}
    if fetches_in_cluster(plan):
        out["k8s/fetch-job.yaml"] = dump_yaml(_fetch_job(plan, name, labels(name, "fetch")))
        out |= {"fetch.Dockerfile": fetch_dockerfile(), CONSTRAINTS: constraints(),
                ".dockerignore": IGNORE}  # fmt: skip
    else:
        out["k8s/model-upload-pod.yaml"] = dump_yaml(
            _upload_pod(name, labels(name, "model-upload"))
        )
    return out


def fetches_in_cluster(plan: Plan) -> bool:
    """A Job can fetch the model: it is pinned on the Hub, and the fetch image is pullable."""
    return bool(plan.repo_id and plan.commit and plan.destination.registry)


def fetch_image(plan: Plan) -> str:
    """The fetch Job's image, in the registry (``FETCH_IMAGE`` is its local name)."""
    name, _, tag = FETCH_IMAGE.partition(":")
    return plan.destination.image(name, tag)


def container(plan: Plan) -> dict[str, Any]:
    e, r = plan.engine, plan.routes
    budget = plan.cold_start.startup_probe_budget_s
    c: dict[str, Any] = {
        "name": "server",
        "image": plan.image,
        **({"command": list(plan.deploy.entrypoint)} if plan.deploy.entrypoint else {}),
        "args": command(plan),
        "env": [{"name": k, "value": v} for k, v in env(plan).items()],
        "ports": [{"name": "http", "containerPort": r.port}],
        # Startup covers download-free load + warmup; liveness only starts after it.
        "startupProbe": {**_probe(plan, r.ready), "periodSeconds": 10,
                         "failureThreshold": max(12, math.ceil(budget / 10)),
                         "timeoutSeconds": r.probe_timeout_s},
        "readinessProbe": {**_probe(plan, r.ready), "periodSeconds": 5,
                           "failureThreshold": 3, "timeoutSeconds": r.probe_timeout_s},
        "livenessProbe": {**_probe(plan, r.live), "periodSeconds": 15,
                          "failureThreshold": 4, "timeoutSeconds": max(5, r.probe_timeout_s)},
        "resources": resources(plan),
        "volumeMounts": [{"name": "model", "mountPath": MODEL_DIR, "readOnly": True},
                         {"name": "cache", "mountPath": plan.deploy.cache_dir}],
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
    }  # fmt: skip
    if plan.tp > 1:
        c["volumeMounts"].append({"name": "shm", "mountPath": "/dev/shm"})
    if r.metrics_port:
        c["ports"].append({"name": "metrics", "containerPort": r.metrics_port})
    if e.name == "triton":
        # File by file (subPath): a ConfigMap volume mounted as a folder also holds its
        # hidden ..data and ..<timestamp> entries, which Triton would take for models.
        c["volumeMounts"] += [
            {"name": "triton", "mountPath": f"{TRITON_REPOSITORY}/{path.removeprefix('triton/')}",
             "subPath": path.rsplit("/", 1)[1], "readOnly": True}
            for path in triton_repository(plan)
        ]  # fmt: skip
    return c


def _probe(plan: Plan, path: str) -> dict[str, Any]:
    """An HTTP probe on the route; a TCP probe for a server with no health route (a
    reference full-duplex server, whose only route holds its one conversation)."""
    if not path:
        return {"tcpSocket": {"port": "http"}}
    return {"httpGet": {"path": path, "port": "http"}}


def resources(plan: Plan) -> dict[str, Any]:
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
        # The model repository from its ConfigMap, each file mounted where Triton reads it.
        volumes.append({"name": "triton", "configMap": {"name": f"{name}-triton"}})
    spec: dict[str, Any] = {"containers": [container(plan)], "volumes": volumes,
                            "terminationGracePeriodSeconds": 60}  # fmt: skip
    uid = plan.deploy.run_as_user
    if uid is not None:
        spec["securityContext"] = {"runAsNonRoot": True, "runAsUser": uid, "fsGroup": uid}
    return spec | placement(plan, {"app.kubernetes.io/name": name})


#: GPU nodes are commonly tainted so that only pods asking for GPUs land there.
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
_GPU_LABEL = {"gfd": "nvidia.com/gpu.product", "gke": "cloud.google.com/gke-accelerator"}


def placement(plan: Plan, match: dict[str, str]) -> dict[str, Any]:
    """Where the serving pods run: on nodes with the planned GPU (by the node label the
    destination names), tolerating the GPU taint, spread across zones when there is more
    than one replica, at the destination's priority class. Pod-spec fields."""
    opts = plan.destination.scale_out
    out: dict[str, Any] = {}
    if plan.gpu is not None:
        key = _GPU_LABEL[opts.gpu_label]
        value = plan.gpu.node_label(key)
        if value is not None:  # a GPU the label does not name (AMD, or none on GKE): no pin
            out["nodeSelector"] = {key: value}
        out["tolerations"] = [GPU_TOLERATION]
    if plan.scaling.replicas > 1 or plan.destination.storage_class is not None:  # autoscaled
        # ScheduleAnyway: a zone short of this GPU must not leave a replica pending.
        out["topologySpreadConstraints"] = [{
            "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": match}}]  # fmt: skip
    if opts.priority_class:
        out["priorityClassName"] = opts.priority_class
    return out


def pod_metadata(plan: Plan, labels: dict[str, str]) -> dict[str, Any]:
    """A serving pod template's metadata: its labels (with the engine type the Inference
    Extension's endpoint picker reads its metrics by), and with KEDA the annotations that
    common Prometheus configurations scrape pods by."""
    meta: dict[str, Any] = {"labels": dict(labels)}
    if plan.targets is not None and "inference-pool" in plan.targets:
        meta["labels"]["inference.networking.k8s.io/engine-type"] = plan.engine.name
    if plan.destination.scale_out.autoscaler == "keda":
        r = plan.routes
        meta["annotations"] = {"prometheus.io/scrape": "true",
                               "prometheus.io/port": str(r.metrics_port or r.port),
                               "prometheus.io/path": r.metrics}  # fmt: skip
    return meta


def serving_labels(name: str) -> dict[str, str]:
    """The serving pods' labels, which the Service, PDB and InferencePool select by: the
    ``server`` component keeps the model's fetch Job and upload pod (same name) out."""
    return labels(name, "server")


def kubernetes(plan: Plan) -> dict[str, str]:
    """The workload's manifests (Deployment or LeaderWorkerSet, Service, HPA, PDB, Triton's
    ConfigMap), by path under the deployment folder; the volume's are ``volume_files``."""
    name = slug(plan.served_name)
    server = serving_labels(name)
    replicas = plan.scaling.replicas
    shared = plan.destination.storage_class is not None
    out = {"k8s/deployment.yaml": dump_yaml(_deployment(plan, name, server, replicas))}
    if plan.engine.name == "triton":
        out["k8s/triton-config.yaml"] = dump_yaml(triton_config_map(plan, name, server))
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    if plan.pp > 1:
        lws = _leader_worker_set(plan, name, server, replicas)
        out = {"k8s/leaderworkerset.yaml": dump_yaml(lws)}
        target = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
                  "name": name}  # fmt: skip
    # Only the leader serves HTTP in a multi-node group; workers run Ray and hold stages.
    selector = {**server, "role": "leader"} if plan.pp > 1 else server
    out["k8s/service.yaml"] = dump_yaml({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": server},
        "spec": {"selector": selector,
                 "ports": [{"name": "http", "port": plan.routes.port, "targetPort": "http"}]},
    })  # fmt: skip
    if session_bound(plan):  # conversations reach it over a WebSocket, through an ingress
        out["k8s/ingress.yaml"] = dump_yaml(ingress(plan, name, server))
    elif shared and plan.destination.scale_out.autoscaler == "keda":
        out |= keda_files(plan)
    elif shared:  # more pods can mount the model: scale on the engine's queue
        out["k8s/hpa.yaml"] = dump_yaml(_hpa(plan, name, server, target, replicas))
    if replicas > 1:  # with one replica, a PDB either allows the outage or blocks every drain
        out["k8s/pdb.yaml"] = dump_yaml({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "labels": server},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": server}},
        })  # fmt: skip
    return out


def _deployment(plan: Plan, name: str, labels: dict[str, str], replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": rolling_update(plan),
            "template": {"metadata": pod_metadata(plan, labels), "spec": pod_spec(plan, name)},
        },
    }  # fmt: skip


def rolling_update(plan: Plan) -> dict[str, Any]:
    """How pods are replaced: GPUs are whole and scarce, so a surge pod would wait for a spare
    set of them; a GPU rollout replaces one pod at a time (one replica: a short outage, which
    the README states). On CPU, a new pod comes up before an old one goes."""
    rolling = (
        {"maxUnavailable": 1, "maxSurge": 0} if plan.gpu else {"maxUnavailable": 0, "maxSurge": 1}
    )
    return {"type": "RollingUpdate", "rollingUpdate": rolling}


def _pvc(plan: Plan, name: str, labels: dict[str, str]) -> dict[str, Any]:
    size = gib(plan.profile.weights.bytes * 1.2 + 2**30)
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": size}}}  # fmt: skip
    if plan.destination.storage_class is not None:  # pods on many nodes read the one model
        spec = {"accessModes": ["ReadWriteMany"],
                "storageClassName": plan.destination.storage_class,
                "resources": spec["resources"]}  # fmt: skip
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"{name}-model", "labels": labels}, "spec": spec,
    }  # fmt: skip


def _hpa(
    plan: Plan, name: str, labels: dict[str, str], target: dict[str, str], replicas: int
) -> dict[str, Any]:
    low, high = replica_range(plan)
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "scaleTargetRef": target,
            # An HPA does not scale to zero (KEDA does: --autoscaler keda).
            "minReplicas": max(1, low), "maxReplicas": high,
            # Queue length per pod, from the engine's metrics via a Prometheus adapter.
            "metrics": [{"type": "Pods", "pods": {
                "metric": {"name": plan.routes.queue_metric},
                "target": {"type": "AverageValue",
                           "averageValue": str(plan_thresholds(plan).queue)}}}],
        },
    }  # fmt: skip


_RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _fetch_job(plan: Plan, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": f"{name}-fetch", "labels": labels},
        "spec": {"backoffLimit": 3, "template": {"metadata": {"labels": labels}, "spec": {
            "restartPolicy": "OnFailure",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000},
            "containers": [{
                "name": "fetch", "image": fetch_image(plan),
                "args": [str(pinned_ref(plan)), "--to", MODEL_DIR],
                "env": [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
                    "name": "hf-token", "key": "token", "optional": True}}},
                    {"name": "HF_HOME", "value": "/tmp/hf"}],
                "volumeMounts": [{"name": "model", "mountPath": MODEL_DIR}],
                "resources": {"requests": {"cpu": "1", "memory": "2Gi"},
                              "limits": {"memory": "2Gi"}},
                "securityContext": _RESTRICTED,
            }],
            "volumes": [{"name": "model", "persistentVolumeClaim": {"claimName": f"{name}-model"}}],
        }}},
    }  # fmt: skip


def _upload_pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    """A pod that holds the model volume open for ``kubectl exec ... tar`` (the README's
    steps), then is deleted."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{name}-model-upload", "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000},
            "containers": [{
                "name": "upload", "image": UPLOAD_IMAGE, "command": ["sleep", "3600"],
                "volumeMounts": [{"name": "model", "mountPath": MODEL_DIR}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                              "limits": {"memory": "256Mi"}},
                "securityContext": _RESTRICTED,
            }],
            "volumes": [{"name": "model", "persistentVolumeClaim": {"claimName": f"{name}-model"}}],
        },
    }  # fmt: skip


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
                "leaderTemplate": {"metadata": pod_metadata(plan, {**labels, "role": "leader"}),
                                   "spec": leader},
                "workerTemplate": {"metadata": {"labels": {**labels, "role": "worker"}},
                                   "spec": worker},
            },
        },
    }  # fmt: skip
