"""Deployment files from a Plan, one module per target: Dockerfile, compose, Kubernetes,
KServe, Inference Endpoints, and on request KEDA, the Inference Extension's InferencePool and
KubeRay's RayService; ``plan.json`` and ``README.md`` for every deployment.

Pure: a Plan in, ``{relative path: text}`` out. Same plan, same bytes: YAML is dumped from
dicts in a fixed order, without anchors, and nothing depends on the clock or the machine.

What every target gets right: the model is mounted read-only at ``/repository``
(downloaded once by ``hfdeploy fetch``, never by the serving container), the revision
is pinned, ``HF_HUB_OFFLINE=1``, readiness on the engine's ready route, a startup
budget from the cold-start estimate, a liveness probe that cannot kill a loading
pod, a memory-backed ``/dev/shm`` when TP > 1, GPUs = TP, non-root where the engine
supports it. A new target is a module with ``files(plan)`` and a line in ``RENDERERS``.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from hfdeploy.plan.result import ALL_TARGETS, TARGETS, Plan
from hfdeploy.render import (
    compose,
    docker,
    hf_endpoint,
    inference_pool,
    keda,
    kserve,
    kubernetes,
    rayservice,
)
from hfdeploy.render.common import WHEEL
from hfdeploy.render.readme import readme

__all__ = ["RENDERERS", "TARGETS", "needs_wheel", "render_targets"]

#: Each target's files for a plan (empty when the plan cannot run there; its notes say why).
RENDERERS: dict[str, Callable[[Plan], dict[str, str]]] = {
    "docker": docker.files,
    "compose": compose.files,
    "k8s": kubernetes.files,
    "kserve": kserve.files,
    "hf-endpoint": hf_endpoint.files,
    "keda": keda.files,
    "inference-pool": inference_pool.files,
    "rayservice": rayservice.files,
}


def render_targets(
    plan: Plan, targets: tuple[str, ...] = TARGETS, *, also: tuple[str, ...] = ()
) -> dict[str, str]:
    """The deployment's files for ``targets``, plus ``plan.json`` and ``README.md``; ``also``
    names files written beside them (the model's lock), for the README's list.

    Raises:
        ValueError: an unknown target.
    """
    out: dict[str, str] = {}
    for t in targets:
        if t not in RENDERERS:
            raise ValueError(f"unknown target {t!r}: use {', '.join(ALL_TARGETS)}")
        out |= RENDERERS[t](plan)
    out["plan.json"] = json.dumps(plan.to_dict(), indent=2) + "\n"
    # The images' Dockerfiles install hfdeploy's wheel, which generate writes beside them.
    wheel = [WHEEL] if needs_wheel(out) else []
    out["README.md"] = readme(plan, [*out, "README.md", *wheel, *also])
    return out


def needs_wheel(files: dict[str, str]) -> bool:
    """Whether the rendered files build an image that installs hfdeploy's wheel."""
    wheel = WHEEL.removeprefix("dist/")
    return any(name.endswith("Dockerfile") and wheel in text for name, text in files.items())
