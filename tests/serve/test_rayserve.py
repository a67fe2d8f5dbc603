"""hfdeploy's server as a Ray Serve application, run for real.

``generate --target rayservice`` writes a RayService whose ``serveConfigV2`` runs
``hfdeploy.serve.rayserve:build``. Here that Serve config goes to a local Ray (``ray start``,
then Ray's own ``serve run CONFIG``, as KubeRay hands it to the cluster), with only what
differs on this machine changed: the model's path (KubeRay mounts the volume at
/repository) and where Serve listens. One embedding request must come back equal to
``hfdeploy serve``'s answer for the same input.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from hfdeploy import inspect_model
from hfdeploy.errors import InvalidSettingError
from hfdeploy.plan.planner import plan_deployment
from hfdeploy.render.generate import generate_deployment
from hfdeploy.serve.rayserve import settings_from_args

pytest.importorskip("ray.serve")

BIN = Path(sys.executable).parent
SENTENCE = "Ray runs the same server."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_config(minilm_dir: Path, tmp_path: Path) -> dict:
    plan = plan_deployment(
        inspect_model(str(minilm_dir)), gpu="cpu", engine="hfdeploy", registry="ghcr.io/acme",
        storage_class="nfs", targets=("rayservice",),
    )  # fmt: skip
    generate_deployment(plan, tmp_path / "out", targets=("rayservice",), lock=False)
    rayservice = yaml.safe_load((tmp_path / "out/ray/rayservice.yaml").read_text())
    return yaml.safe_load(rayservice["spec"]["serveConfigV2"])


def test_the_generated_serve_config_runs_on_ray(
    minilm_dir: Path, minilm_url: str, tmp_path: Path
) -> None:
    config = _serve_config(minilm_dir, tmp_path)
    (app,) = config["applications"]
    assert app["import_path"] == "hfdeploy.serve.rayserve:build"
    assert app["args"]["model"] == "/repository"
    app["args"]["model"] = str(minilm_dir)  # where this machine has the volume's content
    port = _free_port()
    config["http_options"] = {"host": "127.0.0.1", "port": port}
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))

    env = os.environ | {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
                        "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}  # fmt: skip
    gcs = _free_port()

    def run(*cmd: str, timeout: float = 120) -> None:
        subprocess.run(cmd, env=env, check=True, timeout=timeout, capture_output=True)

    try:
        run(str(BIN / "ray"), "start", "--head", f"--port={gcs}", "--num-cpus=2",
            "--include-dashboard=false", "--disable-usage-stats")  # fmt: skip
        run(str(BIN / "serve"), "run", "--address", f"127.0.0.1:{gcs}", "--non-blocking",
            str(path))  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:  # Serve routes once start-up (load and warmup) has completed
            try:
                r = httpx.post(f"{url}/embed", json={"inputs": SENTENCE}, timeout=30)
                if r.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the Serve app never answered"
            time.sleep(1)
        assert httpx.get(f"{url}/ready", timeout=10).status_code == 200
        direct = httpx.post(f"{minilm_url}/embed", json={"inputs": SENTENCE}, timeout=30)
        assert direct.status_code == 200
        np.testing.assert_allclose(np.array(r.json()), np.array(direct.json()), atol=1e-6)
        # The same OpenAPI contract: the embedding task's routes only.
        paths = httpx.get(f"{url}/openapi.json", timeout=10).json()["paths"]
        assert "/embed" in paths and "/v1/completions" not in paths
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env, timeout=60,
                       capture_output=True)  # fmt: skip


def test_serve_args_are_checked() -> None:
    # Serve ignores unknown keys of a config; the builder does not let a typo pass.
    with pytest.raises(InvalidSettingError, match="max_batch_sise"):
        settings_from_args({"model": "/repository", "max_batch_sise": 8})
    with pytest.raises(InvalidSettingError, match="model"):
        settings_from_args({"max_batch_size": 8})
    assert settings_from_args({"model": "/m", "max_batch_size": 8}).max_batch_size == 8
