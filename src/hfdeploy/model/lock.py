"""``model.lock.json``: a model pinned to a commit, every file with its size and sha256.

The lock's bytes depend only on the model (no timestamps, sorted keys and files), so
the same snapshot gives the same lock. ``verify_folder`` re-hashes a folder against it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hfdeploy._version import __version__
from hfdeploy.errors import InvalidSettingError, LockMismatchError

__all__ = ["LOCK_NAME", "LockedFile", "ModelLock", "hash_file", "read_lock", "verify_folder"]

LOCK_NAME = "model.lock.json"
# .hfdeploy: files derived for serving (voices unpacked, a Hub cache), not downloaded.
_IGNORED_DIRS = (".cache", ".git", ".hfdeploy")


@dataclass(frozen=True, slots=True)
class LockedFile:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class ModelLock:
    """What was fetched: repository, the revision asked, the commit it resolved to, files."""

    repo_id: str
    revision: str
    commit_sha: str
    files: tuple[LockedFile, ...]
    endpoint: str = "https://huggingface.co"

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lock_version": 1,
            "repo_id": self.repo_id,
            "revision": self.revision,
            "commit_sha": self.commit_sha,
            "endpoint": self.endpoint,
            "files": [
                {"path": f.path, "size": f.size, "sha256": f.sha256}
                for f in sorted(self.files, key=lambda f: f.path)
            ],
            "total_bytes": self.total_bytes,
            "created_by": f"hfdeploy {__version__}",
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelLock:
        try:
            return cls(
                repo_id=str(data["repo_id"]),
                revision=str(data["revision"]),
                commit_sha=str(data["commit_sha"]),
                files=tuple(
                    LockedFile(str(f["path"]), int(f["size"]), str(f["sha256"]))
                    for f in data["files"]
                ),
                endpoint=str(data.get("endpoint", "https://huggingface.co")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidSettingError(
                LOCK_NAME, type(e).__name__, f"not a model lock: {e}",
                hint="Fetch the model again with `hfdeploy fetch MODEL@REV --to DIR`.",
            ) from None  # fmt: skip


def hash_file(path: Path, *, chunk: int = 1 << 20) -> str:
    """The sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_lock(folder: Path) -> ModelLock:
    """The lock in ``folder``.

    Raises:
        InvalidSettingError: no lock there, or not a lock.
    """
    path = folder / LOCK_NAME
    if not path.is_file():
        raise InvalidSettingError(
            "folder", str(folder), f"no {LOCK_NAME} in it",
            hint="Fetch with `hfdeploy fetch MODEL@REV --to DIR`, which writes the lock.",
        )  # fmt: skip
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InvalidSettingError(LOCK_NAME, str(path), f"not JSON: {e}") from None
    return ModelLock.from_dict(data)


def _present(folder: Path) -> set[str]:
    out = set()
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if p.is_file() and rel.parts[0] not in _IGNORED_DIRS and rel.as_posix() != LOCK_NAME:
            out.add(rel.as_posix())
    return out


def verify_folder(folder: Path) -> ModelLock:
    """Re-hash every locked file; any missing, changed or unexpected file is an error.

    Raises:
        LockMismatchError: with every difference found.
    """
    lock = read_lock(folder)
    differences: list[str] = []
    for f in lock.files:
        path = folder / f.path
        if not path.is_file():
            differences.append(f"missing: {f.path}")
            continue
        size = path.stat().st_size
        if size != f.size:
            differences.append(f"size changed: {f.path} ({f.size:,} -> {size:,} bytes)")
            continue
        if hash_file(path) != f.sha256:
            differences.append(f"content changed: {f.path} (sha256 differs)")
    extra = sorted(_present(folder) - {f.path for f in lock.files})
    differences.extend(f"not in the lock: {p}" for p in extra)
    if differences:
        raise LockMismatchError(str(folder), differences)
    return lock
