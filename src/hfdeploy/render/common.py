"""What every target shares: names, the engine's command and environment, YAML without
anchors, the health check, and the pinned reference the model is fetched by. Pure."""

from __future__ import annotations

import math
import re
from importlib import resources
from typing import Any

import yaml

from hfdeploy._version import __version__
from hfdeploy.plan.result import Plan

__all__ = [
    "CONSTRAINTS",
    "FETCH_IMAGE",
    "PYTHON_IMAGE",
    "WHEEL",
    "command",
    "constraints",
    "dump_yaml",
    "env",
    "gib",
    "healthcheck",
    "labels",
    "pinned_ref",
    "shm",
    "slug",
]

PYTHON_IMAGE = "python:3.11.9-slim-bookworm"
#: The small image the fetch Job runs (hfdeploy without the serving stack).
FETCH_IMAGE = f"hfdeploy-fetch:{__version__}"
#: Beside every Dockerfile, in ``dist/``: the wheel of the hfdeploy that wrote it (``generate``
#: builds it from the installed package), which the images install.
WHEEL = f"dist/hfdeploy-{__version__}-py3-none-any.whl"
#: Beside every Dockerfile: the exact versions of hfdeploy[serve]'s dependency closure that
#: its tests ran with (package data, written by scripts/freeze_serve_constraints.py).
CONSTRAINTS = "constraints.txt"


def constraints() -> str:
    """The text of ``constraints.txt``."""
    return resources.files("hfdeploy.render").joinpath("serve-constraints.txt").read_text("utf-8")


def labels(name: str, component: str | None = None) -> dict[str, str]:
    """The labels of every object hfdeploy writes for ``name``; ``component`` tells apart the
    pods that share the name (the serving pods, the fetch Job, Ray's workers)."""
    out = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "hfdeploy"}
    return out | ({"app.kubernetes.io/component": component} if component else {})


def slug(name: str) -> str:
    """A DNS-1123 label from a model name (``meta-llama/Llama-3.1-8B`` → ``llama-3-1-8b``)."""
    base = name.rstrip("/").rsplit("/", 1)[-1].lower()
    s = re.sub(r"[^a-z0-9-]+", "-", base).strip("-")
    return (s or "model")[:50].rstrip("-")


class _PlainDumper(yaml.SafeDumper):
    """Writes a value shared by two places twice: no ``&id001`` anchors or ``*id001``
    aliases, which a person reading or diffing a manifest should never meet."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    """A string of several lines (an embedded config) as a ``|`` block, as a person writes it."""
    block = "\n" in data and all(line == line.rstrip() for line in data.splitlines())
    style = "|" if block else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_PlainDumper.add_representer(str, _text)


def dump_yaml(*docs: dict[str, Any]) -> str:
    """Documents as plain YAML, keys in the order given, separated by ``---``."""
    return "---\n".join(
        yaml.dump(d, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False) for d in docs
    )


def gib(n: float) -> str:
    """Bytes as a Kubernetes quantity in whole GiB, at least 1Gi."""
    return f"{max(1, math.ceil(n / 2**30))}Gi"


def shm(plan: Plan) -> str:
    """The size of a memory-backed /dev/shm for tensor parallelism."""
    # NCCL buffers grow with TP; vLLM's example uses 2Gi, TGI's 1g.
    return f"{max(2, 2 * plan.tp)}Gi"


def env(plan: Plan) -> dict[str, str]:
    """The engine's environment, sorted."""
    return dict(sorted(plan.command.env.items()))


def command(plan: Plan) -> list[str]:
    """The container's arguments, after the image's ENTRYPOINT (``vllm serve``, hfdeploy's
    ``hfdeploy``) or the catalog's entrypoint where the image has none (SGLang)."""
    return list(plan.command.args)


def healthcheck(plan: Plan) -> list[str]:
    """A Docker health check on the ready route (curl, or Python in hfdeploy's image); a TCP
    connect for a server with no health route."""
    if not plan.routes.ready:  # no health route (full-duplex servers): a TCP connect
        return [
            "CMD",
            "python3",
            "-c",
            f"import socket; socket.create_connection(('127.0.0.1', {plan.routes.port}), 2)",
        ]
    url = f"http://127.0.0.1:{plan.routes.port}{plan.routes.ready}"
    if plan.engine.name == "hfdeploy":
        return [
            "CMD",
            "python",
            "-c",
            f"import urllib.request; urllib.request.urlopen('{url}', timeout=2)",
        ]
    return ["CMD-SHELL", f"curl -fsS {url} >/dev/null || exit 1"]


def pinned_ref(plan: Plan) -> str | None:
    """``REPO@COMMIT`` for ``hfdeploy fetch``; None when the model has no pinned Hub commit
    (a local folder without ``--repo``)."""
    if plan.repo_id and plan.commit:
        return f"{plan.repo_id}@{plan.commit}"
    return None
