"""From file text to facts: workloads, the objects around them, build steps, Hub calls.

Pure: every function takes the file's name and text. This module tells the kind of a
file and hands it to the parser for that kind (``audit/formats/``): Kubernetes YAML
(multi-document), compose files, Dockerfiles, shell / PowerShell scripts, Python,
Inference Endpoints' ``hf-endpoint.json`` and Triton model repositories. What ``hfdeploy
generate`` writes beside them and no server reads (``plan.json``, ``model.lock.json``,
README, constraints, wheels) is not a deployment file: it is skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hfdeploy.audit.formats.compose import compose_workloads
from hfdeploy.audit.formats.dockerfile import read_dockerfile
from hfdeploy.audit.formats.endpoint import is_endpoint, read_endpoint
from hfdeploy.audit.formats.k8s_objects import k8s_objects
from hfdeploy.audit.formats.kubernetes import k8s_workloads
from hfdeploy.audit.formats.python import read_python
from hfdeploy.audit.formats.shell import shell_workloads
from hfdeploy.audit.model import PythonCall, Workload
from hfdeploy.audit.objects import (
    Autoscaler,
    ConfigMapData,
    CopySource,
    DisruptionBudget,
    Endpoint,
    Frontend,
    Service,
    VolumeClaim,
)
from hfdeploy.audit.yamlsrc import load_docs
from hfdeploy.errors import YamlParseError

__all__ = ["FileFacts", "classify", "extract", "link_builds"]

_DOCKERFILE = re.compile(
    r"(^|/)(Dockerfile|Containerfile)([.-][\w.-]*)?$|\.(dockerfile|containerfile)$", re.I
)
_COMPOSE = re.compile(r"(^|/)(docker-)?compose([.-][\w.-]*)?\.ya?ml$", re.I)
#: A Triton model repository: MODEL/config.pbtxt, and the vLLM backend's MODEL/VERSION/model.json.
_TRITON = re.compile(r"(^|/)config\.pbtxt$|(^|/)[^/]+/\d+/model\.json$")
_ENDPOINT_NAME = re.compile(r"(^|/)[^/]*endpoint[^/]*\.json$", re.I)


@dataclass(slots=True)
class FileFacts:
    """Everything rules look at in one file."""

    path: str
    kind: str
    text: str
    workloads: list[Workload] = field(default_factory=list)
    run_steps: list[tuple[int, str]] = field(default_factory=list)  # Dockerfile RUN
    copies: list[CopySource] = field(default_factory=list)  # Dockerfile COPY / ADD sources
    python_calls: list[PythonCall] = field(default_factory=list)
    python_server: dict[str, Any] | None = None
    autoscalers: list[Autoscaler] = field(default_factory=list)
    budgets: list[DisruptionBudget] = field(default_factory=list)
    claims: list[VolumeClaim] = field(default_factory=list)
    config_maps: list[ConfigMapData] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    #: Ingresses, HTTPRoutes and LoadBalancer Services: what carries clients to the pods.
    frontends: list[Frontend] = field(default_factory=list)
    endpoint: Endpoint | None = None
    parse_error: tuple[int, str] | None = None
    #: Whether a path exists on disk (given by ``audit_paths``); None when the audit has only
    #: texts, so that rules about the build context stay silent.
    exists: Callable[[str], bool] | None = None


def classify(path: str, text: str) -> str | None:
    """The file's kind, from its name and, for YAML and JSON, its content; None to skip it."""
    if _DOCKERFILE.search(path):
        return "dockerfile"
    if _COMPOSE.search(path):
        return "compose"
    low = path.lower()
    if _TRITON.search(path):
        return "triton"
    if low.endswith((".yaml", ".yml")):
        if re.search(r"^\s*apiVersion\s*:", text, re.M) and re.search(r"^\s*kind\s*:", text, re.M):
            return "kubernetes"
        if re.search(r"^services\s*:", text, re.M):
            return "compose"
        return None
    if low.endswith(".json"):
        return "hf-endpoint" if _ENDPOINT_NAME.search(path) or _endpoint_json(text) else None
    if low.endswith((".sh", ".bash", ".ps1", ".zsh")):
        return "shell"
    if low.endswith(".py"):
        return "python"
    return None


def _endpoint_json(text: str) -> bool:
    try:
        return is_endpoint(json.loads(text))
    except ValueError:
        return False


def extract(path: str, text: str, kind: str) -> FileFacts:
    """The facts of one file of ``kind``; a file that does not parse gets ``parse_error``."""
    facts = FileFacts(path, kind, text)
    try:
        _extract(facts)
    except YamlParseError as e:
        facts.parse_error = (e.line or 1, e.reason)
    except json.JSONDecodeError as e:
        facts.parse_error = (e.lineno, f"JSON: {e.msg}")
    except ValueError as e:  # shlex's unclosed quotes, a count that is not a number
        facts.parse_error = (1, str(e))
    except SyntaxError as e:
        facts.parse_error = (e.lineno or 1, f"Python syntax error: {e.msg}")
    return facts


def _extract(facts: FileFacts) -> None:
    path, text = facts.path, facts.text
    match facts.kind:
        case "kubernetes":
            for doc in load_docs(text, file=path):
                facts.workloads.extend(k8s_workloads(path, doc))
                for obj in k8s_objects(doc):
                    _add_object(facts, obj)
        case "compose":
            for doc in load_docs(text, file=path):
                facts.workloads.extend(compose_workloads(path, doc))
        case "dockerfile":
            workload, facts.run_steps, facts.copies = read_dockerfile(path, text)
            facts.workloads.append(workload)
        case "shell":
            facts.workloads.extend(shell_workloads(path, text))
        case "python":
            facts.python_calls, facts.python_server = read_python(path, text)
        case "hf-endpoint":
            facts.endpoint, workload = read_endpoint(path, text)
            facts.workloads.append(workload)
        case "triton":
            if path.endswith(".json"):
                json.loads(text)  # the vLLM backend's engine arguments: JSON or nothing


def _add_object(facts: FileFacts, obj: object) -> None:
    match obj:
        case Autoscaler():
            facts.autoscalers.append(obj)
        case DisruptionBudget():
            facts.budgets.append(obj)
        case VolumeClaim():
            facts.claims.append(obj)
        case ConfigMapData():
            facts.config_maps.append(obj)
        case Service():
            facts.services.append(obj)
        case Frontend():
            facts.frontends.append(obj)


def link_builds(files: Sequence[FileFacts]) -> None:
    """Give each compose service built from a Dockerfile of the run, and setting no command
    of its own, the command that Dockerfile starts (``Workload.built``)."""
    started = {f.path: w.invocation for f in files if f.kind == "dockerfile"
               for w in f.workloads if w.invocation is not None}  # fmt: skip
    for f in files:
        for w in f.workloads:
            if (w.source == "compose" and w.build and w.invocation is None
                    and not (w.exec and w.exec.args)):  # fmt: skip
                w.built = started.get(w.build)
