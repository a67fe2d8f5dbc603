"""How the server starts and what it is given: warm-up, probes, GPUs, memory, shared memory."""

from __future__ import annotations

import re
from collections.abc import Iterator

from hfdeploy.audit.extract import FileFacts
from hfdeploy.audit.findings import Finding, Rule
from hfdeploy.audit.model import MEM_FRACTION_FLAGS, PP_FLAGS, TP_FLAGS, under
from hfdeploy.catalog.engines import engine_catalog

__all__ = [
    "compile_cache_not_persistent",
    "deprecated_vllm_launch",
    "gpu_limit_mismatch",
    "gpu_memory_utilization_high",
    "llama_model_not_gguf",
    "missing_shm_for_tp",
    "model_does_not_fit",
    "no_warmup",
    "probe_kills_loading_pod",
    "probe_on_slow_route",
]

#: Engines that need GPUs and take their TP degree as a flag: GPUs asked for must equal TP x PP.
_GPU_ENGINES = frozenset(
    name for name, e in engine_catalog().items() if e.gpu and e.deploy and "tp" in e.deploy.flags
)


def no_warmup(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD007: a custom server that serves before running a forward pass."""
    s = facts.python_server
    if s and s["app"] and s["model_loads"] and not s["warm_calls"]:
        yield rule.finding(
            facts,
            s["app_line"],
            "a custom server loads a model but runs no forward pass before it serves",
        )


def probe_kills_loading_pod(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD008: probes that give the engine less time than loading takes."""
    for w in facts.workloads:
        if w.source != "kubernetes" or w.engine is None or w.kind == "Job":
            continue
        kinds = {p.kind: p for p in w.probes}
        need = _startup_floor(w.engine)
        live, start = kinds.get("liveness"), kinds.get("startup")
        if live and not start and live.budget_s < need:
            yield rule.finding(
                facts,
                live.line,
                "liveness probe without a startupProbe: it restarts the pod after "
                f"{live.budget_s:g}s, "
                f"while loading a model on {w.engine} can take {need:g}s or more",
            )
        elif start and start.budget_s < need:
            yield rule.finding(
                facts,
                start.line,
                f"startupProbe allows {start.budget_s:g}s; loading on {w.engine} can take "
                f"{need:g}s or more",
                severity="warning",
            )
        # KubeRay gives RayService pods probes of its own (Ray's health, and on workers
        # Serve's /-/healthz) unless the template sets some; Serve routes to a replica only
        # once it has started.
        if not w.probes and w.kind != "RayService":
            yield rule.finding(
                facts,
                w.line,
                f"no probes on the {w.engine} container: traffic reaches it before it is ready",
                severity="warning",
            )


def _startup_floor(engine: str) -> float:
    """The start-up budget an engine needs at least: the engine catalog's, shared with plan."""
    spec = engine_catalog().get(engine)
    return float(spec.deploy.min_startup_s) if spec and spec.deploy else 120.0


def missing_shm_for_tp(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD009: TP x PP over 1 without a memory-backed /dev/shm."""
    for w in facts.workloads:
        if w.invocation is None:
            continue
        if (nccl := w.env_value("NCCL_SHM_DISABLE")) and nccl.value == "1":
            yield rule.finding(
                facts,
                nccl.line,
                "NCCL_SHM_DISABLE=1 works around a small /dev/shm "
                "at the cost of slower collectives",
                severity="warning",
            )
        # Inference Endpoints sizes the container's /dev/shm, and a process on the host (a
        # shell script) has the host's: the file cannot set it
        if w.source in ("hf-endpoint", "shell"):
            continue
        if w.tp() * w.pp() > 1 and not w.shm and not w.host_ipc:
            degree = w.invocation.value(*TP_FLAGS) or w.invocation.value(*PP_FLAGS)
            yield rule.finding(
                facts,
                w.line_of(*TP_FLAGS, *PP_FLAGS),
                f"tensor/pipeline parallel x{w.tp() * w.pp()}"
                f"{degree.via(facts.path) if degree else ''} without a memory-backed /dev/shm",
            )


def gpu_limit_mismatch(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD011: GPUs asked for that differ from TP x PP."""
    for w in facts.workloads:
        if w.engine not in _GPU_ENGINES or w.source in ("dockerfile", "shell"):
            continue
        need = w.tp() * w.pp()
        if w.group_size > 1 and need % w.group_size == 0:
            need //= w.group_size  # a LeaderWorkerSet spreads TP x PP over its group's pods
        if w.gpus is None:
            yield rule.finding(
                facts, w.line, f"{w.engine} asks for no GPU ({need} needed for TP x PP)"
            )
        elif w.source == "hf-endpoint" and w.gpus >= need:
            continue  # instances come in fixed sizes (x1, x4): spare GPUs are not an error
        elif w.gpus > 0 and w.gpus != need:
            degree = w.invocation.value(*TP_FLAGS) if w.invocation else None
            yield rule.finding(
                facts,
                w.gpus_line or w.line,
                f"{w.gpus} GPU(s) requested but TP x PP = {need}"
                + (degree.via(facts.path) if degree else "")
                + (f" per pod of a group of {w.group_size}" if w.group_size > 1 else ""),
                severity="error",
            )


def gpu_memory_utilization_high(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD012: a GPU memory fraction of 0.95 or more."""
    for w in facts.workloads:
        if w.invocation is None:
            continue
        raw = w.invocation.value(*MEM_FRACTION_FLAGS)
        try:
            value = float(raw.text) if raw is not None else None
        except ValueError:
            continue
        if raw is not None and value is not None and value >= 0.95:
            yield rule.finding(
                facts,
                raw.fault_line(facts.path),
                f"GPU memory fraction {value:g}{raw.via(facts.path)} leaves no room for the "
                "CUDA context and spikes",
            )


def model_does_not_fit(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD017: the model does not fit the GPUs its node labels ask for; information where
    the check could not be made (the model or the GPU not readable here)."""
    from hfdeploy.audit.memory import fit_findings

    for w in facts.workloads:
        for fit in fit_findings(w, facts.models):
            yield rule.finding(facts, fit.line, fit.message,
                               severity=None if fit.checked else "info")  # fmt: skip


_VLLM_API_SERVER = "vllm.entrypoints.openai.api_server"
_VLLM_TAG = re.compile(r"vllm-openai(?:-[\w]+)?:v?(\d+)\.(\d+)")


def deprecated_vllm_launch(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD018: vLLM started in a way it deprecates."""
    for w in facts.workloads:
        inv = w.invocation
        if inv is None or inv.engine != "vllm":
            continue
        version = _VLLM_TAG.search(w.image or "")
        if version and (int(version.group(1)), int(version.group(2))) < (0, 30):
            continue  # verified against 0.30's source; older releases did not warn
        if inv.argv and inv.argv[0] == _VLLM_API_SERVER:
            yield rule.finding(
                facts, inv.line,
                f"`python -m {_VLLM_API_SERVER}` is deprecated and may be removed: "
                "run `vllm serve MODEL`",
            )  # fmt: skip
        elif inv.has("--model"):
            yield rule.finding(
                facts, inv.flag_line("--model"),
                f"`vllm serve` takes the model first; --model {inv.flag('--model')} "
                "will be removed in a future version",
            )  # fmt: skip


def probe_on_slow_route(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD024: a probe on a route the engine never answers within the probe's timeout."""
    for w in facts.workloads:
        spec = engine_catalog().get(w.engine or "")
        slow = spec.deploy.routes.slow_routes if spec and spec.deploy else {}
        for p in w.probes if slow else ():
            route = (p.path or "").split("?", 1)[0]
            if route in slow and p.timeout <= slow[route]:
                yield rule.finding(
                    facts, p.line,
                    f"the {p.kind} probe calls {route}, which {w.engine} never answers in "
                    f"under {slow[route]:g}s, with timeoutSeconds {p.timeout:g}: every probe "
                    "times out",
                )  # fmt: skip


#: Engines that compile at start and keep what they compiled under ``XDG_CACHE_HOME``: the
#: catalog points it into their cache folder (vLLM, SGLang, Triton's vLLM backend).
_COMPILING = frozenset(
    name for name, e in engine_catalog().items() if e.deploy and "XDG_CACHE_HOME" in e.deploy.env
)


def compile_cache_not_persistent(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD029: torch.compile, kernel and Hub caches outside every volume."""
    for w in facts.workloads:
        if w.engine not in _COMPILING or w.source in ("dockerfile", "shell", "hf-endpoint"):
            continue
        xdg, home = w.env_value("XDG_CACHE_HOME"), w.env_value("HOME")
        root = xdg.value if xdg else f"{home.value}/.cache" if home and home.value else None
        if root is None and w.user in (None, "root") and not w.uid:
            root = "/root/.cache"  # the images run as root, whose HOME is /root
        hf = w.env_value("HF_HOME")
        paths = [p for p in (root, hf.value if hf else None) if p and "$" not in p]
        outside = [p for p in dict.fromkeys(paths) if not any(under(p, m.path) for m in w.mounts)]
        if outside:
            yield rule.finding(
                facts, xdg.line if xdg else w.line,
                f"{' and '.join(outside)} {'is' if len(outside) == 1 else 'are'} on no volume: "
                f"{w.engine}'s torch.compile and kernel caches are rebuilt at every start",
            )  # fmt: skip


def llama_model_not_gguf(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD032: llama-server given a model file that is not GGUF."""
    for w in facts.workloads:
        inv = w.invocation
        if inv is None or inv.engine != "llama.cpp":
            continue
        model, line = inv.flag("-m", "--model"), w.line_of("-m", "--model")
        if model is None and (env := w.env_value("LLAMA_ARG_MODEL")):
            model, line = env.value, env.line
        if model and "$" not in model and not model.lower().endswith(".gguf"):
            yield rule.finding(
                facts, line,
                f"llama-server loads GGUF files only: {model} is not a .gguf file",
            )  # fmt: skip
