"""Shell and PowerShell scripts → a ``Workload`` per engine command line or ``docker run``."""

from __future__ import annotations

import re
import shlex

from hfdeploy.audit.model import Argv, EnvVar, Mount, MountKind, Workload, detect_invocation

__all__ = ["shell_workloads"]


def shell_workloads(path: str, text: str) -> list[Workload]:
    """One workload per `docker run` line and per command line that starts an engine."""
    return [w for line, argv in _commands(text) for w in _shell(path, line, argv)]


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
    "--cap-add",
    "--cap-drop",
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
                uid = value.split(":", 1)[0]
                w.uid = int(uid) if uid.isdigit() else None
            case "-p" | "--publish":
                port = value.rsplit(":", 1)[-1].split("/", 1)[0]
                if port.isdigit():
                    w.ports.append((int(port), line))
            case "--cap-drop":
                w.caps_drop |= {value.upper()}
                w.caps_line = line
            case "--cap-add":
                w.caps_add |= {value.upper()}
        i += 1
    if i < len(args):
        w.image = args[i]
        rest = args[i + 1 :]
        w.invocation = detect_invocation(rest, line, w.image)
        own = any(a == "--entrypoint" or a.startswith("--entrypoint=") for a in args[:i])
        w.exec = Argv(tuple(rest), (line,) * len(rest), own_entrypoint=own)
    return w
