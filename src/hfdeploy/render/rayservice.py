"""Ray Serve on KubeRay: a ``RayService`` whose Serve config runs the plan. Pure.

- A vLLM generator runs as Ray Serve LLM's OpenAI app (``ray.serve.llm:build_openai_app``):
  the model from the mounted volume, the plan's vLLM flags as engine arguments, autoscaling
  from the plan, on Ray's LLM image.
- hfdeploy's own tasks run as ``hfdeploy.serve.rayserve:build``: the same server as
  ``hfdeploy serve``, on an image built from the generated ``ray.Dockerfile``.

The head runs Ray's control plane and Serve's proxy and no replica (``num-cpus: 0``); each
worker pod holds one replica, with the plan's GPUs (TP) and the model volume, placed like the
k8s target's pods. Ray's autoscaler adds worker pods as Serve adds replicas.
"""

from __future__ import annotations

from typing import Any

from hfdeploy._version import __version__
from hfdeploy.plan.flags import MODEL_DIR
from hfdeploy.plan.result import Plan
from hfdeploy.render.common import (
    CONSTRAINTS,
    PYTHON_IMAGE,
    WHEEL,
    constraints,
    dump_yaml,
    labels,
    shm,
    slug,
)
from hfdeploy.render.keda import plan_thresholds, replica_range
from hfdeploy.render.kubernetes import placement, resources, volume_files

__all__ = ["RAY_LLM_IMAGE", "RAY_VERSION", "files", "flags_to_kwargs", "ray_dockerfile",
           "ray_image", "rayservice"]  # fmt: skip

#: Ray's LLM image (vLLM inside) at the version KubeRay v1.7.0's own Serve LLM sample runs.
RAY_LLM_VERSION = "2.52.0"
RAY_LLM_IMAGE = f"rayproject/ray-llm:{RAY_LLM_VERSION}-py311-cu128"
#: The Ray hfdeploy's Ray image installs (its ``ray`` extra; the tests run the app on it).
RAY_VERSION = "2.60.0"
SERVE_PORT = 8000
#: Flags that are not engine arguments: where the server listens and the model's names.
_NOT_ENGINE_ARGS = {"host", "hostname", "port", "served_model_name", "model", "model_id"}


def files(plan: Plan) -> dict[str, str]:
    """``ray/rayservice.yaml``, the model's volume (the k8s target's) and, for hfdeploy's
    server, ``ray.Dockerfile``."""
    if plan.blocked_reason("rayservice") is not None:
        return {}
    out = {"ray/rayservice.yaml": rayservice(plan)} | volume_files(plan)
    if plan.engine.name == "hfdeploy":
        out |= {"ray.Dockerfile": ray_dockerfile(plan), CONSTRAINTS: constraints()}
    return out


def _value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def flags_to_kwargs(args: tuple[str, ...]) -> dict[str, Any]:
    """``--max-model-len 8192 --enforce-eager`` → ``{"max_model_len": 8192, "enforce_eager":
    True}``; positional words (the model path), listening and naming flags dropped.

    >>> flags_to_kwargs(("/repository", "--max-num-seqs", "51", "--no-enable-prefix-caching"))
    {'max_num_seqs': 51, 'enable_prefix_caching': False}
    """
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if not word.startswith("--"):
            continue
        key = word[2:].replace("-", "_")
        if i < len(args) and not args[i].startswith("--"):
            value: Any = _value(args[i])
            i += 1
        elif key.startswith("no_"):
            key, value = key[3:], False
        else:
            value = True
        if key not in _NOT_ENGINE_ARGS:
            out[key] = value
    return out


def _serve_config(plan: Plan, low: int, high: int) -> dict[str, Any]:
    t = plan_thresholds(plan)
    # Serve counts a replica's requests in flight, running and waiting alike: a full batch
    # running plus the queue target waiting.
    target = t.batch + t.queue
    autoscaling = {"min_replicas": low, "max_replicas": high, "target_ongoing_requests": target}
    if plan.engine.name == "vllm":
        llm: dict[str, Any] = {
            "model_loading_config": {"model_id": plan.served_name, "model_source": MODEL_DIR},
            "engine_kwargs": flags_to_kwargs(plan.command.args),
            "deployment_config": {"autoscaling_config": autoscaling},
        }
        app: dict[str, Any] = {
            "name": "llm", "route_prefix": "/", "import_path": "ray.serve.llm:build_openai_app",
            "args": {"llm_configs": [llm]}}  # fmt: skip
    else:
        args: dict[str, Any] = {"model": MODEL_DIR, **flags_to_kwargs(plan.command.args)}
        args["served_model_name"] = plan.served_name
        actor = {"num_cpus": 2, "num_gpus": plan.tp} if plan.gpu else {"num_cpus": 2}
        app = {"name": "hfdeploy", "route_prefix": "/",
               "import_path": "hfdeploy.serve.rayserve:build", "args": args,
               "deployments": [{
                   "name": "hfdeploy", "autoscaling_config": autoscaling,
                   # Serve's default (5) would starve the batcher: let a batch and a queue in.
                   "max_ongoing_requests": 2 * target,
                   "ray_actor_options": actor, "graceful_shutdown_timeout_s": 30}]}  # fmt: skip
    return {"http_options": {"host": "0.0.0.0", "port": SERVE_PORT}, "applications": [app]}


def _head(image: str) -> dict[str, Any]:
    ports = [("gcs-server", 6379), ("dashboard", 8265), ("client", 10001), ("serve", SERVE_PORT)]
    return {"rayStartParams": {"num-cpus": "0", "num-gpus": "0"}, "template": {"spec": {
        "containers": [{
            "name": "ray-head", "image": image,
            "ports": [{"name": n, "containerPort": p} for n, p in ports],
            "resources": {"requests": {"cpu": "2", "memory": "8Gi"},
                          "limits": {"memory": "8Gi"}},
        }]}}}  # fmt: skip


def _worker(plan: Plan, image: str, name: str, low: int, high: int) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [
        {"name": "model", "persistentVolumeClaim": {"claimName": f"{name}-model",
                                                    "readOnly": True}},
        {"name": "cache", "emptyDir": {}}]  # fmt: skip
    mounts = [{"name": "model", "mountPath": MODEL_DIR, "readOnly": True},
              {"name": "cache", "mountPath": "/tmp/hf"}]  # fmt: skip
    if plan.tp > 1:
        volumes.append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": shm(plan)}})
        mounts.append({"name": "shm", "mountPath": "/dev/shm"})
    container = {
        "name": "ray-worker", "image": image,
        "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}, {"name": "HF_HOME", "value": "/tmp/hf"}],
        "resources": resources(plan), "volumeMounts": mounts,
    }  # fmt: skip
    # Their own component: the k8s target's Service (component server) must not reach them,
    # and the zone spread counts this service's workers only.
    workers = labels(name, "ray-worker")
    spec = {"containers": [container], "volumes": volumes, **placement(plan, workers)}
    return {"groupName": "worker", "replicas": low, "minReplicas": low, "maxReplicas": high,
            "rayStartParams": {},
            "template": {"metadata": {"labels": workers}, "spec": spec}}  # fmt: skip


def ray_image(plan: Plan) -> str:
    """hfdeploy's Ray image (its server and Ray Serve), in the destination's registry."""
    return plan.destination.image(f"{plan.deploy.image}-ray", __version__)


def rayservice(plan: Plan) -> str:
    name = slug(plan.served_name)
    meta = labels(name)
    low, high = replica_range(plan)
    if plan.destination.storage_class is None:  # a ReadWriteOnce volume: one worker mounts it
        low, high = min(low, 1), 1
    if plan.engine.name == "vllm":
        image, version = RAY_LLM_IMAGE, RAY_LLM_VERSION
    else:
        image, version = ray_image(plan), RAY_VERSION
    cluster: dict[str, Any] = {"rayVersion": version}
    if high > low:  # Ray's autoscaler adds worker pods when Serve adds replicas
        cluster["enableInTreeAutoscaling"] = True
    cluster |= {"headGroupSpec": _head(image),
                "workerGroupSpecs": [_worker(plan, image, name, low, high)]}  # fmt: skip
    return dump_yaml({
        "apiVersion": "ray.io/v1", "kind": "RayService",
        "metadata": {"name": name, "labels": meta},
        "spec": {"serveConfigV2": dump_yaml(_serve_config(plan, low, high)),
                 "rayClusterConfig": cluster},
    })  # fmt: skip


def ray_dockerfile(plan: Plan) -> str:
    """hfdeploy's server with Ray Serve, for KubeRay's head and workers (which start it with
    ``ray start``, and probe with bash and wget)."""
    wheel = WHEEL.removeprefix("dist/")
    torch = (
        '\nARG TORCH_INDEX_URL="https://download.pytorch.org/whl/cpu"\n'
        'RUN pip install --no-cache-dir --no-deps --index-url "${TORCH_INDEX_URL}" '
        '"torch==2.13.0"\n'
        if plan.gpu is None
        else ""
    )
    return f"""\
# hfdeploy's server as a Ray Serve app (ray/rayservice.yaml), generated by hfdeploy {__version__}.
# Build here (this folder holds {WHEEL} and {CONSTRAINTS}):
#   docker build -f ray.Dockerfile -t {ray_image(plan)} .
FROM {PYTHON_IMAGE}
ARG PIP_ROOT_USER_ACTION=ignore

# KubeRay's worker readiness probe runs bash and wget.
RUN apt-get update \\
    && apt-get install -y --no-install-recommends wget=1.21.3-1+deb12u1 \\
    && rm -rf /var/lib/apt/lists/* \\
    && useradd --create-home --uid 1000 --shell /bin/bash ray
{torch}
COPY {CONSTRAINTS} {WHEEL} /tmp/
RUN pip install --no-cache-dir -c /tmp/{CONSTRAINTS} "/tmp/{wheel}[serve,ray]" \\
    && rm /tmp/{wheel} /tmp/{CONSTRAINTS}

ENV HF_HUB_OFFLINE=1 \\
    PYTHONUNBUFFERED=1
USER 1000
WORKDIR /home/ray
"""
