"""Write a deployment folder: the rendered targets and, for a local model, its lock."""

from __future__ import annotations

from pathlib import Path

from hfdeploy.errors import InvalidSettingError
from hfdeploy.model.lock import LOCK_NAME, LockedFile, ModelLock, hash_file
from hfdeploy.plan.result import ALL_TARGETS, Plan
from hfdeploy.render.common import WHEEL
from hfdeploy.render.targets import TARGETS, needs_wheel, render_targets
from hfdeploy.render.wheel import build_wheel

__all__ = ["generate_deployment", "local_lock"]


def local_lock(plan: Plan) -> ModelLock | None:
    """A lock of a local model folder's files (None for a Hub model: `fetch` writes it)."""
    p = plan.profile
    if p.source != "local":
        return None
    folder = Path(p.location)
    ref = Path(p.ref).expanduser()
    if ref.is_file():  # a single .gguf file: lock that file, not its whole folder
        files = [ref]
        folder = ref.parent
    else:
        files = sorted(f for f in folder.rglob("*") if f.is_file() and ".cache" not in f.parts
                       and f.name != LOCK_NAME)  # fmt: skip
    locked = tuple(
        LockedFile(f.relative_to(folder).as_posix(), f.stat().st_size, hash_file(f)) for f in files
    )
    return ModelLock(p.repo_id or folder.name, p.revision or "local", p.commit_sha or "local",
                     locked, endpoint="local")  # fmt: skip


def generate_deployment(
    plan: Plan, out: Path, *, targets: tuple[str, ...] = TARGETS, lock: bool = True
) -> list[Path]:
    """Write the files for ``targets`` under ``out``; returns the paths written.

    ``lock``: for a local model, hash every file into ``model.lock.json`` (reads the
    whole model; a Hub model's lock is written by ``hfdeploy fetch`` instead).

    Raises:
        InvalidSettingError: an unknown target.
    """
    unknown = [t for t in targets if t not in ALL_TARGETS]
    if unknown:
        raise InvalidSettingError(
            "target", ",".join(unknown), "unknown", hint="Use: " + ",".join(ALL_TARGETS)
        )
    model_lock = local_lock(plan) if lock else None
    files = render_targets(plan, targets, also=(LOCK_NAME,) if model_lock else ())
    if model_lock is not None:
        files[LOCK_NAME] = model_lock.to_json()
    written = []
    for rel, text in sorted(files.items()):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    if needs_wheel(files):
        path = out / WHEEL
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(build_wheel())
        written.append(path)
    return sorted(written)
