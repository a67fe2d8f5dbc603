"""The MCP server: one tool per capability that exists, the catalogs as resources.

No logic lives in the tools beyond mapping arguments to the library calls the CLI makes and
presenting the answer: structured content is the CLI's ``--json`` object, the text is the
answer's envelope (Result, Confidence, Uncertainty Factors, Verification). An hfdeploy error
becomes a tool error with the CLI's two lines; the server goes on.

The tools live in ``model_tools`` (read a model or a catalog), ``file_tools`` (write or read
files, under the allowed root) and ``measure_tools`` (send load, watch a process, ``up``); each
is a function registered by ``@tool`` (``toolkit``). Requests go only to loopback and to the
hosts named with ``hfdeploy mcp --allowed-host``, files only under ``--allowed-root``, and
``profile_memory`` starts a command only with ``--allow-command``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from mcp.server.mcpserver import MCPServer

from hfdeploy._version import __version__
from hfdeploy.catalog.engines import engine_catalog
from hfdeploy.catalog.gpus import gpu_catalog

# Importing the tool modules registers their tools (``@tool``).
from hfdeploy.mcp import file_tools, measure_tools, model_tools  # noqa: F401
from hfdeploy.mcp.toolkit import LOOPBACK, Limits, registered_tools

__all__ = ["TOOLS", "build_server"]

#: The tools this server offers, by name.
TOOLS = tuple(t.name for t in registered_tools())

_INSTRUCTIONS = (
    "hfdeploy sizes and inspects Hugging Face models for deployment without "
    "downloading weights. Use inspect_model to learn what a model is, "
    "estimate_memory to know how much GPU memory it needs and which GPUs fit, "
    "plan_deployment and generate_deployment for the engine, GPUs and deployment files, "
    "audit_deployment to find what is wrong in deployment files (paths under the "
    "allowed root, or file contents inline), fetch_model to download a model pinned to a "
    "commit with a sha256 lock, benchmark_endpoint to measure a running "
    "server's latency and throughput, profile_memory to watch a process for leaks, "
    "run_up for the whole flow on this machine, list_gpus and list_engines for the names "
    "those tools accept."
)


def _gpus() -> str:
    return json.dumps(gpu_catalog().to_dict(), indent=2)


def _engines() -> str:
    return json.dumps({"engines": [e.to_dict() for e in engine_catalog().values()]}, indent=2)


def _audit_rules() -> str:
    from hfdeploy.audit.rules import PARSE_ERROR, RULES

    rules = [
        {"id": r.id, "tag": r.tag, "severity": r.severity, "title": r.title,
         "detects": r.detects, "impact": r.impact, "recommendation": r.recommendation}
        for r in (*RULES, PARSE_ERROR)
    ]  # fmt: skip
    return json.dumps({"rules": rules}, indent=2)


#: (URI, name, description, reader) of each resource.
_RESOURCES: tuple[tuple[str, str, str, Callable[[], str]], ...] = (
    ("hfdeploy://catalog/gpus", "gpu-catalog", "The GPU catalog (the list_gpus object).",
     _gpus),
    ("hfdeploy://catalog/engines", "engine-catalog",
     "The engine catalog (the list_engines object).", _engines),
    ("hfdeploy://catalog/audit-rules", "audit-rules",
     "The audit rule catalog: id, tag, severity, title, what each detects.", _audit_rules),
)  # fmt: skip


def build_server(
    *,
    allowed_root: Path | None = None,
    allowed_hosts: tuple[str, ...] = (),
    allow_command: bool = False,
) -> MCPServer[Limits]:
    """The hfdeploy MCP server with its tools and resources (not yet running).

    Args:
        allowed_root: the only folder tools read files from or write files into by path
            (audit, generate, fetch, profile_memory's output, up); default: the current
            directory.
        allowed_hosts: hosts besides loopback that ``benchmark_endpoint`` may load and
            ``profile_memory`` may read metrics from.
        allow_command: let ``profile_memory`` start a command (any program).

    Returns:
        The server; ``run()`` serves stdio, ``run("streamable-http", ...)`` HTTP.
    """
    limits = Limits(
        root=(allowed_root or Path.cwd()).resolve(),
        hosts=LOOPBACK | {h.lower() for h in allowed_hosts},
        allow_command=allow_command,
    )

    @asynccontextmanager
    async def lifespan(_: MCPServer[Limits]) -> AsyncIterator[Limits]:
        # The tools read the limits from the request context (``toolkit.limits``).
        yield limits

    server: MCPServer[Limits] = MCPServer(
        name="hfdeploy", version=__version__, instructions=_INSTRUCTIONS, lifespan=lifespan
    )
    for t in registered_tools():
        server.add_tool(t.fn, description=t.description, annotations=t.annotations)
    for uri, name, description, read in _RESOURCES:
        server.resource(uri, name=name, mime_type="application/json", description=description)(read)
    return server
