"""``hfdeploy mcp``: the MCP server, over stdio (default) or streamable HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hfdeploy.cli._output import handle_errors
from hfdeploy.errors import MissingDependencyError

__all__ = ["mcp_command"]


def mcp_command(
    http: Annotated[
        bool, typer.Option("--http", help="Serve streamable HTTP at /mcp instead of stdio.")
    ] = False,
    host: Annotated[str, typer.Option(help="Address for --http.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for --http.")] = 8000,
    allowed_root: Annotated[
        Path | None,
        typer.Option(
            help="Audit paths, and every file a tool writes (generate, fetch, up, profile "
            "reports), must be under this folder (default: the current one). Model folders "
            "are read where they are."
        ),
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            help="A host besides loopback that benchmark_endpoint may load and profile_memory "
            "may read /metrics from (repeatable)."
        ),
    ] = None,
    allow_command: Annotated[
        bool,
        typer.Option(
            "--allow-command", help="Let profile_memory start a command (any program) to watch."
        ),
    ] = False,
) -> None:
    """Run hfdeploy as an MCP server: every capability as a tool for AI agents."""
    with handle_errors():
        try:
            from hfdeploy.mcp.server import build_server
        except ImportError as e:
            raise MissingDependencyError(
                e.name or "mcp", extra="mcp", purpose="run the MCP server"
            ) from e
        server = build_server(
            allowed_root=allowed_root,
            allowed_hosts=tuple(allowed_host or ()),
            allow_command=allow_command,
        )
    if http:
        server.run("streamable-http", host=host, port=port)
    else:
        server.run()
