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
    "Routes",
    "default_engine",
    "engine_catalog",
    "engines_envelope",
    "find_engine",
    "sizing_engines",
]

GIB = 1024**3


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

    @property
    def image_port(self) -> int:
        """The port the engine listens on when nothing in the deployment sets one."""
        return self.port if self.default_port is None else self.default_port

    def to_dict(self) -> dict[str, Any]:
        """``plan.json``'s ``routes``: the serving port and the four routes."""
        return {"port": self.port, "health": self.health, "ready": self.ready,
                "live": self.live, "metrics": self.metrics}  # fmt: skip


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
    #: The non-root uid the image is documented to run as (None: the image's default).
    run_as_user: int | None = None
    #: The uid the image runs as when nothing sets one (0: root; None: not recorded).
    image_user: int | None = None
    #: Where the engine writes caches (Hub, compile): a volume is mounted there, writable by
    #: the user it runs as; the environment points the caches into it.
    cache_dir: str = "/cache"
    #: Where each fact the files rely on comes from (entrypoint, user, cache, health, port...).
    evidence: dict[str, str] = field(default_factory=dict)

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

    def to_dict(self) -> dict[str, Any]:
        return {"images": list(self.images), "commands": [list(c) for c in self.commands]}


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
                                tuple(tuple(c) for c in detect.get("commands", ()))),
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
