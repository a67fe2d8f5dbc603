"""The engine's command line, from the estimate: the flags that make the engine hold what
was sized (context, sequences, memory fraction, TP) and serve where the files expect it.

Pure. Flag names come from the engine catalog (``deploy.flags``, by meaning).
"""

from __future__ import annotations

import itertools

from hfdeploy.catalog.engines import EngineDeploy, EngineSpec
from hfdeploy.catalog.gpus import GPU
from hfdeploy.model.profile import ModelProfile
from hfdeploy.sizing.report import SizeReport

__all__ = [
    "MODEL_DIR", "TRITON_REPOSITORY", "engine_args", "knobs_from_args", "serving_batch",
]  # fmt: skip

#: Where every target mounts the model, read-only.
MODEL_DIR = "/repository"
#: Where Triton's model repository is mounted (compose: ./triton; Kubernetes: a ConfigMap).
TRITON_REPOSITORY = "/models"


def serving_batch(report: SizeReport) -> int:
    """The most sequences the engine runs at once (its max-num-seqs): the number the estimate
    sized for when the engine has such a default (vLLM: as many as the KV budget holds at the
    full context, at most its default); else as many as the KV budget holds, at most 256; the
    requested concurrency when the estimate has no fit row (no GPU)."""
    s = report.estimate.settings
    fit = report.fits[0] if report.fits else None
    if s.max_seqs and fit is not None:
        return s.max_seqs
    if fit and fit.max_concurrency:
        return max(1, min(fit.max_concurrency, 256))
    return s.concurrency


def engine_args(
    engine: EngineSpec,
    p: ModelProfile,
    report: SizeReport,
    *,
    tp: int,
    pp: int,
    quant: str | None,
    gpu: GPU | None,
    served: str,
) -> list[str]:
    """The arguments the engine's container runs with (after the image's entrypoint)."""
    d = engine.deploy
    if d is None:
        raise ValueError(f"{engine.name} is not an engine hfdeploy deploys")
    match engine.name:
        case "hfdeploy":
            device = "cuda" if gpu else "cpu"
            return ["serve", MODEL_DIR, "--host", "0.0.0.0", "--port", str(d.routes.port),
                    "--device", device, "--served-model-name", served]  # fmt: skip
        case "triton":
            # The vLLM backend reads its engine arguments from the model repository, which
            # generate writes (triton/<name>/1/model.json) and mounts at TRITON_REPOSITORY.
            return ["tritonserver", f"{d.flags['model_repository']}={TRITON_REPOSITORY}"]
        case "llama.cpp":
            return _llama_cpp(d, p, report, gpu)
        case "moshi" | "personaplex":
            return _duplex(engine.name, d, p)
    out = _common(engine.name, d, report, tp=tp, quant=quant, served=served)
    if pp > 1:
        out += ["--pipeline-parallel-size", str(pp), "--distributed-executor-backend", "ray"]
    return out


def _llama_cpp(d: EngineDeploy, p: ModelProfile, report: SizeReport, gpu: GPU | None) -> list[str]:
    s = report.estimate.settings
    flags = d.flags
    out: list[str] = []
    gguf = p.formats.gguf[0].file if p.formats.gguf else "model.gguf"
    out += [flags["model"], f"{MODEL_DIR}/{gguf}"]
    # llama-server splits --ctx-size among its --parallel slots (n_ctx / n_parallel per
    # slot): the whole context for each of `concurrency` slots, as the KV cache was sized.
    out += [flags["max_len"], str(s.context * s.concurrency)]
    out += [flags["max_seqs"], str(s.concurrency)]
    if gpu is not None:
        out += [flags["gpu_layers"], "999"]  # every layer on the GPU, whatever the build's default
    out += [flags["host"], "0.0.0.0", flags["port"], str(d.routes.port)]
    out.append(flags["metrics"])
    return out


def _common(
    name: str, d: EngineDeploy, report: SizeReport, *, tp: int, quant: str | None, served: str
) -> list[str]:
    s = report.estimate.settings
    fit = report.fits[0] if report.fits else None
    out: list[str] = []

    def add(key: str, value: object) -> None:
        if d.flags.get(key):
            out.extend([d.flags[key], str(value)])

    if d.model_positional:
        out.append(MODEL_DIR)
    else:
        add("model", MODEL_DIR)
    if name in ("vllm", "sglang"):
        out.extend(["--served-model-name", served])
    if tp > 1:
        add("tp", tp)
    if name != "tei":
        add("max_len", s.context)
    if quant:
        add("quantization", quant)
    if s.kv_dtype.startswith("fp8") and d.kv_fp8:
        add("kv_dtype", d.kv_fp8)
    if s.gpu_memory_utilization:
        add("memory_fraction", f"{s.gpu_memory_utilization:g}")
    # Every knob the estimate assumed is written, the engine's own default included: the same
    # budget on whatever GPU the files end up on, and the estimate and the deployment agree.
    add("batch_tokens", s.batched_tokens)
    if fit and fit.max_concurrency and name in ("vllm", "sglang"):
        add("max_seqs", serving_batch(report))
    add("host", "0.0.0.0")
    add("port", d.routes.port)
    if "metrics" in d.flags:
        out.append(d.flags["metrics"])
    return out


#: Sizing knobs by the meaning of the flag that sets them (the catalog's ``flags`` keys).
_KNOBS = {
    "tp": ("tp", int),
    "max_len": ("context", int),
    "memory_fraction": ("gpu_memory_utilization", float),
    "batch_tokens": ("max_batched_tokens", int),
    "max_seqs": ("max_seqs", int),
    "quantization": ("quantization", str),
}


def knobs_from_args(engine: EngineSpec, args: tuple[str, ...] | list[str]) -> dict[str, object]:
    """The sizing knobs an engine command line sets, read back through the catalog's flag
    names: what to re-size a deployment from (``size_model(..., **knobs)``)."""
    flags = engine.deploy.flags if engine.deploy else {}
    by_flag = {flag: meaning for meaning, flag in flags.items() if flag}
    out: dict[str, object] = {}
    for flag, value in itertools.pairwise(args):
        meaning = by_flag.get(flag)
        if meaning in _KNOBS:
            knob, cast = _KNOBS[meaning]
            out[knob] = cast(value)
        elif meaning == "kv_dtype":
            out["kv_dtype"] = "fp8" if value.startswith("fp8") else value
    if engine.name == "llama.cpp" and "context" in out:
        return {}  # --ctx-size is context x slots there: not a per-request context
    return out


def _duplex(name: str, d: EngineDeploy, p: ModelProfile) -> list[str]:
    """Every file passed from the read-only model folder, no UI, so the server downloads
    nothing at start (what ``hfdeploy fetch`` prepares is under ``.hfdeploy/``)."""
    from hfdeploy.model.duplex_files import MOSHI_CONFIG, VOICES

    spec = p.duplex
    if spec is None:
        raise ValueError(f"{name} serves full-duplex speech models only")
    f = d.flags
    lm = spec.lm.files[0] if spec.lm.files else "model.safetensors"
    codec = spec.codec.files[0] if spec.codec.files else ""
    spm = spec.text_tokenizer or "tokenizer_spm_32k_3.model"
    # PersonaPlex's server binds every interface whatever --host says, and for 0.0.0.0 it
    # looks up a LAN address by a UDP connect to 8.8.8.8: 127.0.0.1 only names the log's URL.
    host = "127.0.0.1" if name == "personaplex" else "0.0.0.0"
    args = [f["host"], host, f["port"], str(d.routes.port), f["static"], "none",
            f["lm"], f"{MODEL_DIR}/{lm}", f["codec"], f"{MODEL_DIR}/{codec}",
            f["text_tokenizer"], f"{MODEL_DIR}/{spm}"]  # fmt: skip
    if name == "personaplex":
        args += [f["voices"], f"{MODEL_DIR}/{VOICES}"]
    else:
        own = "config.json" if spec.shape_source.startswith("config.json (Kyutai") else ""
        args += [f["config"], f"{MODEL_DIR}/{own or MOSHI_CONFIG}"]
    return args
