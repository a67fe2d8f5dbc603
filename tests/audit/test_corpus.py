"""The audit over the indirection corpus: deployment files written the way public guides and
repositories write them, whose faults hide behind variables, engine environment, build
scripts and node labels (``tests/audit/corpus/manifest.toml``; ``scripts/audit_corpus.py``
prints the same figures per class)."""

from __future__ import annotations

import pytest

from tests.audit._corpus import CORPUS, ClassScore, cases, score


@pytest.fixture(scope="module")
def scores() -> dict[str, ClassScore]:
    return score()


def test_the_corpus_is_large_enough(scores: dict[str, ClassScore]) -> None:
    assert sum(s.faulty_files for s in scores.values()) >= 30
    assert sum(s.clean_files for s in scores.values()) >= 10
    listed = {f"{c['dir']}/{f}" for c in cases() for f in c["files"]}  # type: ignore[attr-defined]
    assert all((CORPUS / f).is_file() for f in listed)


def test_recall_is_at_least_nine_in_ten(scores: dict[str, ClassScore]) -> None:
    found = sum(s.found for s in scores.values())
    expected = sum(s.expected for s in scores.values())
    missed = [m for s in scores.values() for m in s.misses if m.missed]
    assert found / expected >= 0.9, missed


def test_no_false_alarms(scores: dict[str, ClassScore]) -> None:
    # Clean files: nothing at warning level or above; faulty ones: no tag not expected.
    alarms = [m for s in scores.values() for m in s.misses if m.false_alarms]
    assert alarms == []


def test_every_class_is_covered(scores: dict[str, ClassScore]) -> None:
    assert set(scores) == {
        "kubernetes $(VAR)", "compose interpolation", "shell variables", "engine environment",
        "revisions", "dockerfile build", "python", "gpu labels",
    }  # fmt: skip
    assert all(s.faulty_files and s.clean_files for s in scores.values())
