"""Reading config.json values: an integer field that may be missing, null or malformed."""

from __future__ import annotations

from typing import Any

__all__ = ["int_field"]


def int_field(value: Any, default: int = 0) -> int:
    """``value`` as an int; ``default`` for None, booleans and what int() cannot read."""
    if isinstance(value, bool) or value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
