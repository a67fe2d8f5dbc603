"""``hf-endpoint.json``: the keyword arguments of huggingface_hub's
``HfApi.create_inference_endpoint`` for the plan's instance. Pure."""

from __future__ import annotations

import json
from typing import Any

from hfdeploy.plan.flags import MODEL_DIR
from hfdeploy.plan.result import Plan
from hfdeploy.render.common import command, env, slug

__all__ = ["files", "hf_endpoint"]


def files(plan: Plan) -> dict[str, str]:
    """``hf-endpoint.json``; nothing for a multi-node plan, when the service offers no
    instance for it, or when the plan lacks what it needs (the plan's notes say why)."""
    if plan.pp > 1 or plan.endpoint is None or plan.endpoint.instance_type is None:
        return {}
    if plan.blocked_reason("hf-endpoint") is not None:
        return {}
    return {"hf-endpoint.json": hf_endpoint(plan)}


def hf_endpoint(plan: Plan) -> str:
    """Keyword arguments of ``huggingface_hub.HfApi.create_inference_endpoint``: create it
    with ``HfApi().create_inference_endpoint(**json.load(open("hf-endpoint.json")))``."""
    e, r = plan.engine, plan.routes
    variables = env(plan)
    if e.name in ("tgi", "tei"):
        variables["MODEL_ID"] = MODEL_DIR
    where = plan.endpoint
    if where is None or where.instance_type is None or not plan.repo_id or not plan.commit:
        raise ValueError("the plan has no Inference Endpoints instance or no pinned Hub model")
    body: dict[str, Any] = {
        "name": slug(plan.served_name),
        "repository": plan.repo_id,
        "revision": plan.commit,
        "framework": "pytorch",
        "task": plan.profile.task.task,
        "accelerator": where.accelerator,
        "vendor": where.vendor,
        "region": where.region,
        "instance_type": where.instance_type,
        "instance_size": where.instance_size,
        "min_replica": 0 if where.scale_to_zero_minutes else plan.scaling.replicas,
        "max_replica": max(2, plan.scaling.replicas * 2),
        **(
            {"scale_to_zero_timeout": where.scale_to_zero_minutes}
            if where.scale_to_zero_minutes
            else {}
        ),
        "custom_image": {"url": plan.image, "port": r.port, "healthRoute": r.ready},
        "env": variables,
        **({"container_command": list(plan.deploy.entrypoint)} if plan.deploy.entrypoint else {}),
        "container_args": command(plan),
    }
    return json.dumps(body, indent=2) + "\n"
