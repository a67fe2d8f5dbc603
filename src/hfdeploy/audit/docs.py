"""The rule pages under ``docs/rules/``, generated from the rule catalog.

python -m hfdeploy.audit.docs docs/rules     # rewrite the pages
"""

from __future__ import annotations

import sys
from pathlib import Path

from hfdeploy.audit.findings import Rule
from hfdeploy.audit.rules import PARSE_ERROR, RULES

__all__ = ["index_page", "rule_page", "write_pages"]


def rule_page(rule: Rule) -> str:
    return "\n".join(
        [
            f"# {rule.id}: {rule.title}",
            "",
            f"- **Tag:** `{rule.tag}`",
            f"- **Default severity:** {rule.severity}",
            "",
            "## What it detects",
            "",
            rule.detects,
            "",
            "## Why it matters",
            "",
            rule.impact,
            "",
            "## How to fix it",
            "",
            rule.recommendation,
            "",
            "## Suppressing it",
            "",
            f"On the line, or the line above: `# hfdeploy: ignore[{rule.id}]` (or the tag,",
            f"`ignore[{rule.tag}]`). For a whole project, in `.hfdeploy.toml`:",
            "",
            "```toml",
            "[audit]",
            f'disable = ["{rule.id}"]',
            f'severity = {{ {rule.id} = "info" }}  # or change its severity',
            "```",
            "",
        ]
    )


def index_page() -> str:
    rows = [
        f"| [{r.id}]({r.id}.md) | `{r.tag}` | {r.severity} | {r.title} |"
        for r in (*RULES, PARSE_ERROR)
    ]
    return "\n".join(
        ["# Audit rules", "", "`hfdeploy audit --list-rules` prints the same list.", "",
         "| id | tag | severity | title |", "|---|---|---|---|", *rows, ""]
    )  # fmt: skip


def write_pages(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for rule in (*RULES, PARSE_ERROR):
        (folder / f"{rule.id}.md").write_text(rule_page(rule), encoding="utf-8")
    (folder / "README.md").write_text(index_page(), encoding="utf-8")


if __name__ == "__main__":
    write_pages(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/rules"))
