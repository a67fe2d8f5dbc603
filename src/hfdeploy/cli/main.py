"""The ``hfdeploy`` command: one Typer app, one module per command."""

from __future__ import annotations

from typing import Annotated

import typer

from hfdeploy._version import __version__
from hfdeploy.cli.audit import audit_command
from hfdeploy.cli.bench import bench_command
from hfdeploy.cli.fetch import fetch_command
from hfdeploy.cli.generate import generate_command
from hfdeploy.cli.inspect import inspect_command
from hfdeploy.cli.mcp import mcp_command
from hfdeploy.cli.plan import plan_command
from hfdeploy.cli.profile import profile_app
from hfdeploy.cli.serve import serve_command
from hfdeploy.cli.size import size_command
from hfdeploy.cli.up import up_command

__all__ = ["app", "main"]

app = typer.Typer(
    name="hfdeploy",
    help="Size, plan, generate, audit, serve and measure Hugging Face model deployments.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hfdeploy {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """hfdeploy: from a model id or folder to a sized, pinned, measured deployment."""


app.command("up")(up_command)
app.command("inspect")(inspect_command)
app.command("size")(size_command)
app.command("plan")(plan_command)
app.command("generate")(generate_command)
app.command("serve")(serve_command)
app.command("mcp")(mcp_command)
app.command("audit")(audit_command)
app.command("fetch")(fetch_command)
app.command("bench")(bench_command)
app.add_typer(profile_app, name="profile")


def main() -> None:
    """Console-script entry point."""
    app()
