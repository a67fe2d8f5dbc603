"""Dockerfiles → the ``Workload`` the image runs, its ``RUN`` steps and what it copies in."""

from __future__ import annotations

import json
import re
import shlex

from hfdeploy.audit.model import Argv, EnvVar, Probe, Workload, detect_invocation, shell_script
from hfdeploy.audit.objects import CopySource

__all__ = ["read_dockerfile"]


def read_dockerfile(
    path: str, text: str
) -> tuple[Workload, list[tuple[int, str]], list[CopySource]]:
    """The process the image starts (ENTRYPOINT + CMD, ENV, USER, FROM), each RUN step, and
    each COPY / ADD source taken from the build context."""
    w = Workload(path, 1, "dockerfile")
    run_steps: list[tuple[int, str]] = []
    copies: list[CopySource] = []
    env: dict[str, EnvVar] = {}
    entrypoint: list[str] = []
    cmd: list[str] = []
    entry_line = cmd_line = 0
    exec_form = {"ENTRYPOINT": True, "CMD": True}
    shells = {"ENTRYPOINT": "", "CMD": ""}  # each as written, for a shell form's script
    for line, instr, rest in _instructions(text):
        match instr:
            case "FROM":
                parts = rest.split()
                image = next((p for p in parts if not p.startswith("--")), None)
                w.image, w.image_line, w.line = image, line, line
            case "RUN":
                run_steps.append((line, rest))
            case "ENV" | "ARG":
                for k, v in _env_pairs(rest):
                    if instr == "ENV" or v is not None:
                        env[k] = EnvVar(k, v, line)
            case "USER":
                name = rest.split(":")[0].strip()
                w.user = "root" if name in ("root", "0") else "nonroot"
            case "ENTRYPOINT":
                entrypoint, entry_line = _exec_form(rest), line
                exec_form[instr], shells[instr] = rest.startswith("["), rest
            case "CMD":
                cmd, cmd_line = _exec_form(rest), line
                exec_form[instr], shells[instr] = rest.startswith("["), rest
            case "COPY" | "ADD":
                copies.extend(CopySource(p, line) for p in _context_sources(rest))
            case "HEALTHCHECK":
                w.probes = _healthcheck(line, rest)
    # The process is ENTRYPOINT + CMD (the last of each counts, as in Docker).
    lines = [entry_line] * len(entrypoint) + [cmd_line] * len(cmd)
    if entrypoint or cmd:
        at = entry_line if entrypoint else cmd_line
        w.invocation = detect_invocation([*entrypoint, *cmd], at, w.image, arg_lines=lines)
    if all(exec_form.values()) and (entrypoint or cmd):
        w.exec = Argv((*entrypoint, *cmd), tuple(lines), own_entrypoint=bool(entry_line))
        w.script = shell_script([*entrypoint, *cmd], lines, entry_line or cmd_line)
    elif entrypoint or cmd:  # a shell form runs as `/bin/sh -c TEXT`
        form = "ENTRYPOINT" if not exec_form["ENTRYPOINT"] else "CMD"
        w.script = (shells[form], entry_line if form == "ENTRYPOINT" else cmd_line)
    w.env = list(env.values())
    return w, run_steps, copies


def _healthcheck(line: int, rest: str) -> list[Probe]:
    """``HEALTHCHECK [--option=value ...] CMD command`` (``NONE``: no check)."""
    options, _, command = rest.partition("CMD")
    if rest.strip().upper() == "NONE" or not command.strip():
        return []
    timeout = re.search(r"--timeout=(\d+)s?\b", options)
    return [Probe("healthcheck", line, timeout=float(timeout.group(1)) if timeout else 30,
                  command=tuple(_exec_form(command.strip())))]  # fmt: skip


_NOT_A_PATH = re.compile(r"[*?\[$]|://|^git@|^/|^\.\.")


def _context_sources(rest: str) -> list[str]:
    """The sources a COPY / ADD takes from the build context: relative, without wildcards or
    variables; none for ``--from`` (another stage or image) or a heredoc."""
    if rest.startswith("[") or "<<" in rest:
        items = _exec_form(rest) if rest.startswith("[") else []
    else:
        items = _exec_form(rest)
    flags = [i for i in items if i.startswith("--")]
    if any(f.startswith("--from") for f in flags):
        return []
    paths = [i for i in items if not i.startswith("--")][:-1]  # the last is the destination
    return [p for p in paths if not _NOT_A_PATH.search(p)]


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
    if rest.startswith("["):
        try:
            return [str(x) for x in json.loads(rest)]
        except ValueError:
            pass
    try:
        return shlex.split(rest)
    except ValueError:
        return rest.split()
