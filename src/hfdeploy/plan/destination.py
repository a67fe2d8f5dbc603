"""Where a plan is deployed: what no model or catalog can tell (the registry hfdeploy's own
images are pushed to, the Hub repository a local model is published at, a storage class that
shares a volume between nodes). Given by flags, never guessed: without one, the files that
need it are not written, and the plan says why instead of writing a placeholder. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hfdeploy.errors import InvalidSettingError
from hfdeploy.model.profile import ModelProfile

__all__ = ["Destination", "destination"]

_REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9.\-_:]*[a-z0-9])?(/[a-z0-9]([a-z0-9._\-]*[a-z0-9])?)*$")
_REPO = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}/[A-Za-z0-9][\w.\-]{0,95}@[0-9a-f]{40}$")
_STORAGE_CLASS = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


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

    def image(self, name: str, tag: str) -> str:
        """One of hfdeploy's images, in the registry when there is one."""
        return f"{self.registry}/{name}:{tag}" if self.registry else f"{name}:{tag}"

    def to_dict(self) -> dict[str, Any]:
        return {"registry": self.registry, "repo_id": self.repo_id, "commit": self.commit,
                "storage_class": self.storage_class}  # fmt: skip


def destination(
    profile: ModelProfile,
    *,
    registry: str | None = None,
    repo: str | None = None,
    storage_class: str | None = None,
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
    return Destination(registry.rstrip("/") if registry else None, repo_id, commit, storage_class)
