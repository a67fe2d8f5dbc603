"""``hfdeploy fetch``: a pinned snapshot download with huggingface_hub, and its lock.

The revision asked for (a branch, tag or commit) is resolved to a commit first; every
file is then downloaded at that commit, so a branch that moves during the download
cannot mix two versions. Safetensors only by default: pickle weights are skipped when
safetensors exist and refused when they do not (``allow_pickle`` overrides). After the
download every file is hashed; LFS files must match the sha256 the Hub announced.

This module is the one boundary where huggingface_hub's errors become hfdeploy's.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hfdeploy.errors import (
    GatedRepoError,
    HfDeployError,
    HubAuthError,
    HubUnavailableError,
    InvalidModelRefError,
    LockMismatchError,
    ModelNotFoundError,
    PickleOnlyError,
    RevisionNotFoundError,
)
from hfdeploy.model.lock import LOCK_NAME, LockedFile, ModelLock, hash_file
from hfdeploy.model.resolve import hub_token, parse_ref

__all__ = ["FetchPlan", "fetch_model", "prepare_folder", "select_files"]

PICKLE = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
WEIGHTS = (".safetensors", *PICKLE, ".gguf", ".onnx", ".h5", ".msgpack", ".ot", ".tflite")
# Configs, tokenizers, chat templates, generation and processor configs, docs; the voice
# prompts of full-duplex speech models.
SUPPORT = ("*.json", "*.txt", "*.model", "*.tiktoken", "*.jinja", "*.md", "*.py", "merges.txt",
           "voices.tgz")  # fmt: skip


@dataclass(frozen=True, slots=True)
class FetchPlan:
    """What will be downloaded, and what was left out and why."""

    files: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    #: Files derived for serving after the download (``prepare_folder``).
    prepared: tuple[str, ...] = ()


def select_files(
    names: Sequence[str], *, allow_pickle: bool = False, include: Sequence[str] = ()
) -> FetchPlan:
    """Choose the files to fetch from a repository's file list. Pure.

    ``include`` patterns (fnmatch) add files and, when they name weights, replace
    the default weight choice (e.g. one GGUF quantization out of many).

    Raises:
        PickleOnlyError: the only weights are pickle files and ``allow_pickle`` is off.
    """
    chosen: set[str] = set()
    skipped: list[tuple[str, str]] = []
    weights = [n for n in names if n.endswith(WEIGHTS)]
    explicit = {n for n in names for p in include if fnmatch.fnmatch(n, p)}
    safetensors = [n for n in weights if n.endswith(".safetensors")]
    if any(n.endswith(WEIGHTS) for n in explicit):
        picked = {n for n in explicit if n.endswith(WEIGHTS)}
    elif safetensors:
        picked = set(safetensors)
    elif weights and all(n.endswith(PICKLE) for n in weights) and not allow_pickle:
        raise PickleOnlyError("the repository", sorted(weights))
    else:
        picked = {n for n in weights if not n.endswith(".gguf")} or set(weights[:1])
    for n in names:
        base = n.rsplit("/", 1)[-1]
        if n in picked or n in explicit:
            chosen.add(n)
        elif n.endswith(WEIGHTS):
            why = "pickle (unsafe)" if n.endswith(PICKLE) else "other weight format"
            skipped.append((n, why))
        elif any(fnmatch.fnmatch(base, p) for p in SUPPORT) or base.startswith("tokenizer"):
            if base.endswith(".py"):
                skipped.append((n, "code (only with trust_remote_code; add --include)"))
            else:
                chosen.add(n)
        else:
            skipped.append((n, "not needed to serve"))
    if any(n.endswith(PICKLE) for n in chosen) and not allow_pickle:
        raise PickleOnlyError("the repository", sorted(n for n in chosen if n.endswith(PICKLE)))
    return FetchPlan(tuple(sorted(chosen)), tuple(sorted(skipped)))


def _translate(e: Exception, repo_id: str, revision: str, *, has_token: bool) -> HfDeployError:
    from huggingface_hub.errors import (
        GatedRepoError as HubGated,
    )
    from huggingface_hub.errors import (
        HfHubHTTPError,
        RepositoryNotFoundError,
    )
    from huggingface_hub.errors import (
        RevisionNotFoundError as HubRevisionNotFound,
    )

    ref = f"{repo_id}@{revision}"
    if isinstance(e, HubGated):
        return GatedRepoError(repo_id, status=403, has_token=has_token)
    if isinstance(e, HubRevisionNotFound):
        return RevisionNotFoundError(ref, revision, where="the Hub")
    if isinstance(e, RepositoryNotFoundError):
        status = e.response.status_code if e.response is not None else 404
        if status in (401, 403):
            return HubAuthError(repo_id, status=status, has_token=has_token)
        return ModelNotFoundError(ref, where="the Hub")
    if isinstance(e, HfHubHTTPError):
        status = e.response.status_code if e.response is not None else 0
        if status in (401, 403):
            return HubAuthError(repo_id, status=status, has_token=has_token)
        return HubUnavailableError(str(e.request.url if e.request else repo_id), f"HTTP {status}")
    return HubUnavailableError(repo_id, f"{type(e).__name__}: {e}")


def fetch_model(
    ref: str,
    to: Path,
    *,
    allow_pickle: bool = False,
    include: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> tuple[ModelLock, FetchPlan]:
    """Download ``owner/name[@revision]`` into ``to`` at one commit and write the lock.

    Raises:
        InvalidModelRefError: not a Hub id.
        ModelNotFoundError, RevisionNotFoundError, HubAuthError, GatedRepoError,
        HubUnavailableError: from the Hub.
        PickleOnlyError: pickle-only weights without ``allow_pickle``.
        LockMismatchError: a downloaded file's sha256 differs from the Hub's.
    """
    env = os.environ if environ is None else environ
    parsed = parse_ref(ref)
    if parsed.repo_id is None:
        raise InvalidModelRefError(ref, "fetch takes a Hub id, 'owner/name@revision'")
    repo_id, revision = parsed.repo_id, parsed.revision or "main"
    endpoint = (env.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    if (env.get("HF_HUB_OFFLINE") or "").lower() in ("1", "true", "yes", "on"):
        raise HubUnavailableError(
            endpoint, "HF_HUB_OFFLINE is set: fetching needs the Hub (unset it for this command)"
        )
    token = hub_token(env)
    try:
        from huggingface_hub import HfApi, snapshot_download
    except ImportError as e:  # pragma: no cover - a core dependency
        raise HubUnavailableError(endpoint, "huggingface_hub is not installed") from e
    api = HfApi(endpoint=endpoint, token=token or False)
    try:
        info: Any = api.model_info(repo_id, revision=revision, files_metadata=True)
    except Exception as e:
        raise _translate(e, repo_id, revision, has_token=bool(token)) from e
    sha = str(info.sha)
    siblings = {s.rfilename: s for s in info.siblings or []}
    try:
        plan = select_files(sorted(siblings), allow_pickle=allow_pickle, include=include)
    except PickleOnlyError as e:
        raise PickleOnlyError(repo_id, e.files) from None
    to.mkdir(parents=True, exist_ok=True)
    try:
        snapshot_download(
            repo_id,
            revision=sha,
            local_dir=to,
            allow_patterns=list(plan.files),
            endpoint=endpoint,
            token=token or False,
        )
    except Exception as e:
        raise _translate(e, repo_id, revision, has_token=bool(token)) from e
    files: list[LockedFile] = []
    mismatched: list[str] = []
    for name in plan.files:
        path = to / name
        digest = hash_file(path)
        lfs = getattr(siblings[name], "lfs", None)
        expected = getattr(lfs, "sha256", None) if lfs else None
        if expected and expected != digest:
            mismatched.append(f"content changed: {name} (sha256 differs from the Hub's)")
        files.append(LockedFile(name, path.stat().st_size, digest))
    if mismatched:
        raise LockMismatchError(str(to), mismatched)
    lock = ModelLock(repo_id, revision, sha, tuple(files), endpoint)
    (to / LOCK_NAME).write_text(lock.to_json(), encoding="utf-8")
    prepared = prepare_folder(to, commit=sha)
    return lock, FetchPlan(plan.files, plan.skipped, tuple(prepared))


def prepare_folder(folder: Path, *, commit: str | None = None) -> list[str]:
    """Write what a model's server reads besides its files (full-duplex models: voices
    unpacked, a Hub cache entry, the LM's config; see ``model.duplex_files``); return what
    was written. ``commit`` defaults to the folder's lock, if it has one.

    Raises:
        HfDeployError: the folder cannot be profiled (no config, corrupt headers...).
    """
    from hfdeploy.model.duplex import kyutai_files
    from hfdeploy.model.duplex_files import prepare_duplex_folder
    from hfdeploy.model.lock import read_lock
    from hfdeploy.model.profile import build_profile
    from hfdeploy.model.source import LocalSource

    names = [p.relative_to(folder).as_posix() for p in folder.iterdir()]
    if kyutai_files(names) is None:  # only full-duplex models need anything derived
        return []
    profile = build_profile(LocalSource(folder), ref=str(folder))
    if profile.duplex is None:
        return []
    if commit is None and (folder / LOCK_NAME).is_file():
        commit = read_lock(folder).commit_sha
    return prepare_duplex_folder(folder, profile.duplex, commit=commit)
