"""Output schemas of the MCP tools: the ``--json`` objects of the CLI, key fields typed.

Each model allows extra fields, so the CLI's JSON can grow without breaking the
schema; the fields named here are the contract other tools rely on.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AuditOutput",
    "BenchOutput",
    "EngineList",
    "GenerateOutput",
    "GpuList",
    "InspectOutput",
    "LockOutput",
    "MemoryOutput",
    "PlanOutput",
    "SizeOutput",
    "UpOutput",
]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class InspectOutput(_Open):
    """``hfdeploy inspect --json``."""

    ref: str
    source: str
    location: str
    repo_id: str | None
    commit_sha: str | None
    architectures: list[str]
    model_type: str | None
    task: str
    kind: str
    parameters: dict[str, Any] = Field(description="total, by_dtype, experts")
    formats: dict[str, Any]
    max_context: int | None
    notes: list[str]


class Fit(_Open):
    gpu: str
    count: int
    fits: bool
    headroom_bytes: int
    max_concurrency: int | None
    max_context: int | None
    min_tp: int | None
    reason: str


class SizeOutput(_Open):
    """``hfdeploy size --json``."""

    model: dict[str, Any]
    settings: dict[str, Any]
    parameters: dict[str, Any]
    weights: dict[str, Any]
    kv_cache: dict[str, Any]
    activations: dict[str, Any]
    overhead: dict[str, Any]
    total: dict[str, Any] = Field(description="bytes per GPU rank, bytes_all_ranks")
    notes: list[str]
    fits: list[Fit]


class Gpu(_Open):
    name: str
    aliases: list[str]
    memory_bytes: int
    bandwidth_gbps: float
    bf16_tflops: float | None
    price_per_hour: float | None


class GpuList(_Open):
    """The GPU catalog."""

    gpus: list[Gpu]


class EngineSizing(_Open):
    name: str
    kv_cache: bool
    memory_fraction: float | None
    memory_flag: str | None
    note: str


class EngineDeploy(_Open):
    image: str
    tag: str
    routes: dict[str, Any]
    flags: dict[str, str]


class Engine(_Open):
    name: str
    note: str
    kinds: list[str]
    formats: list[str]
    gpu: bool
    tensor_parallel: bool
    sizing: EngineSizing | None
    deploy: EngineDeploy | None


class EngineList(_Open):
    """The engine catalog: what each engine serves, how it spends GPU memory (``sizing``; None:
    not sized) and how hfdeploy deploys it (``deploy``; None: sizing or audit only)."""

    engines: list[Engine]


class AuditFinding(_Open):
    rule_id: str
    tag: str
    severity: str
    file: str
    line: int
    message: str
    impact: str
    recommendation: str


class AuditOutput(_Open):
    """``hfdeploy audit --format json``."""

    findings: list[AuditFinding]
    files: list[str]
    summary: dict[str, Any]


class BenchOutput(_Open):
    """``hfdeploy bench --json`` (without per-request records)."""

    valid: bool
    summary: dict[str, Any] | None = Field(
        description="ttft_ms, tpot_ms, e2e_ms (p50, p90, p99, mean), request_throughput, "
        "output_token_throughput, completed, errors; duplex: sessions, realtime_sessions, "
        "queued, refused, handshake_ms, first_audio_ms, jitter_ms, slow_frame_episodes, "
        "drift_ms (largest_realtime_sessions at the top level)"
    )
    phases: list[dict[str, Any]]
    formulas: dict[str, str]
    envelope: dict[str, Any]


class PlanOutput(_Open):
    """``hfdeploy plan --json`` (plan.json): the contract keys typed."""

    engine: str
    image: str
    gpu: dict[str, Any] = Field(description="name and count")
    tensor_parallel: int
    envelope: dict[str, Any] = Field(
        description="result, confidence, uncertainty_factors, verification"
    )


class GenerateOutput(_Open):
    """``hfdeploy generate --json``."""

    out: str
    files: list[str]
    plan: PlanOutput


class LockedFile(_Open):
    path: str
    size: int
    sha256: str


class LockOutput(_Open):
    """``hfdeploy fetch --json``: the lock written as model.lock.json."""

    repo_id: str
    revision: str
    commit_sha: str
    endpoint: str
    files: list[LockedFile]
    total_bytes: int


class MemoryOutput(_Open):
    """``hfdeploy profile memory --json``."""

    pid: int
    interval_s: float
    samples: list[dict[str, Any]] = Field(
        description="t (s from the first), rss, gpu, gpu_device (bytes), requests, processes"
    )
    rss: dict[str, Any] = Field(
        description="verdict (stable, growing, leak-suspected, insufficient-data), against, "
        "slope, slope_ci95, unit, rule"
    )
    gpu: dict[str, Any] | None
    process_exited: bool


class UpStep(_Open):
    name: str
    status: str
    seconds: float
    detail: str


class UpOutput(_Open):
    """``hfdeploy up --json`` (report.json)."""

    model: str
    out: str
    ok: bool
    steps: list[UpStep]
    envelope: dict[str, Any] | None = Field(
        description="result, confidence, uncertainty_factors, verification"
    )
