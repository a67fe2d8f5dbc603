"""The audit rules: each a stable id, one tag, a default severity, and a check.

Checks are pure functions over :class:`FileFacts`; the rule catalog is the
``RULES`` tuple. Each rule has a page in ``docs/rules/<ID>.md``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources

from hfdeploy.audit.extract import FileFacts
from hfdeploy.audit.findings import Finding, Severity
from hfdeploy.audit.model import (
    CACHE_FLAGS,
    HUB_ID,
    MEM_FRACTION_FLAGS,
    MODEL_FLAGS,
    PP_FLAGS,
    REVISION_FLAGS,
    SHA,
    TOKENIZER_REVISION_FLAGS,
    TP_FLAGS,
    Workload,
)

__all__ = ["PARSE_ERROR", "RULES", "Rule"]

Check = Callable[["Rule", FileFacts], Iterator[Finding]]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    tag: str
    severity: Severity
    title: str
    impact: str
    recommendation: str
    check: Check
    detects: str = ""

    def finding(
        self, facts: FileFacts, line: int, message: str, *, severity: Severity | None = None,
        recommendation: str | None = None,
    ) -> Finding:  # fmt: skip
        return Finding(
            rule_id=self.id, tag=self.tag, severity=severity or self.severity, file=facts.path,
            line=line, message=message, impact=self.impact,
            recommendation=recommendation or self.recommendation, title=self.title,
        )  # fmt: skip


TOKEN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACEHUB_API_TOKEN", "HF_API_TOKEN")
CACHE_VARS = ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE")
_TOKEN_SHAPE = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")
_REFERENCE = re.compile(r"^\$(\{\w+(:?[-?][^}]*)?\}|\w+|\(\w+\))$")
_PLACEHOLDER = re.compile(
    r"^(<.*>|\$\{?\w+\}?|\$\(\w+\)|x+|changeme|your[_-]?\w*|hf_x+|\*+|\.\.\.|)$", re.I
)
_GPU_ENGINES = ("vllm", "sglang", "tgi")
_CACHE_PATHS = ("/root/.cache/huggingface", "/data", "/.cache/huggingface")


def _hub_model(w: Workload) -> str | None:
    model = w.model()
    return model if model and HUB_ID.match(model) and not model.startswith((".", "/")) else None


def _at(w: Workload, *flags: str) -> int:
    """The line of the first flag present, else of the command, else of the workload."""
    if w.invocation is None:
        return w.line
    for flag in flags:
        if w.invocation.has(flag):
            return w.invocation.flag_line(flag)
    return w.invocation.line


def _cache_paths(w: Workload) -> set[str]:
    """Where the workload's Hugging Face cache can be: env, engine flags, image defaults."""
    paths = {e.value for e in w.env if e.name in CACHE_VARS and e.value}
    if w.invocation:
        paths |= {v for f in CACHE_FLAGS if (v := w.invocation.flag(f))}
    return paths | set(_CACHE_PATHS)


def _under(path: str, mount: str) -> bool:
    """Whether ``path`` is ``mount`` or inside it."""
    m = mount.rstrip("/")
    return path.rstrip("/") == m or path.startswith(m + "/")


def _is_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.match(value.strip()))


# --- checks ----------------------------------------------------------------------------


def _hub_download(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    for w in facts.workloads:
        model = _hub_model(w)
        # A command line on a host (shell) keeps the host's cache across restarts.
        if model is None or w.source in ("dockerfile", "shell"):
            continue
        cache_paths = _cache_paths(w)
        persistent = [
            m
            for m in w.mounts
            if m.kind in ("pvc", "hostPath", "volume", "bind")
            and any(_under(c, m.path) for c in cache_paths)
        ]
        if not persistent:
            yield rule.finding(
                facts,
                _at(w, *MODEL_FLAGS),
                f"{w.engine or 'the server'} downloads {model} from the Hub at every start: "
                "no persistent volume backs the Hugging Face cache",
            )


def _baked(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    pattern = re.compile(
        r"snapshot_download|huggingface-cli\s+download|\bhf\s+download|from_pretrained|git\s+lfs|git\s+clone\s+https://huggingface\.co"
    )
    for line, cmd in facts.run_steps:
        if pattern.search(cmd):
            yield rule.finding(facts, line, "the image downloads model weights at build time")


def _unpinned(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    for w in facts.workloads:
        model = _hub_model(w)
        if model is None:
            continue
        rev = w.revision()
        if rev is None or not SHA.match(rev):
            what = "no revision" if rev is None else f"revision {rev!r} (a branch or tag: mutable)"
            yield rule.finding(
                facts,
                _at(w, *REVISION_FLAGS, *MODEL_FLAGS),
                f"{model} is loaded with {what}",
            )
        if w.invocation and w.invocation.has(*TOKENIZER_REVISION_FLAGS):
            trev = w.invocation.flag(*TOKENIZER_REVISION_FLAGS) or ""
            if not SHA.match(trev):
                yield rule.finding(
                    facts,
                    _at(w, *TOKENIZER_REVISION_FLAGS),
                    f"tokenizer revision {trev!r} is not a commit sha",
                )
    for call in facts.python_calls:
        if call.function == "login" or call.repo is None or not HUB_ID.match(call.repo):
            continue
        kw_rev = call.kwargs.get("revision")
        if not (isinstance(kw_rev, str) and SHA.match(kw_rev)):
            yield rule.finding(
                facts, call.line, f"{call.function}({call.repo!r}) without a commit sha revision"
            )


def _token(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    for w in facts.workloads:
        for e in w.env:
            if e.name in TOKEN_VARS and e.value is not None and not e.from_secret:
                if _REFERENCE.match(e.value.strip()):
                    continue  # ${HF_TOKEN}: taken from the environment at run time
                if _is_placeholder(e.value):
                    yield rule.finding(
                        facts,
                        e.line,
                        f"{e.name} has a placeholder value meant to be replaced in the file",
                        severity="warning",
                    )
                else:
                    yield rule.finding(facts, e.line, f"{e.name} is set to a literal token")
    for line, cmd in facts.run_steps:
        m = re.search(r"(huggingface-cli|hf\s+auth)\s+login\b.*--token[ =](\S+)", cmd)
        if m:
            yield rule.finding(
                facts, line, "a build step logs in with a token: it stays in the image history"
            )
    for call in facts.python_calls:
        token = call.kwargs.get("token")
        if call.function == "login" and isinstance(token, str) and not _is_placeholder(token):
            yield rule.finding(facts, call.line, "login() with a literal token")
    env_lines = {e.line for w in facts.workloads for e in w.env if e.name in TOKEN_VARS}
    for n, text_line in enumerate(facts.text.splitlines(), 1):
        m = _TOKEN_SHAPE.search(text_line)
        # A token env var's value sits on its own line or the next: reported above.
        if m and not (env_lines & {n, n - 1}):
            yield rule.finding(facts, n, "an hf_-shaped token is written in the file")


def _trust(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    for w in facts.workloads:
        env = w.env_value("TRUST_REMOTE_CODE")
        on = (
            w.invocation is not None
            and w.invocation.has("--trust-remote-code", "--trust_remote_code")
        ) or (env is not None and (env.value or "").lower() in ("1", "true", "yes"))
        if not on:
            continue
        rev = w.revision()
        pinned = rev is not None and bool(SHA.match(rev))
        yield rule.finding(
            facts,
            _at(w, "--trust-remote-code", "--trust_remote_code"),
            "remote code from the model repo runs in the server"
            + (
                ""
                if pinned
                else ", and the revision is not pinned: the code can change at any restart"
            ),
            severity="warning" if pinned else "error",
        )
    for call in facts.python_calls:
        if call.kwargs.get("trust_remote_code") is True:
            kw_rev = call.kwargs.get("revision")
            pinned = isinstance(kw_rev, str) and bool(SHA.match(kw_rev))
            yield rule.finding(
                facts,
                call.line,
                f"{call.function}(trust_remote_code=True)"
                + ("" if pinned else " without a pinned revision"),
                severity="warning" if pinned else "error",
            )


def _pickle(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    for w in facts.workloads:
        inv = w.invocation
        if inv is None:
            continue
        if inv.flag("--load-format") in ("pt", "pickle"):
            yield rule.finding(
                facts, _at(w, "--load-format"), "--load-format pt loads pickle weights"
            )
        if inv.engine == "hfdeploy" and inv.has("--allow-pickle"):
            yield rule.finding(
                facts, _at(w, "--allow-pickle"), "--allow-pickle loads pickle weights"
            )
    for call in facts.python_calls:
        if call.kwargs.get("use_safetensors") is False:
            yield rule.finding(facts, call.line, f"{call.function}(use_safetensors=False)")
        patterns = call.kwargs.get("allow_patterns")
        if isinstance(patterns, str):
            patterns = [patterns]
        if isinstance(patterns, list | tuple) and any(
            str(p).endswith((".bin", ".pt", ".pth", ".ckpt")) for p in patterns
        ):
            yield rule.finding(
                facts, call.line, f"{call.function}(allow_patterns=...) fetches pickle weights"
            )


def _no_warmup(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    s = facts.python_server
    if s and s["app"] and s["model_loads"] and not s["warm_calls"]:
        yield rule.finding(
            facts,
            s["app_line"],
            "a custom server loads a model but runs no forward pass before it serves",
        )


def _probes(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
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
        if not w.probes:
            yield rule.finding(
                facts,
                w.line,
                f"no probes on the {w.engine} container: traffic reaches it before it is ready",
                severity="warning",
            )


def _startup_floor(engine: str) -> float:
    """The start-up budget an engine needs at least: the engine catalog's, shared with plan."""
    from hfdeploy.catalog.engines import engine_catalog

    spec = engine_catalog().get(engine)
    return float(spec.deploy.min_startup_s) if spec and spec.deploy else 120.0


def _shm(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
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
        if w.tp() * w.pp() > 1 and not w.shm and not w.host_ipc:
            yield rule.finding(
                facts,
                _at(w, *TP_FLAGS, *PP_FLAGS),
                f"tensor/pipeline parallel x{w.tp() * w.pp()} without a memory-backed /dev/shm",
            )


def _host_ipc(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    for w in facts.workloads:
        if w.host_ipc:
            yield rule.finding(
                facts,
                w.host_ipc_line or w.line,
                "the host's IPC namespace is shared for shared memory",
            )


def _gpu_limit(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
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
        elif w.gpus > 0 and w.gpus != need:
            yield rule.finding(
                facts,
                w.gpus_line or w.line,
                f"{w.gpus} GPU(s) requested but TP x PP = {need}"
                + (f" per pod of a group of {w.group_size}" if w.group_size > 1 else ""),
                severity="error",
            )


def _mem_fraction(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    for w in facts.workloads:
        if w.invocation is None:
            continue
        raw = w.invocation.flag(*MEM_FRACTION_FLAGS)
        try:
            value = float(raw) if raw is not None else None
        except ValueError:
            continue
        if value is not None and value >= 0.95:
            yield rule.finding(
                facts,
                _at(w, *MEM_FRACTION_FLAGS),
                f"GPU memory fraction {value:g} leaves no room for the CUDA context and spikes",
            )


def _image_tag(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    for w in facts.workloads:
        image = w.image
        if not image or "@sha256:" in image or image.startswith("$") or image.lower() == "scratch":
            continue
        name = image.rsplit("/", 1)[-1]
        tag = name.split(":", 1)[1] if ":" in name else None
        if tag is None or tag in ("latest", "main", "nightly", "edge"):
            yield rule.finding(
                facts,
                w.image_line or w.line,
                f"image {image} "
                + ("has no tag" if tag is None else f"uses the mutable tag {tag!r}"),
            )


def _online(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    for w in facts.workloads:
        model = w.model()
        if not model or _hub_model(w) or w.source == "dockerfile" or w.engine == "hfdeploy":
            continue
        offline = w.env_value("HF_HUB_OFFLINE")
        if offline is None or (offline.value or "") not in ("1", "true", "True"):
            yield rule.finding(
                facts,
                _at(w, *MODEL_FLAGS),
                f"the model is read from {model} but HF_HUB_OFFLINE is not set: "
                "the server may still call the Hub",
            )


def _cache_ephemeral(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    for w in facts.workloads:
        if _hub_model(w) is None:
            continue
        cache = _cache_paths(w)
        for m in w.mounts:
            if m.kind in ("emptyDir", "memory", "tmpfs") and any(_under(c, m.path) for c in cache):
                yield rule.finding(
                    facts,
                    m.line,
                    f"the Hugging Face cache at {m.path} is on ephemeral storage: "
                    "the model is downloaded again on every reschedule",
                )


def _root_cache(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    for w in facts.workloads:
        if w.user != "nonroot":
            continue
        for e in w.env:
            if e.name in CACHE_VARS and (e.value or "").startswith("/root"):
                yield rule.finding(
                    facts,
                    e.line,
                    f"{e.name}={e.value} is under /root, which a non-root user cannot write",
                )


def _fits(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    from hfdeploy.audit.memory import does_not_fit

    for w in facts.workloads:
        message = does_not_fit(w)
        if message:
            yield rule.finding(facts, w.invocation.line if w.invocation else w.line, message)


_VLLM_API_SERVER = "vllm.entrypoints.openai.api_server"
_VLLM_TAG = re.compile(r"vllm-openai(?:-[\w]+)?:v?(\d+)\.(\d+)")


def _deprecated_vllm(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
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


_CHECKS: dict[str, Check] = {
    "HFD001": _hub_download,
    "HFD002": _baked,
    "HFD003": _unpinned,
    "HFD004": _token,
    "HFD005": _trust,
    "HFD006": _pickle,
    "HFD007": _no_warmup,
    "HFD008": _probes,
    "HFD009": _shm,
    "HFD010": _host_ipc,
    "HFD011": _gpu_limit,
    "HFD012": _mem_fraction,
    "HFD013": _image_tag,
    "HFD014": _online,
    "HFD015": _cache_ephemeral,
    "HFD016": _root_cache,
    "HFD017": _fits,
    "HFD018": _deprecated_vllm,
}


def _no_check(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    return iter(())


def _load() -> tuple[Rule, ...]:
    raw = tomllib.loads(resources.files("hfdeploy.audit").joinpath("rules.toml").read_text("utf-8"))
    return tuple(
        Rule(rid, r["tag"], r["severity"], r["title"], r["impact"], r["recommendation"],
             _CHECKS.get(rid, _no_check), r["detects"])
        for rid, r in raw.items()
    )  # fmt: skip


_ALL = _load()
#: The parse-error pseudo-rule: reported by the runner, never by a check.
PARSE_ERROR: Rule = _ALL[0]
RULES: tuple[Rule, ...] = tuple(r for r in _ALL if r.id in _CHECKS)
