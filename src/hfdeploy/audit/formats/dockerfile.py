"""Dockerfiles → the ``Workload`` the image runs, its ``RUN`` steps, what it copies in, its
build arguments, and the scripts its ``RUN`` steps run from the build context.

``ARG`` and ``ENV`` values are expanded as Docker does; a shell-form ``CMD``/``ENTRYPOINT``
sees ``ENV`` (not ``ARG``: build arguments are gone at run time). A ``RUN`` step that runs a
script (``python x.py``, ``python -m pkg.mod``, ``bash x.sh``, ``./x.sh``) has that script read
from the Dockerfile's folder (its build context), found through the ``COPY`` that put it in
the image; what it downloads from the Hub is baked into the image.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from hfdeploy.audit.formats.python import read_python
from hfdeploy.audit.invocation import detect_invocation, script_commands, shell_script
from hfdeploy.audit.model import Argv, EnvVar, Probe, Workload
from hfdeploy.audit.objects import CopySource
from hfdeploy.audit.variables import Binding, Scope, expand

__all__ = ["DOWNLOADS", "DockerfileFacts", "read_dockerfile"]

#: Reads a file beside the one audited: its text, or None when it is absent or out of reach.
Reader = Callable[[str], str | None]
#: Commands and calls that fetch model weights from the Hub (or a Hub git clone).
DOWNLOADS = re.compile(
    r"snapshot_download|hf_hub_download|huggingface-cli\s+download|\bhf\s+download"
    r"|from_pretrained|git\s+lfs|git\s+clone\s+\S*huggingface\.co"
)
_HUB_LOADS = frozenset({"snapshot_download", "hf_hub_download", "from_pretrained", "pipeline",
                        "SentenceTransformer", "CrossEncoder", "LLM"})  # fmt: skip


@dataclass(slots=True)
class DockerfileFacts:
    """What a Dockerfile declares."""

    workload: Workload
    run_steps: list[tuple[int, str]] = field(default_factory=list)
    copies: list[CopySource] = field(default_factory=list)
    #: ``ARG`` declarations (their default, if any, as the value): build arguments' values
    #: are kept in the image's history.
    build_args: list[EnvVar] = field(default_factory=list)
    #: RUN steps that run a script of the build context which downloads weights: the step's
    #: line and what runs and downloads.
    baked: list[tuple[int, str]] = field(default_factory=list)


@dataclass(slots=True)
class _Build:
    """The state of a build as instructions are read: variables, folder, copied paths."""

    scope: Scope = field(default_factory=lambda: Scope("a build argument"))
    runtime: Scope = field(default_factory=lambda: Scope("docker run -e or the platform"))
    workdir: str = "/"
    #: (destination in the image, source in the context) of each COPY / ADD, in order.
    copied: list[tuple[str, str]] = field(default_factory=list)


def read_dockerfile(path: str, text: str, read: Reader | None = None) -> DockerfileFacts:
    """The process the image starts (ENTRYPOINT + CMD, ENV, USER, FROM), each RUN step,
    each COPY / ADD source taken from the build context, the build arguments and the
    downloads of the scripts RUN steps run (read with ``read``, when given)."""
    facts = DockerfileFacts(Workload(path, 1, "dockerfile"))
    w, build = facts.workload, _Build()
    env: dict[str, EnvVar] = {}
    start: dict[str, tuple[str, int]] = {}  # ENTRYPOINT / CMD as written, with their lines
    for line, instr, rest in _instructions(text):
        match instr:
            case "FROM":
                parts = rest.split()
                image = next((p for p in parts if not p.startswith("--")), None)
                w.image, w.image_line, w.line = image, line, line
            case "RUN":
                facts.run_steps.append((line, rest))
                facts.baked += _run_scripts(path, line, rest, build, read)
            case "ENV" | "ARG":
                _variable(path, line, instr, rest, build, env, facts)
            case "WORKDIR":
                build.workdir = posixpath.join(build.workdir, expand(rest, build.scope).text)
            case "USER":
                name = rest.split(":")[0].strip()
                w.user = "root" if name in ("root", "0") else "nonroot"
            case "ENTRYPOINT" | "CMD":
                start[instr] = (rest, line)
            case "COPY" | "ADD":
                sources, dest = _copy(rest)
                facts.copies.extend(CopySource(p, line) for p in _context_sources(rest))
                target = posixpath.join(build.workdir, expand(dest, build.scope).text)
                build.copied += [(target, s) for s in sources]
            case "HEALTHCHECK":
                w.probes = _healthcheck(line, rest)
    w.env = list(env.values())
    _start(w, start, build.runtime)
    if read is not None:
        _start_script(w, start, build, read)
    return facts


def _start_script(w: Workload, start: dict[str, tuple[str, int]], build: _Build,
                  read: Reader) -> None:  # fmt: skip
    """An ENTRYPOINT or CMD that runs a shell script of the build context (``/entrypoint.sh``):
    the engine that script starts, its variables from the image's ``ENV`` (the image's own
    ENTRYPOINT, replaced, starts nothing)."""
    entry, cmd = start.get("ENTRYPOINT"), start.get("CMD")
    first = entry if entry and entry[0] != "[]" else cmd
    if first is None:
        return
    words = _exec_form(first[0])
    script = _script_of(words) or (words[0] if words and words[0].endswith(".sh") else None)
    found = _read_script(w.file, script, build, [], read) if script else None
    if found is not None and found[0].endswith(".sh"):
        line, scope = first[1], build.runtime.child()
        w.invocation = detect_invocation(["/bin/sh", "-c", found[1]], line, w.image,
                                         arg_lines=[line] * 3, scope=scope)  # fmt: skip


def _variable(path: str, line: int, instr: str, rest: str, build: _Build,
              env: dict[str, EnvVar], facts: DockerfileFacts) -> None:  # fmt: skip
    """``ENV`` (build and run time) or ``ARG`` (build time only), values expanded."""
    for k, raw in _env_pairs(rest):
        value = expand(raw, build.scope) if raw is not None else None
        unknown = value is None or any(r.state == "unknown" for r in value.refs)
        refs = value.refs if value else ()
        b = Binding(k, None if unknown or value is None else value.text, line, instr, file=path,
                    refs=refs)  # fmt: skip
        build.scope.bind(b)
        shown = value.text if value is not None else None
        if instr == "ENV":
            build.runtime.bind(b)
            env[k] = EnvVar(k, shown, line, refs=refs, origin="ENV")
        else:
            facts.build_args.append(EnvVar(k, shown, line, refs=refs, origin="ARG"))


def _start(w: Workload, start: dict[str, tuple[str, int]], runtime: Scope) -> None:
    """The process is ENTRYPOINT + CMD (the last of each counts, as in Docker); a shell form
    runs as ``/bin/sh -c TEXT``, expanded in the image's environment (its ``ENV``)."""
    entry, cmd = start.get("ENTRYPOINT"), start.get("CMD")
    shell = next((s for s in (entry, cmd) if s and not s[0].startswith("[")), None)
    if shell is not None and (shell is entry or not entry or entry[0] == "[]"):
        w.script = shell
        script, line = shell
        w.invocation = detect_invocation(["/bin/sh", "-c", script], line, w.image,
                                         arg_lines=[line] * 3, scope=runtime.child())  # fmt: skip
        return
    argv: list[str] = []
    lines: list[int] = []
    for found in (entry, cmd):
        if found is not None:
            items = _exec_form(found[0])
            argv += items
            lines += [found[1]] * len(items)
    if not argv:
        return
    at = entry[1] if entry and entry[0] != "[]" else cmd[1] if cmd else 0
    w.invocation = detect_invocation(argv, at, w.image, arg_lines=lines, scope=runtime.child())
    if shell is None:
        w.exec = Argv(tuple(argv), tuple(lines), own_entrypoint=entry is not None)
        w.script = shell_script(argv, lines, at)


def _run_scripts(path: str, line: int, rest: str, build: _Build,
                 read: Reader | None) -> list[tuple[int, str]]:  # fmt: skip
    """The downloads of the build-context scripts a RUN step runs."""
    if read is None:
        return []
    body, mounts = _run_flags(rest)
    out: list[tuple[int, str]] = []
    for command in script_commands(body, build.scope.child(), line=line, file=path):
        words = [w.text for w, _ in command]
        script = _script_of(words)
        if script is None:
            continue
        found = _read_script(path, script, build, mounts, read)
        if found is None:
            continue
        name, text = found
        what = _downloads(name, text)
        if what:
            out.append((line, f"`{' '.join(words)}` runs {name}, which {what}"))
    return out


def _script_of(words: list[str]) -> str | None:
    """The script file a command runs, as an image path (``pkg/mod.py`` for ``-m pkg.mod``)."""
    names = [x.rsplit("/", 1)[-1] for x in words]
    if names and re.fullmatch(r"python[\d.]*", names[0]):
        args = [x for x in words[1:] if not x.startswith("-") or x == "-m"]
        if args[:1] == ["-m"] and len(args) > 1:
            return args[1].replace(".", "/") + ".py"
        return args[0] if args and args[0].endswith(".py") else None
    if names and names[0] in ("sh", "bash", "dash", "zsh") and len(words) > 1:
        return next((x for x in words[1:] if not x.startswith("-")), None)
    if words and (words[0].startswith(("./", "/")) and words[0].endswith((".sh", ".py"))):
        return words[0]
    return None


def _read_script(path: str, script: str, build: _Build, mounts: list[tuple[str, str]],
                 read: Reader) -> tuple[str, str] | None:  # fmt: skip
    """The script's path in the build context and its text, found through what COPY / ADD
    (or a bind mount) put where the step runs it; else by its name in the context."""
    target = posixpath.normpath(posixpath.join(build.workdir, script))
    candidates: list[str] = []
    for dest, src in [*reversed(build.copied), *mounts]:
        dest = dest.rstrip("/") or "/"
        if target == dest:
            candidates.append(src)
        elif target.startswith(dest.rstrip("/") + "/"):
            rel = target[len(dest.rstrip("/")) + 1 :]
            candidates += [posixpath.join(src, rel), src] if src not in (".", "./") else [rel]
    candidates += [script.lstrip("./"), posixpath.basename(script)]
    context = os.path.dirname(path)
    for rel in dict.fromkeys(posixpath.normpath(c) for c in candidates if c):
        text = read(os.path.join(context, rel))
        if text is not None:
            return rel, text
    return None


def _downloads(name: str, text: str) -> str | None:
    """What a script downloads from the Hub, in a few words; None when it downloads none."""
    if name.endswith(".py"):
        try:
            calls, _ = read_python(name, text)
        except SyntaxError:
            return None
        hub = [c for c in calls if c.function in _HUB_LOADS]
        if hub:
            c = hub[0]
            return f"calls {c.function}({c.repo!r})" if c.repo else f"calls {c.function}"
        return None
    m = DOWNLOADS.search(text)
    return f"runs `{m.group(0)}`" if m else None


def _run_flags(rest: str) -> tuple[str, list[tuple[str, str]]]:
    """A RUN step's command without its ``--mount``/``--network`` flags, and the build context
    files it bind-mounts (target in the image, source in the context)."""
    mounts: list[tuple[str, str]] = []
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        if flag.startswith("--mount=") and "type=bind" in flag:
            opts = dict(o.partition("=")[::2] for o in flag[len("--mount=") :].split(","))
            source = opts.get("source") or opts.get("src") or "."
            target = opts.get("target") or opts.get("dst") or opts.get("destination") or ""
            if target and "from" not in opts:
                mounts.append((target, source))
    return rest, mounts


def _healthcheck(line: int, rest: str) -> list[Probe]:
    """``HEALTHCHECK [--option=value ...] CMD command`` (``NONE``: no check)."""
    options, _, command = rest.partition("CMD")
    if rest.strip().upper() == "NONE" or not command.strip():
        return []
    timeout = re.search(r"--timeout=(\d+)s?\b", options)
    return [Probe("healthcheck", line, timeout=float(timeout.group(1)) if timeout else 30,
                  command=tuple(_exec_form(command.strip())))]  # fmt: skip


_NOT_A_PATH = re.compile(r"[*?\[$]|://|^git@|^/|^\.\.")


def _copy(rest: str) -> tuple[list[str], str]:
    """A COPY / ADD's sources and destination, flags dropped; none from another stage."""
    items = [] if "<<" in rest else _exec_form(rest)
    if any(i.startswith("--from") for i in items):
        return [], ""
    paths = [i for i in items if not i.startswith("--")]
    return (paths[:-1], paths[-1]) if len(paths) > 1 else ([], "")


def _context_sources(rest: str) -> list[str]:
    """The sources a COPY / ADD takes from the build context: relative, without wildcards or
    variables; none for ``--from`` (another stage or image) or a heredoc."""
    sources, _ = _copy(rest)
    return [p for p in sources if not _NOT_A_PATH.search(p)]


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
