"""Shell text as a shell reads it: command by command, word by word, with quotes, escapes,
expansions in a :class:`Scope` and word splitting (``audit/variables.py`` resolves the
variables). Used for shell scripts, ``sh -c`` arguments and Dockerfile ``RUN`` and shell-form
``CMD``. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hfdeploy.audit.variables import Expanded, Ref, Scope, dollar

__all__ = ["shell_commands", "shell_words"]

_OPERATORS = ("&&", "||", ";;", ";", "|", "&")
_BLANK = " \t\r\n"


@dataclass(slots=True)
class _Word:
    parts: list[str] = field(default_factory=list)
    refs: list[Ref] = field(default_factory=list)
    started: bool = False
    start: int = 0


class _Splitter:
    """Shell words with expansions, one command line at a time (see :func:`shell_words`)."""

    def __init__(self, text: str, scope: Scope, *, literal: bool = False) -> None:
        self.text, self.scope, self.literal = text, scope, literal
        self.words: list[tuple[Expanded, int]] = []
        self.word = _Word()

    def flush(self) -> None:
        if self.word.started:
            self.words.append((Expanded("".join(self.word.parts), tuple(self.word.refs)),
                               self.word.start))  # fmt: skip
        self.word = _Word()

    def add(self, text: str, at: int) -> None:
        if not self.word.started:
            self.word.started, self.word.start = True, at
        self.word.parts.append(text)

    def dollar(self, i: int, *, quoted: bool) -> int:
        value, refs, written, end = dollar(self.text, i, self.scope)
        if value is None:
            self.word.refs += refs
            self.add(written, i)
        elif quoted:
            self.word.refs += refs
            self.add(value, i)
        else:  # an unquoted expansion is split into words; an empty one makes none
            for k, piece in enumerate(value.split()):
                if k or (value[:1] in _BLANK and self.word.started):
                    self.flush()
                self.word.refs += refs
                self.add(piece, i)
            if value[-1:] in _BLANK and value.strip():
                self.flush()
        return end

    def double(self, i: int) -> int:
        """A double-quoted string from ``text[i] == '"'``; returns the index after it."""
        self.add("", i)
        j = i + 1
        while j < len(self.text) and self.text[j] != '"':
            c = self.text[j]
            if c == "\\" and j + 1 < len(self.text) and self.text[j + 1] in '"\\$`':
                self.add(self.text[j + 1], j)
                j += 2
            elif c == "$" and not self.literal:
                j = self.dollar(j, quoted=True)
            else:
                self.add(c, j)
                j += 1
        return j + 1

    def redirect(self, i: int) -> int:
        """Skip a redirection (``> file``, ``2>&1``, ``<<< word``) and its target."""
        if self.word.started and "".join(self.word.parts).isdigit():
            self.word = _Word()  # the descriptor of `2>`
        self.flush()
        j = i
        while j < len(self.text) and self.text[j] in "<>&":
            j += 1
        if j < len(self.text) and (self.text[j].isdigit() or self.text[j] == "-"):
            return j + 1
        while j < len(self.text) and self.text[j] in _BLANK:
            j += 1
        while j < len(self.text) and self.text[j] not in _BLANK + ";&|":
            j += 1
        return j

    def run(self) -> list[tuple[Expanded, int]]:
        text, i = self.text, 0
        while i < len(text):
            c = text[i]
            if self.literal and c in "\n#;&|<>`$":
                if c == "\n":
                    self.flush()
                else:
                    self.add(c, i)
                i += 1
            elif c == "\n":  # a new line ends a command, as `;` does
                self.flush()
                self.words.append((Expanded(";"), i))
                i += 1
            elif c in _BLANK:
                self.flush()
                i += 1
            elif c == "#" and not self.word.started:
                i = text.find("\n", i) if "\n" in text[i:] else len(text)
            elif c in ";&|":
                self.flush()
                op = next(o for o in _OPERATORS if text.startswith(o, i) or o == c)
                self.words.append((Expanded(op), i))
                i += len(op)
            elif c in "<>":
                i = self.redirect(i)
            elif c == "\\":
                if i + 1 < len(text) and text[i + 1] != "\n":
                    self.add(text[i + 1], i)
                i += 2
            elif c == "'":
                end = text.find("'", i + 1)
                end = len(text) if end < 0 else end
                self.add(text[i + 1 : end], i)
                i = end + 1
            elif c == '"':
                i = self.double(i)
            elif c == "`":
                end = text.find("`", i + 1)
                end = len(text) - 1 if end < 0 else end
                self.word.refs.append(Ref(text[i : end + 1], "", "unknown"))
                self.add(text[i : end + 1], i)
                i = end + 1
            elif c == "$":
                i = self.dollar(i, quoted=False)
            else:
                self.add(c, i)
                i += 1
        self.flush()
        return self.words


def shell_words(text: str, scope: Scope, *, literal: bool = False) -> list[tuple[Expanded, int]]:
    """The words of shell text after expansion in ``scope``, each with its offset in ``text``.

    Control operators (``;``, ``&&``, ``||``, ``|``, ``&``, and a new line as ``;``) are
    words of their own; redirections and comments are dropped. ``${X:=default}`` binds X in
    ``scope``. ``literal``: only quotes and blanks split (compose splitting a string command
    it has interpolated, as Python's shlex does): nothing is expanded or an operator.
    """
    return _Splitter(text, scope, literal=literal).run()


_HEREDOC = re.compile(r"<<(-?)[ \t]*(['\"]?)(\w+)\2")


def _heredoc_end(text: str, i: int, heredocs: list[tuple[str, bool]]) -> int:
    """The index of the new line that ends the last here-document starting after ``i``."""
    for delimiter, tabs in heredocs:
        while i < len(text):
            end = text.find("\n", i + 1)
            end = len(text) if end < 0 else end
            line = text[i + 1 : end]
            i = end
            if (line.lstrip("\t") if tabs else line) == delimiter:
                break
    return i


def shell_commands(text: str) -> list[tuple[int, int]]:
    """Where each command of shell text lies (start, end), nothing expanded: a script runs
    command by command, and a command's variables are those assigned before it."""
    out: list[tuple[int, int]] = []
    start, i, quote = 0, 0, ""
    heredocs: list[tuple[str, bool]] = []  # (delimiter, tabs stripped) waiting for a new line
    while i < len(text):
        c = text[i]
        if c == "\n" and heredocs and not quote:  # the here-document's lines are no commands
            out.append((start, i))
            i = _heredoc_end(text, i, heredocs)
            heredocs, start = [], i + 1
        elif quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = ""
        elif c == "\\":
            i += 1
        elif c in "'\"":
            quote = c
        elif c == "$":  # skip the expansion whole: `${A:-x;y}`, `$(a; b)` end no command
            i = dollar(text, i, Scope("nothing"))[3] - 1
        elif (m := _HEREDOC.match(text, i)) is not None:
            heredocs.append((m.group(3), bool(m.group(1))))
            i = m.end() - 1
        elif c == "#" and (i == 0 or text[i - 1] in _BLANK):
            i = text.find("\n", i) - 1 if "\n" in text[i:] else len(text)
        elif c in "\n;&|":
            out.append((start, i))
            start = i + 1
        i += 1
    out.append((start, len(text)))
    return [(s, e) for s, e in out if text[s:e].strip()]
