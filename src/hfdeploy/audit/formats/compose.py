"""Compose files → one ``Workload`` per service."""

from __future__ import annotations

import os
import re
import shlex

from hfdeploy.audit.model import (
    Argv,
    EnvVar,
    Mount,
    Probe,
    Workload,
    detect_invocation,
    shell_script,
)
from hfdeploy.audit.yamlsrc import Doc

__all__ = ["compose_workloads"]


def compose_workloads(path: str, doc: Doc) -> list[Workload]:
    """The services of one YAML document (none when it has no ``services`` mapping)."""
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
        head = shlex.split(ep) if isinstance(ep, str) else [str(x) for x in ep or []]
        w.invocation = detect_invocation([*head, *argv], doc.line(*sp, "command"), w.image)
        # Compose splits a string command into arguments itself (no shell reads it).
        lines = [_item_line(doc, (*sp, "entrypoint"), ep, k) for k in range(len(head))] + [
            _item_line(doc, (*sp, "command"), cmd, k) for k in range(len(argv))
        ]
        w.exec = Argv((*head, *argv), tuple(lines), own_entrypoint=ep is not None)
        w.script = shell_script([*head, *argv], lines, doc.line(*sp, "command"))
        env = svc.get("environment") or {}
        if isinstance(env, dict):
            for ename, value in env.items():
                shown = None if value is None else str(value)
                w.env.append(EnvVar(str(ename), shown, doc.line(*sp, "environment", ename)))
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
            w.mounts.append(Mount(target, kind, line, ro, source))  # type: ignore[arg-type]
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
        uid = str(user).split(":", 1)[0] if user is not None else ""
        w.uid = int(uid) if uid.isdigit() else None
        _ports_and_caps(w, doc, sp, svc)
        _health_and_build(w, doc, sp, svc)
        out.append(w)
    return out


def _item_line(doc: Doc, at: tuple[str | int, ...], value: object, k: int) -> int:
    return doc.line(*at, k) if isinstance(value, list) else doc.line(*at)


def _ports_and_caps(
    w: Workload, doc: Doc, sp: tuple[str | int, ...], svc: dict[str, object]
) -> None:
    """Container ports (``ports`` and ``expose``) and the capabilities dropped and added."""
    for key in ("ports", "expose"):
        items = svc.get(key)
        for k, p in enumerate(items if isinstance(items, list) else []):
            target = p.get("target") if isinstance(p, dict) else str(p).rsplit(":", 1)[-1]
            port = str(target).split("/", 1)[0].split("-", 1)[0]
            if port.isdigit():
                w.ports.append((int(port), doc.line(*sp, key, k)))
    drop, add = svc.get("cap_drop"), svc.get("cap_add")
    w.caps_drop = frozenset(str(c).upper() for c in (drop if isinstance(drop, list) else []))
    w.caps_add = frozenset(str(c).upper() for c in (add if isinstance(add, list) else []))
    w.caps_line = doc.line(*sp, "cap_drop")


def _health_and_build(
    w: Workload, doc: Doc, sp: tuple[str | int, ...], svc: dict[str, object]
) -> None:
    """The service's ``healthcheck`` (as a probe) and the Dockerfile ``build`` names."""
    check = svc.get("healthcheck")
    if isinstance(check, dict) and not check.get("disable"):
        test = check.get("test")
        items = shlex.split(test) if isinstance(test, str) else [str(t) for t in test or []]
        if items[:1] == ["CMD-SHELL"] and len(items) == 2:
            items = shlex.split(items[1])
        elif items[:1] in (["CMD"], ["CMD-SHELL"]):
            items = items[1:]
        if items and items != ["NONE"]:
            timeout = _seconds(check.get("timeout"))
            w.probes.append(Probe("healthcheck", doc.line(*sp, "healthcheck", "test"),
                                  timeout=30 if timeout is None else timeout,
                                  command=tuple(items)))  # fmt: skip
    build = svc.get("build")
    spec = build if isinstance(build, dict) else {"context": build} if build else {}
    context = str(spec.get("context") or ".")
    if spec and "://" not in context and not str(context).startswith("git@"):
        name = str(spec.get("dockerfile") or "Dockerfile")
        w.build = os.path.normpath(os.path.join(os.path.dirname(w.file), context, name))
        w.build_line = doc.line(*sp, "build")


def _seconds(value: object) -> float | None:
    """A compose duration (``30s``, ``1m30s``, ``500ms``) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(value or ""))
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    return sum(float(n) * scale[u] for n, u in parts) if parts else None
