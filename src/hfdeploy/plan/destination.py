"""Where a plan is deployed: what no model or catalog can tell (the registry hfdeploy's own
images are pushed to, the Hub repository a local model is published at, a storage class that
shares a volume between nodes). Given by flags, never guessed: without one, the files that
need it are not written, and the plan says why instead of writing a placeholder. Pure.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from hfdeploy.errors import InvalidSettingError
from hfdeploy.model.profile import ModelProfile

__all__ = ["DEFAULT_PROMETHEUS", "Destination", "ScaleOut", "destination"]

_REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9.\-_:]*[a-z0-9])?(/[a-z0-9]([a-z0-9._\-]*[a-z0-9])?)*$")
_REPO = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}/[A-Za-z0-9][\w.\-]{0,95}@[0-9a-f]{40}$")
_STORAGE_CLASS = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")

#: prometheus-operator's governing Service for a Prometheus in namespace ``monitoring``.
DEFAULT_PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"
Autoscaler = Literal["hpa", "keda"]
GpuLabel = Literal["gfd", "gke"]


@dataclass(frozen=True, slots=True)
class ScaleOut:
    """How the cluster scales and places the replicas: what no model can tell.

    Attributes:
        autoscaler: ``hpa`` (a Prometheus adapter serves the engine's queue metric) or
            ``keda`` (a ScaledObject queries Prometheus itself).
        gpu_label: the node label that places pods on the planned GPU: ``gfd`` (NVIDIA GPU
            feature discovery's ``nvidia.com/gpu.product``, any cluster with the GPU operator)
            or ``gke`` (``cloud.google.com/gke-accelerator``).
        priority_class: a PriorityClass name for the serving pods.
        prometheus: the Prometheus KEDA queries.
        prometheus_secret: a Secret (key ``token``) holding a bearer token for it: KEDA gets a
            TriggerAuthentication.
        gateway: the Gateway an HTTPRoute to the InferencePool attaches to.
        measured_rps: requests/s one replica served at its saturation knee (``hfdeploy
            bench``'s sweep), which scales the autoscaling thresholds against the estimate.
    """

    autoscaler: Autoscaler = "hpa"
    gpu_label: GpuLabel = "gfd"
    priority_class: str | None = None
    prometheus: str = DEFAULT_PROMETHEUS
    prometheus_secret: str | None = None
    gateway: str = "inference-gateway"
    measured_rps: float | None = None

    def __post_init__(self) -> None:
        if self.autoscaler not in ("hpa", "keda"):
            raise InvalidSettingError("autoscaler", self.autoscaler, "unknown",
                                      hint="Use hpa or keda.")  # fmt: skip
        if self.gpu_label not in ("gfd", "gke"):
            raise InvalidSettingError("gpu_label", self.gpu_label, "unknown",
                                      hint="Use gfd (GPU feature discovery) or gke.")  # fmt: skip
        for name in ("priority_class", "prometheus_secret", "gateway"):
            value = getattr(self, name)
            if value is not None and not _STORAGE_CLASS.match(value):
                raise InvalidSettingError(
                    name, value, "not a Kubernetes object name",
                    hint="Lower-case letters, digits, '-' and '.'.",
                )  # fmt: skip
        if not _URL.match(self.prometheus):
            raise InvalidSettingError(
                "prometheus", self.prometheus, "not an http(s) URL",
                hint=f"Pass the URL KEDA reaches Prometheus at, e.g. {DEFAULT_PROMETHEUS}.",
            )  # fmt: skip
        if self.measured_rps is not None and not self.measured_rps > 0:
            raise InvalidSettingError(
                "measured_rps", str(self.measured_rps), "not positive",
                hint="A bench sweep with a saturation knee gives it.",
            )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Destination:
    """What the deployment files need of the place they run in."""

    #: Where hfdeploy's own images (server, fetch Job) are pushed: ``ghcr.io/acme``.
    registry: str | None = None
    #: The Hub repository and commit of the model, when MODEL was a local folder.
    repo_id: str | None = None
    commit: str | None = None
    #: A storage class whose volumes many nodes can mount (ReadWriteMany).
    storage_class: str | None = None
    scale_out: ScaleOut = field(default_factory=ScaleOut)

    def image(self, name: str, tag: str) -> str:
        """One of hfdeploy's images, in the registry when there is one."""
        return f"{self.registry}/{name}:{tag}" if self.registry else f"{name}:{tag}"

    def to_dict(self) -> dict[str, Any]:
        return {"registry": self.registry, "repo_id": self.repo_id, "commit": self.commit,
                "storage_class": self.storage_class,
                "scale_out": self.scale_out.to_dict()}  # fmt: skip


def destination(
    profile: ModelProfile,
    *,
    registry: str | None = None,
    repo: str | None = None,
    storage_class: str | None = None,
    scale_out: ScaleOut | None = None,
) -> Destination:
    """Validate the destination flags once.

    ``repo`` is ``owner/name@COMMIT`` (a 40-hex commit: the only pin), and only for a local
    model; a Hub model's repository and commit are already known.

    Raises:
        InvalidSettingError: a malformed value, or ``repo`` for a Hub model.
    """
    if registry is not None and not _REGISTRY.match(registry.rstrip("/")):
        raise InvalidSettingError(
            "registry", registry, "not an image registry path",
            hint="Pass where your images are pushed, such as ghcr.io/acme or "
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/ml.",
        )  # fmt: skip
    repo_id = commit = None
    if repo is not None:
        if profile.source != "local":
            raise InvalidSettingError(
                "repo", repo, f"the model is already the Hub repository {profile.repo_id}",
                hint="Drop --repo: it names the Hub repository of a local folder.",
            )  # fmt: skip
        if not _REPO.match(repo):
            raise InvalidSettingError(
                "repo", repo, "not owner/name@COMMIT with a 40-hex commit (the only pin)",
                hint="Pass the repository this folder is published at and its commit, "
                "e.g. --repo acme/my-model@0123456789abcdef0123456789abcdef01234567.",
            )  # fmt: skip
        repo_id, _, commit = repo.partition("@")
    if storage_class is not None and not _STORAGE_CLASS.match(storage_class):
        raise InvalidSettingError(
            "storage_class", storage_class, "not a Kubernetes object name",
            hint="Pass the name of a StorageClass that offers ReadWriteMany "
            "(`kubectl get storageclass`).",
        )  # fmt: skip
    return Destination(registry.rstrip("/") if registry else None, repo_id, commit, storage_class,
                       scale_out or ScaleOut())  # fmt: skip
