"""Drive ``hfdeploy mcp`` over stdio with the MCP SDK's own client."""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import jsonschema
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

HFDEPLOY = str(Path(sys.executable).with_name("hfdeploy"))
#: The four parts of every tool answer's text.
ENVELOPE = ("Result:", "Confidence:", "Uncertainty Factors:", "Verification:")


def check(result: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """A tool result that succeeded, matches its output schema and says its envelope."""
    assert not result.is_error, result.content[0].text
    jsonschema.validate(result.structured_content, schema)
    text = result.content[0].text
    assert all(part in text for part in ENVELOPE), text
    return dict(result.structured_content)


def session(body: Callable[[ClientSession], Awaitable[Any]], *args: str) -> Any:
    """Start ``hfdeploy mcp [args]`` over stdio, run ``body`` with an initialized session.

    The server gets this process's environment (the SDK passes only a few variables by
    default): ``PYTHONPATH`` so that it runs the code under test, and the test's Hub
    settings (offline, or a Hub on loopback).
    """

    async def main() -> Any:
        params = StdioServerParameters(command=HFDEPLOY, args=["mcp", *args], env=dict(os.environ))
        with Path("/dev/null").open("w") as devnull:
            async with (
                stdio_client(params, errlog=devnull) as (read, write),
                ClientSession(read, write) as s,
            ):
                await s.initialize()
                return await body(s)

    return anyio.run(main)
