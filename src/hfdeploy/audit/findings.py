"""What an audit reports: findings with a stable rule id, a tag, a severity, a place.

A :class:`Rule` is one entry of the rule catalog (``audit/rules.py``) with the check that
finds it; its :meth:`Rule.finding` makes the findings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from hfdeploy.audit.extract import FileFacts
from hfdeploy.envelope import Confidence, Envelope

__all__ = [
    "SEVERITIES",
    "AuditReport",
    "Check",
    "Finding",
    "FolderCheck",
    "Rule",
    "Severity",
    "at_least",
]

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")
_RANK = {"info": 0, "warning": 1, "error": 2}


def at_least(severity: str, threshold: str) -> bool:
    """Whether ``severity`` is at or above ``threshold``."""
    return _RANK[severity] >= _RANK[threshold]


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem at one place. ``line`` is 1-based; 0 when the file as a whole is meant."""

    rule_id: str
    tag: str
    severity: Severity
    file: str
    line: int
    message: str
    impact: str
    recommendation: str
    title: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: A check over one file's facts.
Check = Callable[["Rule", FileFacts], Iterator[Finding]]
#: A check over every file of the run at once (a folder check), for facts that span files:
#: an autoscaler and the Deployment it scales, a budget and the pods it selects.
FolderCheck = Callable[["Rule", Sequence[FileFacts]], Iterator[Finding]]


@dataclass(frozen=True, slots=True)
class Rule:
    """One entry of the catalog: its texts from ``rules.toml`` and the check that finds it."""

    id: str
    tag: str
    severity: Severity
    title: str
    impact: str
    recommendation: str
    check: Check
    detects: str = ""
    #: Set for rules that look across files; ``check`` then finds nothing on its own.
    folder_check: FolderCheck | None = None

    def finding(
        self, facts: FileFacts, line: int, message: str, *, severity: Severity | None = None,
        recommendation: str | None = None,
    ) -> Finding:  # fmt: skip
        return Finding(
            rule_id=self.id, tag=self.tag, severity=severity or self.severity, file=facts.path,
            line=line, message=message, impact=self.impact,
            recommendation=recommendation or self.recommendation, title=self.title,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class AuditReport:
    """All findings over all files read, sorted by file, line and rule."""

    findings: tuple[Finding, ...]
    files: tuple[str, ...]
    suppressed: int = 0
    config: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        by = Counter(f.severity for f in self.findings)
        return {
            "files": len(self.files),
            "findings": len(self.findings),
            "by_severity": {s: by.get(s, 0) for s in SEVERITIES},
            "by_rule": dict(sorted(Counter(f.rule_id for f in self.findings).items())),
            "suppressed": self.suppressed,
        }

    def envelope(self) -> Envelope:
        """The audit as an answer: what was found, how sure, what it cannot see, checks."""
        s = self.summary()
        by = s["by_severity"]
        worst = [f for f in self.findings if f.severity == "error"][:3]
        result = (
            f"{s['findings']} finding(s) in {s['files']} file(s): {by['error']} error, "
            f"{by['warning']} warning, {by['info']} info"
            + ("".join(f"; {f.file}:{f.line} {f.tag}" for f in worst))
        )
        heuristic = {"no-warmup", "probe-kills-loading-pod", "model-does-not-fit",
                     "realtime-gpu-too-slow"}  # fmt: skip
        confidence: Confidence = (
            "medium" if any(f.tag in heuristic for f in self.findings) else "high"
        )
        why = (
            "some findings rest on estimates (load time, memory, server shape, frame time)"
            if confidence == "medium"
            else "rules read the files as written"
        )
        factors = (
            "values set outside the files the audit reads (the environment of whoever runs "
            "a script or compose, Secrets, Helm values not rendered, admission webhooks, "
            "kustomize patches) are unresolved: findings that depend on them say so",
            "load-time budgets use 600 s for vLLM, SGLang and TGI and 120 s otherwise, "
            "not the model's measured load time",
        )
        verification = (
            "hfdeploy audit PATH --format sarif (upload to code scanning)",
            "kubectl apply --dry-run=server -f PATH for what the cluster itself rejects",
        )
        return Envelope(result, confidence, why, factors, verification)

    def failed(self, threshold: str) -> bool:
        return any(at_least(f.severity, threshold) for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """The ``hfdeploy audit --format json`` object."""
        return {
            "findings": [f.to_dict() for f in self.findings],
            "files": list(self.files),
            "summary": self.summary(),
        }
