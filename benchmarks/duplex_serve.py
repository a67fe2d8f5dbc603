"""Conversations held in real time by ``hfdeploy serve`` (all stepped together each 80 ms
frame) against the reference servers' loop (one conversation per process, so B
conversations on one machine are B steps one after another), in one run, on one model.

The model is the small random-weight Moshi of ``duplex_lockstep.py`` (Moshi's layout at
small widths), saved as a Transformers folder with a word-level tokenizer. hfdeploy's
server runs as its own process; ``hfdeploy bench --api duplex``'s client holds B
conversations at once over real WebSockets (raw PCM, paced at real time) for each B, on
the same CPUs, and the server's own metrics give its step time. The reference loop is
timed in this process, on the same model: B engines of one conversation each, stepped one
after another per frame (the reference server's package does not install beside this
project's pins; this is its loop, without its process and network overhead).

    python benchmarks/duplex_serve.py                  # writes results/duplex_serve_cpu.json
    python benchmarks/duplex_serve.py --sessions 1,2,4 --duration 5
    python benchmarks/duplex_serve.py --model moshi-7b --device cuda \
        --sessions 1,4,8,16,32 --out benchmarks/results/duplex_serve_gpu.json   # on a GPU

``--model moshi-7b`` is Moshi's published 7B shape (``MoshiConfig``'s defaults) with random
bf16 weights, saved before the run (15.5 GB of disk); on a GPU only. It is also the
PersonaPlex-shaped model for this server: PersonaPlex's temporal transformer and Mimi are
Moshi 7B's, and hfdeploy runs its depth transformer over the model's 8 codebooks only, as
for Moshi (the 8 steps over the user's codebooks are not loaded).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.serve._duplex import save_moshi_folder

from _results import header
from duplex_lockstep import FRAME_MS, model, one_by_one
from hfdeploy.bench.duplex import run_duplex_bench
from hfdeploy.bench.duplex_config import DuplexConfig
from serve_throughput import _port, _start, _stop

HERE = Path(__file__).resolve().parent
HFDEPLOY = str(Path(sys.executable).with_name("hfdeploy"))


def _moshi_7b() -> Any:
    from transformers import MoshiConfig, MoshiForConditionalGeneration

    torch.manual_seed(0)
    with torch.device("cuda"):
        config = MoshiConfig(audio_encoder_config={"model_type": "mimi"})
        return MoshiForConditionalGeneration(config).to(torch.bfloat16).eval()


def save_model(folder: Path, which: str = "small") -> Path:
    """The model with a word-level tokenizer, as ``serve`` loads it."""
    return Path(save_moshi_folder(model() if which == "small" else _moshi_7b(), folder))


def _metrics(url: str) -> dict[str, float]:
    out = {}
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith("hfdeploy_duplex_") and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def _delta(after: dict[str, float], before: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def serve_phases(url: str, sessions: list[int], duration: float) -> list[dict[str, Any]]:
    rows = []
    for b in sessions:
        before = _metrics(url)
        cfg = DuplexConfig(
            url=url, profile=f"concurrent:{b}", duration=duration, codec="pcm", max_sessions=b
        )
        result = run_duplex_bench(cfg)
        after = _metrics(url)
        phase = result.phases[0]
        keep = ("served", "refused", "realtime_sessions", "realtime", "first_audio_ms",
                "jitter_ms", "drift_ms", "backlog_growth_ms")  # fmt: skip
        steps = _delta(after, before, "hfdeploy_duplex_step_seconds_count")
        step_s = _delta(after, before, "hfdeploy_duplex_step_seconds_sum")
        rows.append({
            "sessions": b,
            "client": {k: phase.summary.get(k) for k in keep} | {
                "valid": result.valid, "cpu_share_of_one_core":
                phase.client.get("cpu_share_of_one_core"),
            },
            "server_step_ms": round(step_s / steps * 1000, 2) if steps else None,
            "server_steps": int(steps),
            "late_steps": int(_delta(after, before, "hfdeploy_duplex_late_steps_total")),
            "input_gaps": int(_delta(after, before, "hfdeploy_duplex_input_gaps_total")),
        })  # fmt: skip
        print(json.dumps(rows[-1])[:400], flush=True)
    return rows


def _one_by_one_cuda(m: Any, b: int, frames: int, warmup: int = 3) -> float:
    """The reference loop on the GPU: B one-conversation engines stepped in a row per frame
    (ms per frame for all B)."""
    from hfdeploy.serve.duplex.engine import DuplexEngine
    from hfdeploy.serve.duplex.lockstep import Sampling

    engines = []
    for k in range(b):
        e = DuplexEngine(m)
        e.join(k, Sampling(seed=k))
        engines.append(e)
    pcm = torch.randn(1920, device="cuda", dtype=m.dtype) * 0.1
    with torch.inference_mode():
        for _ in range(warmup):
            for k, e in enumerate(engines):
                e.step({k: pcm})
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(frames):
            for k, e in enumerate(engines):
                e.step({k: pcm})
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / frames * 1000


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sessions", default="1,2,4,8,16,32")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--frames", type=int, default=25, help="frames timed per reference point")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", choices=("small", "moshi-7b"), default="small")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "duplex_serve_cpu.json")
    args = ap.parse_args()
    sessions = [int(x) for x in args.sessions.split(",")]
    if args.model != "small" and args.device != "cuda":
        ap.error("--model moshi-7b runs on --device cuda only")
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_model(Path(tmp) / args.model, args.model)
        if args.model != "small":
            torch.cuda.empty_cache()  # the server loads its own copy
        port = _port()
        cmd = [
            HFDEPLOY,
            "serve",
            str(folder),
            "--port",
            str(port),
            "--threads",
            str(args.threads),
            "--max-sessions",
            str(max(sessions)),
            "--device",
            args.device,
        ]
        url = f"http://127.0.0.1:{port}"
        proc = _start(cmd, url + "/ready", Path(tmp) / "serve.log", timeout=600)
        try:
            info = httpx.get(url + "/info").json()["model_type"]["audio-to-audio"]
            served = serve_phases(url, sessions, args.duration)
        finally:
            _stop(proc)
    torch.set_num_threads(args.threads)
    if args.device == "cpu":
        m = model()
        reference = {b: round(one_by_one(m, b, args.frames, 3), 2) for b in sessions}
    else:
        m = _moshi_7b() if args.model != "small" else model().cuda()
        reference = {b: round(_one_by_one_cuda(m, b, args.frames), 2) for b in sessions}
    for row in served:
        row["reference_loop_frame_ms"] = reference[row["sessions"]]
    held = [r["sessions"] for r in served if r["client"]["realtime"] and r["client"]["valid"]]
    ref_held = [b for b, ms in reference.items() if ms < FRAME_MS]
    result = {
        **header("duplex_serve"),
        "torch": {"version": torch.__version__, "threads": torch.get_num_threads()},
        "model": (
            "random-weight Moshi at small widths (duplex_lockstep.py), float32"
            if args.model == "small"
            else "random-weight Moshi at its published 7B shape, bf16"
        ),
        "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
        "server_warmup": info,
        "phases": served,
        "largest_realtime_sessions": {
            "hfdeploy_serve": max(held, default=0),
            "reference_loop": max(ref_held, default=0),
        },
        "note": "hfdeploy serve: sessions held when the bench client saw every conversation "
        "in real time (its rule: no drift, no growing backlog, no slow-frame episode) and kept "
        "up itself; reference loop: B one-conversation steps in a row "
        "under the 80 ms frame, timed in process (no network, no Opus), which flatters it.",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["largest_realtime_sessions"]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
