"""``compose.yaml``: one service with the model mounted read-only, a health check on the
ready route, GPUs = TP, a memory-backed /dev/shm for TP, non-root where the image allows. Pure."""

from __future__ import annotations

from typing import Any

from hfdeploy.plan.flags import MODEL_DIR, TRITON_REPOSITORY
from hfdeploy.plan.result import Plan
from hfdeploy.render.common import command, dump_yaml, env, healthcheck, shm, slug
from hfdeploy.render.duplex import is_built
from hfdeploy.render.triton import triton_repository

__all__ = ["compose", "files"]


def files(plan: Plan) -> dict[str, str]:
    """``compose.yaml`` (and Triton's model repository, mounted from ./triton); nothing for a
    multi-node plan, which one host cannot run."""
    if plan.pp > 1:
        return {}
    out = {"compose.yaml": compose(plan)}
    if plan.engine.name == "triton":
        out |= triton_repository(plan)
    return out


def compose(plan: Plan) -> str:
    name = slug(plan.served_name)
    svc: dict[str, Any] = {
        "image": plan.image,
        **({"entrypoint": list(plan.deploy.entrypoint)} if plan.deploy.entrypoint else {}),
        "command": command(plan),
        "ports": [f"{plan.routes.port}:{plan.routes.port}"],
        "environment": env(plan),
        # A new named volume takes the owner of the image's folder it is mounted on: the
        # engine's cache folder, which its user owns.
        "volumes": [f"./model:{MODEL_DIR}:ro", f"cache:{plan.deploy.cache_dir}"],
        "restart": "unless-stopped",
        "healthcheck": {
            "test": healthcheck(plan),
            "interval": "10s",
            "timeout": f"{plan.routes.probe_timeout_s}s",
            "retries": 3,
            "start_period": f"{plan.cold_start.cached_image_s * 2 + 30}s",
        },
    }
    if plan.engine.name == "triton":
        svc["volumes"].append(f"./triton:{TRITON_REPOSITORY}:ro")
    if is_built(plan):
        svc["build"] = "."
    if plan.tp > 1:
        svc["shm_size"] = shm(plan).replace("Gi", "gb")
    if plan.gpu is not None:
        svc["deploy"] = {
            "resources": {
                "reservations": {
                    "devices": [{"driver": "nvidia", "count": plan.tp, "capabilities": ["gpu"]}]
                }
            }
        }
    if plan.deploy.run_as_user is not None:
        svc["user"] = str(plan.deploy.run_as_user)
    return dump_yaml({"services": {name: svc}, "volumes": {"cache": {}}})
