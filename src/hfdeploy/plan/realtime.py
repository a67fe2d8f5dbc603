"""Real time for full-duplex speech models: can a GPU run one 80 ms frame in under 80 ms?

Pure. Every frame, a session runs one step of the temporal transformer (it reads all its
weights and the session's KV ring buffer: memory-bound at the batch sizes served), then
``dep_q`` small depformer steps one after the other (each reads its own weights; at batch
1 they are bound by kernel launches, not bytes), then the Mimi codec encodes the user's
frame and decodes the model's. The prediction:

    step = (temporal weights + batch x KV read) / (bandwidth x efficiency)
         + dep_q x max(depformer step bytes / (bandwidth x efficiency), floor)
         + codec instances x codec time

``efficiency`` is the share of bandwidth a CUDA-graph decode step was measured to reach
(``plan.roofline``). ``floor`` and the codec time are priors from public measurements of a
PersonaPlex port (77.5 ms per frame eager and 30.2 ms with CUDA graphs on an H100): they
are labelled as priors, and a GPU run of ``benchmarks/gpu_duplex_step.py`` replaces them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hfdeploy.catalog.gpus import GPU
from hfdeploy.model.duplex import FRAME_MS, DuplexSpec
from hfdeploy.plan.roofline import decode_efficiency

__all__ = ["DEPFORMER_STEP_FLOOR_MS", "Realtime", "frame_step", "reference_spec"]

#: A depformer step's time when launches bound it (batch 1), by how the step runs. Prior:
#: fitted so the prediction for PersonaPlex on an H100-SXM is the public port's 30.2 ms
#: (CUDA graphs) and 77.5 ms (eager) per frame.
DEPFORMER_STEP_FLOOR_MS = {"cuda-graphs": 1.2, "eager": 4.1}
#: Mimi's encode plus decode of one frame, per codec instance (prior, batch 1).
CODEC_MS = 1.5
#: One token drawn for one conversation by hfdeploy's engine (top-k, softmax, its own seeded
#: noise: a handful of small kernels, bound by launches). Prior, not measured on a GPU yet.
SAMPLE_ROW_MS = 0.05
#: Sessions held in real time keep a margin: a step over this share of the frame is refused
#: (jitter, Python overhead and the network eat the rest).
REALTIME_BUDGET = 0.85


@dataclass(frozen=True, slots=True)
class Realtime:
    """The predicted per-frame step of one replica and whether it holds real time."""

    frame_ms: int
    step_ms: float
    rtf: float
    ok: bool
    batch: int
    gpu: str
    mode: str
    temporal_ms: float
    depformer_ms: float
    codec_ms: float
    efficiency: float
    basis: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _bytes(params: float, element_bytes: float) -> float:
    return params * element_bytes


def _depformer_params(spec: DuplexSpec) -> tuple[float, float]:
    """Parameters of all depformer steps, and of one step (its layers, input and head)."""
    d = spec.depformer_dim
    per_step = (spec.depformer_layers * spec.depformer_layer_parameters() + d * spec.dim
                + spec.audio_vocab * d)  # fmt: skip
    return per_step * spec.dep_q, per_step


def _temporal_params(spec: DuplexSpec) -> float:
    ff = round(4.125 * spec.dim * 2 / 3)
    heads = spec.text_vocab * spec.dim  # the text head, read every frame
    return spec.layers * (4 * spec.dim * spec.dim + 3 * ff * spec.dim) + heads


def frame_step(
    spec: DuplexSpec,
    gpu: GPU,
    *,
    batch: int = 1,
    context_frames: int | None = None,
    codec_instances: int = 1,
    element_bytes: float = 2.0,
    mode: str = "cuda-graphs",
    sampled_per_row: bool = False,
    depth_steps: int | None = None,
) -> Realtime:
    """The predicted frame step of ``batch`` sessions in lockstep on one ``gpu``, with every
    session's ring buffer full (the worst case, reached after ``context_frames`` frames).
    ``sampled_per_row``: each conversation's tokens are drawn on their own (hfdeploy's
    engine: a text token and ``dep_q`` codes per conversation, :data:`SAMPLE_ROW_MS` each).
    ``depth_steps``: the depformer steps run, when not all ``dep_q`` (hfdeploy's engine runs
    PersonaPlex's over the model's codebooks only)."""
    steps = depth_steps or spec.dep_q
    frames = context_frames or spec.context_frames
    eff = decode_efficiency("memory-bound", spec.dim)
    bw = gpu.bandwidth_gbps * 1e9 * eff  # bytes per second reached
    kv = spec.kv_bytes_per_frame(element_bytes) * frames * batch
    temporal = (_bytes(_temporal_params(spec), element_bytes) + kv) / bw * 1000
    _, per_step = _depformer_params(spec)
    floor = DEPFORMER_STEP_FLOOR_MS.get(mode, DEPFORMER_STEP_FLOOR_MS["eager"])
    depformer = steps * max(_bytes(per_step, element_bytes) / bw * 1000, floor)
    codec = codec_instances * CODEC_MS * (1 + 0.1 * (batch - 1))
    sampling = batch * (1 + steps) * SAMPLE_ROW_MS if sampled_per_row else 0.0
    step = temporal + depformer + codec + sampling
    rtf = step / FRAME_MS
    basis = (
        f"temporal transformer: weights + {batch} x KV ring buffer ({frames:,} frames) over "
        f"{gpu.bandwidth_gbps:,.0f} GB/s x {eff} (measured decode efficiency); depformer: "
        f"{steps} steps at max(bytes, {floor} ms launch floor, prior); Mimi: "
        f"{codec_instances} x {CODEC_MS} ms (prior); "
        + (
            f"sampling: {batch} x {1 + steps} tokens at {SAMPLE_ROW_MS} ms (prior); "
            if sampled_per_row
            else ""
        )
        + "real time when the step is at most "
        f"{REALTIME_BUDGET:.0%} of the {FRAME_MS} ms frame"
    )
    return Realtime(
        frame_ms=FRAME_MS, step_ms=round(step, 1), rtf=round(rtf, 3),
        ok=step <= REALTIME_BUDGET * FRAME_MS, batch=batch, gpu=gpu.name, mode=mode,
        temporal_ms=round(temporal, 1), depformer_ms=round(depformer, 1),
        codec_ms=round(codec, 1), efficiency=eff, basis=basis,
    )  # fmt: skip


def reference_spec(variant: str) -> DuplexSpec:
    """The published 7B shape (Moshi: 8 depformer steps; PersonaPlex: 16), for files that name
    a duplex server but not its model (the audit)."""
    from hfdeploy.model.duplex import Component

    dep_q = 16 if variant == "personaplex" else 8
    lm_params = 8_371_408_896 if dep_q == 16 else 7_687_729_152
    return DuplexSpec(
        variant="personaplex" if dep_q == 16 else "moshi", layout="kyutai", layers=32,
        dim=4096, heads=32, kv_heads=32, head_dim=128, codebooks=16, dep_q=dep_q,
        depformer_layers=6, depformer_dim=1024, depformer_heads=16, depformer_context=8,
        context_frames=3000, text_vocab=32000, audio_vocab=2048,
        lm=Component("lm", ("model.safetensors",), lm_params, lm_params * 2, "BF16"),
        codec=Component("codec", (), 96_151_393, 96_151_393 * 4, "F32"),
        shape_source="the published 7B shape",
    )  # fmt: skip
