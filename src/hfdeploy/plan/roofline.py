"""Decode throughput (the roofline ceiling and the expected speed) and the replicas it implies.

Pure. A decode step reads the weights on this rank and half of each sequence's KV cache, or
does the FLOPs, whichever takes longer; the expected speed is that ceiling at the efficiency
a real decode step was measured at. Replicas come from the largest batch that meets the SLO.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from hfdeploy.catalog.gpus import GPU
from hfdeploy.model.profile import ModelProfile
from hfdeploy.plan.flags import serving_batch
from hfdeploy.sizing.report import SizeReport

__all__ = [
    "BatchPoint",
    "Capacity",
    "Roofline",
    "Scaling",
    "SloCheck",
    "decode_efficiency",
    "roofline",
    "scaling",
]

Regime = Literal["memory-bound", "compute-bound"]

_UTILIZATION = 0.7  # plan replicas to run at 70% of estimated capacity
# Fraction of the roofline a decode step reaches, by model width: a minimal CUDA-graph decode
# on an H200 (benchmarks/results/gpu_roofline.json) took at worst 1.69x the memory-bound and
# 2.34x the compute-bound step for an 8B Llama (hidden 4096), 1.30x and 1.62x for 70B-shaped
# layers (hidden 8192). Interpolated on log2(hidden), held at the ends.
_DECODE_EFFICIENCY = {"memory-bound": (0.59, 0.77), "compute-bound": (0.43, 0.62)}
_EFFICIENCY_BASIS = (
    "measured: a CUDA-graph decode step on an H200 reached {}-{} of the memory-bound and "
    "{}-{} of the compute-bound roofline, 8B to 70B-shaped layers (benchmarks/gpu_roofline.py)"
).format(*_DECODE_EFFICIENCY["memory-bound"], *_DECODE_EFFICIENCY["compute-bound"])


def decode_efficiency(regime: str, hidden: int) -> float:
    """The share of the roofline a decode step reaches, for a model of width ``hidden``."""
    narrow, wide = _DECODE_EFFICIENCY[regime]
    t = min(1.0, max(0.0, math.log2(max(hidden, 1) / 4096)))  # 0 at 4096, 1 at 8192
    return round(narrow + (wide - narrow) * t, 2)


@dataclass(frozen=True, slots=True)
class BatchPoint:
    """One batch size under load, at the expected speed."""

    batch: int
    expected_step_ms: float
    expected_tokens_per_s: float
    regime: Regime

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "expected_step_ms": self.expected_step_ms,
            "expected_tokens_per_s": self.expected_tokens_per_s,
            "regime": self.regime,
        }


@dataclass(frozen=True, slots=True)
class Roofline:
    """Decode speed of one replica: ceilings, and the expected speed at each batch size."""

    regime: Regime
    # Ceilings: no engine decodes faster than the bytes (or FLOPs) allow.
    single_stream_tokens_per_s: float
    decode_tokens_per_s_per_replica: float
    decode_step_ms: float
    # Expected: the ceiling at the efficiency a real decode step was measured at.
    efficiency: float
    expected_decode_tokens_per_s_per_replica: float
    expected_decode_step_ms: float
    efficiency_basis: str
    at_concurrency: int
    max_batch: int
    #: Up to the engine's max-num-seqs: what replicas and latency are planned from.
    batch_curve: tuple[BatchPoint, ...]
    output_tokens: int
    basis: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "applies": True,
            "regime": self.regime,
            "single_stream_tokens_per_s": self.single_stream_tokens_per_s,
            "decode_tokens_per_s_per_replica": self.decode_tokens_per_s_per_replica,
            "decode_step_ms": self.decode_step_ms,
            "efficiency": self.efficiency,
            "expected_decode_tokens_per_s_per_replica": (
                self.expected_decode_tokens_per_s_per_replica
            ),
            "expected_decode_step_ms": self.expected_decode_step_ms,
            "efficiency_basis": self.efficiency_basis,
            "at_concurrency": self.at_concurrency,
            "max_batch": self.max_batch,
            "batch_curve": [b.to_dict() for b in self.batch_curve],
            "output_tokens": self.output_tokens,
            "basis": self.basis,
        }


def roofline(
    p: ModelProfile, report: SizeReport, gpu: GPU | None, tp: int, output_tokens: int
) -> Roofline | None:
    """The decode roofline of one replica; None without a GPU or for a non-generator."""
    e = report.estimate
    if gpu is None or p.task.kind != "generator":
        return None
    s = e.settings
    bw = gpu.bandwidth_gbps * 1e9
    peak = gpu.fp8_tflops if s.quantization == "fp8" else gpu.bf16_tflops or gpu.fp16_tflops
    flops = (peak or 0) * 1e12
    weights_rank = e.weights.bytes
    active: float = p.parameters
    if p.arch.moe:
        active = p.parameters - p.weights.expert_parameters * (
            1 - p.arch.moe.active / p.arch.moe.num_experts
        )

    def step_s(batch: int) -> tuple[float, Regime]:
        """One decode step of ``batch`` sequences: the bytes or the FLOPs, whichever is longer."""
        # on average half the context is filled
        t_mem = (weights_rank + e.kv_bytes_per_sequence_per_rank * batch / 2) / bw
        t_cmp = 2 * active / tp * batch / flops if flops else 0.0
        return max(t_mem, t_cmp), "memory-bound" if t_mem >= t_cmp else "compute-bound"

    conc = s.concurrency
    step, regime = step_s(conc)
    hidden = p.arch.hidden_size
    expected_step = step / decode_efficiency(regime, hidden)
    # Under load the engine batches up to its max-num-seqs: the step at each batch size up
    # to that, at the expected efficiency, is what replicas and latency are planned from.
    top = serving_batch(report)
    curve = []
    for b in sorted({min(2**i, top) for i in range(top.bit_length() + 1)}):
        t, r = step_s(b)
        t /= decode_efficiency(r, hidden)
        curve.append(BatchPoint(b, round(t * 1000, 2), round(b / t, 1), r))
    return Roofline(
        regime=regime,
        single_stream_tokens_per_s=round(bw / weights_rank, 1),
        decode_tokens_per_s_per_replica=round(conc / step, 1),
        decode_step_ms=round(step * 1000, 2),
        efficiency=decode_efficiency(regime, hidden),
        expected_decode_tokens_per_s_per_replica=round(conc / expected_step, 1),
        expected_decode_step_ms=round(expected_step * 1000, 2),
        efficiency_basis=_EFFICIENCY_BASIS,
        at_concurrency=conc,
        max_batch=top,
        batch_curve=tuple(curve),
        output_tokens=output_tokens,
        basis=f"{gpu.name}: {gpu.bandwidth_gbps:g} GB/s, {flops / 1e12:g} TFLOP/s dense; "
        f"weights {weights_rank / 2**30:.1f} GiB per rank + KV at half context",
    )


@dataclass(frozen=True, slots=True)
class Capacity:
    """What one replica serves under load, at the expected speed."""

    rps_per_replica: float
    batch_per_replica: int
    e2e_ms_estimate: int


@dataclass(frozen=True, slots=True)
class SloCheck:
    p95_ms: float
    met_by_estimate: bool


@dataclass(frozen=True, slots=True)
class Scaling:
    """Replicas for the traffic, and why."""

    traffic_rps: float | None
    replicas: int
    basis: str
    direction: str
    #: None: the capacity of this task is not estimated (measure it).
    capacity: Capacity | None = None
    slo: SloCheck | None = None
    #: Session-bound servers (full-duplex): the concurrent sessions planned for, and how
    #: many one replica holds.
    sessions: int | None = None
    sessions_per_replica: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "traffic_rps": self.traffic_rps, "replicas": self.replicas, "basis": self.basis
        }  # fmt: skip
        if self.sessions is not None:
            out |= {"sessions": self.sessions, "sessions_per_replica": self.sessions_per_replica}
        if (c := self.capacity) is not None:
            out |= {"capacity_rps_per_replica": c.rps_per_replica,
                    "batch_per_replica": c.batch_per_replica,
                    "e2e_ms_estimate": c.e2e_ms_estimate}  # fmt: skip
        if self.slo is not None:
            out |= {"slo_p95_ms": self.slo.p95_ms, "slo_met_by_estimate": self.slo.met_by_estimate}
        out["direction"] = self.direction
        return out


def scaling(roof: Roofline | None, traffic: float | None, slo_ms: float | None, tp: int) -> Scaling:
    """Replicas for ``traffic`` req/s at the largest batch that meets ``slo_ms``."""
    direction = (
        f"vertical to TP {tp} for memory, horizontal (replicas) for throughput"
        if tp > 1
        else "horizontal: add replicas for throughput"
    )
    if roof is None:
        basis = (
            "capacity unknown for this task: measure one replica with `hfdeploy bench`"
            if traffic
            else "one replica"
        )
        return Scaling(traffic, 1, basis, direction)
    # Sized on the expected speed (not the ceiling: replicas planned on the roofline alone
    # come up 1.1-2.3x short, benchmarks/results/gpu_roofline.json), at the largest batch
    # whose end-to-end time meets the SLO (the engine's max-num-seqs when there is none):
    # continuous batching serves that many sequences at once.
    n_out = roof.output_tokens
    curve = roof.batch_curve
    meets = [c for c in curve if slo_ms is None or c.expected_step_ms * n_out <= slo_ms]
    # No batch meets the SLO: plan for throughput and say what the latency floor is.
    at = meets[-1] if meets else curve[-1]
    capacity = at.expected_tokens_per_s / n_out
    replicas, basis = 1, "one replica"
    if traffic:
        replicas = max(1, math.ceil(traffic / (capacity * _UTILIZATION)))
        basis = (
            f"{traffic:g} req/s / ({capacity:.2f} req/s per replica at {at.batch} "
            f"sequences x {_UTILIZATION:g})"
        )
    slo = None
    if slo_ms is not None:
        slo = SloCheck(slo_ms, bool(meets))
        if not meets:
            basis += (
                f"; no batch meets the {slo_ms:g} ms SLO: one sequence alone takes "
                f"{curve[0].expected_step_ms * n_out:,.0f} ms for {n_out} tokens "
                "(a faster GPU, more TP, or fewer output tokens)"
            )
    cap = Capacity(round(capacity, 2), at.batch, round(at.expected_step_ms * n_out))
    return Scaling(traffic, replicas, basis, direction, cap, slo)
