"""MODEL → a source: a local folder or file, the Hugging Face cache, or the Hub.

Settings come from an injected ``environ`` mapping (``HF_HUB_OFFLINE``, ``HF_HOME``,
``HF_HUB_CACHE``, ``HF_ENDPOINT``, ``HF_TOKEN``), so tests need not touch ``os.environ``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hfdeploy.errors import (
    HubUnavailableError,
    InvalidModelRefError,
    ModelNotFoundError,
)
from hfdeploy.model.profile import ModelProfile, build_profile
from hfdeploy.model.source import LocalSource, ModelSource, cache_coordinates

if TYPE_CHECKING:
    import httpx

__all__ = ["ModelRef", "hub_cache_dir", "hub_token", "inspect_model", "parse_ref", "resolve"]

_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.\-]{0,95}/)?[A-Za-z0-9][\w.\-]{0,95}$")
_SHA = re.compile(r"^[0-9a-f]{40}$")
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A parsed MODEL argument: a path, or a Hub repo id with an optional revision."""

    raw: str
    path: Path | None = None
    repo_id: str | None = None
    revision: str | None = None


def parse_ref(raw: str) -> ModelRef:
    """Parse MODEL: an existing path wins; else ``owner/name[@revision]``.

    Raises:
        InvalidModelRefError: empty, or neither a path nor a well-formed repo id.
        ModelNotFoundError: it looks like a path that does not exist.
    """
    text = raw.strip()
    if not text:
        raise InvalidModelRefError(raw, "it is empty")
    path = Path(text).expanduser()
    if path.exists():
        return ModelRef(raw=raw, path=path)
    if text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1:
        raise ModelNotFoundError(raw, where="the local file system", hint="Check the path.")
    repo, _, revision = text.partition("@")
    if not _REPO_ID.match(repo) or ".." in repo or repo.endswith((".", "-")):
        raise InvalidModelRefError(raw, "a Hub id is 'owner/name' with letters, digits, '-_.'")
    if "@" in text and not revision:
        raise InvalidModelRefError(raw, "'@' must be followed by a revision")
    return ModelRef(raw=raw, repo_id=repo, revision=revision or None)


def _hf_home(environ: Mapping[str, str]) -> Path:
    """``HF_HOME``, else ``$XDG_CACHE_HOME/huggingface``, else ``~/.cache/huggingface``."""
    home = environ.get("HF_HOME") or os.path.join(
        environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface"
    )
    return Path(home).expanduser()


def hub_cache_dir(environ: Mapping[str, str]) -> Path:
    """The Hub cache folder: ``HF_HUB_CACHE``, else ``HF_HOME/hub``."""
    if environ.get("HF_HUB_CACHE"):
        return Path(environ["HF_HUB_CACHE"]).expanduser()
    return _hf_home(environ) / "hub"


def hub_token(environ: Mapping[str, str]) -> str | None:
    """``HF_TOKEN``, else the token `hf auth login` stored under HF_HOME."""
    token = environ.get("HF_TOKEN") or environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        return token
    stored = Path(environ.get("HF_TOKEN_PATH") or _hf_home(environ) / "token").expanduser()
    try:
        return stored.read_text().strip() or None
    except OSError:
        return None


def _from_cache(repo_id: str, revision: str | None, cache: Path) -> LocalSource | None:
    """A cached snapshot of ``repo_id`` at ``revision``, in huggingface_hub's layout."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(
            repo_id, revision=revision, cache_dir=cache, local_files_only=True
        )
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        return None
    path = Path(folder)
    sha = path.name if _SHA.match(path.name) else None
    return LocalSource(path=path, kind="cache", repo_id=repo_id, revision=revision, commit_sha=sha)


def resolve(
    ref: str | ModelRef,
    *,
    environ: Mapping[str, str] | None = None,
    client: httpx.Client | None = None,
) -> tuple[ModelSource, str | None]:
    """Find where MODEL's files are.

    Order: a local path; offline (``HF_HUB_OFFLINE=1``) or a 40-hex revision, the cache;
    else the Hub (falling back to the cache when the Hub cannot be reached).

    Returns:
        The source and, when MODEL was a ``.gguf`` file, that file's name.
    """
    env = os.environ if environ is None else environ
    parsed = parse_ref(ref) if isinstance(ref, str) else ref
    if parsed.path is not None:
        path = parsed.path
        gguf_file = None
        if path.is_file():
            if path.suffix != ".gguf":
                raise InvalidModelRefError(
                    parsed.raw, "a file MODEL must be a .gguf file; otherwise pass its folder"
                )
            gguf_file, path = path.name, path.parent
        coords = cache_coordinates(path)
        source = LocalSource(path=path.resolve())
        if coords:
            source.repo_id, source.commit_sha = coords
        return source, gguf_file

    assert parsed.repo_id is not None
    cache = hub_cache_dir(env)
    offline = env.get("HF_HUB_OFFLINE", "").lower() in _TRUE
    if offline or (parsed.revision and _SHA.match(parsed.revision)):
        cached = _from_cache(parsed.repo_id, parsed.revision, cache)
        if cached is not None:
            return cached, None
        if offline:
            raise ModelNotFoundError(
                parsed.raw,
                where=f"the Hugging Face cache at {cache} (HF_HUB_OFFLINE=1)",
                hint="Download it first (`hf download REPO --revision REV`), or unset "
                "HF_HUB_OFFLINE to read its headers from the Hub.",
            )
    from hfdeploy.model.hub import DEFAULT_ENDPOINT, HubSource, hub_client

    own = client is None
    http = client or hub_client()
    hub = HubSource(
        repo_id=parsed.repo_id,
        revision=parsed.revision,
        client=http,
        endpoint=(env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/"),
        token=hub_token(env),
    )
    try:
        hub.load()
    except HubUnavailableError:
        cached = _from_cache(parsed.repo_id, parsed.revision, cache)
        if own:
            http.close()
        if cached is None:
            raise
        cached.notes.append("the Hub could not be reached: profiled the cached snapshot")
        return cached, None
    return hub, None


def inspect_model(
    ref: str,
    *,
    environ: Mapping[str, str] | None = None,
    client: httpx.Client | None = None,
) -> ModelProfile:
    """Profile MODEL (folder, ``.gguf`` file, cached or Hub repo) without reading weights.

    Example:
        >>> profile = inspect_model("sentence-transformers/all-MiniLM-L6-v2")  # doctest: +SKIP
        >>> profile.parameters
        22713216
    """
    source, gguf_file = resolve(ref, environ=environ, client=client)
    try:
        return build_profile(source, ref=ref, gguf_file=gguf_file)
    finally:
        http = getattr(source, "client", None)
        if client is None and http is not None:
            http.close()
