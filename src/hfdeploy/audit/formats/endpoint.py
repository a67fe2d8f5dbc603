"""``hf-endpoint.json`` (the keyword arguments of ``HfApi.create_inference_endpoint``) →
its repository, revision and image, and the ``Workload`` the endpoint runs."""

from __future__ import annotations

import json
from typing import Any

from hfdeploy.audit.invocation import detect_invocation
from hfdeploy.audit.model import Argv, EnvVar, Workload
from hfdeploy.audit.objects import Endpoint
from hfdeploy.audit.yamlsrc import Doc, load_docs
from hfdeploy.errors import YamlParseError

__all__ = ["is_endpoint", "read_endpoint"]


def is_endpoint(data: Any) -> bool:
    """Whether parsed JSON is Inference Endpoints' creation arguments (by its keys)."""
    return isinstance(data, dict) and (
        isinstance(data.get("custom_image"), dict)
        or ("repository" in data and "instance_type" in data)
    )


def read_endpoint(path: str, text: str) -> tuple[Endpoint, Workload]:
    """The endpoint's pinning facts and the server it runs.

    Raises:
        json.JSONDecodeError: the file is not JSON.
        ValueError: it is JSON but not an object.
    """
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object of create_inference_endpoint's arguments")
    doc = _lines(path, text, data)
    image = _dict(data.get("custom_image"))
    url = image.get("url")
    endpoint = Endpoint(
        _str(data.get("repository")), doc.line("repository"),
        _str(data.get("revision")), doc.line("revision"),
        _str(url), doc.line("custom_image", "url"),
    )  # fmt: skip
    w = Workload(path, doc.start, "hf-endpoint", name=str(data.get("name", "")))
    w.image, w.image_line = _str(url), doc.line("custom_image", "url")
    head = _strings(data.get("container_command"))
    args = _strings(data.get("container_args"))
    lines = [doc.line("container_command", k) for k in range(len(head))] + [
        doc.line("container_args", k) for k in range(len(args))
    ]
    w.exec = Argv(tuple(head + args), tuple(lines), own_entrypoint=bool(head))
    at = doc.line("container_args") if args else doc.line("container_command")
    w.invocation = detect_invocation(head + args, at, w.image, arg_lines=lines)
    env = _dict(data.get("env"))
    w.env = [EnvVar(str(k), None if v is None else str(v), doc.line("env", k))
             for k, v in env.items()]  # fmt: skip
    size = str(data.get("instance_size", ""))
    if data.get("accelerator") == "gpu" and size[1:].isdigit():
        w.gpus, w.gpus_line = int(size[1:]), doc.line("instance_size")
    if isinstance(image.get("port"), int):
        w.ports.append((image["port"], doc.line("custom_image", "port")))
    return endpoint, w


def _lines(path: str, text: str, data: dict[str, Any]) -> Doc:
    """Lines of the JSON's values, through the YAML reader (JSON is YAML); line 1 if not."""
    try:
        return next(iter(load_docs(text, file=path)))
    except (YamlParseError, StopIteration):
        return Doc(data, {}, 1)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _strings(value: Any) -> list[str]:
    return [str(x) for x in value] if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
