"""Audit reports: text (grouped by file), Markdown, JSON and SARIF 2.1.0. Pure."""

from __future__ import annotations

import json
from itertools import groupby
from typing import Any

from hfdeploy._version import __version__
from hfdeploy.audit.findings import AuditReport
from hfdeploy.audit.rules import PARSE_ERROR, RULES

__all__ = ["FORMATS", "render"]

FORMATS = ("text", "markdown", "json", "sarif")
_DOCS = "https://github.com/hfdeploy/hfdeploy/blob/main/docs/rules/{id}.md"
_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
_COLOUR = {"error": "red", "warning": "yellow", "info": "cyan"}


def render(report: AuditReport, fmt: str, *, colour: bool = False) -> str:
    match fmt:
        case "text":
            return _text(report, colour=colour)
        case "markdown":
            return _markdown(report)
        case "json":
            return json.dumps(report.to_dict(), indent=2) + "\n"
        case "sarif":
            return json.dumps(sarif(report), indent=2) + "\n"
    raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def _text(report: AuditReport, *, colour: bool) -> str:
    """Grouped by file; with ``colour``, Rich markup (and escaped file text)."""
    from rich.markup import escape as rich_escape

    def escape(text: str) -> str:
        return rich_escape(text) if colour else text

    lines: list[str] = []
    for file, items in groupby(report.findings, key=lambda f: f.file):
        lines.append(f"[bold]{escape(file)}[/]" if colour else file)
        for f in items:
            sev = f"[{_COLOUR[f.severity]}]{f.severity}[/]" if colour else f.severity
            lines.append(f"  {f.line}: {sev} {f.rule_id} {f.tag}: {escape(f.message)}")
            lines.append(f"      fix: {escape(f.recommendation)}")
    s = report.summary()
    by = s["by_severity"]
    lines.append(
        f"{s['findings']} finding(s) in {s['files']} file(s): {by['error']} error, "
        f"{by['warning']} warning, {by['info']} info"
        + (f"; {s['suppressed']} suppressed" if s["suppressed"] else "")
    )
    return "\n".join(lines) + "\n"


def _markdown(report: AuditReport) -> str:
    s = report.summary()
    by = s["by_severity"]
    out = [
        "# hfdeploy audit",
        "",
        "## Summary",
        "",
        f"{s['files']} file(s) read; {s['findings']} finding(s): {by['error']} error, "
        f"{by['warning']} warning, {by['info']} info"
        + (f"; {s['suppressed']} suppressed." if s["suppressed"] else "."),
        "",
        "## Findings",
        "",
    ]
    if not report.findings:
        out += ["No findings.", ""]
    for f in report.findings:
        out += [
            f"### [{f.severity.upper()}] {f.title or f.tag}",
            "",
            f"- **Rule:** `{f.rule_id}` ({f.tag})",
            f"- **Location:** `{f.file}:{f.line}`",
            f"- **Issue:** {f.message}",
            f"- **Impact:** {f.impact}",
            f"- **Recommendation:** {f.recommendation}",
            "",
        ]
    out += ["## Recommendations", ""]
    seen: set[str] = set()
    for f in sorted(report.findings, key=lambda f: ("error", "warning", "info").index(f.severity)):
        if f.rule_id not in seen:
            seen.add(f.rule_id)
            out.append(f"- **{f.title or f.tag}** (`{f.rule_id}`): {f.recommendation}")
    if not seen:
        out.append("Nothing to change.")
    return "\n".join(out) + "\n"


def sarif(report: AuditReport) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run: the rule catalog and one result per finding."""
    rules = [*RULES, PARSE_ERROR]
    index = {r.id: i for i, r in enumerate(rules)}
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "hfdeploy",
                        "version": __version__,
                        "informationUri": "https://github.com/hfdeploy/hfdeploy",
                        "rules": [
                            {
                                "id": r.id,
                                "name": r.tag,
                                "shortDescription": {"text": r.title},
                                "fullDescription": {"text": r.impact},
                                "help": {"text": r.recommendation},
                                "helpUri": _DOCS.format(id=r.id),
                                "defaultConfiguration": {"level": _SARIF_LEVEL[r.severity]},
                            }
                            for r in rules
                        ],
                    }
                },
                "results": [
                    {
                        "ruleId": f.rule_id,
                        "ruleIndex": index[f.rule_id],
                        "level": _SARIF_LEVEL[f.severity],
                        "message": {"text": f"{f.message}. {f.recommendation}"},
                        "locations": [
                            {
                                "physicalLocation": {
                                    "artifactLocation": {"uri": f.file},
                                    "region": {"startLine": max(f.line, 1)},
                                }
                            }
                        ],
                    }
                    for f in report.findings
                ],
            }
        ],
    }
