"""Which engine serves a model: the one asked for (if it can), else by format, kind and task.

Pure. Every choice carries its reasons, and every engine passed over says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from hfdeploy.catalog.engines import EngineSpec, duplex_servers, engine_catalog, find_engine
from hfdeploy.errors import InvalidSettingError
from hfdeploy.model.profile import ModelProfile

__all__ = ["EngineChoice", "choose_engine"]


@dataclass(frozen=True, slots=True)
class EngineChoice:
    spec: EngineSpec
    reasons: list[str]
    #: (engine, why not) for each engine passed over.
    rejected: list[tuple[str, str]]


def choose_engine(p: ModelProfile, asked: str | None, *, cpu: bool) -> EngineChoice:
    """The engine for ``p``: ``asked`` when it serves the model, else the catalog's best.

    Raises:
        InvalidSettingError: the asked engine cannot serve the model, a generator too large
            for CPU, or a task no engine serves.
    """
    if asked:
        return _asked(p, asked)
    catalog = engine_catalog()
    kind, task = p.task.kind, p.task.task
    if p.weights_source.startswith("gguf"):
        not_gguf = [(n, "does not load GGUF files") for n in ("vllm", "sglang", "tgi", "tei")]
        reasons = ["the weights are GGUF: llama.cpp serves them natively"]
        return EngineChoice(catalog["llama.cpp"], reasons, not_gguf)
    if kind == "generator":
        return _generator(p, cpu=cpu)
    if kind == "full-duplex-speech":
        return _duplex(p, cpu=cpu)
    rejected: list[tuple[str, str]] = []
    tei = catalog["tei"]
    if kind in ("embedder", "reranker", "classifier") and task in tei.tasks:
        if p.model_type in tei.model_types:
            rejected.append(("hfdeploy", "TEI is faster on GPU for supported architectures"))
            reasons = [f"{task}: TEI supports model_type {p.model_type!r}"]
            if p.formats.pickle and not p.formats.safetensors:
                reasons.append("note: TEI needs safetensors; convert the pickle weights first")
            return EngineChoice(tei, reasons, rejected)
        rejected.append(("tei", f"does not support model_type {p.model_type!r}"))
    if task in catalog["hfdeploy"].tasks:
        rejected.append(("vllm", "built for generation; pooling models only in part"))
        reasons = [f"{task}: hfdeploy serve runs it with batching and warmup"]
        return EngineChoice(catalog["hfdeploy"], reasons, rejected)
    raise InvalidSettingError(
        "task",
        task,
        "no engine in the catalog serves it",
        hint="Serve it with a custom container; `hfdeploy audit` can check its deployment files.",
    )


def _asked(p: ModelProfile, asked: str) -> EngineChoice:
    e = find_engine(asked, deployable=True)
    kind, task = p.task.kind, p.task.task
    if p.weights_source.startswith("gguf") and "gguf" not in e.formats:
        raise InvalidSettingError("engine", asked, "it does not load GGUF files; use llama.cpp")
    if not p.weights_source.startswith("gguf") and "safetensors" not in e.formats:
        raise InvalidSettingError(
            "engine", asked, f"it loads {', '.join(e.formats)} files only, and this model has none",
            hint="Convert the model to GGUF for it, or let `hfdeploy plan` choose (no --engine).",
        )  # fmt: skip
    if kind not in e.kinds or (e.tasks and task not in e.tasks):
        able = [n for n, c in engine_catalog().items() if kind in c.kinds and c.deploy]
        raise InvalidSettingError(
            "engine",
            asked,
            f"it does not serve {task} ({kind}) models",
            hint="Let `hfdeploy plan` choose (no --engine), or pick one of: " + ", ".join(able),
        )
    if p.duplex is not None and e.name not in (servers := _duplex_servers(p)):
        raise InvalidSettingError(
            "engine", asked,
            f"a {p.duplex.variant} checkpoint in the {p.duplex.layout} layout "
            f"({p.duplex.dep_q} depformer steps) runs on {' or '.join(servers)}: "
            f"{e.name}'s server loads " + _loads(e.name),
            hint=f"Use --engine {servers[0]}, or let `hfdeploy plan` choose.",
        )  # fmt: skip
    return EngineChoice(e, [f"asked for with --engine {e.name}"], [])


def _duplex_servers(p: ModelProfile) -> tuple[str, ...]:
    assert p.duplex is not None
    return duplex_servers(p.duplex.variant, p.duplex.layout)


def _loads(engine: str) -> str:
    """What each full-duplex server loads (why it cannot load another checkpoint)."""
    return {
        "hfdeploy": "Moshi in either layout (Transformers' MoshiForConditionalGeneration, or "
        "Kyutai's LM, Mimi and SentencePiece files) and PersonaPlex",
        "moshi": "Kyutai's layout of Moshi (the LM, Mimi and SentencePiece files; 8 depformer "
        "steps)",
        "personaplex": "Kyutai's layout with PersonaPlex's 16 depformer steps and prompts",
    }.get(engine, "no full-duplex model (a conversation per WebSocket)")


def _duplex(p: ModelProfile, *, cpu: bool) -> EngineChoice:
    """Full-duplex speech: the one server that loads the checkpoint's layout."""
    if cpu:
        raise InvalidSettingError(
            "gpu", "cpu",
            "a full-duplex model must run an 80 ms frame in under 80 ms: a GPU is planned, "
            "not on CPU (only a very small Moshi holds real time on CPU; `hfdeploy serve DIR` "
            "measures it)",
            hint="Pass --gpu (e.g. --gpu H100), or none to let the plan choose one.",
        )  # fmt: skip
    able = _duplex_servers(p)
    name = able[0]
    rejected = [
        (n, "holds one conversation per process" if n in able else "loads " + _loads(n))
        for n in ("hfdeploy", "moshi", "personaplex") if n != name
    ]  # fmt: skip
    rejected.append(("vllm", "no full-duplex session serving (a WebSocket conversation)"))
    assert p.duplex is not None
    if name == "hfdeploy":
        reasons = [
            f"full-duplex speech ({p.duplex.variant}, {p.duplex.layout} layout): hfdeploy "
            "serve steps every conversation of a replica together, so a GPU holds several (the "
            "reference servers hold one per process)"
        ]
    else:
        reasons = [
            f"full-duplex speech ({p.duplex.variant}, {p.duplex.layout} layout): {name}'s own "
            "server, one conversation per process over a WebSocket"
        ]
    return EngineChoice(engine_catalog()[name], reasons, rejected)


def _generator(p: ModelProfile, *, cpu: bool) -> EngineChoice:
    catalog = engine_catalog()
    if cpu:
        if p.parameters > 3e9:
            raise InvalidSettingError(
                "gpu",
                "cpu",
                f"{p.parameters / 1e9:.1f}B parameters are too many to generate on CPU",
                hint="Pass --gpu (e.g. --gpu L4), or use a GGUF quantization with llama.cpp.",
            )
        reasons = ["CPU only: hfdeploy serve runs small generators on CPU"]
        return EngineChoice(catalog["hfdeploy"], reasons, [("vllm", "needs a GPU")])
    rejected = [
        (
            "sglang",
            "as capable for this model; vLLM is the default for its wider architecture "
            "coverage (choose it with --engine sglang)",
        ),
        ("tgi", "in maintenance mode upstream: chosen only when asked"),
        ("tei", "does not generate text"),
        ("hfdeploy", "no paged KV cache or continuous batching: fine for small models on CPU"),
    ]
    reasons = ["text generation: paged KV cache, continuous batching and tensor parallelism"]
    return EngineChoice(catalog["vllm"], reasons, rejected)
