"""The package root exports exactly its public API (as httpx checks its own)."""

from __future__ import annotations

import hfdeploy


def test_all_is_exact_and_importable() -> None:
    public = {name for name in vars(hfdeploy) if not name.startswith("_")} - {
        "model", "sizing", "errors", "cli", "serve", "envelope", "mcp", "audit", "plan", "render",
        "bench", "catalog", "up",
    }  # fmt: skip
    assert set(hfdeploy.__all__) - {"__version__"} == public
    for name in hfdeploy.__all__:
        assert getattr(hfdeploy, name) is not None
