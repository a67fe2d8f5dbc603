"""The engine a command line starts, read through the shell scripts that start it, and the
facts an engine takes from its environment rather than its flags.

A command line is matched against the engine catalog's ``detect`` (command words, image
names). ``sh -c SCRIPT`` is read command by command, with the container's environment in
scope. Engines that read every flag from a variable of its name (TGI's and TEI's launchers:
``MODEL_ID`` is ``--model-id``) get those variables as flags, so that a rule finds the model,
its revision and the shard count whichever way they were given. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from hfdeploy.audit.model import ENGINE_IMAGES, TP_FLAGS, Engine, Invocation, Workload
from hfdeploy.audit.shellwords import shell_commands, shell_words
from hfdeploy.audit.variables import Binding, Expanded, Ref, Scope
from hfdeploy.catalog.engines import engine_catalog

__all__ = [
    "detect_invocation",
    "engine_environment",
    "script_commands",
    "shell_script",
    "split_assignments",
]

#: Command words -> the engine they start (the catalog's ``detect``).
_ENGINE_COMMANDS: tuple[tuple[tuple[str, ...], Engine], ...] = tuple(
    (words, name) for name, e in engine_catalog().items() for words in e.detect.commands
)
_SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh"})
_OPERATORS = frozenset({"&&", "||", ";", ";;", "|", "&"})
#: Words that start a command without being it (``exec vllm serve``, ``then vllm serve``).
_PREFIXES = frozenset({"exec", "nohup", "env", "time", "then", "do", "else", "{", "(", "!"})
_TRUE = frozenset({"1", "true", "yes", "on"})


def shell_script(argv: list[str], lines: list[int], line: int) -> tuple[str, int] | None:
    """The script of ``sh -c SCRIPT`` (``bash``, a path to either), with its line."""
    names = [a.rsplit("/", 1)[-1] for a in argv[:3]]
    if len(names) >= 2 and names[0] in _SHELLS and "-c" in names[1:3]:
        at = names.index("-c") + 1
        if at < len(argv):
            return argv[at], lines[at] if at < len(lines) else line
    return None


def _assignment(text: str) -> tuple[str, str] | None:
    name, eq, value = text.partition("=")
    if eq and name and (name[0].isalpha() or name[0] == "_") and name.replace("_", "a").isalnum():
        return name, value
    return None


def script_commands(
    text: str, scope: Scope, *, line: int | Callable[[int], int] = 0, file: str = ""
) -> Iterator[list[tuple[Expanded, int]]]:
    """The simple commands of shell text in order, their words expanded in ``scope``, each
    with its offset: a command is expanded once those before it have run (the caller's own
    handling of one, ``source FILE`` say, comes before the next). Assignments standing alone
    bind in ``scope`` (``export`` ones for children too), at ``line`` (or the line of their
    offset) and are not yielded; words such as ``exec`` are dropped."""
    line_of = line if callable(line) else (lambda _: line)
    for start, end in shell_commands(text):
        command: list[tuple[Expanded, int]] = []
        for word, at in shell_words(text[start:end], scope):
            if word.text not in _OPERATORS and (command or word.text not in _PREFIXES):
                command.append((word, start + at))
        if command and _record(command, scope, line_of=line_of, file=file):
            yield command


def _record(command: list[tuple[Expanded, int]], scope: Scope, *,
            line_of: Callable[[int], int], file: str) -> bool:  # fmt: skip
    """Bind a command's assignments (False), or keep the command (True; its leading
    assignments set the environment of that command only)."""
    head = [w.text for w, _ in command[:2]]
    if head[0] == "set" and len(head) > 1 and head[1] in ("-a", "+a"):
        scope.export_all = head[1] == "-a"
        return False
    export = head[0] in ("export", "declare", "readonly", "local", "typeset")
    words = command[1:] if export else command
    while words and words[0][0].text.startswith("-") and export:
        words = words[1:]  # declare -x
    pairs = [(_assignment(w.text), w, at) for w, at in words]
    loads = export and any(w.text.startswith("$(") for w, _ in words)  # export $(cat .env)
    if loads or not (export or (pairs and all(p for p, _, _ in pairs))):
        return True
    for pair, w, at in pairs:
        if pair:
            exported = export or scope.export_all
            scope.bind(Binding(pair[0], None if _unknown(w) else pair[1], line_of(at),
                               "an export" if exported else "an assignment", file=file,
                               exported=exported, refs=w.refs))  # fmt: skip
        elif export and (known := scope.get(w.text)):
            scope.bind(replace(known, exported=True))
    return False


def _unknown(word: Expanded) -> bool:
    return any(r.state == "unknown" for r in word.refs)


def split_assignments(
    command: list[tuple[Expanded, int]],
) -> tuple[list[tuple[str, Expanded, int]], list[tuple[Expanded, int]]]:
    """A command's leading ``NAME=value`` words (name, value, offset) and the rest."""
    env: list[tuple[str, Expanded, int]] = []
    while command and (pair := _assignment(command[0][0].text)):
        word, at = command[0]
        env.append((pair[0], replace(word, text=pair[1]), at))
        command = command[1:]
    return env, command


def _script_invocation(
    script: str, line: int, scope: Scope | None, outer: Expanded | None
) -> Invocation | None:
    """The first command of a shell script that starts an engine. ``outer``: the script as a
    Kubernetes or compose value, whose variables are matched to the words they became."""
    inner = scope.child() if scope is not None else Scope("the container's environment")
    for full in script_commands(script, inner, line=line):
        _, command = split_assignments(full)
        argv = [w.text for w, _ in command]
        refs = [_outer_refs(w, at, outer) for w, at in command]
        found = detect_invocation(argv, line, None, arg_lines=[line] * len(argv), arg_refs=refs)
        if found is not None:
            return found
    return None


def _outer_refs(word: Expanded, at: int, outer: Expanded | None) -> tuple[Ref, ...]:
    if outer is None or not outer.spans:
        return word.refs
    end = at + len(word.text) + 2  # quotes around the word, at most
    spans = zip(outer.refs, outer.spans, strict=False)
    return (*word.refs, *(r for r, (s, e) in spans if s < end and e > at))


def _by_image(engine: Engine, image: str | None) -> Engine:
    """The engine a command starts, or the one the image names when both start the same
    command (PersonaPlex's server is ``python -m moshi.server`` too)."""
    named = next((e for fragment, e in ENGINE_IMAGES if image and fragment in image), None)
    catalog = engine_catalog()
    ours, theirs = catalog[engine].deploy, catalog[named].deploy if named else None
    if ours is None or theirs is None:
        return engine
    start = ours.entrypoint or ours.image_entrypoint
    same = bool(start) and start == (theirs.entrypoint or theirs.image_entrypoint)
    return named if named and same else engine


def detect_invocation(
    argv: list[str],
    line: int,
    image: str | None = None,
    *,
    arg_lines: list[int] | None = None,
    arg_refs: list[tuple[Ref, ...]] | None = None,
    expanded: Sequence[Expanded] | None = None,
    scope: Scope | None = None,
) -> Invocation | None:
    """The engine a command line starts, from the command or, for bare args, the image.

    ``expanded``: the arguments as the file's own syntax expanded them (Kubernetes
    ``$(VAR)``, compose interpolation), to trace their variables; else ``arg_refs``.
    A shell script (``sh -c "..."``) is read command by command, its variables expanded in
    ``scope`` (the container's environment). One that starts no engine (a Ray worker in an
    engine's image, say) is no engine invocation.
    """
    names = [a.rsplit("/", 1)[-1] for a in argv]
    lines = arg_lines or []
    refs = [e.refs for e in expanded] if expanded is not None else arg_refs or []
    if len(names) >= 3 and names[0] in _SHELLS and "-c" in names[1:3]:
        at = names.index("-c") + 1
        script_line = lines[at] if len(lines) > at else line
        outer = expanded[at] if expanded is not None and at < len(expanded) else None
        return _script_invocation(argv[at], script_line, scope, outer)
    for words, engine in _ENGINE_COMMANDS:
        for i in range(len(names)):
            if tuple(names[i : i + len(words)]) == words:
                k = i + len(words) - 1
                return Invocation(_by_image(engine, image), tuple(argv[k:]), line,
                                  tuple(lines[k:]), tuple(refs[k:]))  # fmt: skip
    if image:
        for fragment, engine in ENGINE_IMAGES:
            if fragment in image:
                return Invocation(engine, tuple(argv), line, tuple(lines), tuple(refs))
    if any(n in ("python", "python3", "uvicorn", "gunicorn") for n in names[:1]):
        return Invocation("custom", tuple(argv), line, tuple(lines), tuple(refs))
    return None


def engine_environment(w: Workload) -> None:
    """Give the workload's invocation the flags its engine reads from the environment (the
    catalog's ``detect.env``), where the command line does not set them, and the shard count
    an engine infers from the GPUs it is given (``detect.shards_from_gpus``)."""
    inv = w.invocation
    spec = engine_catalog().get(inv.engine) if inv else None
    if inv is None or spec is None:
        return
    n = len(inv.argv)
    argv = list(inv.argv)
    lines = [*inv.arg_lines, *[inv.line] * (n - len(inv.arg_lines))]
    refs: list[tuple[Ref, ...]] = [*inv.arg_refs, *[()] * (n - len(inv.arg_refs))]
    for name, flag in spec.detect.env:
        e = w.env_value(name)
        if e is None or inv.has(flag):
            continue
        ref = Ref(name, name, "set" if e.value is not None else "unknown",
                  Binding(name, e.value, e.line, e.origin or "env", file=w.file,
                          refs=e.refs))  # fmt: skip
        if flag == "--trust-remote-code":  # a switch: on when its variable is true
            if (e.value or "").lower() in _TRUE:
                argv, lines, refs = [*argv, flag], [*lines, e.line], [*refs, (ref,)]
            continue
        argv += [flag, e.value if e.value is not None else f"${name}"]
        lines += [e.line, e.line]
        refs += [(ref,), (ref,)]
    shards = _gpu_shards(w, argv) if spec.detect.shards_from_gpus else None
    if shards is not None:
        argv += ["--num-shard", shards[0]]
        lines += [w.gpus_line, w.gpus_line]
        refs += [(shards[1],), (shards[1],)]
    if len(argv) != n:
        w.invocation = replace(inv, argv=tuple(argv), arg_lines=tuple(lines), arg_refs=tuple(refs))


def _gpu_shards(w: Workload, argv: list[str]) -> tuple[str, Ref] | None:
    """TGI's shard count when none is set: one per GPU the container is given, unless
    ``--sharded false``; unknown (None) when the count is not a number (``--gpus all``)."""
    probe = Invocation("", tuple(argv), 0)
    if probe.has(*TP_FLAGS) or (probe.flag("--sharded") or "").lower() == "false":
        return None
    if w.gpus is None or w.gpus < 2:
        return None
    why = Binding(
        "GPUs",
        str(w.gpus),
        w.gpus_line,
        f"{w.engine} then shards over the {w.gpus} GPUs asked for",
        file=w.file,
    )
    return str(w.gpus), Ref("no shard count set", "GPUs", "set", why)
