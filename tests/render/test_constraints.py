"""The Dockerfiles install every package at a pinned version (constraints.txt)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from hfdeploy.render.common import CONSTRAINTS, constraints


def _pins() -> dict[str, str]:
    out = {}
    for line in constraints().splitlines():
        if line and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            out[canonicalize_name(req.name)] = spec.version
    return out


def test_every_package_of_the_serve_closure_is_pinned() -> None:
    # The closure as the installed distributions describe it, from pyproject's requirements:
    # a new dependency (or a new transitive one) without a pin fails here.
    from scripts.freeze_serve_constraints import serve_closure

    names = set(serve_closure())
    pins = _pins()
    assert names - set(pins) == set(), "run scripts/freeze_serve_constraints.py"
    assert pins["torch"] == "2.13.0"  # the project's torch pin


def test_the_pins_install_together() -> None:
    # pip's resolver over the pinned set (no download: --dry-run over what is installed
    # here, which CI installs with these constraints).
    reqs = [line for line in constraints().splitlines() if line and not line.startswith("#")]
    res = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--quiet",
         "--report", "-", *reqs],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout)
    assert report["install"] == []  # all of it is what the tests run on


def test_dockerfiles_install_under_the_constraints(tmp_path: Path) -> None:
    from hfdeploy import inspect_model
    from hfdeploy.plan.planner import plan_deployment
    from hfdeploy.render.generate import generate_deployment
    from tests._models import build_model

    folder = tmp_path / "whisper"
    build_model("whisper").save_pretrained(folder)
    # A registry and a pinned repository: the server and fetch images are both written.
    plan = plan_deployment(
        inspect_model(str(folder)), registry="ghcr.io/acme", repo="acme/whisper@" + "c" * 40
    )
    assert plan.engine.name == "hfdeploy"
    out = tmp_path / "out"
    generate_deployment(plan, out, lock=False)
    assert (out / CONSTRAINTS).read_text() == constraints()
    for name in ("Dockerfile", "fetch.Dockerfile"):
        text = (out / name).read_text()
        assert f"COPY {CONSTRAINTS} " in text
        installs = re.findall(r"pip install [^&]*", text.replace("\\\n", " "))
        # every pip install is either torch alone, pinned, or under the constraints
        for cmd in installs:
            assert "-c /tmp/constraints.txt" in cmd or '"torch==2.13.0"' in cmd, cmd
