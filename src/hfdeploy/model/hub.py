"""The Hugging Face Hub as a model source: file list, small files, safetensors headers.

Weights are never downloaded: safetensors headers come by HTTP range request (two at
most per file), as huggingface_hub's ``get_safetensors_metadata`` does. The caller
injects the ``httpx.Client`` (tests pass ``httpx.MockTransport``); this module is the
one boundary where httpx errors become hfdeploy errors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from hfdeploy.errors import (
    GatedRepoError,
    HfDeployError,
    HubAuthError,
    HubUnavailableError,
    ModelNotFoundError,
    RevisionNotFoundError,
)
from hfdeploy.model.gguf import GGUFInfo
from hfdeploy.model.safetensors import SafetensorsHeader, header_length, parse_header
from hfdeploy.model.source import HubMeta, SourceKind

__all__ = ["DEFAULT_ENDPOINT", "HubSource", "hub_client"]

DEFAULT_ENDPOINT = "https://huggingface.co"
#: First range request: enough for the header of most checkpoints (hf-mem uses 100 kB).
FIRST_RANGE_BYTES = 100_000


def hub_client(*, timeout: float = 10.0) -> httpx.Client:
    """The one HTTP session for Hub calls, with explicit timeouts. Close it with ``with``."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=5.0),
        follow_redirects=True,
        headers={"user-agent": "hfdeploy"},
    )


@dataclass
class HubSource:
    """A repo on the Hub at one revision, pinned to the commit the Hub resolves it to."""

    repo_id: str
    revision: str | None
    client: httpx.Client
    endpoint: str = DEFAULT_ENDPOINT
    token: str | None = None
    kind: SourceKind = "hub"
    commit_sha: str | None = None
    hub: HubMeta | None = None
    notes: list[str] = field(default_factory=list)
    _files: dict[str, int | None] = field(default_factory=dict)
    _bytes_read: int = 0
    _loaded: bool = False

    @property
    def location(self) -> str:
        return f"{self.endpoint}/{self.repo_id}"

    @property
    def bytes_read(self) -> int:
        return self._bytes_read

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        return headers

    def _raise_for_status(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        code = response.headers.get("x-error-code", "")
        where = f"the Hub ({self.endpoint})"
        if code == "GatedRepo":
            raise GatedRepoError(self.repo_id, status=status, has_token=bool(self.token))
        if code == "RevisionNotFound":
            raise RevisionNotFoundError(self.repo_id, self.revision or "main", where=where)
        if code == "EntryNotFound":
            raise ModelNotFoundError(
                f"{self.repo_id}/{what}", where=where, hint="The file is not in this revision."
            )
        if status in (401, 403):
            raise HubAuthError(self.repo_id, status=status, has_token=bool(self.token))
        if status == 404 or code == "RepoNotFound":
            raise ModelNotFoundError(self.repo_id, where=where)
        if status >= 500 or status == 429:
            raise HubUnavailableError(self.endpoint, f"HTTP {status} for {what}")
        raise HfDeployError(
            f"the Hub answered HTTP {status} for {what} of {self.repo_id!r}",
            hint="Retry; if it persists, check HF_ENDPOINT and the repo id.",
        )

    def _get(self, url: str, what: str, headers: dict[str, str] | None = None) -> httpx.Response:
        try:
            response = self.client.get(url, headers=self._headers(headers))
        except httpx.TransportError as e:
            raise HubUnavailableError(self.endpoint, f"{type(e).__name__}: {e}") from e
        self._raise_for_status(response, what)
        self._bytes_read += len(response.content)
        return response

    def load(self) -> None:
        """Resolve the revision to a commit and list the files (one API call)."""
        if self._loaded:
            return
        rev = quote(self.revision or "main", safe="")
        url = f"{self.endpoint}/api/models/{self.repo_id}/revision/{rev}?blobs=true"
        info = self._get(url, "repo info").json()
        self.commit_sha = info.get("sha")
        for sibling in info.get("siblings") or []:
            name = sibling.get("rfilename")
            if isinstance(name, str):
                lfs = sibling.get("lfs") or {}
                size = sibling.get("size", lfs.get("size"))
                self._files[name] = size if isinstance(size, int) else None
        card = info.get("cardData") or {}
        self.hub = HubMeta(
            pipeline_tag=info.get("pipeline_tag"),
            library_name=info.get("library_name"),
            license=card.get("license") if isinstance(card, dict) else None,
            gated=info.get("gated", False),
            private=bool(info.get("private", False)),
            tags=tuple(str(t) for t in info.get("tags") or []),
        )
        self._loaded = True

    def _file_url(self, name: str) -> str:
        rev = self.commit_sha or quote(self.revision or "main", safe="")
        return f"{self.endpoint}/{self.repo_id}/resolve/{rev}/{quote(name)}"

    def files(self) -> dict[str, int | None]:
        self.load()
        return self._files

    def read_json(self, name: str) -> Any:
        if name not in self.files():
            return None
        response = self._get(self._file_url(name), name)
        try:
            doc = json.loads(response.content)
        except json.JSONDecodeError as e:
            raise HfDeployError(
                f"{self.repo_id}/{name}: not valid JSON ({e})", hint="Report it to the repo owner."
            ) from e
        return doc

    def _range(self, name: str, start: int, end: int) -> bytes:
        """Bytes ``start..end`` inclusive, reading no more even if the server ignores Range."""
        want = end - start + 1
        url = self._file_url(name)
        try:
            with self.client.stream(
                "GET", url, headers=self._headers({"range": f"bytes={start}-{end}"})
            ) as response:
                self._raise_for_status(response, name)
                chunks: list[bytes] = []
                got = 0
                skip = start if response.status_code == 200 else 0  # Range ignored
                for chunk in response.iter_bytes():
                    if skip:
                        cut = min(skip, len(chunk))
                        chunk, skip = chunk[cut:], skip - cut
                    chunks.append(chunk)
                    got += len(chunk)
                    if got >= want:
                        break
        except httpx.TransportError as e:
            raise HubUnavailableError(self.endpoint, f"{type(e).__name__}: {e}") from e
        data = b"".join(chunks)[:want]
        self._bytes_read += len(data)
        return data

    def _header(self, name: str) -> SafetensorsHeader:
        size = self.files().get(name)
        first = self._range(name, 0, FIRST_RANGE_BYTES - 1)
        n = header_length(first, name, file_size=size)
        body = first[8 : 8 + n]
        if len(body) < n:
            body += self._range(name, 8 + len(body), 8 + n - 1)
        return parse_header(name, body, header_len=n, file_size=size)

    def read_safetensors_headers(self, names: Sequence[str]) -> list[SafetensorsHeader]:
        if len(names) <= 1:
            return [self._header(n) for n in names]
        workers = min(32, (os.cpu_count() or 1) + 4, len(names))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self._header, names))

    def read_gguf(self, name: str) -> GGUFInfo | None:
        # GGUF metadata would need the whole metadata block (vocabularies run to megabytes);
        # a remote GGUF is listed by name and size only.
        return None
