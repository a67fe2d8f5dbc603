"""The image ``generate`` writes builds, starts exactly as its compose file says, turns
healthy and answers as ``hfdeploy serve`` does: ``scripts/container_check.py`` with a Docker
engine from Debian's packages, a stand-in base image and the torch wheel on this machine's
disk (what is real and what is a stand-in: the results' ``real_vs_stand_in``).

It needs root (it installs Debian's docker.io and starts dockerd, then stops it); CI runs it.
``HFDEPLOY_SKIP_CONTAINER_CHECK=1`` skips it on a workstation that should not get Docker.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _why_not() -> str | None:
    if os.environ.get("HFDEPLOY_SKIP_CONTAINER_CHECK"):
        return "HFDEPLOY_SKIP_CONTAINER_CHECK is set"
    if os.geteuid() != 0:
        return "needs root: it installs Debian's docker.io and starts dockerd"
    if not (shutil.which("apt-get") or shutil.which("dockerd")):
        return "no Docker engine, and no apt-get to install Debian's"
    return None


@pytest.mark.skipif(_why_not() is not None, reason=str(_why_not()))
def test_the_generated_image_serves_as_hfdeploy_serve_does(tmp_path: Path) -> None:
    out = tmp_path / "container_check.json"
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts/container_check.py"), "--out", str(out)],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert out.is_file(), res.stdout[-2000:] + res.stderr[-2000:]
    data = json.loads(out.read_text())
    assert (res.returncode, data["failures"]) == (0, []), res.stdout[-3000:] + res.stderr[-3000:]
    c = data["container"]
    assert c["health_status"] == "healthy"
    assert (c["uid"], c["repository_mount"]["RW"], c["cache_mount"]["RW"]) == ("1000", False, True)
    assert data["comparison"]["cosine"] > 0.99999
