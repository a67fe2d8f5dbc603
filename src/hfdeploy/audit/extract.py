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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hfdeploy.audit.formats.compose import compose_scope, compose_workloads
from hfdeploy.audit.formats.dockerfile import read_dockerfile
from hfdeploy.audit.formats.endpoint import is_endpoint, read_endpoint
from hfdeploy.audit.formats.k8s_objects import k8s_objects
from hfdeploy.audit.formats.kubernetes import k8s_workloads
from hfdeploy.audit.formats.python import read_python
from hfdeploy.audit.formats.shell import shell_workloads
from hfdeploy.audit.invocation import engine_environment
from hfdeploy.audit.model import EnvVar, PythonCall, Workload
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

if TYPE_CHECKING:
    from hfdeploy.model.profile import ModelProfile

__all__ = ["FileFacts", "ModelReader", "Reader", "classify", "extract", "link_builds"]

#: Reads a file beside the one audited (an ``.env``, a script a Dockerfile runs): its text,
#: or None when it is absent or out of the audit's reach.
Reader = Callable[[str], str | None]
#: Profiles a model for the fit check, where the audit may read it: (the model as the server
#: is given it, its revision, the local folder that holds it if known) -> its profile, or why
#: it could not be read.
ModelReader = Callable[[str, str | None, str | None], "ModelProfile | str"]

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
    #: A Dockerfile's ``ARG``s: build arguments' values stay in the image's history.
    build_args: list[EnvVar] = field(default_factory=list)
    #: Dockerfile RUN steps whose build-context script downloads weights (line, what runs).
    baked: list[tuple[int, str]] = field(default_factory=list)
    #: Reads models for the fit check where the audit may (see ``ModelReader``); None: nowhere.
    models: ModelReader | None = None


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


def extract(
    path: str,
    text: str,
    kind: str,
    *,
    read: Reader | None = None,
    config_maps: Mapping[str, ConfigMapData] | None = None,
) -> FileFacts:
    """The facts of one file of ``kind``; a file that does not parse gets ``parse_error``.

    ``read``: reads the files a file names beside it (compose's ``.env`` and ``env_file``, a
    script's ``source`` and ``--env-file``, the scripts a Dockerfile runs). ``config_maps``:
    ConfigMaps of other files by name, for the containers that read them.
    """
    facts = FileFacts(path, kind, text)
    try:
        _extract(facts, read, config_maps or {})
    except YamlParseError as e:
        facts.parse_error = (e.line or 1, e.reason)
    except json.JSONDecodeError as e:
        facts.parse_error = (e.lineno, f"JSON: {e.msg}")
    except ValueError as e:  # shlex's unclosed quotes, a count that is not a number
        facts.parse_error = (1, str(e))
    except SyntaxError as e:
        facts.parse_error = (e.lineno or 1, f"Python syntax error: {e.msg}")
    return facts


def _extract(
    facts: FileFacts, read: Reader | None, config_maps: Mapping[str, ConfigMapData]
) -> None:
    path, text = facts.path, facts.text
    match facts.kind:
        case "kubernetes":
            objects = [(doc, k8s_objects(doc, path)) for doc in load_docs(text, file=path)]
            own = {o.name: o for _, objs in objects for o in objs if isinstance(o, ConfigMapData)}
            for doc, objs in objects:
                facts.workloads.extend(k8s_workloads(path, doc, {**config_maps, **own}))
                for obj in objs:
                    _add_object(facts, obj)
        case "compose":
            scope = compose_scope(path, read)
            for doc in load_docs(text, file=path):
                facts.workloads.extend(compose_workloads(path, doc, scope.child(), read))
        case "dockerfile":
            found = read_dockerfile(path, text, read)
            facts.workloads.append(found.workload)
            facts.run_steps, facts.copies = found.run_steps, found.copies
            facts.build_args, facts.baked = found.build_args, found.baked
        case "shell":
            facts.workloads.extend(shell_workloads(path, text, read))
        case "python":
            facts.python_calls, facts.python_server = read_python(path, text)
        case "hf-endpoint":
            facts.endpoint, workload = read_endpoint(path, text)
            facts.workloads.append(workload)
        case "triton":
            if path.endswith(".json"):
                json.loads(text)  # the vLLM backend's engine arguments: JSON or nothing
    for w in facts.workloads:
        engine_environment(w)


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
