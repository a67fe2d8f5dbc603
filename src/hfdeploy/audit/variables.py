"""Variables a deployment sets, and the values that read them: the one resolver every reader
uses, so that a rule sees the value a process is given, not the text that names it.

Three syntaxes, each as its tool reads it:

- Kubernetes ``$(NAME)`` in ``command``, ``args`` and ``env`` values, from the container's
  ``env`` defined before it; a name that is not defined stays as written, and ``$$`` is a
  single ``$`` (so ``$$(NAME)`` is the text ``$(NAME)``).
- compose interpolation ``$NAME``, ``${NAME}``, ``${NAME:-default}``, ``${NAME-default}``,
  ``${NAME:?error}``, ``${NAME:+other}``, from the ``.env`` file beside the compose file (and
  the shell that runs compose, which the audit cannot see); ``$$`` is a literal ``$``.
- shell words: the same ``$`` forms, quotes (nothing expands inside single quotes), backslash
  escapes, word splitting of unquoted expansions, ``${NAME:=default}`` assigning the default;
  command substitution and positional parameters are never known.

Each use of a variable is a :class:`Ref` that says how it was resolved, so that a finding can
say where a value came from, or that it could not be resolved. Pure.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Literal

__all__ = [
    "Binding",
    "Expanded",
    "Ref",
    "Scope",
    "State",
    "dollar",
    "dotenv",
    "expand",
    "expand_kubernetes",
    "interpolate",
]

#: ``set``: a value the files give; ``default``: the reference's own default, as nothing in
#: the files sets the variable; ``unknown``: set where the files do not show (a Secret, the
#: environment of whoever runs the file); ``unset``: nothing can set it.
State = Literal["set", "default", "unknown", "unset"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: A name in ``${...}``: a variable, or a positional parameter (``${1:-default}``).
_BRACED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")
_OPS = (":-", ":=", ":?", ":+", "-", "=", "?", "+")


@dataclass(frozen=True, slots=True)
class Binding:
    """A variable as the files set it."""

    name: str
    #: None: set from what the files do not show (a Secret, a field of the pod).
    value: str | None
    line: int
    #: How it is set, for messages: ``env``, ``ConfigMap llm key model``, ``an assignment``.
    origin: str
    #: The file that sets it, when it is not the file being read (``.env``, a ConfigMap's).
    file: str = ""
    #: Whether child processes see it (a shell ``export``; every container variable does).
    exported: bool = True
    #: The references its own value was expanded from.
    refs: tuple[Ref, ...] = ()


@dataclass(frozen=True, slots=True)
class Ref:
    """One use of a variable in a value, and what resolving it gave."""

    #: The reference as written: ``$(MODEL_ID)``, ``${REVISION:-main}``, ``MODEL_ID``.
    written: str
    name: str
    state: State
    binding: Binding | None = None

    @property
    def resolved(self) -> bool:
        return self.state in ("set", "default")

    def where(self, file: str = "") -> str:
        """Where the value comes from, for a finding's message (``file``: the finding's)."""
        b = self.binding
        if self.state == "default":
            return f"the default in `{self.written}`"
        if b is None:
            return (f"`{self.written}`, which nothing in the files sets" if self.state == "unset"
                    else f"`{self.written}`, unresolved")  # fmt: skip
        text = f"`{self.written}`, {b.origin}{_at(b, file)}"
        inner = next((r for r in b.refs if r.state == "default" or r.binding), None)
        if inner is not None and inner.binding and inner.binding.line:
            text += f" (set{_at(inner.binding, file)})"  # where the value itself is written
        elif inner is not None:
            text += f" ({inner.where(file)})"
        return text + (", unresolved" if b.value is None else "")


def _at(b: Binding, file: str) -> str:
    """`` on line N``, or `` in FILE:N`` when ``b`` is set in another file than ``file``."""
    if not b.line:
        return ""
    if b.file and file and b.file != file:
        return f" in {os.path.relpath(b.file, os.path.dirname(file) or '.')}:{b.line}"
    return f" on line {b.line}"


@dataclass(frozen=True, slots=True)
class Expanded:
    """A value after expansion: references that could not be resolved stay as written."""

    text: str
    refs: tuple[Ref, ...] = ()
    #: Where each reference's value lies in ``text`` (start, end), when it was recorded.
    spans: tuple[tuple[int, int], ...] = ()

    @property
    def unresolved(self) -> Ref | None:
        """The first reference whose value the files do not give."""
        return next((r for r in self.refs if not r.resolved), None)


@dataclass(slots=True)
class Scope:
    """The variables visible where a value is expanded.

    ``outside``: what else may set a variable the files do not (the environment of whoever
    runs the script, the image's own ``ENV``); None when nothing can (a Kubernetes container,
    whose environment is all in its spec). ``opaque``: sources the audit cannot read that may
    set any variable (``envFrom`` a Secret).
    """

    outside: str | None
    bindings: dict[str, Binding] = field(default_factory=dict)
    opaque: list[str] = field(default_factory=list)
    #: A shell's ``set -a``: every assignment is exported.
    export_all: bool = False

    def bind(self, binding: Binding) -> None:
        self.bindings[binding.name] = binding

    def get(self, name: str) -> Binding | None:
        return self.bindings.get(name)

    def child(self, outside: str | None = None) -> Scope:
        """A copy, for a process started from this one (its own assignments stay its own)."""
        return Scope(outside if outside is not None else self.outside, dict(self.bindings),
                     list(self.opaque))  # fmt: skip

    def exported(self) -> list[Binding]:
        return [b for b in self.bindings.values() if b.exported]

    def missing(self, written: str, name: str) -> Ref:
        """A reference to a variable the files do not set."""
        known = self.outside is not None or bool(self.opaque)
        return Ref(written, name, "unknown" if known else "unset")


def _lookup(scope: Scope, written: str, name: str) -> tuple[str | None, Ref]:
    b = scope.get(name)
    if b is None:
        return None, scope.missing(written, name)
    if b.value is None:
        return None, Ref(written, name, "unknown", b)
    return b.value, Ref(written, name, "set", b)


def expand_kubernetes(text: str, scope: Scope) -> Expanded:
    """Kubernetes' expansion of ``$(NAME)`` in a container's command, args and env values."""
    if "$" not in text:
        return Expanded(text)
    out: list[str] = []
    refs: list[Ref] = []
    spans: list[tuple[int, int]] = []
    size, i = 0, 0
    while i < len(text):
        c = text[i]
        nxt = text[i + 1] if i + 1 < len(text) else ""
        piece = c
        if c == "$" and nxt == "$":
            i += 2
        elif c == "$" and nxt == "(" and (end := text.find(")", i + 2)) > 0:
            written, name = text[i : end + 1], text[i + 2 : end]
            value, ref = _lookup(scope, written, name)
            piece = written if value is None else value
            refs.append(ref)
            spans.append((size, size + len(piece)))
            i = end + 1
        else:
            i += 1
        out.append(piece)
        size += len(piece)
    return Expanded("".join(out), tuple(refs), tuple(spans))


def _braced_end(text: str, start: int) -> int:
    """The index of the ``}`` closing the ``${`` at ``start`` (nested ones counted), or -1."""
    depth = 0
    for j in range(start, len(text)):
        if text.startswith("${", j):
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return -1


def _paren_end(text: str, start: int) -> int:
    """The index of the ``)`` closing the ``(`` at ``start``, or the end of the text."""
    depth = 0
    for j in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[j], 0)
        if depth == 0:
            return j
    return len(text) - 1


def _braced(body: str, written: str, scope: Scope) -> tuple[str | None, list[Ref]]:
    """``${BODY}``: a name, then an operator and its word, as shells and compose read them."""
    m = _BRACED_NAME.match(body)
    if m is None:  # ${#X}, ${X/a/b}, positional: never known here
        return None, [Ref(written, body, "unknown")]
    name, rest = m.group(0), body[m.end() :]
    op = next((o for o in _OPS if rest.startswith(o)), None)
    if op is None and rest:
        return None, [Ref(written, name, "unknown")]  # ${X%suffix} and the like
    value, ref = _lookup(scope, written, name)
    if op is None:
        return value, [ref]
    word = _unquote(rest[len(op) :])
    bound, opaque = ref.binding is not None, ref.binding is not None and value is None
    empty = bound and value == "" and op.startswith(":")
    if op in (":?", "?"):
        return (value, [ref]) if value is not None else (None, [replace(ref, state="unknown")])
    if opaque:
        return None, [ref]  # set, to a value the files do not show: default or not, unknown
    if op in (":+", "+"):
        if not bound or empty:
            return "", [Ref(written, name, "default")]
        other = expand(word, scope)
        return other.text, [ref, *other.refs]
    if bound and not empty:
        return value, [ref]
    default = expand(word, scope)
    if op in (":=", "="):
        scope.bind(Binding(name, default.text, 0, f"the default of `{written}`",
                           exported=False, refs=default.refs))  # fmt: skip
    return default.text, [Ref(written, name, "default"), *default.refs]


def _unquote(word: str) -> str:
    if len(word) >= 2 and word[0] == word[-1] and word[0] in "'\"":
        return word[1:-1]
    return word


def dollar(text: str, i: int, scope: Scope) -> tuple[str | None, list[Ref], str, int]:
    """The expansion starting at ``text[i] == "$"`` (``$NAME``, ``${...}``, ``$(...)``, a
    special parameter): its value (None: unknown), the references, the text as written and
    the index after it."""
    nxt = text[i + 1] if i + 1 < len(text) else ""
    if nxt == "{" and (end := _braced_end(text, i)) > 0:
        written = text[i : end + 1]
        value, refs = _braced(text[i + 2 : end], written, scope)
        return value, refs, written, end + 1
    if nxt == "(":
        end = _paren_end(text, i + 1)
        written = text[i : end + 1]
        return None, [Ref(written, "", "unknown")], written, end + 1
    m = _NAME.match(text, i + 1)
    if m:
        written = text[i : m.end()]
        value, ref = _lookup(scope, written, m.group(0))
        return value, [ref], written, m.end()
    if nxt and (nxt.isdigit() or nxt in "@*#?!-"):
        written = text[i : i + 2]
        return None, [Ref(written, nxt, "unknown")], written, i + 2
    return "$", [], "$", i + 1


def expand(text: str, scope: Scope, *, double_dollar: bool = False) -> Expanded:
    """Expand ``$`` forms in text that has no quoting of its own (a Dockerfile ``ENV`` value,
    the word of ``${X:-word}``); ``double_dollar``: ``$$`` is a literal ``$`` (compose)."""
    if "$" not in text:
        return Expanded(text)
    out: list[str] = []
    refs: list[Ref] = []
    spans: list[tuple[int, int]] = []
    size, i = 0, 0
    while i < len(text):
        if text[i] != "$":
            piece, i = text[i], i + 1
        elif double_dollar and text.startswith("$$", i):
            piece, i = "$", i + 2
        else:
            value, found, written, i = dollar(text, i, scope)
            piece = written if value is None else value
            if value is None and double_dollar and found and found[0].name:
                piece = f"${{{found[0].name}}}"  # compose: kept as one word when split
            refs += found
            spans += [(size, size + len(piece))] * len(found)
        out.append(piece)
        size += len(piece)
    return Expanded("".join(out), tuple(refs), tuple(spans))


def interpolate(text: str, scope: Scope) -> Expanded:
    """compose's interpolation of one value of the file."""
    return expand(text, scope, double_dollar=True)


def dotenv(text: str, *, file: str, origin: str) -> list[Binding]:
    """The variables of an env file (compose's ``.env`` and ``env_file``, ``docker run
    --env-file``, a sourced script of assignments): ``NAME=value`` lines, optionally
    ``export``-ed, quoted, or followed by `` # comment``; single quotes keep the text as is."""
    out: list[Binding] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, eq, value = line.partition("=")
        name = name.strip()
        if line.startswith("#") or not eq or not _NAME.fullmatch(name):
            continue
        value = value.strip()
        if value[:1] in ("'", '"') and (end := value.find(value[0], 1)) > 0:
            value = value[1:end]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out.append(Binding(name, value, n, origin, file=file))
    return out
