"""Write the exact versions of hfdeploy[serve]'s dependency closure, for the generated Dockerfile.

`hfdeploy generate` writes `constraints.txt` beside the Dockerfile of hfdeploy's own server;
the Dockerfile installs with `pip install -c constraints.txt`, so every package in the image,
transitive ones included, is the version this project's tests ran with. This script reads
the closure from the installed distributions' metadata (markers evaluated for this
interpreter: run it with Python 3.11 on Linux x86-64, as the image is) and writes
src/hfdeploy/render/serve-constraints.txt. A test fails when the closure has a package
the file does not pin.

    .venv-dev/bin/python scripts/freeze_serve_constraints.py
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

OUT = Path(__file__).resolve().parents[1] / "src/hfdeploy/render/serve-constraints.txt"


def closure(root: str, extras: set[str]) -> dict[str, str]:
    """{canonical name: installed version} of ``root[extras]`` and all it requires."""
    seen: dict[str, str] = {}
    todo: list[tuple[str, set[str]]] = [(root, extras)]
    env = default_environment()
    while todo:
        name, wanted = todo.pop()
        dist = metadata.distribution(name)
        key = canonicalize_name(dist.metadata["Name"])
        if key in seen and not wanted:
            continue
        seen[key] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker and not any(
                req.marker.evaluate({**env, "extra": e}) for e in (wanted or {""})
            ):
                continue
            if canonicalize_name(req.name) not in seen or req.extras:
                todo.append((req.name, set(req.extras)))
    return seen


def serve_closure() -> dict[str, str]:
    """hfdeploy[serve,ray,duplex]'s closure (the server's images: plain, Ray, and for
    full-duplex speech), from
    pyproject.toml's requirements (an editable install's own metadata can lag behind them)
    through the installed distributions."""
    project = tomllib.loads((OUT.parents[3] / "pyproject.toml").read_text())["project"]
    pins: dict[str, str] = {}
    extras = project["optional-dependencies"]
    lines = [*project["dependencies"], *extras["serve"], *extras["ray"], *extras["opus"],
             *extras["duplex"]]  # fmt: skip
    for line in lines:
        req = Requirement(line)
        if canonicalize_name(req.name) == "hfdeploy":  # an extra naming others: listed above
            continue
        pins |= closure(req.name, set(req.extras))
    return pins


def main() -> int:
    pins = serve_closure()
    lines = [
        "# hfdeploy[serve,ray,duplex]'s dependency closure at the versions its tests ran with;",
        "# written by scripts/freeze_serve_constraints.py (Python 3.11, Linux x86-64).",
    ]
    for name, version in sorted(pins.items()):
        lines.append(f"{name}=={re.sub(r'[+].*$', '', version)}")  # torch 2.13.0+cpu -> 2.13.0
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}: {len(pins)} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
