"""``kserve.yaml``: an InferenceService (RawDeployment) whose predictor is the same container
and volumes as the Kubernetes Deployment. Pure."""

from __future__ import annotations

from typing import Any

from hfdeploy.plan.result import Plan
from hfdeploy.render.common import dump_yaml, slug
from hfdeploy.render.duplex import session_bound
from hfdeploy.render.kubernetes import container, pod_spec, rolling_update, volume_files
from hfdeploy.render.triton import triton_config_map

__all__ = ["files", "kserve"]


def files(plan: Plan) -> dict[str, str]:
    """``kserve.yaml``; nothing for a multi-node plan, which one pod cannot hold, or when the
    plan lacks what it needs (its notes say why)."""
    if plan.pp > 1 or plan.blocked_reason("kserve") is not None:
        return {}
    return {"kserve.yaml": kserve(plan)} | volume_files(plan)


def kserve(plan: Plan) -> str:
    name = slug(plan.served_name)
    server = container(plan)
    server["name"] = "kserve-container"
    pod = pod_spec(plan, name)
    replicas = plan.scaling.replicas
    # One shared (ReadWriteMany) model volume lets it scale out; otherwise it stays at one.
    most = max(2, replicas * 2) if plan.destination.storage_class else replicas
    predictor: dict[str, Any] = {
        "minReplicas": replicas, "maxReplicas": most, "containers": [server],
        "volumes": pod["volumes"],
        # The same pod-level security (non-root user) and rollout as the Deployment.
        "deploymentStrategy": rolling_update(plan),
        **({"securityContext": pod["securityContext"]} if "securityContext" in pod else {}),
    }  # fmt: skip
    spec: dict[str, Any] = {"predictor": predictor}
    annotations = {"serving.kserve.io/deploymentMode": "RawDeployment"}
    if session_bound(plan):
        # The conversations a pod holds: one for the reference servers (their own lock;
        # Knative would enforce containerConcurrency in Serverless mode), hfdeploy's
        # --max-sessions. No autoscaler: KServe's HPA would scale on CPU, which says
        # nothing of free sessions; replicas stay at the planned conversations.
        annotations["serving.kserve.io/autoscalerClass"] = "none"
        predictor["containerConcurrency"] = plan.scaling.sessions_per_replica or 1
        predictor["maxReplicas"] = replicas
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "annotations": annotations},
        "spec": spec,
    }
    if plan.engine.name == "triton":  # its model repository travels with it
        cm = triton_config_map(plan, name, {"app.kubernetes.io/name": name})
        return dump_yaml(cm) + "---\n" + dump_yaml(isvc)
    return dump_yaml(isvc)
