"""Python source → Hub-facing calls and the shape of a custom server, by AST.

Arguments are evaluated as far as the file itself says: literals, module-level (and the
calling function's) constants, simple f-strings and ``+`` on strings, lists of those, and
environment reads (``os.environ[...]``, ``os.environ.get(...)``, ``os.getenv(...)``), which
keep the variable's name and default so that a rule can say what happens when it is unset.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from hfdeploy.audit.model import PythonCall

__all__ = ["Dynamic", "EnvRead", "read_python"]

_HUB_FUNCS = {
    "from_pretrained", "pipeline", "snapshot_download", "hf_hub_download",
    "SentenceTransformer", "CrossEncoder", "login", "LLM",
}  # fmt: skip
_WARM = frozenset({"encode", "generate", "predict", "forward", "warmup", "warm_up", "__call__"})
#: Names a loaded model is usually bound to, so that ``model(**inputs)`` is a forward pass.
_MODEL_NAMES = frozenset({"model", "llm", "pipe", "classifier", "generator", "encoder"})


@dataclass(frozen=True, slots=True)
class EnvRead:
    """A value read from the environment (``os.environ.get(NAME, default)``,
    ``os.getenv(NAME)``; ``required`` for ``os.environ[NAME]``, a KeyError when unset) or, as
    ``argument``, from the command line (argparse's ``--name`` with its ``default``)."""

    name: str
    default: object = None
    required: bool = False
    argument: bool = False

    def __str__(self) -> str:
        if self.argument:
            return f"the {self.name} argument"
        if self.required:
            return f"os.environ[{self.name!r}]"
        return f"os.environ.get({self.name!r})" if self.default is None else (
            f"os.environ.get({self.name!r}, {self.default!r})")  # fmt: skip

    @property
    def unset(self) -> str:
        """When the value falls back to its default, for a message."""
        return f"when {self.name} is not given" if self.argument else f"when {self.name} is unset"


class Dynamic:
    """A value the file does not give (a function's result, an argument, an attribute)."""

    def __init__(self, text: str = "") -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"<{self.text}>" if self.text else "<dynamic>"

    def __str__(self) -> str:
        return self.text or "a computed value"


def read_python(path: str, text: str) -> tuple[list[PythonCall], dict[str, Any]]:
    """Hub calls with their arguments' values, and whether the file is a server that warms up.

    Raises:
        SyntaxError: the source does not parse.
    """
    tree = ast.parse(text, filename=path)
    module = _constants(tree.body, {"": _arguments(tree)})
    calls: list[PythonCall] = []
    scopes: dict[int, dict[str, object]] = {}
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            local = _constants(fn.body, {**module, **_parameters(fn, module)})
            for node in ast.walk(fn):
                scopes.setdefault(id(node), local)
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
                calls.append(_python_call(name, node, scopes.get(id(node), module)))
                if name != "login":
                    server["model_loads"] += 1
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and _call_name(dec.func) == "on_event":
                    startup_funcs.add(node.name)
    server["warm_calls"] = _warm_calls(tree, startup_funcs, server)
    return calls, server


def _warm_calls(tree: ast.Module, startup_funcs: set[str], server: dict[str, Any]) -> int:
    """Forward passes before serving: in a start-up hook (a call of a warm-up name, or of a
    model object: ``model(...)``, ``state["model"](...)``), at module level, or a function
    named for warm-up."""
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in startup_funcs:
            server["startup"] = True
            count += sum(1 for inner in ast.walk(node) if isinstance(inner, ast.Call)
                         and (_call_name(inner.func) in _WARM or _model_call(inner)))  # fmt: skip
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and "warm" in node.name.lower():
            count += 1
    for stmt in tree.body:  # module level runs at import, before the app serves
        if isinstance(stmt, ast.Expr | ast.Assign) and isinstance(stmt.value, ast.Call):
            count += _call_name(stmt.value.func) in _WARM
    return count


def _model_call(call: ast.Call) -> bool:
    """``model(...)`` or ``models["model"](...)``: a model object called, a forward pass."""
    func = call.func
    if isinstance(func, ast.Subscript):
        return True
    return isinstance(func, ast.Name) and func.id in _MODEL_NAMES


def _arguments(tree: ast.Module) -> dict[str, EnvRead]:
    """argparse's arguments by destination (``--model-id`` is ``args.model_id``), with their
    defaults: what a script loads when run without them."""
    out: dict[str, EnvRead] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and _call_name(node.func) == "add_argument"):
            continue
        flags = [a.value for a in node.args if isinstance(a, ast.Constant)
                 and isinstance(a.value, str) and a.value.startswith("--")]  # fmt: skip
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        dest = kw.get("dest")
        name = dest.value if isinstance(dest, ast.Constant) else flags[0][2:] if flags else None
        if isinstance(name, str):
            default = _value(kw["default"], {}) if "default" in kw else None
            out[name.replace("-", "_")] = EnvRead(flags[0] if flags else name, default,
                                                  argument=True)  # fmt: skip
    return out


def _parameters(fn: ast.FunctionDef | ast.AsyncFunctionDef,
                names: dict[str, object]) -> dict[str, object]:  # fmt: skip
    """A function's parameters with a string default, as what a call without them gives
    (``def load(revision="main")``); the others are the caller's, unknown here."""
    params = [*fn.args.posonlyargs, *fn.args.args]
    pairs = [*zip(params[len(params) - len(fn.args.defaults) :], fn.args.defaults, strict=True),
             *((a, d) for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults, strict=True)
               if d is not None)]  # fmt: skip
    out: dict[str, object] = {}
    for arg, node in pairs:
        default = _value(node, names)
        if isinstance(default, str):
            out[arg.arg] = EnvRead(arg.arg, default, argument=True)
    return out


def _constants(body: list[ast.stmt], outer: dict[str, object]) -> dict[str, object]:
    """The names a block assigns (in order, control flow aside), evaluated where they can."""
    names = dict(outer)
    for stmt in body:
        target: ast.expr | None = None
        value: ast.expr | None = None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            target, value = stmt.target, stmt.value
        if isinstance(target, ast.Name) and value is not None:
            names[target.id] = _value(value, names)
    return names


def _value(node: ast.expr, names: dict[str, object]) -> object:
    """What an expression evaluates to, as far as the file says (see the module docstring)."""
    match node:
        case ast.Constant(value=v):
            return v
        case ast.Name(id=n):
            return names.get(n, Dynamic(n))
        case ast.List(elts=items) | ast.Tuple(elts=items) | ast.Set(elts=items):
            return [_value(i, names) for i in items]
        case ast.Dict(keys=keys, values=values):
            return {_value(k, names): _value(v, names) for k, v in zip(keys, values, strict=True)
                    if k is not None}  # fmt: skip
        case ast.Attribute(attr=attr) if attr in _args_of(names):
            return _args_of(names)[attr]  # args.model_id
        case ast.JoinedStr(values=parts):
            pieces = [_value(p.value, names) if isinstance(p, ast.FormattedValue)
                      else _value(p, names) for p in parts]  # fmt: skip
            known = all(isinstance(p, str | int | float) for p in pieces)
            return "".join(str(p) for p in pieces) if known else Dynamic(ast.unparse(node))
        case ast.BinOp(left=left, op=ast.Add(), right=right):
            a, b = _value(left, names), _value(right, names)
            return (
                a + b if isinstance(a, str) and isinstance(b, str) else Dynamic(ast.unparse(node))
            )
        case ast.BoolOp(op=ast.Or(), values=[first, *rest]):  # os.environ.get(X) or "default"
            head = _value(first, names)
            if isinstance(head, EnvRead) and head.default in (None, "") and rest:
                return EnvRead(head.name, _value(rest[0], names), head.required)
            return head
        case ast.Subscript(value=v, slice=key) if _is_environ(v):
            return EnvRead(str(_value(key, names)), required=True)
        case ast.Subscript(value=v, slice=key):  # CONFIG["revision"]
            found, k = _value(v, names), _value(key, names)
            if isinstance(found, dict) and isinstance(k, str | int) and k in found:
                return found[k]
        case ast.Call(func=func, args=args) if _env_getter(func) and args:
            default = _value(args[1], names) if len(args) > 1 else None
            kw = next((k.value for k in node.keywords if k.arg == "default"), None)
            return EnvRead(str(_value(args[0], names)),
                           _value(kw, names) if kw is not None else default)  # fmt: skip
    return Dynamic(ast.unparse(node))


def _args_of(names: dict[str, object]) -> dict[str, EnvRead]:
    found = names.get("")
    return found if isinstance(found, dict) else {}


def _is_environ(node: ast.expr) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ")  # fmt: skip


def _env_getter(func: ast.expr) -> bool:
    """``os.getenv``, ``getenv``, ``os.environ.get``, ``environ.get``."""
    if isinstance(func, ast.Attribute) and func.attr == "get":
        return _is_environ(func.value)
    return _call_name(func) == "getenv"


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _python_call(name: str, node: ast.Call, names: dict[str, object]) -> PythonCall:
    kwargs: dict[str, object] = {
        kw.arg: _value(kw.value, names) for kw in node.keywords if kw.arg is not None
    }
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
    if name == "hf_hub_download" and len(node.args) > 1 and "filename" not in kwargs:
        kwargs["filename"] = _value(node.args[1], names)
    source = _value(first, names) if first is not None else None
    repo = source if isinstance(source, str) else None
    if isinstance(source, EnvRead) and isinstance(source.default, str):
        repo = source.default  # the model when the variable is unset
    return PythonCall(name, node.lineno, repo, kwargs, source)
