"""What an audit may read besides the files it audits, and nothing more.

A deployment file names others: compose's ``.env`` and ``env_file``, a script's ``source``,
the script a Dockerfile's ``RUN`` runs, the model a server loads. The audit reads them only
under its roots (the paths it was given from the CLI, the allowed root from MCP) and, for a
model named by Hub id, in the local Hugging Face cache when it is given one (the CLI gives
the one any Hugging Face tool would use; MCP none). It never reaches the network. This is the
audit's one reader of other files; the rules see only what it returns.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hfdeploy.audit.extract import ModelReader, Reader
from hfdeploy.audit.model import SHA
from hfdeploy.errors import HfDeployError

if TYPE_CHECKING:
    from hfdeploy.model.profile import ModelProfile

__all__ = ["Reach"]


@dataclass(frozen=True, slots=True)
class Reach:
    """Folders whose files the audit may read, and the local Hugging Face cache (or None)."""

    roots: tuple[Path, ...] = ()
    hub_cache: Path | None = None
    _profiles: dict[tuple[str, str | None, str | None], ModelProfile | str] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def of(cls, paths: Iterable[Path | str], *, hub_cache: Path | None = None) -> Reach:
        """The reach of an audit of ``paths``: each folder given, and each file's folder."""
        roots = [Path(p).resolve() for p in paths]
        return cls(tuple(r.parent if r.is_file() else r for r in roots), hub_cache)

    def inside(self, path: str | Path) -> Path | None:
        """``path`` resolved, when it is under a root (None otherwise)."""
        p = Path(path).expanduser().resolve()
        return p if any(p.is_relative_to(r) for r in self.roots) else None

    def reader(self, texts: Mapping[str, str]) -> Reader:
        """Reads a file: from the texts being audited, else from disk under a root."""
        known = {os.path.normpath(k): v for k, v in texts.items()}

        def read(path: str) -> str | None:
            if (text := known.get(os.path.normpath(path))) is not None:
                return text
            p = self.inside(path) if self.roots else None
            if p is None or not p.is_file():
                return None
            try:
                return p.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                return None

        return read

    def models(self) -> ModelReader:
        """Profiles models where the audit may read them (see the module docstring)."""

        def profile(model: str, revision: str | None, local: str | None) -> ModelProfile | str:
            key = (model, revision, local)
            if key not in self._profiles:
                self._profiles[key] = self._profile(model, revision, local)
            return self._profiles[key]

        return profile

    def _profile(self, model: str, revision: str | None, local: str | None) -> ModelProfile | str:
        from hfdeploy.model.resolve import inspect_model

        offline = {"HF_HUB_OFFLINE": "1"}
        if local is not None:
            folder = self.inside(local)
            if folder is None:
                return f"{local} is not among the files the audit may read"
            if not folder.exists():
                return f"{local} does not exist"
            try:
                return inspect_model(str(folder), environ=offline)
            except HfDeployError as e:
                return f"{local} could not be read: {e.message}"
            except (OSError, ValueError) as e:
                return f"{local} could not be read: {e}"
        if self.hub_cache is None:
            return "the audit reads no Hugging Face cache here"
        ref = f"{model}@{revision}" if revision and SHA.match(revision) else model
        try:
            return inspect_model(ref, environ={**offline, "HF_HUB_CACHE": str(self.hub_cache)})
        except (HfDeployError, OSError, ValueError):
            return f"{ref} is not in the local Hugging Face cache ({self.hub_cache})"
