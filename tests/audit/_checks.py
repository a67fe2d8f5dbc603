"""What the broken-and-fixed rule tests share: findings as lines, and one rule firing."""

from __future__ import annotations

from hfdeploy.audit import audit_texts


def findings_text(files: dict[str, str]) -> list[str]:
    """Every finding of ``files`` as one line: file:line rule severity message."""
    return [f"{f.file}:{f.line} {f.rule_id} {f.severity} {f.message}"
            for f in audit_texts(files).findings]  # fmt: skip


def assert_fires(good: dict[str, str], rule_id: str, path: str, text: str, says: str) -> None:
    """``rule_id`` fires on ``path`` broken as ``text`` among the good files, only there,
    saying ``says``, at a line of the file."""
    assert text != good[path]
    files = {**good, path: text}
    found = [f for f in audit_texts(files).findings if f.rule_id == rule_id]
    assert found, findings_text(files)
    assert {f.file for f in found} == {path}
    assert any(says in f.message for f in found), [f.message for f in found]
    lines = text.splitlines()
    for f in found:
        assert 1 <= f.line <= len(lines)
