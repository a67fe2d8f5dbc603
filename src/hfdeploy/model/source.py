"""Where a model's files are read from: a local folder (or cache snapshot), or the Hub.

A source lists files with their sizes and reads small things from them: JSON files,
safetensors headers, GGUF metadata. It never reads tensor data.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from hfdeploy.errors import CorruptSafetensorsError, HfDeployError
from hfdeploy.model.gguf import GGUFInfo, read_gguf
from hfdeploy.model.safetensors import SafetensorsHeader, read_local_header

__all__ = ["HubMeta", "LocalSource", "ModelSource", "SourceKind", "cache_coordinates"]

SourceKind = Literal["local", "cache", "hub"]

_SNAPSHOT = re.compile(r"models--(?P<repo>[^/\\]+)[/\\]snapshots[/\\](?P<sha>[0-9a-f]{40})")
_SKIP_DIRS = {".git", ".cache", "__pycache__", ".ipynb_checkpoints"}


@dataclass(frozen=True, slots=True)
class HubMeta:
    """What the Hub says of a repo beyond its files."""

    pipeline_tag: str | None = None
    library_name: str | None = None
    license: str | None = None
    gated: bool | str = False
    private: bool = False
    tags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline_tag": self.pipeline_tag,
            "library_name": self.library_name,
            "license": self.license,
            "gated": self.gated,
            "private": self.private,
            "tags": list(self.tags),
        }


class ModelSource(Protocol):
    """What profiling needs from wherever the model lives."""

    kind: SourceKind
    revision: str | None
    commit_sha: str | None
    hub: HubMeta | None
    notes: list[str]

    @property
    def location(self) -> str:
        """Where the files are, for messages."""
        ...

    @property
    def repo_id(self) -> str | None:
        """The Hub repo id, when known."""
        ...

    def files(self) -> dict[str, int | None]:
        """Repository-relative file names and their sizes (None when unknown)."""
        ...

    def read_json(self, name: str) -> Any:
        """A JSON file's value, or None when the file is absent."""
        ...

    def read_safetensors_headers(self, names: Sequence[str]) -> list[SafetensorsHeader]:
        """The headers of these safetensors files, in order."""
        ...

    def read_gguf(self, name: str) -> GGUFInfo | None:
        """GGUF metadata of one file, or None when this source cannot read it."""
        ...

    @property
    def bytes_read(self) -> int:
        """Bytes read from disk or network so far (headers and small files)."""
        ...


def cache_coordinates(path: Path) -> tuple[str, str] | None:
    """``(repo_id, commit_sha)`` when ``path`` is a Hugging Face cache snapshot folder."""
    match = _SNAPSHOT.search(str(path.resolve()))
    if not match:
        return None
    return match.group("repo").replace("--", "/", 1), match.group("sha")


@dataclass
class LocalSource:
    """A model folder on disk: a checkout, a download, or a cache snapshot."""

    path: Path
    kind: SourceKind = "local"
    repo_id: str | None = None
    revision: str | None = None
    commit_sha: str | None = None
    hub: HubMeta | None = None
    notes: list[str] = field(default_factory=list)
    _bytes_read: int = 0
    _files: dict[str, int | None] | None = None

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def bytes_read(self) -> int:
        return self._bytes_read

    def files(self) -> dict[str, int | None]:
        if self._files is None:
            found: dict[str, int | None] = {}
            for root, dirs, names in os.walk(self.path, followlinks=True):
                dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
                for name in names:
                    full = Path(root, name)
                    rel = full.relative_to(self.path).as_posix()
                    try:
                        found[rel] = full.stat().st_size  # follows cache symlinks to blobs
                    except OSError:
                        found[rel] = None  # a dangling symlink: the blob is not downloaded
            self._files = found
        return self._files

    def read_json(self, name: str) -> Any:
        full = self.path / name
        if not full.is_file():
            return None
        raw = full.read_bytes()
        self._bytes_read += len(raw)
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as e:
            raise HfDeployError(
                f"{full}: not valid JSON ({e})",
                hint=f"Fix or re-download {name}.",
            ) from e
        return doc

    def read_safetensors_headers(self, names: Sequence[str]) -> list[SafetensorsHeader]:
        headers = []
        for name in names:
            full = self.path / name
            if not full.is_file():
                raise CorruptSafetensorsError(name, "listed in the index but missing on disk")
            header, n = read_local_header(full, name=name)
            self._bytes_read += n
            headers.append(header)
        return headers

    def read_gguf(self, name: str) -> GGUFInfo | None:
        return read_gguf(self.path / name, name=name)
