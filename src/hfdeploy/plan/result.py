"""``Plan``: a deployment decision with its reasons, figures and envelope, as typed values.

Render, the CLI, MCP and ``up`` read these attributes; ``Plan.to_dict()`` is ``plan.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from hfdeploy.catalog.engines import EngineDeploy, EngineSpec, Routes
from hfdeploy.catalog.gpus import GPU
from hfdeploy.envelope import Envelope
from hfdeploy.model.profile import ModelProfile
from hfdeploy.plan.cost import ColdStart, Cost
from hfdeploy.plan.destination import Destination
from hfdeploy.plan.endpoints import EndpointChoice
from hfdeploy.plan.realtime import Realtime
from hfdeploy.plan.roofline import Roofline, Scaling
from hfdeploy.plan.search import Alternative
from hfdeploy.sizing.estimate import MemoryEstimate
from hfdeploy.sizing.report import SizeReport

__all__ = [
    "ALL_TARGETS",
    "MULTI_NODE_TARGETS",
    "SCALE_OUT_TARGETS",
    "TARGETS",
    "Command",
    "Plan",
    "memory_bytes",
    "placement",
    "served_name",
]

#: Deployment targets ``generate`` writes (and ``plan --target`` plans for).
TARGETS = ("docker", "compose", "k8s", "kserve", "hf-endpoint")
#: Scale-out on engines a cluster already runs, written when asked for (``--target``): a KEDA
#: ScaledObject, the Gateway API Inference Extension's InferencePool, a KubeRay RayService.
SCALE_OUT_TARGETS = ("keda", "inference-pool", "rayservice")
ALL_TARGETS = TARGETS + SCALE_OUT_TARGETS
#: Targets that can run a multi-node plan: a LeaderWorkerSet on Kubernetes (and KEDA on it).
MULTI_NODE_TARGETS = frozenset({"k8s", "keda"})

_NO_ROOFLINE = "no GPU, or not a generator (throughput: measure it)"
_NO_COST = "CPU deployment or no price in the catalog"


@dataclass(frozen=True, slots=True)
class Command:
    """What the engine's container runs: arguments (after the image's entrypoint) and env."""

    args: tuple[str, ...]
    env: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"args": list(self.args), "env": dict(sorted(self.env.items()))}


def memory_bytes(estimate: MemoryEstimate, gpu: GPU | None) -> int:
    """What a plan needs: per GPU rank on a GPU; on CPU, without the CUDA terms (context,
    non-torch, graphs)."""
    return estimate.total_bytes if gpu is not None else estimate.host_bytes


def placement(gpu: GPU | None, tp: int, pp: int = 1) -> str:
    """Where a plan runs, for people: ``CPU``, ``2 x L4`` or ``3 nodes x 8 x H100-SXM``."""
    if gpu is None:
        return "CPU"
    return (f"{pp} nodes x " if pp > 1 else "") + f"{tp} x {gpu.name}"


def served_name(profile: ModelProfile) -> str:
    """The name the model is served under: the repo id, else the folder's name."""
    return profile.repo_id or profile.location.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class Plan:
    """A deployment decision with its reasons, figures and envelope."""

    profile: ModelProfile
    engine: EngineSpec
    reasons: tuple[str, ...]
    #: (engine, why not) for each engine passed over.
    rejected: tuple[tuple[str, str], ...]
    gpu: GPU | None
    tp: int
    quantization: str | None
    size: SizeReport
    image: str
    command: Command
    #: None: no GPU, or not a generator.
    roofline: Roofline | None
    scaling: Scaling
    cold_start: ColdStart
    #: None: a CPU deployment, or a GPU with no price in the catalog.
    cost: Cost | None
    envelope: Envelope
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: Pipeline-parallel stages, one node of ``tp`` GPUs each (a LeaderWorkerSet when > 1).
    pp: int = 1
    #: The targets planned for (None: any).
    targets: tuple[str, ...] | None = None
    #: The Inference Endpoints instance (None: not planned for hf-endpoint, or multi-node).
    endpoint: EndpointChoice | None = None
    #: What the flags say of where it runs (registry, Hub repository, storage class).
    destination: Destination = field(default_factory=Destination)
    #: (target, why) for each target whose files cannot be written as planned.
    blocked: tuple[tuple[str, str], ...] = ()
    #: The configurations looked at (GPU type, count, trades), with their monthly cost.
    alternatives: tuple[Alternative, ...] = ()
    #: Full-duplex speech: the predicted frame step of one replica and whether it holds
    #: real time (None: not such a model).
    realtime: Realtime | None = None

    def blocked_reason(self, target: str) -> str | None:
        """Why ``target``'s files are not written (None: they are)."""
        return next((why for t, why in self.blocked if t == target), None)

    @property
    def repo_id(self) -> str | None:
        """The model's Hub repository: the profile's, or ``--repo``'s for a local folder."""
        return self.profile.repo_id or self.destination.repo_id

    @property
    def commit(self) -> str | None:
        """The model's pinned commit, if known."""
        return self.profile.commit_sha if self.profile.repo_id else self.destination.commit

    @property
    def deploy(self) -> EngineDeploy:
        """How the planned engine is deployed (the planner only plans deployable engines)."""
        if self.engine.deploy is None:
            raise ValueError(f"{self.engine.name} is not an engine hfdeploy deploys")
        return self.engine.deploy

    @property
    def routes(self) -> Routes:
        r = self.deploy.routes
        if self.profile.duplex is not None and r.duplex_session and not r.session:
            return replace(r, session=r.duplex_session)
        return r

    @property
    def served_name(self) -> str:
        return served_name(self.profile)

    @property
    def memory_bytes(self) -> int:
        return memory_bytes(self.size.estimate, self.gpu)

    @property
    def memory_text(self) -> str:
        where = "per GPU" if self.gpu is not None else "on CPU"
        return f"{self.memory_bytes / 2**30:.2f} GiB {where}"

    @property
    def gpu_count(self) -> int:
        """GPUs in all (every node)."""
        return self.tp * self.pp if self.gpu is not None else 0

    @property
    def nodes(self) -> int:
        return self.pp

    @property
    def placement(self) -> str:
        return placement(self.gpu, self.tp, self.pp)

    def to_dict(self) -> dict[str, Any]:
        """``plan.json``: the contract keys (engine, image, gpu, tensor_parallel, envelope)."""
        s = self.size.estimate.settings
        p = self.profile
        return {
            "engine": self.engine.name,
            "image": self.image,
            "gpu": {"name": self.gpu.name if self.gpu else "cpu", "count": self.gpu_count},
            "tensor_parallel": self.tp,
            "pipeline_parallel": self.pp,
            "nodes": self.pp,
            "targets": list(self.targets) if self.targets else None,
            "endpoint": self.endpoint.to_dict() if self.endpoint else None,
            "quantization": self.quantization,
            "model": {
                "ref": p.ref,
                "repo_id": p.repo_id,
                "commit_sha": p.commit_sha,
                "task": p.task.task,
                "kind": p.task.kind,
                "parameters": p.parameters,
                "served_name": self.served_name,
            },
            "reasons": list(self.reasons),
            "rejected": [{"engine": e, "why": why} for e, why in self.rejected],
            "settings": {
                "context": s.context,
                "concurrency": s.concurrency,
                "dtype": s.dtype,
                "kv_dtype": s.kv_dtype,
            },
            "memory": {
                "total_bytes_per_gpu": self.size.estimate.total_bytes if self.gpu else None,
                "total_bytes": self.memory_bytes,
                "on": "gpu" if self.gpu else "cpu",
                "fits": self.size.fits[0].to_dict() if self.size.fits else None,
            },
            "command": self.command.to_dict(),
            "routes": self.routes.to_dict(),
            "roofline": (
                self.roofline.to_dict()
                if self.roofline
                else {"applies": False, "why": _NO_ROOFLINE}
            ),
            "scaling": self.scaling.to_dict(),
            "cold_start": self.cold_start.to_dict(),
            "cost": self._cost(),
            "notes": list(self.notes),
            "destination": self.destination.to_dict(),
            "not_written": [{"target": t, "why": why} for t, why in self.blocked],
            "alternatives": [a.to_dict() for a in self.alternatives],
            "envelope": self.envelope.to_dict(),
            **({"realtime": self.realtime.to_dict()} if self.realtime else {}),
        }

    def _cost(self) -> dict[str, Any]:
        if self.cost is None:
            return {"applies": False, "why": _NO_COST}
        out = self.cost.to_dict()
        per_replica = self.scaling.sessions_per_replica
        if per_replica:  # a session holds a replica's GPUs for as long as it lasts
            out["per_session_hour"] = round(
                self.cost.price_per_gpu_hour * self.gpu_count / per_replica, 2
            )
        return out
