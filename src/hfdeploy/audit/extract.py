"""From file text to facts: workloads, Dockerfile build steps, Python Hub calls.

Pure: every function takes the file's name and text. This module tells the kind of a
file and hands it to the parser for that kind (``audit/formats/``): Kubernetes YAML
(multi-document), compose files, Dockerfiles, shell / PowerShell scripts, Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hfdeploy.audit.formats.compose import compose_workloads
from hfdeploy.audit.formats.dockerfile import read_dockerfile
from hfdeploy.audit.formats.kubernetes import k8s_workloads
from hfdeploy.audit.formats.python import read_python
from hfdeploy.audit.formats.shell import shell_workloads
from hfdeploy.audit.model import PythonCall, Workload
from hfdeploy.audit.yamlsrc import load_docs
from hfdeploy.errors import YamlParseError

__all__ = ["FileFacts", "classify", "extract"]

_DOCKERFILE = re.compile(
    r"(^|/)(Dockerfile|Containerfile)([.-][\w.-]*)?$|\.(dockerfile|containerfile)$", re.I
)
_COMPOSE = re.compile(r"(^|/)(docker-)?compose([.-][\w.-]*)?\.ya?ml$", re.I)


@dataclass(slots=True)
class FileFacts:
    """Everything rules look at in one file."""

    path: str
    kind: str
    text: str
    workloads: list[Workload] = field(default_factory=list)
    run_steps: list[tuple[int, str]] = field(default_factory=list)  # Dockerfile RUN
    python_calls: list[PythonCall] = field(default_factory=list)
    python_server: dict[str, Any] | None = None
    parse_error: tuple[int, str] | None = None


def classify(path: str, text: str) -> str | None:
    """The file's kind, from its name and, for YAML, its content; None to skip it."""
    if _DOCKERFILE.search(path):
        return "dockerfile"
    if _COMPOSE.search(path):
        return "compose"
    low = path.lower()
    if low.endswith((".yaml", ".yml")):
        if re.search(r"^\s*apiVersion\s*:", text, re.M) and re.search(r"^\s*kind\s*:", text, re.M):
            return "kubernetes"
        if re.search(r"^services\s*:", text, re.M):
            return "compose"
        return None
    if low.endswith((".sh", ".bash", ".ps1", ".zsh")):
        return "shell"
    if low.endswith(".py"):
        return "python"
    return None


def extract(path: str, text: str, kind: str) -> FileFacts:
    """The facts of one file of ``kind``; a file that does not parse gets ``parse_error``."""
    facts = FileFacts(path, kind, text)
    try:
        match kind:
            case "kubernetes":
                for doc in load_docs(text, file=path):
                    facts.workloads.extend(k8s_workloads(path, doc))
            case "compose":
                for doc in load_docs(text, file=path):
                    facts.workloads.extend(compose_workloads(path, doc))
            case "dockerfile":
                workload, facts.run_steps = read_dockerfile(path, text)
                facts.workloads.append(workload)
            case "shell":
                facts.workloads.extend(shell_workloads(path, text))
            case "python":
                facts.python_calls, facts.python_server = read_python(path, text)
    except YamlParseError as e:
        facts.parse_error = (e.line or 1, e.reason)
    except ValueError as e:  # shlex's unclosed quotes, a count that is not a number
        facts.parse_error = (1, str(e))
    except SyntaxError as e:
        facts.parse_error = (e.lineno or 1, f"Python syntax error: {e.msg}")
    return facts
