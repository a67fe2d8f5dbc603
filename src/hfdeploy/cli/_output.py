"""One output object for every command: data to stdout, progress and errors to stderr.

Modes: human (Rich tables), ``--json`` (one JSON document on stdout), quiet.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from hfdeploy.errors import HfDeployError

__all__ = ["Output", "fail", "gib", "handle_errors"]


def gib(n: int | float | None, digits: int = 2) -> str:
    """Bytes as GiB for people; small values in MiB so they do not read as zero."""
    if n is None:
        return "-"
    if abs(n) < 2**20 / 10:
        return f"{n / 2**10:.1f} KiB"
    if abs(n) < 2**30 / 10:
        return f"{n / 2**20:.1f} MiB"
    return f"{n / 2**30:.{digits}f} GiB"


class Output:
    """Where a command's results and messages go."""

    def __init__(self, *, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.out = Console(soft_wrap=False, highlight=False)
        self.err = Console(stderr=True, highlight=False)

    def data(self, payload: dict[str, Any]) -> None:
        """Print the machine-readable result (``--json``)."""
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")

    def print(self, *objects: Any) -> None:
        """Print human output (suppressed in JSON and quiet modes)."""
        if not self.json_mode and not self.quiet:
            self.out.print(*objects)

    def warn(self, message: str) -> None:
        if not self.quiet:
            self.err.print(f"[yellow]warning:[/] {escape(message)}")


def fail(err: HfDeployError, *, json_mode: bool = False) -> NoReturn:
    """Report an hfdeploy error: one line, the next step, exit 1."""
    if os.environ.get("HFDEPLOY_DEBUG") == "1":
        traceback.print_exception(err)
    if json_mode:
        sys.stdout.write(json.dumps({"error": err.to_dict()}, indent=2, default=str) + "\n")
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    # Messages and hints are plain text: "hfdeploy[serve]" is not Rich markup.
    console.print(f"[bold red]error:[/] {escape(err.message)}", markup=True)
    console.print(f"[dim]next:[/] {escape(err.hint)}", markup=True)
    raise typer.Exit(code=1)


@contextmanager
def handle_errors(*, json_mode: bool = False) -> Iterator[None]:
    """Map hfdeploy errors (and unexpected ones) onto the CLI's presentation table."""
    try:
        yield
    except HfDeployError as e:
        fail(e, json_mode=json_mode)
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as e:
        if os.environ.get("HFDEPLOY_DEBUG") == "1":
            raise
        fail(
            HfDeployError(
                f"unexpected {type(e).__name__}: {e}",
                hint="This is a bug: rerun with HFDEPLOY_DEBUG=1 and report the traceback.",
            ),
            json_mode=json_mode,
        )
