"""What files pass as written: exec-form arguments that reach the process verbatim, and the
sources a Dockerfile copies from its build context."""

from __future__ import annotations

import os
from collections.abc import Iterator

from hfdeploy.audit.extract import FileFacts
from hfdeploy.audit.findings import Finding, Rule
from hfdeploy.audit.placeholders import placeholder

__all__ = ["copy_source_missing", "placeholder_argument"]


def placeholder_argument(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD022: an exec-form argument holding a placeholder or a shell comment."""
    for w in facts.workloads:
        if w.exec is None:
            continue
        for i, arg in enumerate(w.exec.args):
            why = placeholder(arg)
            if why:
                yield rule.finding(
                    facts, w.exec.line(i),
                    f"the argument {arg!r} holds {why}; written one argument per item, it "
                    "reaches the process as it is, as one argument (no shell reads it)",
                )  # fmt: skip


def copy_source_missing(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD033: a COPY / ADD source missing from the Dockerfile's folder (its build context).

    Only when the audit reads real paths (``FileFacts.exists``): text alone has no folder.
    """
    if facts.exists is None or not facts.copies:
        return
    folder = os.path.dirname(facts.path)
    for c in facts.copies:
        if not facts.exists(os.path.join(folder, c.path)):
            yield rule.finding(
                facts, c.line,
                f"{c.path} is not in the build context ({folder or '.'}): `docker build` "
                "there fails at this step",
            )  # fmt: skip
