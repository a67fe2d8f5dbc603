"""The codebase keeps the shape docs/architecture.md describes: small modules, short functions,
imports in one direction (lazy imports inside functions count too), nothing stray at the root,
and nothing that points outside the repository."""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 100


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted((SRC / "hfdeploy").rglob("*.py")):
        parts = list(f.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


def _imported(name: str, f: Path, modules: dict[str, Path]) -> Iterator[str]:
    """Every hfdeploy module ``name`` imports, at any depth of the file (lazy imports too)."""

    def owner(dotted: str) -> str:
        while dotted not in modules and "." in dotted:
            dotted = dotted.rsplit(".", 1)[0]
        return dotted

    package = name.split(".") if f.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (owner(a.name) for a in node.names if a.name.startswith("hfdeploy"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *filter(None, [base])])
            if base.startswith("hfdeploy"):
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    yield sub if sub in modules else owner(base)


def _import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        m: {t for t in _imported(m, f, modules) if t != m and not m.startswith(t + ".")}
        for m, f in modules.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_is_over_the_limit() -> None:
    long = {
        m: n
        for m, f in _modules().items()
        if (n := len(f.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_function_is_over_the_limit() -> None:
    long = {}
    for m, f in _modules().items():
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long[f"{m}.{node.name}"] = n
    assert long == {}


def test_no_import_cycle() -> None:
    assert _cycles(_import_graph()) == []


#: Packages from the bottom up: each may import only those before it (docs/architecture.md).
LAYERS = ("_version", "errors", "envelope", "catalog", "model", "sizing", "plan", "render",
          "audit", "serve", "bench", "up", "mcp", "cli")  # fmt: skip


def test_packages_import_only_the_layers_below() -> None:
    def layer(module: str) -> int:
        return LAYERS.index(module.split(".")[1])

    upward = [
        f"{m} -> {t}"
        for m, targets in _import_graph().items()
        if m != "hfdeploy" and m != "hfdeploy.__main__"
        for t in targets
        if t != "hfdeploy" and layer(t) > layer(m)
    ]
    assert upward == []


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from hfdeploy.errors import HfDeployError", {"hfdeploy.errors"}),
        ("def f():\n    from hfdeploy.serve import app\n", {"hfdeploy.serve.app"}),
        ("from . import routes", {"hfdeploy.serve.routes"}),
        ("from .routes.tei import x", {"hfdeploy.serve.routes.tei"}),
        ("import hfdeploy.model.arch", {"hfdeploy.model.arch"}),
    ],
)
def test_imports_are_found_lazy_and_relative(
    tmp_path: Path, source: str, expected: set[str]
) -> None:
    f = tmp_path / "app.py"
    f.write_text(source)
    modules = _modules()
    assert set(_imported("hfdeploy.serve.app", f, modules)) == expected


def _tracked() -> list[str]:
    res = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        pytest.skip("not a git checkout")
    return res.stdout.splitlines()


def test_no_python_file_at_the_repository_root() -> None:
    assert [f for f in _tracked() if "/" not in f and f.endswith(".py")] == []


def test_nothing_points_outside_the_repository() -> None:
    # The shared design folder beside the checkout and its reference notes (written as
    # patterns, so that this file does not cite them itself).
    outside = re.compile(
        r"\.\.[/]shared|shared[/]reference|reference[/](sizing|engines)\.md|sizing\.md §"
    )
    hits = []
    for rel in _tracked():
        path = ROOT / rel
        if path.suffix in (".png", ".json") and "data" in path.parts:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        hits += [f"{rel}:{n}" for n, line in enumerate(text.splitlines(), 1)
                 if outside.search(line)]  # fmt: skip
    assert hits == []
