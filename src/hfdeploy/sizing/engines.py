"""Per-engine memory behaviour that sizing needs: priors, defaults and cache layout.

Pure data. Sources: reference/sizing.md §5-7 and reference/engines.md. Every prior is
named as such in the estimate it feeds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from hfdeploy.envelope import Envelope

__all__ = ["ENGINES", "EngineName", "EngineSizing", "default_engine"]

EngineName = Literal["vllm", "sglang", "tgi", "tei", "llama.cpp", "transformers", "hfdeploy"]
GIB = 1024**3


@dataclass(frozen=True, slots=True)
class EngineSizing:
    """How one engine spends GPU memory."""

    name: str
    #: Keeps a KV cache for generation (TEI does not).
    kv_cache: bool
    #: Paged KV cache block size in tokens (1: token granularity; 0: contiguous, no pages).
    block_size: int
    #: Fraction of total GPU memory the engine budgets (None: all of it, no flag).
    memory_fraction: float | None
    memory_flag: str | None
    #: Batched-token budget default: bounds the activation peak.
    batched_tokens: int | None
    batched_tokens_flag: str | None
    #: Stores MLA's compressed latent (False: expanded per-head K and V).
    mla_latent: bool
    cuda_graphs_bytes: int
    non_torch_tp1: int
    non_torch_tp_many: int
    #: Serving dtype rule for ``--dtype auto``: "vllm" (F32→F16), "checkpoint", "f16".
    auto_dtype: Literal["vllm", "checkpoint", "f16"]
    tensor_parallel: bool
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ENGINES: dict[str, EngineSizing] = {
    "vllm": EngineSizing(
        "vllm", True, 16, 0.9, "--gpu-memory-utilization", 8192, "--max-num-batched-tokens",
        True, int(0.5 * GIB), int(0.15 * GIB), int(0.6 * GIB), "vllm", True,
        "vLLM V1: fraction of total memory for weights + activations + KV + graphs",
    ),
    "sglang": EngineSizing(
        "sglang", True, 1, 0.9, "--mem-fraction-static", 8192, "--chunked-prefill-size",
        True, int(0.5 * GIB), int(0.15 * GIB), int(0.6 * GIB), "vllm", True,
        "SGLang: static fraction for weights + KV pool; token-granular pages",
    ),
    "tgi": EngineSizing(
        "tgi", True, 16, 1.0, "CUDA_MEMORY_FRACTION", 4096, "MAX_BATCH_PREFILL_TOKENS",
        True, int(0.5 * GIB), int(0.15 * GIB), int(0.6 * GIB), "vllm", True,
        "TGI (maintenance mode upstream): KV budget found at warmup",
    ),
    "tei": EngineSizing(
        "tei", False, 0, None, None, 16384, "--max-batch-tokens",
        True, 0, int(0.1 * GIB), int(0.1 * GIB), "f16", False,
        "TEI: no KV cache; activation bounded by MAX_BATCH_TOKENS; fp16 on GPU",
    ),
    "llama.cpp": EngineSizing(
        "llama.cpp", True, 256, None, None, 2048, "--batch-size",
        True, 0, int(0.15 * GIB), int(0.15 * GIB), "checkpoint", False,
        "llama.cpp server: GGUF weights; KV for ctx-size across parallel slots",
    ),
    "transformers": EngineSizing(
        "transformers", True, 0, None, None, None, None,
        False, 0, int(0.1 * GIB), int(0.1 * GIB), "checkpoint", False,
        "plain transformers: contiguous KV cache, expanded MLA",
    ),
    "hfdeploy": EngineSizing(
        "hfdeploy", True, 0, None, None, 16384, "--max-batch-tokens",
        False, 0, int(0.1 * GIB), int(0.1 * GIB), "checkpoint", False,
        "hfdeploy serve: transformers runner with a batch-token budget",
    ),
}  # fmt: skip

#: CUDA context (driver, cuBLAS/cuDNN workspaces) outside any engine budget: 619 MiB measured
#: on an H200 with torch 2.11 / CUDA 13 (benchmarks/results/gpu_memory.json), rounded up.
CUDA_CONTEXT_BYTES = int(0.625 * GIB)

#: llm-d's fitted vLLM activation peaks on H100 at default batching (sizing.md §6), GiB.
VLLM_ACTIVATION_PRIORS_GIB = {
    "llama": 4.8, "qwen2": 5.6, "qwen3": 5.6, "moe": 8.0, "multimodal": 2.5, "dense": 5.5,
}  # fmt: skip


def engines_envelope() -> Envelope:
    """The engine catalog as an answer."""
    return Envelope(
        f"{len(ENGINES)} engines: {', '.join(ENGINES)}",
        "medium",
        "memory behaviour from each engine's documented flags and defaults; overheads are priors",
        tuple(f"{e.name}: {e.note}" for e in ENGINES.values()),
        ("hfdeploy size MODEL --engine NAME --json", "the engine's own start-up log"),
    )


def default_engine(kind: str, *, gguf: bool = False) -> str:
    """The engine ``size`` assumes when none is named: by the model's serving kind."""
    if gguf:
        return "llama.cpp"
    match kind:
        case "generator":
            return "vllm"
        case "embedder" | "reranker":
            return "tei"
        case _:
            return "hfdeploy"
