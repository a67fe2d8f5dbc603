"""Scale-out on engines a cluster already runs: which of KEDA, the Gateway API Inference
Extension and KubeRay a plan can use, and the autoscaling thresholds it gets. Pure.

Thresholds come from the plan, not a constant. A replica's queue target is half its batch:
when on average half a batch waits behind every replica, a new one is worth its cold start
(a request waits at most about one more forward pass of the batch ahead of it). The batch is
the plan's estimated batch per replica (generators), else the batch the server is started
with. A bench result (the requests/s one replica served at its saturation knee) scales it by
measured over estimated capacity: a replica that serves less than estimated gets a lower
target, so the autoscaler adds replicas sooner.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hfdeploy.catalog.engines import EngineSpec
from hfdeploy.errors import InvalidSettingError
from hfdeploy.model.profile import ModelProfile
from hfdeploy.plan.destination import Destination

__all__ = [
    "HFDEPLOY_BATCH",
    "INFERENCE_POOL_ENGINES",
    "KV_METRICS",
    "Thresholds",
    "measured_rps",
    "scale_out_blocked",
    "thresholds",
]

#: Engines the Inference Extension's endpoint picker reads metrics from (its built-in configs).
INFERENCE_POOL_ENGINES = frozenset({"vllm", "sglang"})
#: The per-pod KV-cache usage (0..1) of engines that export one, for a second trigger.
KV_METRICS = {"vllm": "vllm:kv_cache_usage_perc", "sglang": "sglang:token_usage"}
#: A replica's KV cache this full on average: add one (preemptions start near 1.0).
KV_TARGET = 0.8
#: The flags (by meaning, in the engine catalog) that cap a replica's batch.
_BATCH_MEANINGS = ("max_seqs", "batch_size")
#: hfdeploy serve's batch when its command sets none (``ServeSettings.max_batch_size``; the
#: plan may not import the server, and a test keeps the two equal).
HFDEPLOY_BATCH = 32
#: Measured over estimated capacity is trusted within this range (a wrong bench file, or a
#: sweep that never saturated, must not scale to 1 or to 1000).
_RATIO = (0.25, 4.0)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Per-replica autoscaling targets and where they came from."""

    queue: int
    kv_cache: float | None
    batch: int
    ratio: float | None
    basis: str


def _batch(
    engine: str, flags: Mapping[str, str], args: tuple[str, ...], estimated: int | None
) -> tuple[int, str]:
    if estimated:
        return estimated, "the plan's estimated batch per replica"
    for flag in (flags[m] for m in _BATCH_MEANINGS if m in flags):
        if flag in args[:-1]:
            return int(args[args.index(flag) + 1]), f"the server's {flag}"
    if engine == "hfdeploy":
        return HFDEPLOY_BATCH, "hfdeploy serve's default batch"
    return 32, "no batch known: 32 assumed"


def thresholds(
    engine: str,
    args: tuple[str, ...],
    *,
    flags: Mapping[str, str] | None = None,
    batch_estimate: int | None,
    rps_estimate: float | None,
    measured_rps: float | None,
) -> Thresholds:
    """The queue target per replica (half a batch, scaled by measured over estimated
    capacity when both are known) and the KV-cache target where the engine exports one.

    >>> thresholds("vllm", (), batch_estimate=64, rps_estimate=None, measured_rps=None).queue
    32
    >>> thresholds("vllm", (), batch_estimate=64, rps_estimate=10.0, measured_rps=5.0).queue
    16
    """
    batch, basis = _batch(engine, flags or {}, args, batch_estimate)
    ratio = None
    if measured_rps and rps_estimate:
        ratio = min(_RATIO[1], max(_RATIO[0], measured_rps / rps_estimate))
        basis += (
            f", x {ratio:.2f} (measured {measured_rps:g} req/s over {rps_estimate:g} estimated)"
        )
    elif measured_rps:
        basis += "; the measured rate is not used: the plan has no estimate to compare it with"
    queue = max(1, math.ceil(batch / 2 * (ratio or 1.0)))
    kv = KV_TARGET if engine in KV_METRICS else None
    return Thresholds(queue, kv, batch, ratio, f"half of {basis}")


def scale_out_blocked(
    spec: EngineSpec, profile: ModelProfile, dest: Destination, pods: int, pp: int
) -> list[tuple[str, str]]:
    """(target, why) for the scale-out targets this plan cannot use."""
    out: list[tuple[str, str]] = []
    name, kind = spec.name, profile.task.kind
    routes = spec.deploy.routes if spec.deploy is not None else None
    if routes is not None and routes.session:
        why = "a full-duplex server holds one conversation per process and exports no load metric"
        out += [("keda", why), ("inference-pool", why), ("rayservice", why)]
    if routes is None or not routes.queue_metric:
        out.append(("keda", f"{name} exports no queue metric to scale on"))
    if name not in INFERENCE_POOL_ENGINES:
        out.append(("inference-pool", f"the endpoint picker reads vLLM's and SGLang's metrics, "
                                      f"not {name}'s"))  # fmt: skip
    if pp > 1:
        out += [("inference-pool", "a multi-node group serves from its leader only"),
                ("rayservice", "a multi-node plan runs as a LeaderWorkerSet (k8s)")]  # fmt: skip
    if not (name == "hfdeploy" or (name == "vllm" and kind == "generator")):
        out.append(("rayservice", "Ray Serve runs vLLM (Ray Serve LLM) and hfdeploy's own "
                                  f"server here, not {name}"))  # fmt: skip
    elif name == "hfdeploy" and dest.registry is None:
        why = ("Ray runs hfdeploy's server from an image built from the generated "
               "ray.Dockerfile: push it and pass --registry")  # fmt: skip
        out.append(("rayservice", why))
    # What the engine cannot do first; then what a flag would fix.
    if dest.storage_class is None:
        who = "replicas" if pods > 1 else "replicas beyond one"
        why = (f"{who} read the model from one volume, which needs a ReadWriteMany storage "
               "class: pass --storage-class")  # fmt: skip
        out += [("keda", why), ("inference-pool", why)]
    return out


def measured_rps(bench: dict[str, Any]) -> float:
    """The requests/s one replica served at its saturation knee, from ``hfdeploy bench
    --json``'s result of a sweep (``--profile sweep``).

    Raises:
        InvalidSettingError: not a bench result, no sweep, or a sweep that found no knee.
    """
    sweep = bench.get("sweep") if isinstance(bench, dict) else None
    if not isinstance(sweep, dict):
        raise InvalidSettingError(
            "bench", "result", "has no sweep",
            hint="Run `hfdeploy bench URL --profile sweep --json > bench.json` against one "
            "replica and pass that file.",
        )  # fmt: skip
    knee = sweep.get("knee_rate") or sweep.get("max_throughput")
    if not isinstance(knee, int | float) or knee <= 0:
        raise InvalidSettingError(
            "bench", "result", "the sweep found no saturation rate",
            hint="Sweep to higher rates (the knee is the highest rate served at 95% of "
            "the offered rate with p50 at most twice the synchronous p50).",
        )  # fmt: skip
    return float(knee)
