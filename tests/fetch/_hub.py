"""A small Hugging Face Hub on loopback: the API and resolve routes huggingface_hub uses.

Serves one repository at one commit: ``GET /api/models/{repo}[/revision/{rev}]`` and
``/api/models/{repo}/tree/{rev}`` (with
``siblings``, sizes and LFS sha256 when ``blobs`` / ``files_metadata`` is asked) and
``HEAD``/``GET /{repo}/resolve/{rev}/{path}`` with the headers the client reads
(``X-Repo-Commit``, ``ETag``, ``X-Linked-Etag``, ``X-Linked-Size``). Branch names
resolve to the commit; any other revision is a 404 with the Hub's error code.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

__all__ = ["FakeHub", "serve_hub"]

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf", ".pth")


class FakeHub:
    def __init__(
        self, repo: str, files: dict[str, bytes], *, sha: str, branches: tuple[str, ...] = ("main",)
    ) -> None:
        self.repo = repo
        self.files = files
        self.sha = sha
        self.branches = branches
        self.requests: list[str] = []

    def commit(self, rev: str) -> str | None:
        return self.sha if rev in (self.sha, *self.branches) else None

    def tree(self) -> list[dict[str, object]]:
        out = []
        for path, data in sorted(self.files.items()):
            item: dict[str, object] = {
                "type": "file",
                "path": path,
                "size": len(data),
                "oid": hashlib.sha1(data).hexdigest(),
            }
            if path.endswith(LFS_SUFFIXES):
                item["lfs"] = {
                    "oid": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "pointerSize": 134,
                }
            out.append(item)
        return out

    def info(self, rev: str) -> dict[str, object]:
        siblings = []
        for path, data in sorted(self.files.items()):
            item: dict[str, object] = {
                "rfilename": path,
                "size": len(data),
                "blobId": hashlib.sha1(data).hexdigest(),
            }
            if path.endswith(LFS_SUFFIXES):
                item["lfs"] = {
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "pointerSize": 134,
                }
            siblings.append(item)
        return {"id": self.repo, "modelId": self.repo, "sha": self.sha, "private": False, "gated": False,
                "disabled": False, "tags": [], "siblings": siblings}  # fmt: skip


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def _send(
            self, status: int, body: bytes, headers: dict[str, str], *, head: bool = False
        ) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _error(self, status: int, code: str, head: bool) -> None:
            body = json.dumps({"error": code}).encode()
            self._send(
                status, body, {"X-Error-Code": code, "Content-Type": "application/json"}, head=head
            )

        def _route(self, head: bool) -> None:
            path = unquote(urlparse(self.path).path)
            hub.requests.append(f"{self.command} {path}")
            api = f"/api/models/{hub.repo}"
            if path.startswith(api + "/tree/"):
                rev = path.removeprefix(api + "/tree/").split("/", 1)[0]
                if hub.commit(rev) is None:
                    return self._error(404, "RevisionNotFound", head)
                body = json.dumps(hub.tree()).encode()
                return self._send(200, body, {"Content-Type": "application/json"}, head=head)
            if path == api or path.startswith(api + "/revision/"):
                rev = path.removeprefix(api + "/revision/") if path != api else "main"
                if hub.commit(rev) is None:
                    return self._error(404, "RevisionNotFound", head)
                body = json.dumps(hub.info(rev)).encode()
                return self._send(200, body, {"Content-Type": "application/json"}, head=head)
            if path.startswith("/api/models/"):
                return self._error(404, "RepoNotFound", head)
            prefix = f"/{hub.repo}/resolve/"
            if path.startswith(prefix):
                rev, _, file = path.removeprefix(prefix).partition("/")
                if hub.commit(rev) is None:
                    return self._error(404, "RevisionNotFound", head)
                if file not in hub.files:
                    return self._error(404, "EntryNotFound", head)
                data = hub.files[file]
                etag = (
                    hashlib.sha256(data).hexdigest()
                    if file.endswith(LFS_SUFFIXES)
                    else hashlib.sha1(data).hexdigest()
                )
                headers = {
                    "X-Repo-Commit": hub.sha,
                    "ETag": f'"{etag}"',
                    "Content-Type": "application/octet-stream",
                }
                if file.endswith(LFS_SUFFIXES):
                    headers |= {"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))}
                return self._send(200, data, headers, head=head)
            return self._error(404, "RepoNotFound", head)

        def do_GET(self) -> None:
            self._route(head=False)

        def do_HEAD(self) -> None:
            self._route(head=True)

    return Handler


@contextmanager
def serve_hub(hub: FakeHub) -> Iterator[str]:
    """Run ``hub`` on a loopback port; yields its endpoint URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
