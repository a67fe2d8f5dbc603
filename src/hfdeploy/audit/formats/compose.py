"""Compose files → one ``Workload`` per service, with compose's interpolation applied (the
``.env`` beside the file, defaults) and each service's environment (``environment`` over
``env_file``)."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from typing import Any

from hfdeploy.audit.invocation import detect_invocation, shell_script
from hfdeploy.audit.model import (
    Argv,
    EnvVar,
    Mount,
    Probe,
    Workload,
)
from hfdeploy.audit.shellwords import shell_words
from hfdeploy.audit.variables import (
    Binding,
    Expanded,
    Ref,
    Scope,
    dotenv,
    interpolate,
)
from hfdeploy.audit.yamlsrc import Doc

__all__ = ["compose_scope", "compose_workloads"]

Path = tuple[str | int, ...]
#: Reads a file beside the one audited: its text, or None when it is absent or out of reach.
Reader = Callable[[str], str | None]


def compose_scope(path: str, read: Reader | None) -> Scope:
    """What compose interpolates a file with: the ``.env`` beside it, and the environment of
    the shell that runs compose (which the audit cannot see)."""
    scope = Scope("the shell that runs compose")
    env_path = os.path.join(os.path.dirname(path), ".env")
    text = read(env_path) if read else None
    for b in dotenv(text or "", file=env_path, origin=".env"):
        scope.bind(b)
    return scope


def _interpolated(node: Any, scope: Scope, at: Path, found: dict[Path, Expanded]) -> Any:
    """The document with every string interpolated; ``found``: each string with variables."""
    if isinstance(node, dict):
        return {k: _interpolated(v, scope, (*at, k), found) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolated(v, scope, (*at, k), found) for k, v in enumerate(node)]
    if isinstance(node, str) and "$" in node:
        found[at] = interpolate(node, scope)
        return found[at].text
    return node


def _words(raw: Any, value: Any, at: Path, found: dict[Path, Expanded],
           scope: Scope) -> list[Expanded]:  # fmt: skip
    """A command or entrypoint's arguments with their variables: a string is split into
    arguments (compose does, no shell), each interpolated; a list item is one argument."""
    if isinstance(raw, str):  # interpolated as a whole, then split
        whole = interpolate(raw, scope)
        spans = list(zip(whole.refs, whole.spans, strict=False))
        words = shell_words(whole.text, scope, literal=True)
        return [Expanded(w.text, _overlapping(spans, start, start + len(w.text) + 2))
                for w, start in words]  # fmt: skip
    return [found.get((*at, k), Expanded(str(x))) for k, x in enumerate(value or [])]


def _overlapping(spans: list[tuple[Ref, tuple[int, int]]], start: int, end: int
                 ) -> tuple[Ref, ...]:  # fmt: skip
    """The references whose values lie in ``[start, end)`` of the interpolated text."""
    return tuple(r for r, (s, e) in spans if s < end and e > start)


def compose_workloads(
    path: str, doc: Doc, scope: Scope | None = None, read: Reader | None = None
) -> list[Workload]:
    """The services of one YAML document (none when it has no ``services`` mapping), its
    values interpolated in ``scope`` (:func:`compose_scope`); ``read`` reads env files."""
    scope = scope or Scope("the shell that runs compose")
    found: dict[Path, Expanded] = {}
    raw = doc.data
    data = _interpolated(raw, scope, (), found)
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
        raw_svc = raw["services"][name]
        cmd, ep = svc.get("command"), svc.get("entrypoint")
        # Compose splits a string command into arguments itself (no shell reads it).
        head = _words(raw_svc.get("entrypoint"), ep, (*sp, "entrypoint"), found, scope)
        tail = _words(raw_svc.get("command"), cmd, (*sp, "command"), found, scope)
        words = [*head, *tail]
        argv = [x.text for x in words]
        lines = [_item_line(doc, (*sp, "entrypoint"), ep, k) for k in range(len(head))] + [
            _item_line(doc, (*sp, "command"), cmd, k) for k in range(len(tail))
        ]
        _environment(w, doc, sp, svc, found, read)
        w.invocation = detect_invocation(
            argv, doc.line(*sp, "command"), w.image, arg_lines=lines, expanded=words,
            scope=_container_scope(w),
        )  # fmt: skip
        w.exec = Argv(tuple(argv), tuple(lines), own_entrypoint=ep is not None)
        w.script = shell_script(argv, lines, doc.line(*sp, "command"))
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


def _environment(w: Workload, doc: Doc, sp: Path, svc: dict[str, Any],
                 found: dict[Path, Expanded], read: Reader | None) -> None:  # fmt: skip
    """The container's variables: ``env_file`` files (read beside the compose file), then
    ``environment``, which wins."""
    env: dict[str, EnvVar] = {}
    files = svc.get("env_file")
    for k, item in enumerate([files] if isinstance(files, str | dict) else files or []):
        rel = str(item.get("path", "")) if isinstance(item, dict) else str(item)
        full = os.path.normpath(os.path.join(os.path.dirname(w.file), rel))
        text = read(full) if read else None
        line = doc.line(*sp, "env_file", k) if isinstance(files, list) else doc.line(*sp)
        for b in dotenv(text or "", file=full, origin=f"env_file {rel}"):
            env[b.name] = EnvVar(b.name, b.value, line, refs=(Ref(b.name, b.name, "set", b),),
                                 origin=b.origin)  # fmt: skip
    items = svc.get("environment") or {}
    pairs: list[tuple[str, object, Path]] = []
    if isinstance(items, dict):
        pairs = [(str(k), v, (*sp, "environment", k)) for k, v in items.items()]
    else:  # `- NAME` alone passes the variable through from compose's shell: unknown here
        for k, item in enumerate(items):
            ename, eq, text = str(item).partition("=")
            pairs.append((ename, text if eq else None, (*sp, "environment", k)))
    for ename, value, at in pairs:
        refs = found[at].refs if at in found else ()
        env[ename] = EnvVar(ename, None if value is None else str(value), doc.line(*at),
                            refs=refs)  # fmt: skip
    w.env = list(env.values())


def _container_scope(w: Workload) -> Scope:
    """The variables a shell in the container sees: the service's environment."""
    scope = Scope("the image's environment")
    for e in w.env:
        scope.bind(Binding(e.name, e.value, e.line, e.origin or "environment", file=w.file))
    return scope


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
