"""Python source → Hub-facing calls and the shape of a custom server, by AST."""

from __future__ import annotations

import ast
from typing import Any

from hfdeploy.audit.model import PythonCall

__all__ = ["read_python"]

_HUB_FUNCS = {
    "from_pretrained", "pipeline", "snapshot_download", "hf_hub_download",
    "SentenceTransformer", "CrossEncoder", "login", "LLM",
}  # fmt: skip


def read_python(path: str, text: str) -> tuple[list[PythonCall], dict[str, Any]]:
    """Hub calls with their literal arguments, and whether the file is a server that warms up.

    Raises:
        SyntaxError: the source does not parse.
    """
    tree = ast.parse(text, filename=path)
    calls: list[PythonCall] = []
    server: dict[str, Any] = {
        "app": False, "app_line": 1, "model_loads": 0, "warm_calls": 0, "startup": False,
    }  # fmt: skip
    startup_funcs: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _call_name(node.func)
            if name in ("FastAPI", "Flask", "LitServer", "Starlette"):
                server["app"] = True
                server["app_line"] = node.lineno
                for kw in node.keywords:
                    if kw.arg == "lifespan" and isinstance(kw.value, ast.Name):
                        startup_funcs.add(kw.value.id)
            if name in _HUB_FUNCS:
                calls.append(_python_call(name, node))
                if name != "login":
                    server["model_loads"] += 1
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and _call_name(dec.func) == "on_event":
                    startup_funcs.add(node.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in startup_funcs:
            server["startup"] = True
            for inner in ast.walk(node):
                if isinstance(inner, ast.Call) and _call_name(inner.func) in (
                    "encode", "generate", "predict", "forward", "warmup", "warm_up", "__call__",
                ):  # fmt: skip
                    server["warm_calls"] += 1
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and "warm" in node.name.lower():
            server["warm_calls"] += 1
    return calls, server


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _python_call(name: str, node: ast.Call) -> PythonCall:
    kwargs: dict[str, object] = {}
    for kw in node.keywords:
        if kw.arg is None:
            continue
        try:
            kwargs[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            kwargs[kw.arg] = _Dynamic()
    repo = None
    first: ast.expr | None = node.args[0] if node.args else None
    if name == "pipeline" and len(node.args) < 2:
        first = next((kw.value for kw in node.keywords if kw.arg == "model"), None)
    elif name == "pipeline":
        first = node.args[1]
    elif first is None:
        key = {"snapshot_download": "repo_id", "hf_hub_download": "repo_id"}.get(name, "model")
        first = next(
            (
                kw.value
                for kw in node.keywords
                if kw.arg in (key, "pretrained_model_name_or_path", "model_name_or_path")
            ),
            None,
        )
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        repo = first.value
    return PythonCall(name, node.lineno, repo, kwargs)


class _Dynamic:
    """A keyword argument whose value is not a literal (read from a variable or env)."""

    def __repr__(self) -> str:
        return "<dynamic>"
