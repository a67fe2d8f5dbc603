"""Text written to be replaced, and shell comments, in values that a file passes as is.

An exec-form argument (a Kubernetes ``args`` item, a compose list, a Dockerfile JSON array,
Inference Endpoints' ``container_args``) reaches the process verbatim: no shell strips a
``# comment`` or complains about ``<model>``. Pure.
"""

from __future__ import annotations

import re

__all__ = ["placeholder"]

#: Words that name what a placeholder stands for (``OWNER/NAME``, ``<model-id>``).
_WORDS = frozenset({
    "owner", "org", "organization", "user", "username", "namespace", "name", "repo", "repo_id",
    "repository", "model", "model_id", "model_name", "commit", "commit_sha", "sha", "revision",
    "your", "token", "registry", "id",
})  # fmt: skip
_ANGLE = re.compile(r"<([A-Za-z][\w .:/-]*)>")
#: Upper-case words joined by / @ or : (``OWNER/NAME``, ``REPO_ID@COMMIT_SHA``).
_CAPS = re.compile(r"^[A-Z][A-Z0-9_-]*(?:[/@:][A-Z][A-Z0-9_-]*)+$")
_CAPS_ALONE = frozenset({"REPO_ID", "MODEL_ID", "MODEL_NAME", "COMMIT_SHA", "OWNER"})
_YOUR = re.compile(r"(?:^|[/@=])YOUR[_-][A-Z0-9_-]+", re.I)
#: ``value  # comment``: a value followed by a shell comment, or a comment alone.
_COMMENT = re.compile(r"^\S+\s+#(?:\s|$)|^#\s")


def placeholder(value: str) -> str | None:
    """What in ``value`` was meant to be replaced or read by a shell, or None.

    >>> placeholder("REPO_ID@COMMIT_SHA  # set before applying")
    'a shell comment'
    >>> placeholder("--model=<model>"), placeholder("<s>")
    ('the placeholder <model>', None)
    """
    v = value.strip()
    if _COMMENT.search(v):
        return "a shell comment"
    body = v.split("=", 1)[1] if v.startswith("-") and "=" in v else v
    for m in _ANGLE.finditer(body):
        if set(re.split(r"[-_ .:/]+", m.group(1).lower())) & _WORDS:
            return f"the placeholder {m.group(0)}"
    if body in _CAPS_ALONE or _YOUR.search(body):
        return f"the placeholder {body}"
    if _CAPS.match(body) and {p.lower() for p in re.split(r"[/@:]", body)} & _WORDS:
        return f"the placeholder {body}"
    return None
