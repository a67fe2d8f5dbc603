"""Audit files and folders: read, classify, extract, check, suppress, report."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hfdeploy.audit.checks.owners import in_nearest_folder
from hfdeploy.audit.extract import FileFacts, classify, extract, link_builds
from hfdeploy.audit.findings import SEVERITIES, AuditReport, Finding
from hfdeploy.audit.objects import ConfigMapData
from hfdeploy.audit.reach import Reach
from hfdeploy.audit.rules import PARSE_ERROR, RULES
from hfdeploy.errors import InvalidSettingError

__all__ = ["AuditConfig", "audit_paths", "audit_texts", "load_config"]

_IGNORE = re.compile(r"hfdeploy:\s*ignore\[([A-Za-z0-9_,\s-]+)\]")
_SKIP_DIRS = {".git", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache"}


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """Rules switched off and severities changed, from ``.hfdeploy.toml`` or pyproject."""

    disable: frozenset[str] = frozenset()
    severity: Mapping[str, str] = field(default_factory=dict)
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "disable": sorted(self.disable),
            "severity": dict(self.severity),
            "source": self.source,
        }


def parse_config(data: Mapping[str, Any], source: str) -> AuditConfig:
    """Validate an ``[audit]`` table (rule ids or tags are both accepted)."""
    known = {r.id for r in RULES} | {r.tag for r in RULES}
    disable = data.get("disable", [])
    if not isinstance(disable, list) or any(d not in known for d in disable):
        bad = [d for d in disable if d not in known] if isinstance(disable, list) else disable
        raise InvalidSettingError(
            "audit.disable",
            bad,
            "unknown rule ids or tags",
            hint="`hfdeploy audit --list-rules` lists them.",
        )
    sev = data.get("severity", {})
    if not isinstance(sev, dict) or any(
        k not in known or v not in SEVERITIES for k, v in sev.items()
    ):
        raise InvalidSettingError("audit.severity", sev, 'use RULE = "error" | "warning" | "info"')
    return AuditConfig(frozenset(disable), dict(sev), source)


def load_config(directory: Path) -> AuditConfig:
    """``.hfdeploy.toml`` (``[audit]``), else ``pyproject.toml`` (``[tool.hfdeploy.audit]``)."""
    own = directory / ".hfdeploy.toml"
    if own.is_file():
        return parse_config(
            tomllib.loads(own.read_text(encoding="utf-8")).get("audit", {}), str(own)
        )
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        table = (
            tomllib.loads(pyproject.read_text(encoding="utf-8"))
            .get("tool", {})
            .get("hfdeploy", {})
            .get("audit")
        )
        if table is not None:
            return parse_config(table, f"{pyproject} [tool.hfdeploy.audit]")
    return AuditConfig()


def _files(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and not (set(f.relative_to(p).parts[:-1]) & _SKIP_DIRS):
                    out.append(f)
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(str(p))
    return out


def _suppressed(lines: list[str], f: Finding) -> bool:
    for n in (f.line, f.line - 1):
        if 1 <= n <= len(lines) and (m := _IGNORE.search(lines[n - 1])):
            ids = {x.strip() for x in m.group(1).split(",")}
            if f.rule_id in ids or f.tag in ids:
                return True
    return False


def audit_texts(
    texts: Mapping[str, str],
    config: AuditConfig | None = None,
    *,
    explicit: bool = False,
    exists: Callable[[str], bool] | None = None,
    reach: Reach | None = None,
) -> AuditReport:
    """Audit files given as ``{path: text}``. Pure, unless ``exists`` or ``reach`` reads the
    disk.

    Every file is read first (a compose service learns what the Dockerfile it builds
    starts); each file's facts go through the per-file checks; then the folder checks see
    every file's facts at once (an autoscaler in one file, the Deployment it scales in
    another).

    ``explicit``: every file was named by the user, so YAML that is neither Kubernetes
    nor compose is still parsed (a parse error is reported rather than the file skipped).
    ``exists``: whether a path exists (``audit_paths`` gives one): rules about a
    Dockerfile's build context need it and stay silent without it. ``reach``: what else the
    audit may read (files a file names beside it, models for the fit check); without it,
    only ``texts`` are read and the fit check says it could not look.
    """
    cfg = config or AuditConfig()
    reach = reach or Reach()
    reader, models = reach.reader(texts), reach.models()
    read: list[str] = []
    parsed: list[FileFacts] = []
    lines: dict[str, list[str]] = {}
    candidates: list[Finding] = []
    for path, text in texts.items():
        kind = classify(path, text)
        if kind is None:
            continue
        read.append(path)
        facts = extract(path, text, kind, read=reader)
        facts.exists, facts.models = exists, models
        lines[path] = text.splitlines()
        if facts.parse_error:
            line, message = facts.parse_error
            candidates.append(
                PARSE_ERROR.finding(facts, line, f"{kind} file does not parse: {message}")
            )
            continue
        parsed.append(facts)
    _read_config_maps(parsed, reader)  # a ConfigMap and the containers that read it
    link_builds(parsed)  # a compose service and the Dockerfile it builds, in two files
    for facts in parsed:
        for rule in RULES:
            candidates.extend(rule.check(rule, facts))
    for rule in RULES:
        if rule.folder_check is not None:
            candidates.extend(rule.folder_check(rule, parsed))
    findings: list[Finding] = []
    suppressed = 0
    for f in candidates:
        if f.rule_id in cfg.disable or f.tag in cfg.disable:
            continue
        if _suppressed(lines.get(f.file, []), f):
            suppressed += 1
            continue
        sev = cfg.severity.get(f.rule_id) or cfg.severity.get(f.tag)
        findings.append(replace(f, severity=sev) if sev else f)  # type: ignore[arg-type]
    unique = sorted(set(findings), key=lambda f: (f.file, f.line, f.rule_id, f.message))
    return AuditReport(tuple(unique), tuple(read), suppressed, cfg.to_dict())


def _read_config_maps(parsed: list[FileFacts], read: Callable[[str], str | None]) -> None:
    """Read again the Kubernetes files whose containers use a ConfigMap another file of the
    run declares (``configMapKeyRef``, ``envFrom``), with the ConfigMaps of the nearest
    folder (one run may audit several deployments with the same names)."""
    maps = [(f.path, cm) for f in parsed for cm in f.config_maps]
    if not maps:
        return
    for i, facts in enumerate(parsed):
        if facts.kind != "kubernetes" or "configMap" not in facts.text:
            continue
        own = {cm.name for cm in facts.config_maps}
        by_name: dict[str, list[tuple[str, ConfigMapData]]] = {}
        for path, cm in maps:
            if path != facts.path and cm.name not in own:
                by_name.setdefault(cm.name, []).append((path, cm))
        nearest = {name: in_nearest_folder(facts.path, found, lambda m: m[0])[0][1]
                   for name, found in by_name.items()}  # fmt: skip
        if nearest:
            again = extract(facts.path, facts.text, facts.kind, read=read, config_maps=nearest)
            again.exists, again.models = facts.exists, facts.models
            parsed[i] = again


def audit_paths(
    paths: Iterable[Path | str],
    config: AuditConfig | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    roots: Sequence[Path | str] | None = None,
) -> AuditReport:
    """Audit files and folders (folders recursively; files of unknown kinds are skipped).

    Files the audited ones name (an ``.env``, a script a Dockerfile runs, a model folder) are
    read under ``roots`` (default: the paths given, a file's folder for a file). ``environ``:
    where to find the local Hugging Face cache (``HF_HUB_CACHE``, ``HF_HOME``), as any
    Hugging Face tool would, for the fit check; None: no cache is read.

    Raises:
        FileNotFoundError: a path does not exist.
    """
    given = [Path(p) for p in paths]
    texts: dict[str, str] = {}
    for f in _files(given):
        try:
            texts[str(f)] = f.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary or unreadable: not a deployment file
    cache = None
    if environ is not None:
        from hfdeploy.model.resolve import hub_cache_dir

        cache = hub_cache_dir(environ)
    reach = Reach.of(roots if roots is not None else given, hub_cache=cache)
    return audit_texts(texts, config, exists=lambda p: Path(p).exists(), reach=reach)
