"""``hfdeploy plan``: the engine, GPUs, flags, throughput ceiling, replicas and cost.

Pure: a ModelProfile in, a Plan out, using the sizing model and the engine and GPU
catalogs. Every choice carries its reason; every figure that rests on a prior says so
in the envelope.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from hfdeploy.envelope import Confidence, Envelope, lowest
from hfdeploy.errors import HfDeployError, InvalidSettingError
from hfdeploy.model.profile import ModelProfile
from hfdeploy.plan.catalog import EngineSpec, engine_catalog, find_engine
from hfdeploy.plan.endpoints import EndpointChoice, endpoint_instance, no_endpoint
from hfdeploy.sizing.estimate import MemoryEstimate
from hfdeploy.sizing.gpus import GPU, find_gpu, gpu_catalog
from hfdeploy.sizing.report import SizeReport, size_model

__all__ = ["DoesNotFitError", "Plan", "plan_deployment"]

#: Where Triton's model repository is mounted (compose: ./triton; Kubernetes: a ConfigMap).
TRITON_REPOSITORY = "/models"
MODEL_DIR = "/repository"
_TP_DEGREES = (1, 2, 4, 8)
_PULL_GBPS = 0.25  # registry pull, GB/s (prior)
_LOAD_GBPS = 1.0  # weight read from a network volume, GB/s (prior)
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


def _decode_efficiency(regime: str, hidden: int) -> float:
    narrow, wide = _DECODE_EFFICIENCY[regime]
    t = min(1.0, max(0.0, math.log2(max(hidden, 1) / 4096)))  # 0 at 4096, 1 at 8192
    return round(narrow + (wide - narrow) * t, 2)


_HOURS_PER_MONTH = 730


class DoesNotFitError(HfDeployError, ValueError):
    """Nothing holds the model at these settings: no GPU count up to 8 on one node, nor (for
    vLLM on NVLink GPUs) up to 4 nodes of 8."""

    def __init__(self, model: str, tried: str, options: list[str]) -> None:
        super().__init__(
            f"{model} does not fit on {tried} at these settings",
            hint="Nearest options: " + "; ".join(options),
        )
        self.options = options

    def fields(self) -> dict[str, Any]:
        return {"options": self.options}


def memory_bytes(estimate: MemoryEstimate, gpu: GPU | None) -> int:
    """What a plan needs: per GPU rank on a GPU; on CPU, without the CUDA terms (context,
    non-torch, graphs)."""
    return estimate.total_bytes if gpu is not None else estimate.host_bytes


def placement(gpu: GPU | None, tp: int, pp: int = 1) -> str:
    """Where a plan runs, for people: ``CPU``, ``2 x L4`` or ``3 nodes x 8 x H100-SXM``."""
    if gpu is None:
        return "CPU"
    return (f"{pp} nodes x " if pp > 1 else "") + f"{tp} x {gpu.name}"


@dataclass(frozen=True, slots=True)
class Plan:
    """A deployment decision with its reasons, figures and envelope."""

    profile: ModelProfile
    engine: EngineSpec
    reasons: tuple[str, ...]
    rejected: tuple[tuple[str, str], ...]
    gpu: GPU | None
    tp: int
    quantization: str | None
    size: SizeReport
    image: str
    args: tuple[str, ...]
    env: dict[str, str]
    roofline: dict[str, Any]
    scaling: dict[str, Any]
    cold_start: dict[str, Any]
    cost: dict[str, Any]
    envelope: Envelope
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: Pipeline-parallel stages, one node of ``tp`` GPUs each (a LeaderWorkerSet when > 1).
    pp: int = 1
    #: The targets planned for (None: any).
    targets: tuple[str, ...] | None = None
    #: The Inference Endpoints instance (None: not planned for hf-endpoint, or multi-node).
    endpoint: EndpointChoice | None = None

    @property
    def served_name(self) -> str:
        return served_name(self.profile)

    @property
    def memory_bytes(self) -> int:
        return memory_bytes(self.size.estimate, self.gpu)

    @property
    def memory_text(self) -> str:
        where = "per GPU" if self.gpu is not None else "on CPU"
        return f"{self.memory_bytes / 2**30:.2f} GiB {where}"

    @property
    def gpu_count(self) -> int:
        """GPUs in all (every node)."""
        return self.tp * self.pp if self.gpu is not None else 0

    @property
    def nodes(self) -> int:
        return self.pp

    @property
    def placement(self) -> str:
        return placement(self.gpu, self.tp, self.pp)

    def to_dict(self) -> dict[str, Any]:
        """``plan.json``: the contract keys (engine, image, gpu, tensor_parallel, envelope)."""
        s = self.size.estimate.settings
        return {
            "engine": self.engine.name,
            "image": self.image,
            "gpu": {"name": self.gpu.name if self.gpu else "cpu", "count": self.gpu_count},
            "tensor_parallel": self.tp,
            "pipeline_parallel": self.pp,
            "nodes": self.pp,
            "targets": list(self.targets) if self.targets else None,
            "endpoint": self.endpoint.to_dict() if self.endpoint else None,
            "quantization": self.quantization,
            "model": {
                "ref": self.profile.ref,
                "repo_id": self.profile.repo_id,
                "commit_sha": self.profile.commit_sha,
                "task": self.profile.task.task,
                "kind": self.profile.task.kind,
                "parameters": self.profile.parameters,
                "served_name": self.served_name,
            },
            "reasons": list(self.reasons),
            "rejected": [{"engine": e, "why": why} for e, why in self.rejected],
            "settings": {
                "context": s.context,
                "concurrency": s.concurrency,
                "dtype": s.dtype,
                "kv_dtype": s.kv_dtype,
            },
            "memory": {
                "total_bytes_per_gpu": self.size.estimate.total_bytes if self.gpu else None,
                "total_bytes": self.memory_bytes,
                "on": "gpu" if self.gpu else "cpu",
                "fits": self.size.fits[0].to_dict() if self.size.fits else None,
            },
            "command": {"args": list(self.args), "env": dict(sorted(self.env.items()))},
            "routes": {
                "port": self.engine.port,
                "health": self.engine.health,
                "ready": self.engine.ready,
                "live": self.engine.live,
                "metrics": self.engine.metrics,
            },
            "roofline": self.roofline,
            "scaling": self.scaling,
            "cold_start": self.cold_start,
            "cost": self.cost,
            "notes": list(self.notes),
            "envelope": self.envelope.to_dict(),
        }


def served_name(profile: ModelProfile) -> str:
    """The name the model is served under: the repo id, else the folder's name."""
    return profile.repo_id or profile.location.rstrip("/").rsplit("/", 1)[-1]


def _choose_engine(
    p: ModelProfile, asked: str | None, cpu: bool
) -> tuple[EngineSpec, list[str], list[tuple[str, str]]]:
    catalog = engine_catalog()
    kind, task = p.task.kind, p.task.task
    gguf = p.weights_source.startswith("gguf")
    if asked:
        e = find_engine(asked)
        if gguf and "gguf" not in e.formats:
            raise InvalidSettingError("engine", asked, "it does not load GGUF files; use llama.cpp")
        if kind not in e.kinds or (e.tasks and task not in e.tasks):
            raise InvalidSettingError(
                "engine",
                asked,
                f"it does not serve {task} ({kind}) models",
                hint="Let `hfdeploy plan` choose (no --engine), or pick one of: "
                + ", ".join(n for n, c in catalog.items() if kind in c.kinds),
            )
        return e, [f"asked for with --engine {e.name}"], []
    rejected: list[tuple[str, str]] = []
    if gguf:
        rejected += [(n, "does not load GGUF files") for n in ("vllm", "sglang", "tgi", "tei")]
        return (
            catalog["llama.cpp"],
            ["the weights are GGUF: llama.cpp serves them natively"],
            rejected,
        )
    if kind == "generator":
        if cpu:
            if p.parameters > 3e9:
                raise InvalidSettingError(
                    "gpu",
                    "cpu",
                    f"{p.parameters / 1e9:.1f}B parameters are too many to generate on CPU",
                    hint="Pass --gpu (e.g. --gpu L4), or use a GGUF quantization with llama.cpp.",
                )
            rejected.append(("vllm", "needs a GPU"))
            return (
                catalog["hfdeploy"],
                ["CPU only: hfdeploy serve runs small generators on CPU"],
                rejected,
            )
        rejected += [
            (
                "sglang",
                "as capable for this model; vLLM is the default for its wider architecture "
                "coverage (choose it with --engine sglang)",
            ),
            ("tgi", "in maintenance mode upstream: chosen only when asked"),
            ("tei", "does not generate text"),
            ("hfdeploy", "no paged KV cache or continuous batching: fine for small models on CPU"),
        ]
        return (
            catalog["vllm"],
            [
                "text generation: paged KV cache, continuous batching and tensor parallelism",
            ],
            rejected,
        )
    tei = catalog["tei"]
    if kind in ("embedder", "reranker", "classifier") and task in tei.tasks:
        if p.model_type in tei.model_types:
            rejected.append(("hfdeploy", "TEI is faster on GPU for supported architectures"))
            reasons = [f"{task}: TEI supports model_type {p.model_type!r}"]
            if p.formats.pickle and not p.formats.safetensors:
                reasons.append("note: TEI needs safetensors; convert the pickle weights first")
            return tei, reasons, rejected
        rejected.append(("tei", f"does not support model_type {p.model_type!r}"))
    if task in catalog["hfdeploy"].tasks:
        rejected.append(("vllm", "built for generation; pooling models only in part"))
        return (
            catalog["hfdeploy"],
            [f"{task}: hfdeploy serve runs it with batching and warmup"],
            rejected,
        )
    raise InvalidSettingError(
        "task",
        task,
        "no engine in the catalog serves it",
        hint="Serve it with a custom container; `hfdeploy audit` can check its deployment files.",
    )


def _gpus(gpu: str | None) -> list[GPU]:
    if gpu:
        return [find_gpu(gpu)]
    return [g for g in gpu_catalog().gpus if g.vendor.lower() == "nvidia" and g.price_per_hour]


def _fit(
    p: ModelProfile, engine: EngineSpec, gpus: list[GPU], knobs: dict[str, Any]
) -> tuple[GPU, int, str | None, SizeReport] | None:
    """The cheapest (GPU, TP) that fits; quantization fp8 only where the GPU has it."""
    best: tuple[float, GPU, int, str | None, SizeReport] | None = None
    degrees = _TP_DEGREES if engine.tensor_parallel else (1,)
    for quant in (None, "fp8"):
        for g in gpus:
            if quant and not g.fp8_tflops:
                continue
            for tp in degrees:
                try:
                    report = size_model(
                        p,
                        gpu=g.name,
                        engine=_size_engine(engine),
                        tp=tp,
                        quantization=quant,
                        **knobs,
                    )
                except InvalidSettingError:
                    continue  # e.g. TP that does not divide the heads
                if report.fits[0].fits:
                    cost = (g.price_per_hour or 1e6) * tp
                    if best is None or cost < best[0]:
                        best = (cost, g, tp, quant, report)
                    break
        if best is not None:
            return best[1], best[2], best[3], best[4]
    return None


#: Deployment targets ``generate`` writes (and ``plan --target`` plans for).
TARGETS = ("docker", "compose", "k8s", "kserve", "hf-endpoint")
#: Targets that can run a multi-node plan: a LeaderWorkerSet on Kubernetes.
MULTI_NODE_TARGETS = frozenset({"k8s"})

#: Nodes tried, of 8 GPUs each, when one node is not enough (vLLM pipeline parallelism).
_NODES = (2, 3, 4)


def _fit_nodes(
    p: ModelProfile, engine: EngineSpec, gpus: list[GPU], knobs: dict[str, Any]
) -> tuple[GPU, int, int, SizeReport] | None:
    """The cheapest (GPU, TP 8, PP nodes) that fits, fewest nodes first; vLLM only, and only
    GPUs with NVLink (TP 8 over PCIe inside each node would dominate every decode step)."""
    if engine.name != "vllm":
        return None
    for nodes in _NODES:
        best: tuple[float, GPU, SizeReport] | None = None
        for g in gpus:
            if not g.nvlink_gbps:
                continue
            try:
                report = size_model(p, gpu=g.name, engine="vllm", tp=8, pp=nodes, **knobs)
            except InvalidSettingError:
                continue
            if report.fits[0].fits:
                cost = (g.price_per_hour or 1e6) * 8 * nodes
                if best is None or cost < best[0]:
                    best = (cost, g, report)
        if best is not None:
            return best[1], 8, nodes, best[2]
    return None


def _size_engine(engine: EngineSpec) -> str:
    return {"triton": "vllm", "llama.cpp": "llama.cpp"}.get(engine.name, engine.name)


def _args(
    engine: EngineSpec,
    p: ModelProfile,
    report: SizeReport,
    tp: int,
    quant: str | None,
    gpu: GPU | None,
    served: str,
) -> list[str]:
    s = report.estimate.settings
    fit = report.fits[0] if report.fits else None
    a = engine.args
    out: list[str] = []

    def add(key: str, value: object) -> None:
        if a.get(key):
            out.extend([a[key], str(value)])

    if engine.name == "hfdeploy":
        out = [
            "serve",
            MODEL_DIR,
            "--host",
            "0.0.0.0",
            "--port",
            str(engine.port),
            "--device",
            "cuda" if gpu else "cpu",
            "--served-model-name",
            served,
        ]
        return out
    if engine.name == "triton":
        # The vLLM backend reads its engine arguments from the model repository, which
        # generate writes (triton/<name>/1/model.json) and mounts at TRITON_REPOSITORY.
        return ["tritonserver", f"{a['model_repository']}={TRITON_REPOSITORY}"]
    if engine.name == "llama.cpp":
        gguf = p.formats.gguf[0].file if p.formats.gguf else "model.gguf"
        add("model", f"{MODEL_DIR}/{gguf}")
        # llama-server splits --ctx-size among its --parallel slots (n_ctx / n_parallel per
        # slot): the whole context for each of `concurrency` slots, as the KV cache was sized.
        add("max_len", s.context * s.concurrency)
        add("max_seqs", s.concurrency)
        if gpu is not None:
            add("gpu_layers", 999)  # every layer on the GPU, whatever the build's default
        add("host", "0.0.0.0")
        add("port", engine.port)
        out.append(a["metrics"])
        return out
    if engine.model_positional:
        out.append(MODEL_DIR)
    else:
        add("model", MODEL_DIR)
    if engine.name in ("vllm", "sglang"):
        out.extend(["--served-model-name", served])
    if tp > 1:
        add("tp", tp)
    if engine.name != "tei":
        add("max_len", s.context)
    if quant:
        add("quantization", quant)
    if s.gpu_memory_utilization:
        add("memory_fraction", f"{s.gpu_memory_utilization:g}")
    if fit and fit.max_concurrency and engine.name in ("vllm", "sglang"):
        add("max_seqs", serving_batch(report))
    if engine.name == "tei":
        add("batch_tokens", s.batched_tokens)
    add("host", "0.0.0.0")
    add("port", engine.port)
    if "metrics" in a:
        out.append(a["metrics"])
    return out


def serving_batch(report: SizeReport) -> int:
    """The most sequences the engine runs at once (its max-num-seqs): as many as the KV
    budget holds at the full context, capped at 256; the requested concurrency when the
    estimate has no fit row (no GPU)."""
    fit = report.fits[0] if report.fits else None
    if fit and fit.max_concurrency:
        return max(1, min(fit.max_concurrency, 256))
    return report.estimate.settings.concurrency


def _roofline(
    p: ModelProfile, report: SizeReport, gpu: GPU | None, tp: int, output_tokens: int
) -> dict[str, Any]:
    e = report.estimate
    if gpu is None or p.task.kind != "generator":
        return {"applies": False, "why": "no GPU, or not a generator (throughput: measure it)"}
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

    def step_s(batch: int) -> tuple[float, str]:
        """One decode step of ``batch`` sequences: the bytes or the FLOPs, whichever is longer."""
        # on average half the context is filled
        t_mem = (weights_rank + e.kv_bytes_per_sequence_per_rank * batch / 2) / bw
        t_cmp = 2 * active / tp * batch / flops if flops else 0.0
        return max(t_mem, t_cmp), "memory-bound" if t_mem >= t_cmp else "compute-bound"

    conc = s.concurrency
    step, regime = step_s(conc)
    hidden = p.arch.hidden_size
    expected_step = step / _decode_efficiency(regime, hidden)
    # Under load the engine batches up to its max-num-seqs: the step at each batch size up
    # to that, at the expected efficiency, is what replicas and latency are planned from.
    top = serving_batch(report)
    curve = []
    for b in sorted({min(2**i, top) for i in range(top.bit_length() + 1)}):
        t, r = step_s(b)
        t /= _decode_efficiency(r, hidden)
        curve.append({"batch": b, "expected_step_ms": round(t * 1000, 2),
                      "expected_tokens_per_s": round(b / t, 1), "regime": r})  # fmt: skip
    return {
        "applies": True,
        "regime": regime,
        # Ceilings: no engine decodes faster than the bytes (or FLOPs) allow.
        "single_stream_tokens_per_s": round(bw / weights_rank, 1),
        "decode_tokens_per_s_per_replica": round(conc / step, 1),
        "decode_step_ms": round(step * 1000, 2),
        # Expected: the ceiling at the efficiency a real decode step was measured at.
        "efficiency": _decode_efficiency(regime, hidden),
        "expected_decode_tokens_per_s_per_replica": round(conc / expected_step, 1),
        "expected_decode_step_ms": round(expected_step * 1000, 2),
        "efficiency_basis": _EFFICIENCY_BASIS,
        "at_concurrency": conc,
        "max_batch": top,
        "batch_curve": curve,
        "output_tokens": output_tokens,
        "basis": f"{gpu.name}: {gpu.bandwidth_gbps:g} GB/s, {flops / 1e12:g} TFLOP/s dense; "
        f"weights {weights_rank / 2**30:.1f} GiB per rank + KV at half context",
    }


def _cold_start(engine: EngineSpec, p: ModelProfile) -> dict[str, Any]:
    pull = engine.image_gb / _PULL_GBPS
    load = p.weights.bytes / 1e9 / _LOAD_GBPS
    total = pull + load + engine.warmup_s
    return {
        "image_pull_s": round(pull),
        "weight_load_s": round(load),
        "warmup_s": round(engine.warmup_s),
        "total_s": round(total),
        "cached_image_s": round(load + engine.warmup_s),
        "startup_probe_budget_s": int(max(engine.min_startup_s, math.ceil(2 * total / 10) * 10)),
        "basis": f"priors: pull {_PULL_GBPS * 1000:g} MB/s, weights {_LOAD_GBPS:g} GB/s, "
        f"{engine.name} warmup {engine.warmup_s:g}s",
    }


def plan_deployment(
    profile: ModelProfile,
    *,
    gpu: str | None = None,
    engine: str | None = None,
    context: int | None = None,
    concurrency: int | None = None,
    traffic_rps: float | None = None,
    slo_p95_ms: float | None = None,
    output_tokens: int = 256,
    active_hours_per_day: float = 8.0,
    targets: tuple[str, ...] | None = None,
) -> Plan:
    """Choose engine, GPUs and flags for ``profile``; estimate throughput, replicas, cost.

    Raises:
        DoesNotFitError: nothing up to TP 8 (or fp8) fits, nor 2-4 nodes of 8 for vLLM on
            NVLink GPUs, with the nearest options.
        InvalidSettingError, UnknownGPUError: bad inputs, naming the valid values.
    """
    if targets is not None:
        unknown = [t for t in targets if t not in TARGETS]
        if unknown or not targets:
            raise InvalidSettingError(
                "target", ",".join(targets), "unknown" if unknown else "empty",
                hint="Use a comma-separated subset of: " + ",".join(TARGETS),
            )  # fmt: skip
    cpu = gpu is not None and gpu.lower() == "cpu"
    spec, reasons, rejected = _choose_engine(profile, engine, cpu)
    knobs: dict[str, Any] = {}
    if context:
        knobs["context"] = context
    if concurrency:
        knobs["concurrency"] = concurrency
    notes: list[str] = []
    chosen_gpu: GPU | None = None
    tp, pp, quant = 1, 1, None
    if cpu or (not spec.gpu and gpu is None):
        sized = size_model(profile, engine=_size_engine(spec), **knobs)
        report = SizeReport(sized.profile, sized.estimate, ())
        reasons.append(
            "no GPU asked for: CPU deployment"
            if cpu
            else f"{spec.name} runs on CPU; pass --gpu for a GPU"
        )
    else:
        found = _fit(profile, spec, _gpus(gpu), knobs)
        if found is not None:
            chosen_gpu, tp, quant, report = found
            fit = report.fits[0]
            reasons.append(
                f"{tp} x {chosen_gpu.name}: the smallest TP at which weights, KV cache at "
                f"{report.estimate.settings.context:,} tokens x "
                f"{report.estimate.settings.concurrency} and overheads fit "
                f"({fit.headroom_bytes / 2**30:.1f} GiB headroom)"
                + ("" if gpu else "; cheapest fitting GPU in the catalog")
            )
        else:
            multi = _fit_nodes(profile, spec, _gpus(gpu), knobs)
            if multi is None:
                raise _no_fit(profile, spec, gpu, knobs)
            chosen_gpu, tp, pp, report = multi
            if targets is not None and not MULTI_NODE_TARGETS & set(targets):
                err = _no_fit(profile, spec, gpu, knobs)
                raise DoesNotFitError(
                    profile.repo_id or profile.location, f"one node for {','.join(targets)}",
                    [f"--target k8s: a LeaderWorkerSet of {pp} nodes x {tp} x "
                     f"{chosen_gpu.name}", *err.options],
                )  # fmt: skip
            fit = report.fits[0]
            reasons.append(
                f"{pp} nodes x {tp} x {chosen_gpu.name}: one node of 8 does not hold the "
                f"weights and KV cache at {report.estimate.settings.context:,} tokens x "
                f"{report.estimate.settings.concurrency}; tensor parallel within a node, "
                f"pipeline parallel across {pp} nodes (vLLM over Ray), deployed as a "
                f"LeaderWorkerSet ({fit.headroom_bytes / 2**30:.1f} GiB headroom per GPU)"
            )
            notes.append(
                "multi-node: Kubernetes only (k8s/leaderworkerset.yaml needs the LeaderWorkerSet "
                "controller); compose, KServe and Inference Endpoints files are not written"
            )
        if quant:
            reasons.append("fp8 weights (on-the-fly quantization) were needed to fit")
    args = _args(spec, profile, report, tp, quant, chosen_gpu, served_name(profile))
    if pp > 1:
        args += ["--pipeline-parallel-size", str(pp), "--distributed-executor-backend", "ray"]
    env = dict(spec.env)
    if spec.name == "tei" and chosen_gpu is None:
        image = spec.image_ref("cpu")
    else:
        image = spec.image_ref(chosen_gpu.compute_capability if chosen_gpu else None)
    roof = _roofline(profile, report, chosen_gpu, tp, output_tokens)
    scaling = _scaling(roof, traffic_rps, slo_p95_ms, tp)
    cold = _cold_start(spec, profile)
    cost = _cost(chosen_gpu, tp * pp, scaling, cold, active_hours_per_day)
    endpoint = None
    if spec.name == "triton" and (targets is None or "hf-endpoint" in targets):
        endpoint = no_endpoint(
            "Triton reads its model repository from a volume beside the model, which "
            "Inference Endpoints does not mount: hf-endpoint.json is not written"
        )
        notes.append(endpoint.note)
    elif pp == 1 and (targets is None or "hf-endpoint" in targets):
        endpoint = endpoint_instance(chosen_gpu, tp, memory_bytes(report.estimate, chosen_gpu))
        if endpoint.note:
            notes.append(endpoint.note)
        if endpoint.instance_type and cost.get("cheaper") == "scale-to-zero" and traffic_rps:
            # Traffic known and scale-to-zero cheaper: the Endpoints file scales to zero.
            minutes = round(cost["idle_timeout_s"] / 60)
            endpoint = dataclasses.replace(endpoint, scale_to_zero_minutes=minutes)
            notes.append(
                f"hf-endpoint.json scales to zero after {minutes} min idle: "
                f"${cost['scale_to_zero_per_month']:,}/month against "
                f"${cost['dedicated_per_month']:,} dedicated, with "
                f"{cost['cold_start_share_of_requests']:.1%} of requests waiting for a "
                f"{cost['cold_start_penalty_s']}s cold start"
            )
    if spec.requires and chosen_gpu is not None:
        notes.append(f"the image {image} needs {spec.requires}")
    if spec.tag_source.startswith("unverified"):
        notes.append(
            f"the {spec.name} image tag {spec.tag} is not verified here: check the registry"
        )
    env_ = _envelope(profile, spec, report, chosen_gpu, tp, roof, scaling, cold, notes, pp)
    return Plan(
        profile,
        spec,
        tuple(reasons),
        tuple(rejected),
        chosen_gpu,
        tp,
        quant,
        report,
        image,
        tuple(args),
        env,
        roof,
        scaling,
        cold,
        cost,
        env_,
        tuple(notes),
        pp,
        targets,
        endpoint,
    )


def _no_fit(
    p: ModelProfile, spec: EngineSpec, gpu: str | None, knobs: dict[str, Any]
) -> DoesNotFitError:
    options: list[str] = []
    gpus = _gpus(gpu)
    for g in gpus[-1:] if gpu else sorted(gpus, key=lambda g: -g.memory_bytes)[:1]:
        try:
            r = size_model(p, gpu=g.name, engine=_size_engine(spec), tp=8, **knobs)
            row = r.fits[0]
            if row.max_context:
                options.append(f"a context of {row.max_context:,} tokens or less on 8 x {g.name}")
        except HfDeployError:
            pass
    options.append(
        "int4 weights (an AWQ or GPTQ checkpoint): `hfdeploy size MODEL --quantization int4`"
    )
    if gpu:
        options.append("a GPU with more memory (drop --gpu to let the planner pick)")
    options.append("more than 8 GPUs: pipeline parallelism across nodes (LeaderWorkerSet)")
    return DoesNotFitError(
        p.repo_id or p.location, f"up to 8 x {gpu}" if gpu else "any catalog GPU up to 8", options
    )


def _scaling(
    roof: dict[str, Any], traffic: float | None, slo_ms: float | None, tp: int
) -> dict[str, Any]:
    out: dict[str, Any] = {"traffic_rps": traffic, "replicas": 1, "basis": "one replica"}
    if roof.get("applies"):
        # Sized on the expected speed (not the ceiling: replicas planned on the roofline
        # alone come up 1.1-2.3x short, benchmarks/results/gpu_roofline.json), at the
        # largest batch whose end-to-end time meets the SLO (the engine's max-num-seqs
        # when there is none): continuous batching serves that many sequences at once.
        n_out = roof["output_tokens"]
        curve = roof["batch_curve"]
        meets = [c for c in curve if slo_ms is None or c["expected_step_ms"] * n_out <= slo_ms]
        # No batch meets the SLO: plan for throughput and say what the latency floor is.
        at = meets[-1] if meets else curve[-1]
        capacity = at["expected_tokens_per_s"] / n_out
        e2e_ms = at["expected_step_ms"] * n_out
        out |= {
            "capacity_rps_per_replica": round(capacity, 2),
            "batch_per_replica": at["batch"],
            "e2e_ms_estimate": round(e2e_ms),
        }
        if traffic:
            out["replicas"] = max(1, math.ceil(traffic / (capacity * _UTILIZATION)))
            out["basis"] = (
                f"{traffic:g} req/s / ({capacity:.2f} req/s per replica at {at['batch']} "
                f"sequences x {_UTILIZATION:g})"
            )
        if slo_ms is not None:
            out["slo_p95_ms"] = slo_ms
            out["slo_met_by_estimate"] = bool(meets)
            if not meets:
                out["basis"] += (
                    f"; no batch meets the {slo_ms:g} ms SLO: one sequence alone takes "
                    f"{curve[0]['expected_step_ms'] * n_out:,.0f} ms for {n_out} tokens "
                    "(a faster GPU, more TP, or fewer output tokens)"
                )
    elif traffic:
        out["basis"] = "capacity unknown for this task: measure one replica with `hfdeploy bench`"
    out["direction"] = (
        f"vertical to TP {tp} for memory, horizontal (replicas) for throughput"
        if tp > 1
        else "horizontal: add replicas for throughput"
    )
    return out


# Scale-to-zero: an idle replica goes after this long without requests (Inference Endpoints'
# default, "1 hour by default"; Knative, under KServe, waits about a minute).
_IDLE_TIMEOUT_S = 3600.0
# Scale-to-zero is "not worth it" once it saves less than this share of the dedicated bill.
_S2Z_MIN_SAVING = 0.05


def _s2z_billed_share(rate: float, cold_s: float, idle_s: float) -> float:
    """Share of the time a scale-to-zero replica is billed under Poisson traffic at ``rate``/s.

    A cycle: a cold start (``cold_s``, billed), then up until a gap of ``idle_s`` with no
    request (expected (e^(rate*idle) - 1) / rate, the last idle stretch included), then
    off until the next request (1 / rate). Billed share = 1 - 1 / (rate*cold + e^(rate*idle));
    1 minus it is also the share of requests that meet a cold start.
    """
    if rate <= 0:
        return 0.0
    x = rate * idle_s
    if x > 700:  # e^x overflows; the replica never goes idle
        return 1.0
    return 1.0 - 1.0 / (rate * cold_s + math.exp(x))


def _break_even_rate(cold_s: float, idle_s: float) -> float:
    """Requests/s above which round-the-clock scale-to-zero saves less than _S2Z_MIN_SAVING."""
    lo, hi = 0.0, 1.0
    for _ in range(200):  # bisection: the billed share rises with the rate
        mid = (lo + hi) / 2
        if 1 - _s2z_billed_share(mid, cold_s, idle_s) > _S2Z_MIN_SAVING:
            lo = mid
        else:
            hi = mid
    return hi


def _cost(
    gpu: GPU | None, tp: int, scaling: dict[str, Any], cold: dict[str, Any], hours: float
) -> dict[str, Any]:
    if gpu is None or not gpu.price_per_hour:
        return {"applies": False, "why": "CPU deployment or no price in the catalog"}
    per_replica_h = gpu.price_per_hour * tp
    replicas = scaling["replicas"]
    days = _HOURS_PER_MONTH / 24
    dedicated = per_replica_h * replicas * _HOURS_PER_MONTH
    cold_s, idle_s = float(cold["total_s"]), _IDLE_TIMEOUT_S
    rate = scaling.get("traffic_rps")
    if rate:
        # Billed while traffic lasts (by the renewal model), then one idle tail a day.
        share = _s2z_billed_share(rate, cold_s, idle_s)
        billed_h = hours * share + idle_s / 3600
        cold_share = 1 - share
        if hours + idle_s / 3600 < 24:  # off overnight: the day's first request waits too
            cold_share = min(1.0, cold_share + 1 / max(1.0, rate * hours * 3600))
        how = f"Poisson traffic at {rate:g} req/s for {hours:g} h/day"
    else:
        # No traffic given: up for the active hours, one cold start and one idle tail a day.
        billed_h = hours + (cold_s + idle_s) / 3600
        cold_share = None
        how = f"up {hours:g} h/day (no --traffic: every active hour billed)"
    billed_h = min(24.0, billed_h)
    s2z = per_replica_h * replicas * billed_h * days
    even = _break_even_rate(cold_s, idle_s)
    cheaper = "scale-to-zero" if s2z < dedicated * (1 - _S2Z_MIN_SAVING) else "dedicated"
    return {
        "applies": True,
        "price_per_gpu_hour": gpu.price_per_hour,
        "dedicated_per_month": round(dedicated, 2),
        "scale_to_zero_per_month": round(s2z, 2),
        "scale_to_zero_billed_hours_per_day": round(billed_h, 2),
        "active_hours_per_day": hours,
        "idle_timeout_s": idle_s,
        "cold_start_penalty_s": cold["total_s"],
        "cold_start_share_of_requests": None if cold_share is None else round(cold_share, 6),
        "break_even_traffic_rps": round(even, 6),
        "break_even_requests_per_hour": round(even * 3600, 2),
        "cheaper": cheaper,
        "basis": f"{replicas} replica(s) x {tp} x {gpu.name} at ${gpu.price_per_hour}/h "
        f"(indicative, unverified); scale-to-zero: {how}, idle timeout {idle_s:g} s, "
        f"cold start {cold_s:g} s billed; break-even: round-the-clock traffic at which "
        f"scale-to-zero saves under {_S2Z_MIN_SAVING:.0%}",
    }


def _envelope(
    p: ModelProfile,
    spec: EngineSpec,
    report: SizeReport,
    gpu: GPU | None,
    tp: int,
    roof: dict[str, Any],
    scaling: dict[str, Any],
    cold: dict[str, Any],
    notes: list[str],
    pp: int = 1,
) -> Envelope:
    where = placement(gpu, tp, pp)
    need = memory_bytes(report.estimate, gpu) / 2**30
    memory = f"{need:.1f} GiB per GPU" if gpu else f"{need:.2f} GiB on CPU"
    result = (
        f"{spec.name} on {where} for {p.repo_id or p.location} ({p.task.task}); "
        f"{memory}; {scaling['replicas']} replica(s)"
    )
    size_env = report.envelope()
    confidence: Confidence = lowest(
        size_env.confidence, "medium" if roof.get("applies") else "high"
    )
    size_factors = [
        f for f in size_env.uncertainty_factors
        if gpu is not None or not f.startswith(("cuda context", "non-torch", "cuda graphs"))
    ]  # fmt: skip
    factors = [
        *size_factors[:3],
        f"cold start {cold['total_s']}s from priors ({cold['basis']})",
        *notes,
    ]
    if roof.get("applies"):
        factors.append(
            f"throughput: the roofline ceiling x {roof['efficiency']:g}, the efficiency a "
            "minimal CUDA-graph decode reached on an H200; a real engine's differs: measure "
            "one replica with `hfdeploy bench`"
        )
    verification = (
        f"hfdeploy size {p.ref} --engine {spec.name} --json",
        "hfdeploy audit on the deployment files that run it",
        "start the engine and read its KV-cache and ready lines; measure with a load test",
    )
    why = f"memory: {size_env.confidence}; throughput and cold start: priors"
    return Envelope(result, confidence, why, tuple(factors), verification)
