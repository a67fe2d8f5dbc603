"""``hfdeploy audit PATH...``: findings in deployment files; an exit code for CI."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from hfdeploy.audit.findings import SEVERITIES
from hfdeploy.audit.report import FORMATS, render
from hfdeploy.audit.rules import PARSE_ERROR, RULES
from hfdeploy.audit.run import audit_paths, load_config
from hfdeploy.errors import HfDeployError

__all__ = ["audit_command"]


def audit_command(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Files or folders: Dockerfiles, compose, Kubernetes YAML, scripts, Python, "
            "hf-endpoint.json, Triton repositories."
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="text, markdown, json or sarif.")] = "text",
    fail_on: Annotated[
        str, typer.Option(help="Exit 1 when a finding is at or above: error, warning, info.")
    ] = "error",
    list_rules: Annotated[
        bool, typer.Option("--list-rules", help="Print the rules and exit.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """Find what is wrong in a model deployment. Exit 0 clean, 1 findings at or above
    --fail-on, 2 usage or read errors."""
    if list_rules:
        for r in (*RULES, PARSE_ERROR):
            typer.echo(f"{r.id}  {r.severity:<7}  {r.tag:<28}  {r.title}")
        raise typer.Exit(0)
    fmt = "json" if json_ else fmt
    if fmt not in FORMATS or fail_on not in SEVERITIES or not paths:
        why = (
            f"--format must be one of {', '.join(FORMATS)}" if fmt not in FORMATS
            else f"--fail-on must be one of {', '.join(SEVERITIES)}" if fail_on not in SEVERITIES
            else "give at least one file or folder"
        )  # fmt: skip
        typer.echo(f"error: {why}", err=True)
        raise typer.Exit(2)
    try:
        # The local Hugging Face cache, as any Hugging Face tool finds it, for the fit check.
        report = audit_paths(paths, load_config(Path.cwd()), environ=os.environ)
    except FileNotFoundError as e:
        typer.echo(f"error: no such file or folder: {e}\nnext: check the path", err=True)
        raise typer.Exit(2) from None
    except HfDeployError as e:
        typer.echo(f"error: {e.message}\nnext: {e.hint}", err=True)
        raise typer.Exit(2) from None
    if fmt == "text" and sys.stdout.isatty():
        from rich.console import Console

        Console(highlight=False, soft_wrap=True).print(render(report, fmt, colour=True), end="")
    else:
        sys.stdout.write(render(report, fmt))
    raise typer.Exit(1 if report.failed(fail_on) else 0)
