"""``kserve.yaml``: an InferenceService (RawDeployment) whose predictor is the same container
and volumes as the Kubernetes Deployment. Pure."""

from __future__ import annotations

from typing import Any

from hfdeploy.plan.result import Plan
from hfdeploy.render.common import dump_yaml, slug
from hfdeploy.render.kubernetes import container, pod_spec
from hfdeploy.render.triton import triton_config_map

__all__ = ["files", "kserve"]


def files(plan: Plan) -> dict[str, str]:
    """``kserve.yaml``; nothing for a multi-node plan, which one pod cannot hold."""
    return {} if plan.pp > 1 else {"kserve.yaml": kserve(plan)}


def kserve(plan: Plan) -> str:
    name = slug(plan.served_name)
    predictor = container(plan)
    predictor["name"] = "kserve-container"
    spec: dict[str, Any] = {"predictor": {"minReplicas": plan.scaling.replicas,
                                          "containers": [predictor],
                                          "volumes": pod_spec(plan, name)["volumes"]}}  # fmt: skip
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"},
        },
        "spec": spec,
    }
    if plan.engine.name == "triton":  # its model repository travels with it
        cm = triton_config_map(plan, name, {"app.kubernetes.io/name": name})
        return dump_yaml(cm) + "---\n" + dump_yaml(isvc)
    return dump_yaml(isvc)
