"""The indirection corpus (``tests/audit/corpus/``) scored: recall and false alarms per class.

Each case is a folder audited on its own, as a user audits a repository, with the corpus's
``_hub-cache/`` as the local Hugging Face cache. Recall is expected tags found / expected
tags. False alarms are, on clean files, findings at warning level or above, and on faulty
files, tags found that were not expected (any severity).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hfdeploy.audit import audit_paths

__all__ = ["CORPUS", "HUB_CACHE", "ClassScore", "Miss", "cases", "score"]

CORPUS = Path(__file__).resolve().parent / "corpus"
HUB_CACHE = CORPUS / "_hub-cache"


@dataclass(frozen=True, slots=True)
class Miss:
    """One file's difference from the manifest."""

    file: str
    missed: tuple[str, ...]
    false_alarms: tuple[str, ...]


@dataclass(slots=True)
class ClassScore:
    """Counts for one class of indirection."""

    found: int = 0
    expected: int = 0
    false_alarms: int = 0
    faulty_files: int = 0
    clean_files: int = 0
    misses: list[Miss] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.found / self.expected if self.expected else 1.0


def cases() -> Iterator[dict[str, object]]:
    """The manifest's cases, in order."""
    manifest = tomllib.loads((CORPUS / "manifest.toml").read_text(encoding="utf-8"))
    yield from manifest["case"]


def score() -> dict[str, ClassScore]:
    """Audit every case and score it against the manifest, by class."""
    out: dict[str, ClassScore] = {}
    environ = {"HF_HUB_CACHE": str(HUB_CACHE)}
    for case in cases():
        folder = CORPUS / str(case["dir"])
        expected: dict[str, list[str]] = dict(case["files"])  # type: ignore[call-overload]
        report = audit_paths([folder], environ=environ)
        found: dict[str, set[str]] = {}
        loud: dict[str, set[str]] = {}
        for f in report.findings:
            rel = os.path.relpath(f.file, folder)
            found.setdefault(rel, set()).add(f.tag)
            if f.severity != "info":
                loud.setdefault(rel, set()).add(f.tag)
        s = out.setdefault(str(case["class"]), ClassScore())
        for rel in sorted(set(expected) | set(found)):
            want = set(expected.get(rel, ()))
            got = found.get(rel, set())
            alarms = (got - want) if want else loud.get(rel, set())
            s.found += len(want & got)
            s.expected += len(want)
            s.false_alarms += len(alarms)
            if want:
                s.faulty_files += 1
            else:
                s.clean_files += 1
            if want - got or alarms:
                s.misses.append(Miss(f"{case['dir']}/{rel}", tuple(sorted(want - got)),
                                     tuple(sorted(alarms))))  # fmt: skip
    return out
