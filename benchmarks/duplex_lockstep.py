"""Frame time for B conversations: stepped together (hfdeploy's lockstep engine) against
stepped one after another (what servers holding one conversation per process amount to on
one machine), in the same run, on the same model.

A small random-weight Moshi built from Transformers' classes (Moshi's layout: 8 codebooks,
1920-sample frames at 12.5 Hz; widths far below the real 7B), float32 on CPU. Each point
runs FRAMES frames of audio for B conversations after a warm-up and reports the mean time
per frame for all B, and how many conversations hold real time (a frame under 80 ms).
This is a component measurement (no WebSocket, no Opus): the engine's step, not a server.

    python benchmarks/duplex_lockstep.py                 # writes results/duplex_lockstep_cpu.json
    python benchmarks/duplex_lockstep.py --sessions 1,2,4 --frames 10
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch
from transformers import MoshiConfig, MoshiForConditionalGeneration

from hfdeploy.serve.duplex.engine import DuplexEngine
from hfdeploy.serve.duplex.lockstep import Sampling

HERE = Path(__file__).resolve().parent
FRAME_MS = 80.0
MIMI = dict(hidden_size=64, num_filters=8, upsampling_ratios=[8, 6, 5, 4], num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=4, intermediate_size=128,
            codebook_size=256, codebook_dim=32, vector_quantization_hidden_dimension=32,
            num_quantizers=8, upsample_groups=64, sliding_window=250)  # fmt: skip


def model() -> Any:
    torch.manual_seed(0)
    cfg = MoshiConfig(
        vocab_size=512, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
        ffn_dim=1024, num_codebooks=8, sliding_window=3000, audio_encoder_config=MIMI,
        depth_decoder_config=dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                                  ffn_dim=512, sliding_window=8, max_position_embeddings=9),
    )  # fmt: skip
    return MoshiForConditionalGeneration(cfg).eval()


def _frames(b: int, n: int) -> list[dict[int, torch.Tensor]]:
    g = torch.Generator().manual_seed(b)
    return [{k: torch.randn(1920, generator=g) * 0.1 for k in range(b)} for _ in range(n)]


def lockstep(m: Any, b: int, frames: int, warmup: int) -> float:
    engine = DuplexEngine(m)
    for k in range(b):
        engine.join(k, Sampling(seed=k))
    audio = _frames(b, warmup + frames)
    with torch.inference_mode():
        for f in range(warmup):
            engine.step(audio[f])
        t = time.perf_counter()
        for f in range(warmup, warmup + frames):
            engine.step(audio[f])
    return (time.perf_counter() - t) / frames * 1000


def one_by_one(m: Any, b: int, frames: int, warmup: int) -> float:
    engines = []
    for k in range(b):
        e = DuplexEngine(m)
        e.join(k, Sampling(seed=k))
        engines.append(e)
    audio = _frames(b, warmup + frames)
    with torch.inference_mode():
        for f in range(warmup):
            for k, e in enumerate(engines):
                e.step({k: audio[f][k]})
        t = time.perf_counter()
        for f in range(warmup, warmup + frames):
            for k, e in enumerate(engines):
                e.step({k: audio[f][k]})
    return (time.perf_counter() - t) / frames * 1000


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sessions", default="1,2,4,8,16,32")
    ap.add_argument("--frames", type=int, default=25)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "duplex_lockstep_cpu.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    m = model()
    rows = []
    for b in (int(x) for x in args.sessions.split(",")):
        together = lockstep(m, b, args.frames, args.warmup)
        apart = one_by_one(m, b, args.frames, args.warmup)
        rows.append({"sessions": b, "lockstep_ms_per_frame": round(together, 2),
                     "one_by_one_ms_per_frame": round(apart, 2),
                     "speedup": round(apart / together, 2),
                     "lockstep_real_time": together < FRAME_MS,
                     "one_by_one_real_time": apart < FRAME_MS})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    held = {k: max((r["sessions"] for r in rows if r[f"{k}_real_time"]), default=0)
            for k in ("lockstep", "one_by_one")}  # fmt: skip
    result = {
        "benchmark": "duplex_lockstep",
        "command": "python benchmarks/duplex_lockstep.py "
        + " ".join(
            f"--{k} {v}"
            for k, v in (
                ("sessions", args.sessions),
                ("frames", args.frames),
                ("threads", args.threads),
            )
        ),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {
            "cpus": torch.get_num_threads(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "model": {
            "parameters": sum(p.numel() for p in m.parameters()),
            "dtype": "float32",
            "codebooks": 8,
            "note": "random weights, Moshi's layout at small widths",
        },
        "runs": rows,
        "held_in_real_time": held,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"held in real time: {held}; wrote {args.out}")


if __name__ == "__main__":
    main()
