"""The deployment README's parts for the scale-out targets: KEDA, the Inference Extension's
InferencePool, KubeRay's RayService. Pure."""

from __future__ import annotations

from hfdeploy.plan.result import Plan
from hfdeploy.render.common import slug
from hfdeploy.render.inference_pool import GAIE_VERSION, GATEWAY_API_VERSION
from hfdeploy.render.keda import plan_thresholds, pod_regex, replica_range
from hfdeploy.render.rayservice import RAY_LLM_IMAGE, ray_image

__all__ = ["inference_pool_steps", "keda_notes", "rayservice_steps"]

_GAIE = "https://github.com/kubernetes-sigs/gateway-api-inference-extension/releases/download"
_GATEWAY_API = "https://github.com/kubernetes-sigs/gateway-api/releases/download"


def keda_notes(plan: Plan, files: list[str]) -> list[str]:
    """What the ScaledObject needs and decides, for the Kubernetes section's notes."""
    if "k8s/scaledobject.yaml" not in files:
        return []
    t = plan_thresholds(plan)
    low, high = replica_range(plan)
    opts = plan.destination.scale_out
    kv = f" or its KV cache is over {t.kv_cache:.0%} full on average" if t.kv_cache else ""
    notes = [
        f"- KEDA (2.20, the version these files are checked against) scales "
        f"`{slug(plan.served_name)}` between {low} and {high} replicas: a replica is added "
        f"when more than {t.queue} requests wait per replica "
        f"(`{plan.routes.queue_metric}`; {t.basis}){kv}.",
        f"- KEDA queries Prometheus at `{opts.prometheus}` for pods named "
        f"`{pod_regex(plan)}`. Prometheus must scrape them: the pod template carries the "
        "`prometheus.io/scrape`, `port` and `path` annotations that common scrape "
        "configurations read; with the Prometheus operator, add a PodMonitor instead.",
    ]
    if opts.prometheus_secret:
        notes.append(f"- `k8s/keda-auth.yaml` reads Prometheus's bearer token from the Secret "
                     f"`{opts.prometheus_secret}` (key `token`).")  # fmt: skip
    if low == 0 and plan.cost is not None:
        notes.append(
            f"- Scaled to zero after {plan.cost.idle_timeout_s / 60:g} min without queued "
            f"requests (the cost model finds it cheaper at {plan.cost.active_hours_per_day:g} "
            f"active hours a day): the first request after that waits for a cold start, about "
            f"{plan.cold_start.total_s} s ({plan.cold_start.cached_image_s} s with the image "
            "already on the node). Add a minimum replica to avoid it."
        )
    return notes


def inference_pool_steps(plan: Plan, files: list[str]) -> list[str]:
    if "inference-pool/inferencepool.yaml" not in files:
        return []
    gateway = plan.destination.scale_out.gateway
    steps = [
        f"Gateway API {GATEWAY_API_VERSION} and the Inference Extension {GAIE_VERSION} CRDs: "
        f"`kubectl apply --server-side -f {_GATEWAY_API}/{GATEWAY_API_VERSION}/"
        f"standard-install.yaml` and `kubectl apply -f {_GAIE}/{GAIE_VERSION}/manifests.yaml`",
        f"A Gateway named `{gateway}` from an implementation that routes to InferencePools "
        "(the extension's conformance reports name Istio 1.28, agentgateway 1.0, NGINX "
        "Gateway Fabric 2.2+ and kgateway 2.1)",
        "The Kubernetes section above (the pool's pods are its Deployment)",
        "`kubectl apply -f inference-pool/`",
    ]
    return [
        "### Gateway API Inference Extension",
        "",
        *[f"{i}. {s}" for i, s in enumerate(steps, 1)],
        "",
        f"- The endpoint picker (`{slug(plan.served_name)}-epp`) sends each request to the "
        f"replica with the shortest queue, the emptiest KV cache and the longest cached "
        f"prefix, from {plan.engine.name}'s own metrics; if it is down, the gateway still "
        "routes (FailOpen).",
        "",
    ]


def rayservice_steps(plan: Plan, files: list[str]) -> list[str]:
    if "ray/rayservice.yaml" not in files:
        return []
    name = slug(plan.served_name)
    steps = ["KubeRay 1.7 (its operator and CRDs) in the cluster"]
    if "ray.Dockerfile" in files:
        steps.append(f"`docker build -f ray.Dockerfile -t {ray_image(plan)} . && docker push "
                     f"{ray_image(plan)}`")  # fmt: skip
    steps += [
        "The model volume, as in the Kubernetes section (`k8s/pvc.yaml` and its fetch)",
        f"`kubectl apply -f ray/rayservice.yaml`, then `kubectl wait --for=condition=Ready "
        f"rayservice/{name} --timeout=1h`",
        f"Requests go to the Service `{name}-serve-svc` on port 8000",
    ]
    what = (
        f"Ray Serve LLM on Ray's LLM image ({RAY_LLM_IMAGE}, with the vLLM that Ray release "
        "pins), the plan's vLLM flags as engine arguments"
        if plan.engine.name == "vllm"
        else "hfdeploy's server as a Ray Serve app (`hfdeploy.serve.rayserve:build`), with "
        "the same routes, metrics and readiness as `hfdeploy serve`"
    )
    return [
        "### Ray Serve on KubeRay",
        "",
        f"Instead of the Kubernetes Deployment: {what}. Serve adds replicas as requests in "
        "flight pass its target, and Ray's autoscaler adds a worker pod for each.",
        "",
        *[f"{i}. {s}" for i, s in enumerate(steps, 1)],
        "",
    ]
