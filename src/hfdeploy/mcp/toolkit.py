"""What every MCP tool shares: the ``@tool`` registry, the server's limits, and the answer.

A tool is one module-level function decorated with ``@tool(...)``: its name, docstring and
signature are the tool's name, description and arguments (the SDK reads them), and its
return annotation names the output schema. Tools that touch files or hosts take a
``ctx: Ctx`` argument (the SDK injects it; clients never see it) and ask ``limits(ctx)``:
the allowed root for paths, the hosts that may be loaded, whether commands may be started.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from hfdeploy.envelope import Envelope
from hfdeploy.errors import HfDeployError
from hfdeploy.plan.destination import DEFAULT_PROMETHEUS, ScaleOut

__all__ = [
    "LOOPBACK", "READ_ONLY", "Ctx", "Limits", "Model", "Prefer", "RegisteredTool", "Registry",
    "Repo", "ScaleOutArg", "ScaleOutArgs",
    "StorageClass", "answer", "call", "limits", "registered_tools", "scale_out", "tool",
]  # fmt: skip

T = TypeVar("T")
ToolFn = Callable[..., Awaitable[CallToolResult]]

#: Hosts a tool may always send requests to; others need ``--allowed-host``.
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True)

Model = Annotated[
    str,
    Field(
        description="A local folder, a .gguf file, or a Hub id ('owner/name'), "
        "optionally '@revision' (a branch, tag or 40-hex commit)."
    ),
]


Registry = Annotated[
    str | None,
    Field(
        description="Where hfdeploy's own images are pushed (e.g. ghcr.io/acme); the hfdeploy "
        "engine's cluster and Endpoints files and the Kubernetes fetch Job need it."
    ),
]
Repo = Annotated[
    str | None,
    Field(
        description="For a local folder: the Hub repository it is published at, pinned "
        "(OWNER/NAME@COMMIT)."
    ),
]
Prefer = Annotated[
    Literal["cost", "latency"],
    Field(
        description="cost: the cheapest configuration that meets the request, trading prefill "
        "speed or KV precision for memory before adding GPUs; latency: the engine's defaults."
    ),
]
StorageClass = Annotated[
    str | None,
    Field(description="A StorageClass offering ReadWriteMany, for more than one pod."),
]


class ScaleOutArgs(BaseModel):
    """How the cluster scales and places the replicas (``ScaleOut``), as a tool argument."""

    model_config = ConfigDict(extra="forbid")

    autoscaler: Annotated[
        Literal["hpa", "keda"],
        Field(
            description="hpa (a Prometheus adapter serves the queue metric) or keda (a "
            "ScaledObject queries Prometheus; the keda target implies it)."
        ),
    ] = "hpa"
    gpu_label: Annotated[
        Literal["gfd", "gke"],
        Field(
            description="Node label placing pods on the planned GPU: gfd "
            "(nvidia.com/gpu.product) or gke (cloud.google.com/gke-accelerator)."
        ),
    ] = "gfd"
    priority_class: Annotated[
        str | None, Field(description="PriorityClass of the serving pods.")
    ] = None
    prometheus: Annotated[str, Field(description="The Prometheus KEDA queries.")] = (
        DEFAULT_PROMETHEUS
    )
    prometheus_secret: Annotated[
        str | None, Field(description="Secret (key `token`) with a bearer token for Prometheus.")
    ] = None
    gateway: Annotated[
        str, Field(description="The Gateway the inference-pool target's HTTPRoute attaches to.")
    ] = "inference-gateway"
    measured_rps: Annotated[
        float | None,
        Field(
            gt=0,
            description="Requests/s one replica served at its saturation knee (a bench "
            "sweep's knee_rate): scales the autoscaling thresholds.",
        ),
    ] = None

    def options(self) -> ScaleOut:
        return ScaleOut(**self.model_dump())


ScaleOutArg = Annotated[
    ScaleOutArgs | None,
    Field(description="Scale-out options: autoscaler, GPU node label, priority class, "
          "Prometheus, Gateway, a measured rate (defaults when omitted)."),
]  # fmt: skip


def scale_out(arg: ScaleOutArgs | None) -> ScaleOut:
    """The planner's ``ScaleOut`` for a tool's argument."""
    return (arg or ScaleOutArgs()).options()


@dataclass(frozen=True, slots=True)
class Limits:
    """What the server's tools may touch, fixed when ``hfdeploy mcp`` starts."""

    #: The only folder tools read files from or write files into by path.
    root: Path
    #: Hosts tools may send requests to (loopback and ``--allowed-host``).
    hosts: frozenset[str]
    #: Whether ``profile_memory`` may start a command (``--allow-command``).
    allow_command: bool = False

    def inside(self, raw: str) -> Path:
        """``raw`` resolved against the root; a tool error when it leaves the root."""
        root = self.root
        path = (root / raw).resolve()
        if path != root and root not in path.parents:
            raise ToolError(
                f"error: {raw} is outside the allowed root {root}\n"
                "next: pass a path under it, or restart `hfdeploy mcp --allowed-root DIR`"
            )
        return path

    def check_host(self, host: str, *, next_step: str) -> None:
        """A tool error unless ``host`` is loopback or an allowed host."""
        if host.lower() not in self.hosts:
            raise ToolError(
                f"error: {host.lower()} is neither loopback nor an allowed host\n"
                f"next: {next_step}, or restart `hfdeploy mcp --allowed-host HOST`"
            )


#: The argument type that asks the SDK for the request context (and so the limits).
Ctx = Context[Limits, Any]


def limits(ctx: Ctx) -> Limits:
    """The server's limits, which ``build_server`` makes its lifespan state."""
    state = ctx.request_context.lifespan_context
    assert isinstance(state, Limits), "build_server sets the lifespan state"
    return state


@dataclass(frozen=True, slots=True)
class RegisteredTool:
    fn: ToolFn
    annotations: ToolAnnotations

    @property
    def name(self) -> str:
        return self.fn.__name__

    @property
    def description(self) -> str:
        return inspect.cleandoc(self.fn.__doc__ or "")


_REGISTRY: dict[str, RegisteredTool] = {}


def tool(annotations: ToolAnnotations = READ_ONLY) -> Callable[[ToolFn], ToolFn]:
    """Register the decorated function as a tool of every server ``build_server`` makes.

    Args:
        annotations: the hints clients read (read-only, destructive, open world, ...).

    Returns:
        The decorator; it returns the function unchanged.
    """

    def register(fn: ToolFn) -> ToolFn:
        assert fn.__name__ not in _REGISTRY, f"two tools named {fn.__name__}"
        _REGISTRY[fn.__name__] = RegisteredTool(fn, annotations)
        return fn

    return register


def registered_tools() -> tuple[RegisteredTool, ...]:
    """Every registered tool, by name."""
    return tuple(_REGISTRY[name] for name in sorted(_REGISTRY))


def answer(data: dict[str, Any], envelope: Envelope) -> CallToolResult:
    """The tool result: ``data`` (the CLI's ``--json`` object) and the envelope as text."""
    return CallToolResult(
        content=[TextContent(type="text", text=envelope.to_text())],
        structured_content=data,
    )


async def call(fn: Callable[[], T]) -> T:
    """Run a library call off the event loop; hfdeploy errors become tool errors."""
    try:
        return await anyio.to_thread.run_sync(fn)
    except HfDeployError as e:
        # The same two lines the CLI prints.
        raise ToolError(f"error: {e.message}\nnext: {e.hint}") from e
