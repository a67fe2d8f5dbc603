"""From file text to facts: workloads, Dockerfile build steps, Python Hub calls.

Pure: every function takes the file's name and text. Formats: Kubernetes YAML
(multi-document; Deployment, StatefulSet, DaemonSet, Job, Pod, InferenceService,
LeaderWorkerSet), compose files, Dockerfiles, shell / PowerShell scripts, Python.
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from hfdeploy.audit.model import (
    EnvVar,
    Mount,
    MountKind,
    Probe,
    PythonCall,
    Workload,
    detect_invocation,
)
from hfdeploy.audit.yamlsrc import Doc, load_docs
from hfdeploy.errors import YamlParseError

__all__ = ["FileFacts", "classify", "extract"]

_DOCKERFILE = re.compile(
    r"(^|/)(Dockerfile|Containerfile)([.-][\w.-]*)?$|\.(dockerfile|containerfile)$", re.I
)
_COMPOSE = re.compile(r"(^|/)(docker-)?compose([.-][\w.-]*)?\.ya?ml$", re.I)

_GPU_LABELS = (
    "nvidia.com/gpu.product",
    "cloud.google.com/gke-accelerator",
    "node.kubernetes.io/instance-type",
    "karpenter.k8s.aws/instance-gpu-name",
)


@dataclass(slots=True)
class FileFacts:
    """Everything rules look at in one file."""

    path: str
    kind: str
    text: str
    workloads: list[Workload] = field(default_factory=list)
    run_steps: list[tuple[int, str]] = field(default_factory=list)  # Dockerfile RUN
    python_calls: list[PythonCall] = field(default_factory=list)
    python_server: dict[str, Any] | None = None
    parse_error: tuple[int, str] | None = None


def classify(path: str, text: str) -> str | None:
    """The file's kind, from its name and, for YAML, its content; None to skip it."""
    if _DOCKERFILE.search(path):
        return "dockerfile"
    if _COMPOSE.search(path):
        return "compose"
    low = path.lower()
    if low.endswith((".yaml", ".yml")):
        if re.search(r"^\s*apiVersion\s*:", text, re.M) and re.search(r"^\s*kind\s*:", text, re.M):
            return "kubernetes"
        if re.search(r"^services\s*:", text, re.M):
            return "compose"
        return None
    if low.endswith((".sh", ".bash", ".ps1", ".zsh")):
        return "shell"
    if low.endswith(".py"):
        return "python"
    return None


def extract(path: str, text: str, kind: str) -> FileFacts:
    facts = FileFacts(path, kind, text)
    try:
        match kind:
            case "kubernetes":
                for doc in load_docs(text, file=path):
                    facts.workloads.extend(_k8s(path, doc))
            case "compose":
                for doc in load_docs(text, file=path):
                    facts.workloads.extend(_compose(path, doc))
            case "dockerfile":
                _dockerfile(facts)
            case "shell":
                for line, argv in _commands(text):
                    facts.workloads.extend(_shell(path, line, argv))
            case "python":
                _python(facts)
    except YamlParseError as e:
        facts.parse_error = (e.line or 1, e.reason)
    except ValueError as e:  # shlex's unclosed quotes, a count that is not a number
        facts.parse_error = (1, str(e))
    except SyntaxError as e:
        facts.parse_error = (e.lineno or 1, f"Python syntax error: {e.msg}")
    return facts


# --- Kubernetes ----------------------------------------------------------------------


def _pod_spec(doc: Doc) -> list[tuple[tuple[str | int, ...], dict[str, Any], str]]:
    """(path, pod spec, kind) for every pod template in a document."""
    data = doc.data
    if not isinstance(data, dict):
        return []
    kind = str(data.get("kind", ""))
    spec = data.get("spec") or {}
    if not isinstance(spec, dict):
        return []
    out: list[tuple[tuple[str | int, ...], dict[str, Any], str]] = []
    if kind == "Pod":
        out.append((("spec",), spec, kind))
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        tpl = (spec.get("template") or {}).get("spec")
        if isinstance(tpl, dict):
            out.append((("spec", "template", "spec"), tpl, kind))
    elif kind == "CronJob":
        tpl = (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get(
            "spec"
        )
        if isinstance(tpl, dict):
            out.append((("spec", "jobTemplate", "spec", "template", "spec"), tpl, kind))
    elif kind == "LeaderWorkerSet":
        lw = spec.get("leaderWorkerTemplate") or {}
        for part in ("leaderTemplate", "workerTemplate"):
            tpl = (lw.get(part) or {}).get("spec")
            if isinstance(tpl, dict):
                out.append((("spec", "leaderWorkerTemplate", part, "spec"), tpl, kind))
    elif kind == "InferenceService":
        predictor = spec.get("predictor") or {}
        if isinstance(predictor, dict):
            out.append((("spec", "predictor"), predictor, kind))
    return out


def _k8s(path: str, doc: Doc) -> list[Workload]:
    workloads = []
    for base, pod, kind in _pod_spec(doc):
        volumes = {v.get("name"): v for v in pod.get("volumes") or [] if isinstance(v, dict)}
        selector = pod.get("nodeSelector") or {}
        node_gpu = next((str(selector[k]) for k in _GPU_LABELS if k in selector), None)
        pod_user = _k8s_user(pod.get("securityContext"))
        containers = pod.get("containers") or []
        if kind == "InferenceService" and not containers:
            model = pod.get("model") if isinstance(pod.get("model"), dict) else None
            containers = [model] if model else []
            base = (*base, "model")
        for i, c in enumerate(containers):
            if not isinstance(c, dict):
                continue
            cp = (
                (*base, "containers", i)
                if kind != "InferenceService" or "containers" in pod
                else base
            )
            w = Workload(path, doc.line(*cp), "kubernetes", name=str(c.get("name", "")), kind=kind)
            if kind == "LeaderWorkerSet":
                size = ((doc.data.get("spec") or {}).get("leaderWorkerTemplate") or {}).get("size")
                w.group_size = size if isinstance(size, int) and size > 0 else 1
            w.image = c.get("image")
            w.image_line = doc.line(*cp, "image")
            command = c.get("command") or []
            args = c.get("args") or []
            argv = [str(x) for x in [*command, *args]]
            arg_lines = [doc.line(*cp, "command", k) for k in range(len(command))] + [
                doc.line(*cp, "args", k) for k in range(len(args))
            ]
            w.invocation = detect_invocation(
                argv,
                doc.line(*cp, "args") if args else doc.line(*cp, "command"),
                w.image,
                arg_lines=arg_lines,
            )
            for j, e in enumerate(c.get("env") or []):
                if isinstance(e, dict) and "name" in e:
                    vf = e.get("valueFrom")
                    w.env.append(
                        EnvVar(
                            str(e["name"]),
                            None if vf else _str(e.get("value")),
                            doc.line(*cp, "env", j),
                            from_secret=bool(vf),
                        )
                    )
            for j, m in enumerate(c.get("volumeMounts") or []):
                if not isinstance(m, dict):
                    continue
                vol = volumes.get(m.get("name")) or {}
                w.mounts.append(
                    Mount(
                        str(m.get("mountPath", "")),
                        _volume_kind(vol),
                        doc.line(*cp, "volumeMounts", j),
                        bool(m.get("readOnly")),
                    )
                )
            for probe in ("liveness", "readiness", "startup"):
                p = c.get(f"{probe}Probe")
                if isinstance(p, dict):
                    w.probes.append(
                        Probe(
                            probe,
                            doc.line(*cp, f"{probe}Probe"),
                            float(p.get("initialDelaySeconds", 0)),
                            float(p.get("periodSeconds", 10)),
                            int(p.get("failureThreshold", 3)),
                        )
                    )
            limits = (c.get("resources") or {}).get("limits") or {}
            for key in ("nvidia.com/gpu", "amd.com/gpu"):
                if key in limits:
                    w.gpus = int(str(limits[key]))
                    w.gpus_line = doc.line(*cp, "resources", "limits", key)
            w.shm = any(m.path == "/dev/shm" and m.kind == "memory" for m in w.mounts)
            w.host_ipc = bool(pod.get("hostIPC"))
            w.host_ipc_line = doc.line(*base, "hostIPC")
            w.user = _k8s_user(c.get("securityContext")) or pod_user
            w.node_gpu = node_gpu
            workloads.append(w)
    return workloads


def _k8s_user(ctx: Any) -> str | None:
    if not isinstance(ctx, dict):
        return None
    if ctx.get("runAsUser") == 0:
        return "root"
    if ctx.get("runAsNonRoot") or isinstance(ctx.get("runAsUser"), int):
        return "nonroot"
    return None


def _volume_kind(vol: dict[str, Any]) -> Any:
    if "persistentVolumeClaim" in vol:
        return "pvc"
    if "emptyDir" in vol:
        ed = vol.get("emptyDir") or {}
        return "memory" if isinstance(ed, dict) and ed.get("medium") == "Memory" else "emptyDir"
    if "hostPath" in vol:
        return "hostPath"
    if "csi" in vol or "nfs" in vol:
        return "pvc"
    return "other"


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


# --- compose ---------------------------------------------------------------------------


def _compose(path: str, doc: Doc) -> list[Workload]:
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        return []
    named = (
        set((data.get("volumes") or {}).keys()) if isinstance(data.get("volumes"), dict) else set()
    )
    out = []
    for name, svc in data["services"].items():
        if not isinstance(svc, dict):
            continue
        sp = ("services", name)
        w = Workload(path, doc.line(*sp), "compose", name=str(name))
        w.image = svc.get("image")
        w.image_line = doc.line(*sp, "image")
        cmd = svc.get("command")
        argv = shlex.split(cmd) if isinstance(cmd, str) else [str(x) for x in cmd or []]
        ep = svc.get("entrypoint")
        argv = (shlex.split(ep) if isinstance(ep, str) else [str(x) for x in ep or []]) + argv
        w.invocation = detect_invocation(argv, doc.line(*sp, "command"), w.image)
        env = svc.get("environment") or {}
        if isinstance(env, dict):
            for ename, value in env.items():
                w.env.append(EnvVar(str(ename), _str(value), doc.line(*sp, "environment", ename)))
        else:
            for k, item in enumerate(env):
                ename, eq, value = str(item).partition("=")
                w.env.append(EnvVar(ename, value if eq else None, doc.line(*sp, "environment", k)))
        for k, v in enumerate(svc.get("volumes") or []):
            line = doc.line(*sp, "volumes", k)
            if isinstance(v, str):
                parts = v.split(":")
                source, target = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
                ro = len(parts) > 2 and "ro" in parts[2]
            elif isinstance(v, dict):
                source, target, ro = (
                    str(v.get("source", "")),
                    str(v.get("target", "")),
                    bool(v.get("read_only")),
                )
                if v.get("type") == "tmpfs":
                    w.mounts.append(Mount(target, "tmpfs", line))
                    continue
            else:
                continue
            kind = (
                "volume"
                if source in named or (source and not source.startswith((".", "/", "~", "$")))
                else "bind"
                if source
                else "other"
            )
            w.mounts.append(Mount(target, kind, line, ro))  # type: ignore[arg-type]
        w.shm = bool(svc.get("shm_size")) or any(
            m.path == "/dev/shm" and m.kind == "tmpfs" for m in w.mounts
        )
        w.host_ipc = svc.get("ipc") == "host"
        w.host_ipc_line = doc.line(*sp, "ipc")
        devices = (
            (((svc.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get(
                "devices"
            )
        ) or []
        for d in devices:
            if isinstance(d, dict) and (
                "gpu" in (d.get("capabilities") or []) or d.get("driver") == "nvidia"
            ):
                count = d.get("count")
                ids = d.get("device_ids")
                w.gpus = (
                    len(ids)
                    if isinstance(ids, list)
                    else (int(str(count)) if str(count).isdigit() else 0 if count is None else -1)
                )
                w.gpus_line = doc.line(*sp, "deploy")
        if svc.get("gpus") is not None:
            g = svc.get("gpus")
            w.gpus = -1 if g == "all" else int(str(g)) if str(g).isdigit() else w.gpus
            w.gpus_line = doc.line(*sp, "gpus")
        user = svc.get("user")
        w.user = (
            None if user is None else "root" if str(user) in ("0", "root", "0:0") else "nonroot"
        )
        out.append(w)
    return out


# --- shell -----------------------------------------------------------------------------


def _commands(text: str) -> list[tuple[int, list[str]]]:
    """Logical command lines (continuations joined: ``\\`` and PowerShell's backtick)."""
    out: list[tuple[int, list[str]]] = []
    buf: list[str] = []
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        stripped = raw.rstrip()
        if not buf:
            start = n
            if not stripped.strip() or stripped.lstrip().startswith("#"):
                continue
        if stripped.endswith(("\\", "`")):
            buf.append(stripped[:-1])
            continue
        buf.append(stripped)
        line = " ".join(buf)
        buf = []
        try:
            argv = shlex.split(line, comments=True, posix=True)
        except ValueError:
            argv = line.split()
        out.append((start, argv))
    return out


def _shell(path: str, line: int, argv: list[str]) -> list[Workload]:
    if not argv:
        return []
    if "docker" in argv[:2] and "run" in argv[:3]:
        return [_docker_run(path, line, argv[argv.index("run") + 1 :])]
    inv = detect_invocation(argv, line)
    if inv is None or inv.engine == "custom":
        return []
    w = Workload(path, line, "shell", invocation=inv)
    w.env = [
        EnvVar(a.split("=", 1)[0], a.split("=", 1)[1], line)
        for a in argv
        if re.match(r"^[A-Z_][A-Z0-9_]*=", a)
    ]
    return [w]


_DOCKER_VALUE_FLAGS = {
    "-e",
    "--env",
    "-v",
    "--volume",
    "--mount",
    "-p",
    "--publish",
    "--name",
    "--shm-size",
    "--ipc",
    "--gpus",
    "-u",
    "--user",
    "--network",
    "--env-file",
    "--runtime",
    "-w",
    "--workdir",
    "--entrypoint",
    "--device",
    "--memory",
    "--cpus",
    "--platform",
    "--restart",
    "--label",
    "-l",
}


def _docker_run(path: str, line: int, args: list[str]) -> Workload:
    w = Workload(path, line, "docker-run", image_line=line)
    i = 0
    while i < len(args):
        a = args[i]
        if not a.startswith("-"):
            break
        name, eq, inline = a.partition("=")
        value = (
            inline
            if eq
            else (args[i + 1] if name in _DOCKER_VALUE_FLAGS and i + 1 < len(args) else "")
        )
        if name in _DOCKER_VALUE_FLAGS and not eq:
            i += 1
        match name:
            case "-e" | "--env":
                k, _, v = value.partition("=")
                w.env.append(EnvVar(k, v if _ else None, line))
            case "-v" | "--volume":
                parts = value.split(":")
                src = parts[0] if len(parts) > 1 else ""
                kind: MountKind = (
                    "bind" if src.startswith(("/", ".", "~", "$")) else "volume" if src else "other"
                )
                w.mounts.append(
                    Mount(
                        parts[1] if len(parts) > 1 else parts[0],
                        kind,
                        line,
                        len(parts) > 2 and "ro" in parts[2],
                    )
                )
            case "--shm-size":
                w.shm = True
            case "--ipc":
                w.host_ipc = value == "host"
                w.host_ipc_line = line
            case "--gpus":
                v = value.strip("\"'")
                w.gpus = (
                    -1
                    if v == "all"
                    else int(v)
                    if v.isdigit()
                    else int(m.group(1).count(",") + 1)
                    if (m := re.search(r"device=([\d,]+)", v))
                    else -1
                )
                w.gpus_line = line
            case "-u" | "--user":
                w.user = "root" if value in ("0", "root", "0:0") else "nonroot"
        i += 1
    if i < len(args):
        w.image = args[i]
        w.invocation = detect_invocation(args[i + 1 :], line, w.image)
    return w


# --- Dockerfile ------------------------------------------------------------------------


def _dockerfile(facts: FileFacts) -> None:
    w = Workload(facts.path, 1, "dockerfile")
    env: dict[str, EnvVar] = {}
    entrypoint: list[str] = []
    cmd: list[str] = []
    entry_line = cmd_line = 0
    for line, instr, rest in _instructions(facts.text):
        match instr:
            case "FROM":
                parts = rest.split()
                image = next((p for p in parts if not p.startswith("--")), None)
                w.image, w.image_line, w.line = image, line, line
            case "RUN":
                facts.run_steps.append((line, rest))
            case "ENV" | "ARG":
                for k, v in _env_pairs(rest):
                    if instr == "ENV" or v is not None:
                        env[k] = EnvVar(k, v, line)
            case "USER":
                name = rest.split(":")[0].strip()
                w.user = "root" if name in ("root", "0") else "nonroot"
            case "ENTRYPOINT":
                entrypoint, entry_line = _exec_form(rest), line
            case "CMD":
                cmd, cmd_line = _exec_form(rest), line
    # The process is ENTRYPOINT + CMD (the last of each counts, as in Docker).
    if entrypoint or cmd:
        w.invocation = detect_invocation([*entrypoint, *cmd], entry_line or cmd_line, w.image)
    w.env = list(env.values())
    facts.workloads.append(w)


def _instructions(text: str) -> list[tuple[int, str, str]]:
    out: list[tuple[int, str, str]] = []
    buf: list[str] = []
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        if not buf:
            if not s or s.startswith("#"):
                continue
            start = n
        elif s.startswith("#"):
            continue
        if s.endswith("\\"):
            buf.append(s[:-1])
            continue
        buf.append(s)
        joined = " ".join(buf)
        buf = []
        instr, _, rest = joined.partition(" ")
        out.append((start, instr.upper(), rest.strip()))
    return out


def _env_pairs(rest: str) -> list[tuple[str, str | None]]:
    try:
        parts = shlex.split(rest)
    except ValueError:
        parts = rest.split()
    if len(parts) >= 2 and "=" not in parts[0]:
        return [(parts[0], " ".join(parts[1:]))]  # legacy `ENV KEY value`
    return [(p.split("=", 1)[0], p.split("=", 1)[1] if "=" in p else None) for p in parts]


def _exec_form(rest: str) -> list[str]:
    import json

    if rest.startswith("["):
        try:
            return [str(x) for x in json.loads(rest)]
        except ValueError:
            pass
    try:
        return shlex.split(rest)
    except ValueError:
        return rest.split()


# --- Python ----------------------------------------------------------------------------

_HUB_FUNCS = {
    "from_pretrained", "pipeline", "snapshot_download", "hf_hub_download",
    "SentenceTransformer", "CrossEncoder", "login", "LLM",
}  # fmt: skip


def _python(facts: FileFacts) -> None:
    tree = ast.parse(facts.text, filename=facts.path)
    server: dict[str, Any] = {
        "app": False, "app_line": 1, "model_loads": 0, "warm_calls": 0, "startup": False,
    }  # fmt: skip
    startup_funcs: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _call_name(node.func)
            if name in ("FastAPI", "Flask", "LitServer", "Starlette"):
                server["app"] = True
                server["app_line"] = node.lineno
                for kw in node.keywords:
                    if kw.arg == "lifespan" and isinstance(kw.value, ast.Name):
                        startup_funcs.add(kw.value.id)
            if name in _HUB_FUNCS:
                facts.python_calls.append(_python_call(name, node))
                if name != "login":
                    server["model_loads"] += 1
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and _call_name(dec.func) == "on_event":
                    startup_funcs.add(node.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in startup_funcs:
            server["startup"] = True
            for inner in ast.walk(node):
                if isinstance(inner, ast.Call) and _call_name(inner.func) in (
                    "encode", "generate", "predict", "forward", "warmup", "warm_up", "__call__",
                ):  # fmt: skip
                    server["warm_calls"] += 1
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and "warm" in node.name.lower():
            server["warm_calls"] += 1
    facts.python_server = server


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _python_call(name: str, node: ast.Call) -> PythonCall:
    kwargs: dict[str, object] = {}
    for kw in node.keywords:
        if kw.arg is None:
            continue
        try:
            kwargs[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            kwargs[kw.arg] = _Dynamic()
    repo = None
    first: ast.expr | None = node.args[0] if node.args else None
    if name == "pipeline" and len(node.args) < 2:
        first = next((kw.value for kw in node.keywords if kw.arg == "model"), None)
    elif name == "pipeline":
        first = node.args[1]
    elif first is None:
        key = {"snapshot_download": "repo_id", "hf_hub_download": "repo_id"}.get(name, "model")
        first = next(
            (
                kw.value
                for kw in node.keywords
                if kw.arg in (key, "pretrained_model_name_or_path", "model_name_or_path")
            ),
            None,
        )
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        repo = first.value
    return PythonCall(name, node.lineno, repo, kwargs)


class _Dynamic:
    """A keyword argument whose value is not a literal (read from a variable or env)."""

    def __repr__(self) -> str:
        return "<dynamic>"
