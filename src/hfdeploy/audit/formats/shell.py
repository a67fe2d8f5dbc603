"""Shell and PowerShell scripts → a ``Workload`` per engine command line or ``docker run``.

The script is read top to bottom as a shell runs it: assignments, ``export``s and
``${VAR:=default}`` bind variables, ``source FILE`` and ``set -a`` too, and each command's
words are expanded before they are read. A ``docker run``'s ``-e`` and ``--env-file``
variables are the container's environment, in which a ``sh -c`` script it runs is expanded.
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Callable

from hfdeploy.audit.invocation import detect_invocation, script_commands, split_assignments
from hfdeploy.audit.model import Argv, EnvVar, Mount, MountKind, Workload
from hfdeploy.audit.variables import Binding, Expanded, Ref, Scope, dotenv

__all__ = ["shell_workloads"]

#: Reads a file beside the one audited: its text, or None when it is absent or out of reach.
Reader = Callable[[str], str | None]
Words = list[tuple[Expanded, int]]


def shell_workloads(path: str, text: str, read: Reader | None = None) -> list[Workload]:
    """One workload per `docker run` line and per command line that starts an engine."""
    if path.lower().endswith(".ps1"):  # PowerShell continues a line with a backtick
        text = re.sub(r"`[ \t]*\n", "\\\n", text)
    starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_of(offset: int) -> int:
        return bisect.bisect_right(starts, offset)

    scope = Scope("the environment that runs the script")
    out: list[Workload] = []
    for command in script_commands(text, scope, line=line_of, file=path):
        words = [w.text for w, _ in command]
        line = line_of(command[0][1])
        if words[0] in ("source", ".") and len(words) > 1 and read is not None:
            _source(path, line, words[1], scope, read)
        elif words[0] == "export" and read is not None:  # export $(grep -v '^#' .env | xargs)
            for file in _env_files(" ".join(words[1:])):
                _source(path, line, file, scope, read, exported=True)
        elif "run" in words[1:3] and words[0] in ("docker", "podman", "sudo"):
            # Findings on a command are reported at its first line, where a suppression
            # comment goes; those on a variable, at the line that sets it.
            at, first = words.index("run") + 1, line_of(command[0][1])
            out.append(_docker_run(path, command[at:], first, scope, read))
        elif (found := _engine(path, command, line_of, scope)) is not None:
            out.append(found)
    return out


def _source(path: str, line: int, name: str, scope: Scope, read: Reader, *,
            exported: bool = False) -> None:  # fmt: skip
    """``source FILE`` at ``line``: its assignments (an env file, mostly), read beside the
    script, each traced to its line in that file."""
    full = os.path.normpath(os.path.join(os.path.dirname(path), name))
    for b in dotenv(read(full) or "", file=full, origin=name):
        scope.bind(Binding(b.name, b.value, line, f"source {name}", file=path,
                           exported=exported or scope.export_all,
                           refs=(Ref(b.name, b.name, "set", b),)))  # fmt: skip


def _env_files(text: str) -> list[str]:
    """The env files ``export $(grep -v '^#' .env | xargs)`` and the like read."""
    inner = text[2:-1] if text.startswith("$(") and text.endswith(")") else ""
    words = re.findall(r"[^\s|'\"()]+", inner)
    return [w for w in words if not w.startswith("-") and re.fullmatch(r"[\w./~-]*env[\w.-]*", w)
            and w not in ("xargs", "env", "printenv")][-1:]  # fmt: skip


def _engine(path: str, command: Words, line_of: Callable[[int], int], scope: Scope
            ) -> Workload | None:  # fmt: skip
    """An engine started on the host, with the variables it inherits: the script's exported
    ones and the command's own ``NAME=value`` prefix (reported at the command's first line)."""
    prefix, rest = split_assignments(command)
    if not rest:
        return None
    line = line_of(command[0][1])
    inv = detect_invocation([w.text for w, _ in rest], line,
                            arg_lines=[line] * len(rest),
                            arg_refs=[w.refs for w, _ in rest],
                            scope=scope.child())  # fmt: skip
    if inv is None or inv.engine == "custom":
        return None
    w = Workload(path, line, "shell", invocation=inv)
    env = {b.name: _env(b) for b in scope.exported()}
    for name, value, _ in prefix:
        env[name] = EnvVar(name, value.text, line, refs=value.refs)
    w.env = list(env.values())
    return w


def _env(b: Binding) -> EnvVar:
    return EnvVar(b.name, b.value, b.line, refs=b.refs, origin=b.origin)


_DOCKER_VALUE_FLAGS = frozenset({
    "-e", "--env", "-v", "--volume", "--mount", "-p", "--publish", "--name", "--shm-size",
    "--ipc", "--gpus", "-u", "--user", "--network", "--env-file", "--runtime", "-w",
    "--workdir", "--entrypoint", "--device", "--memory", "--cpus", "--platform", "--restart",
    "--label", "-l", "--cap-add", "--cap-drop", "--hostname", "-h", "--add-host", "--ulimit",
})  # fmt: skip


def _docker_run(path: str, words: Words, line: int, scope: Scope,
                read: Reader | None) -> Workload:  # fmt: skip
    """``docker run [OPTIONS] IMAGE [ARG...]``: the container and what it starts, all at the
    command's first line."""
    w = Workload(path, line, "docker-run", image_line=line)
    entrypoint: list[tuple[Expanded, int]] = []
    i = 0
    while i < len(words) and words[i][0].text.startswith("-"):
        name, eq, inline = words[i][0].text.partition("=")
        takes = name in _DOCKER_VALUE_FLAGS and not eq and i + 1 < len(words)
        value = words[i + 1] if takes else (Expanded(inline, words[i][0].refs), words[i][1])
        _docker_option(w, name, value, line, scope, read)
        if name == "--entrypoint":
            entrypoint = [value]
        i += 2 if takes else 1
    if i < len(words):
        w.image = words[i][0].text
        rest = [*entrypoint, *words[i + 1 :]]
        container = Scope("the image's environment")
        for e in w.env:
            container.bind(Binding(e.name, e.value, e.line, "-e", file=path))
        argv, lines = [x.text for x, _ in rest], [line] * len(rest)
        w.invocation = detect_invocation(argv, line, w.image, arg_lines=lines,
                                         arg_refs=[x.refs for x, _ in rest],
                                         scope=container)  # fmt: skip
        w.exec = Argv(tuple(argv[len(entrypoint) :]), tuple(lines[len(entrypoint) :]),
                      own_entrypoint=bool(entrypoint))  # fmt: skip
    return w


def _docker_option(w: Workload, name: str, word: tuple[Expanded, int], line: int,
                   scope: Scope, read: Reader | None) -> None:  # fmt: skip
    """One ``docker run`` option."""
    value = word[0].text
    match name:
        case "-e" | "--env":
            k, eq, v = value.partition("=")
            if eq:
                w.env.append(EnvVar(k, v, line, refs=word[0].refs))
            else:  # `-e NAME`: the variable of the shell that runs docker, if exported
                b = scope.get(k)
                if b is not None and b.exported:
                    w.env.append(EnvVar(k, b.value, line, refs=(Ref(k, k, "set", b),)))
                else:
                    w.env.append(EnvVar(k, None, line))
        case "--env-file" if read is not None:
            full = os.path.normpath(os.path.join(os.path.dirname(w.file), value))
            for b in dotenv(read(full) or "", file=full, origin=f"--env-file {value}"):
                w.env.append(EnvVar(b.name, b.value, line, refs=(Ref(b.name, b.name, "set", b),),
                                    origin=b.origin))  # fmt: skip
        case "-v" | "--volume":
            parts = value.split(":")
            src = parts[0] if len(parts) > 1 else ""
            kind: MountKind = (
                "bind" if src.startswith(("/", ".", "~", "$")) else "volume" if src else "other"
            )
            target = parts[1] if len(parts) > 1 else parts[0]
            w.mounts.append(Mount(target, kind, line, len(parts) > 2 and "ro" in parts[2], src))
        case "--shm-size":
            w.shm = True
        case "--ipc":
            w.host_ipc = value == "host"
            w.host_ipc_line = line
        case "--gpus":
            w.gpus, w.gpus_line = _gpus(value.strip("\"'")), line
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


def _gpus(value: str) -> int:
    """``--gpus``: a count, ``all`` (-1: every GPU of the host) or ``device=0,1``."""
    if value == "all":
        return -1
    if value.isdigit():
        return int(value)
    m = re.search(r"device=([\w,-]+)", value)
    return m.group(1).count(",") + 1 if m else -1
