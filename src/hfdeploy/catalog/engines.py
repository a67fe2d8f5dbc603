"""The engine catalog (package data ``engines.json``), read once and typed.

One entry per serving engine, read by every stage that needs engine facts: sizing (how it
spends GPU memory), plan and render (image, flags, routes, how it starts), the audit (how
to recognise it in anyone's files) and the MCP server. Adding an engine means one entry.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal

from hfdeploy.envelope import Envelope
from hfdeploy.errors import InvalidSettingError

__all__ = [
    "GIB",
    "EngineDeploy",
    "EngineDetect",
    "EngineSizing",
    "EngineSpec",
    "GpuDefaults",
    "Routes",
    "StaticFraction",
    "default_engine",
    "duplex_engine",
    "duplex_servers",
    "engine_catalog",
    "engines_envelope",
    "find_engine",
    "sizing_engines",
]

GIB = 1024**3


@dataclass(frozen=True, slots=True)
class GpuDefaults:
    """An engine's defaults on the GPUs a rule matches (the first matching rule applies)."""

    batched_tokens: int
    #: Matches GPUs with at least this much memory (GiB, as the engine reads it).
    min_memory_gib: float | None = None
    #: Matches GPUs with less memory than this (GiB).
    below_memory_gib: float | None = None
    #: Never matches a GPU whose name holds one of these (lowercase).
    not_named: tuple[str, ...] = ()
    max_seqs: int | None = None
    #: Largest batch captured in a decode CUDA graph (TP below 4; at 4 or more).
    graph_max_bs: int | None = None
    graph_max_bs_tp4: int | None = None

    def matches(self, memory_gib: float, name: str) -> bool:
        low = name.lower()
        return (
            (self.min_memory_gib is None or memory_gib >= self.min_memory_gib)
            and (self.below_memory_gib is None or memory_gib < self.below_memory_gib)
            and not any(n in low for n in self.not_named)
        )


@dataclass(frozen=True, slots=True)
class LocalLayers:
    """What an engine keeps on sliding-window and chunked-attention layers, per request
    (the rules are described in :mod:`hfdeploy.sizing.kv`)."""

    sliding: Literal["window", "in_flight", "ubatch", "pool_ratio", "full"] = "window"
    chunked: Literal["window", "in_flight", "ubatch", "pool_ratio", "full"] = "window"
    #: vLLM: batches in flight at once (async scheduling: pipeline stages + 1).
    in_flight_batches_over_pp: int = 0
    ubatch: int = 0
    pool_ratio: float = 0.0
    pool_slack: int = 0
    #: The pool applies to these architectures only; others hold the whole context.
    pool_archs: tuple[str, ...] = ()
    evidence: str = ""


@dataclass(frozen=True, slots=True)
class StaticFraction:
    """An engine that computes its static memory fraction from the GPU (SGLang): memory held
    back = base + per_token x max(batched tokens, min_tokens) + per_8_ranks x TP x PP / 8 +
    per_graph_bs x graph max batch, at least ``floor_mib`` on GPUs over ``floor_above_gib``."""

    base_mib: float
    per_token_mib: float
    min_tokens: int
    per_8_ranks_mib: float
    per_graph_bs_mib: float
    floor_mib: float
    floor_above_gib: float

    def fraction(
        self, memory_mib: float, *, batched_tokens: int, tp: int, pp: int, graph_max_bs: int
    ) -> float:
        reserved = (
            self.base_mib
            + self.per_token_mib * max(batched_tokens, self.min_tokens)
            + self.per_8_ranks_mib * tp * pp / 8
            + self.per_graph_bs_mib * graph_max_bs
        )
        if memory_mib > self.floor_above_gib * 1024:
            reserved = max(reserved, self.floor_mib)
        return round((memory_mib - reserved) / memory_mib, 3)


@dataclass(frozen=True, slots=True)
class EngineSizing:
    """How one engine spends GPU memory."""

    #: The engine whose memory model this is (Triton's vLLM backend sizes as ``vllm``).
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
    #: Splits layers over pipeline stages (nodes).
    pipeline_parallel: bool
    #: Float32 logit buffers the sampler holds per batch row.
    logit_copies: int
    #: Logs the KV cache it allocated at start-up (what to read to check an estimate).
    kv_cache_log: bool
    note: str
    #: Measured activation peaks (GiB at 8,192 batched tokens) by model family, if any.
    activation_priors_gib: dict[str, float] = field(default_factory=dict)
    #: Defaults that depend on the GPU, first match wins (``batched_tokens`` and ``max_seqs``
    #: above are for no GPU, or none matching).
    by_gpu: tuple[GpuDefaults, ...] = ()
    #: The most sequences the engine runs at once by default, and its flag.
    max_seqs: int | None = None
    max_seqs_flag: str | None = None
    #: Logit rows the engine's memory profile samples: ``max_seqs`` (vLLM: min(batched
    #: tokens, max-num-seqs)) or ``concurrency`` (the requests held).
    sampler_rows: Literal["max_seqs", "concurrency"] = "concurrency"
    #: What the memory fraction covers: ``all`` but the CUDA context (vLLM), or the weights
    #: and the KV pool only (SGLang: activations and graphs live in the rest).
    fraction_covers: Literal["all", "weights_and_kv"] = "all"
    #: The fraction computed from the GPU (SGLang) when ``memory_fraction`` is None.
    static_fraction: StaticFraction | None = None
    #: How the batched-token default is found: ``fixed`` (by_gpu) or ``tgi`` (TGI's
    #: compute-optimal prefill from its card table, ``card_f16_tflops`` by catalog GPU).
    prefill_rule: Literal["fixed", "tgi"] = "fixed"
    card_f16_tflops: dict[str, float] = field(default_factory=dict)
    #: Where these defaults come from (the engine's released source).
    evidence: str = ""
    #: What sliding-window and chunked-attention layers hold.
    local_layers: LocalLayers = field(default_factory=LocalLayers)
    #: Full-duplex servers: Mimi codec instances loaded (fp32 each), and the conversations
    #: one process holds at once (None: not session-bound).
    codec_instances: int = 1
    sessions_per_process: int | None = None
    #: Full-duplex speech served by stepping every conversation together each frame
    #: (hfdeploy serve): the conversations per process are planned from the frame step.
    lockstep_sessions: bool = False

    @property
    def duplex(self) -> bool:
        """Serves full-duplex speech models (one conversation per process, or in lockstep)."""
        return self.sessions_per_process is not None or self.lockstep_sessions

    def defaults_on(self, name: str | None, memory_gib: float | None) -> GpuDefaults | None:
        """The rule for a GPU (None: no GPU, or no rule matches)."""
        if name is None or memory_gib is None:
            return None
        return next((r for r in self.by_gpu if r.matches(memory_gib, name)), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Routes:
    """Where an engine listens and what it answers on."""

    port: int
    health: str
    ready: str
    live: str
    metrics: str
    metrics_prefix: str
    #: The per-pod queue length an autoscaler watches.
    queue_metric: str
    #: Seconds a health request may take: probes and health checks wait this long for it.
    probe_timeout_s: int = 5
    #: Routes that never answer faster than this many seconds (SGLang's /health generates).
    slow_routes: dict[str, float] = field(default_factory=dict)
    #: The port of the metrics route when it is not the serving port (Triton: 8002).
    metrics_port: int | None = None
    #: The port the image listens on when no flag sets one, where it is not ``port``
    #: (TGI and TEI images set PORT=80; hfdeploy passes ``--port port``).
    default_port: int | None = None
    #: The environment variable the engine reads its port from, when it reads one.
    port_env: str | None = None
    #: The WebSocket route a conversation holds open (full-duplex servers); "" for none.
    session: str = ""
    #: The session route of a server that serves full-duplex models among other tasks
    #: (hfdeploy): ``session`` for a plan of such a model.
    duplex_session: str = ""

    @property
    def image_port(self) -> int:
        """The port the engine listens on when nothing in the deployment sets one."""
        return self.port if self.default_port is None else self.default_port

    def to_dict(self) -> dict[str, Any]:
        """``plan.json``'s ``routes``: the serving port and the four routes."""
        out: dict[str, Any] = {"port": self.port, "health": self.health, "ready": self.ready,
                               "live": self.live, "metrics": self.metrics}  # fmt: skip
        if self.session:
            out["session"] = self.session
        return out


@dataclass(frozen=True, slots=True)
class EngineDeploy:
    """How hfdeploy deploys an engine: its image, how it starts, what it needs."""

    image: str
    tag: str
    tag_source: str
    routes: Routes
    flags: dict[str, str]
    env: dict[str, str]
    image_gb: float
    warmup_s: float
    #: The least start-up budget a probe should allow (shared by the planner and the audit).
    min_startup_s: float
    tag_by_arch: dict[str, str] = field(default_factory=dict)
    #: What the image needs of the node (a driver), stated in plans.
    requires: str = ""
    #: The command that starts the server when the image's ENTRYPOINT does not (SGLang).
    entrypoint: tuple[str, ...] = ()
    #: The command the image's own ENTRYPOINT runs, which a file's arguments are appended to
    #: (``vllm serve``; ``hfdeploy``); empty when the arguments are the command (SGLang, Triton).
    image_entrypoint: tuple[str, ...] = ()
    #: The model path is the first argument (``vllm serve MODEL``), not a flag's value.
    model_positional: bool = False
    #: The value its KV-cache-dtype flag (``flags["kv_dtype"]``) takes for fp8 ("": none).
    kv_fp8: str = ""
    #: The non-root uid the image is documented to run as (None: the image's default).
    run_as_user: int | None = None
    #: The uid the image runs as when nothing sets one (0: root; None: not recorded).
    image_user: int | None = None
    #: Where the engine writes caches (Hub, compile): a volume is mounted there, writable by
    #: the user it runs as; the environment points the caches into it.
    cache_dir: str = "/cache"
    #: Where each fact the files rely on comes from (entrypoint, user, cache, health, port...).
    evidence: dict[str, str] = field(default_factory=dict)
    #: An engine without an image of its own: what the generated Dockerfile builds on
    #: (``base``), the Python and system packages it installs (``python``, ``apt``), the
    #: server (``install``, pinned) and the torch the server's package pins (``torch``).
    build: dict[str, str] = field(default_factory=dict)

    def image_ref(self, compute_capability: str | None = None) -> str:
        """``image:tag``, with the GPU-architecture tag when the engine has one."""
        tag = self.tag_by_arch.get(compute_capability or "", self.tag)
        return f"{self.image}:{tag}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["routes"] = asdict(self.routes)
        out["entrypoint"] = list(self.entrypoint)
        out["image_entrypoint"] = list(self.image_entrypoint)
        return out


@dataclass(frozen=True, slots=True)
class EngineDetect:
    """How the audit recognises an engine in deployment files."""

    #: Fragments of image names whose default entrypoint runs the engine.
    images: tuple[str, ...] = ()
    #: Command words that start it (``vllm serve``; a module run with ``python -m``).
    commands: tuple[tuple[str, ...], ...] = ()
    #: Environment variables it reads as flags (TGI's ``MODEL_ID`` is ``--model-id``); a flag
    #: on the command line wins over its variable.
    env: tuple[tuple[str, str], ...] = ()
    #: With no shard count set, it shards over every GPU the container is given (TGI).
    shards_from_gpus: bool = False
    evidence: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"images": list(self.images), "commands": [list(c) for c in self.commands],
                "env": dict(self.env), "shards_from_gpus": self.shards_from_gpus,
                "evidence": self.evidence}  # fmt: skip


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """One serving engine: what it serves, and the facts each stage needs of it."""

    name: str
    note: str
    kinds: tuple[str, ...]
    formats: tuple[str, ...]
    gpu: bool
    tensor_parallel: bool
    #: In maintenance mode upstream: chosen only when asked.
    maintenance: bool
    #: On-the-fly weight quantizations it can apply to a float checkpoint (``fp8``).
    quantizations: tuple[str, ...]
    #: None: hfdeploy does not size it (the audit recognises it only).
    sizing: EngineSizing | None
    #: None: hfdeploy does not deploy it (sizing or audit only).
    deploy: EngineDeploy | None
    detect: EngineDetect
    model_types: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "note": self.note, "kinds": list(self.kinds),
            "tasks": list(self.tasks), "model_types": list(self.model_types),
            "formats": list(self.formats), "gpu": self.gpu,
            "tensor_parallel": self.tensor_parallel, "maintenance": self.maintenance,
            "quantizations": list(self.quantizations),
            "sizing": self.sizing.to_dict() if self.sizing else None,
            "deploy": self.deploy.to_dict() if self.deploy else None,
            "detect": self.detect.to_dict(),
        }  # fmt: skip


def _sizing(name: str, raw: dict[str, Any]) -> EngineSizing:
    # GiB in the file, bytes here: int(0.15 GiB), as the estimate adds them.
    sizes = {"cuda_graphs_gib": "cuda_graphs_bytes", "non_torch_tp1_gib": "non_torch_tp1",
             "non_torch_tp_many_gib": "non_torch_tp_many"}  # fmt: skip
    values: dict[str, Any] = {
        sizes.get(k, k): int(v * GIB) if k in sizes else v for k, v in raw.items()
    }
    values["by_gpu"] = tuple(
        GpuDefaults(**(r | {"not_named": tuple(r.get("not_named", ()))}))
        for r in raw.get("by_gpu", ())
    )
    if raw.get("static_fraction"):
        values["static_fraction"] = StaticFraction(**raw["static_fraction"])
    local = dict(raw.get("local_layers") or {})
    local["pool_archs"] = tuple(local.get("pool_archs", ()))
    values["local_layers"] = LocalLayers(**local)
    return EngineSizing(name=name, **values)


def _deploy(raw: dict[str, Any]) -> EngineDeploy:
    commands = {k: tuple(raw.get(k, ())) for k in ("entrypoint", "image_entrypoint")}
    return EngineDeploy(**(raw | {"routes": Routes(**raw["routes"])} | commands))


@cache
def engine_catalog() -> dict[str, EngineSpec]:
    """Every engine, by name, in the catalog's order."""
    text = resources.files("hfdeploy.catalog").joinpath("engines.json").read_text("utf-8")
    raw = json.loads(text)["engines"]
    sizing = {n: _sizing(n, dict(e["sizing"])) for n, e in raw.items()
              if isinstance(e.get("sizing"), dict)}  # fmt: skip
    out = {}
    for name, e in raw.items():
        s = e.get("sizing")
        detect = e.get("detect", {})
        out[name] = EngineSpec(
            name=name, note=e["note"], kinds=tuple(e["kinds"]), formats=tuple(e["formats"]),
            gpu=e["gpu"], tensor_parallel=e["tensor_parallel"], maintenance=e["maintenance"],
            quantizations=tuple(e.get("quantizations", ())),
            sizing=sizing[s] if isinstance(s, str) else sizing.get(name),
            deploy=_deploy(e["deploy"]) if "deploy" in e else None,
            detect=EngineDetect(tuple(detect.get("images", ())),
                                tuple(tuple(c) for c in detect.get("commands", ())),
                                tuple(detect.get("env", {}).items()),
                                bool(detect.get("shards_from_gpus")), detect.get("evidence", "")),
            model_types=tuple(e.get("model_types", ())), tasks=tuple(e.get("tasks", ())),
        )  # fmt: skip
    return out


def sizing_engines() -> dict[str, EngineSizing]:
    """The engines ``size`` knows, by the name a user gives, with the memory model each runs."""
    return {n: e.sizing for n, e in engine_catalog().items() if e.sizing is not None}


def find_engine(name: str, *, deployable: bool = False) -> EngineSpec:
    """An engine by name, case-insensitively; ``deployable``: one hfdeploy can deploy.

    Raises:
        InvalidSettingError: listing the catalog's engines (the deployable ones when asked).
    """
    catalog = engine_catalog()
    names = [n for n, e in catalog.items() if e.deploy is not None or not deployable]
    key = name.strip().lower().replace("llamacpp", "llama.cpp")
    if key not in names:
        why = (
            "hfdeploy sizes or recognises it but does not deploy it"
            if key in catalog
            else ("not in the engine catalog")
        )
        raise InvalidSettingError("engine", name, why, hint="Use one of: " + ", ".join(names))
    return catalog[key]


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


def engines_envelope() -> Envelope:
    """The engine catalog as an answer."""
    catalog = engine_catalog()
    return Envelope(
        f"{len(catalog)} engines: {', '.join(catalog)}",
        "medium",
        "memory behaviour from each engine's documented flags and defaults; overheads are priors",
        tuple(f"{e.name}: {e.note}" for e in catalog.values()),
        ("hfdeploy size MODEL --engine NAME --json", "the engine's own start-up log"),
    )


def duplex_servers(variant: str, layout: str) -> tuple[str, ...]:
    """The servers that load a full-duplex checkpoint, the preferred first: hfdeploy's
    (it steps many conversations a frame) for Moshi in either layout and for PersonaPlex,
    then the reference server that loads Kyutai's files (Kyutai's for Moshi, NVIDIA's for
    PersonaPlex)."""
    if variant == "personaplex":
        return ("hfdeploy", "personaplex")
    return ("hfdeploy", "moshi") if layout == "kyutai" else ("hfdeploy",)


def duplex_engine(variant: str, layout: str) -> str:
    """The preferred server for a full-duplex checkpoint (:func:`duplex_servers`)."""
    return duplex_servers(variant, layout)[0]
