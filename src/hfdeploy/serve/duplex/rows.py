"""The rows of a shared KV cache: conversations joining with an empty past, and leaving.

One Transformers cache holds every conversation on a common timeline; a row that joins gets
zero keys and values at every cached position, and a mask row of zeros over that past, so
attention never reaches what was there before it. Shared by the LM and Mimi's transformers.
"""

from __future__ import annotations

from typing import Any

__all__ = ["add_empty_row", "keep_rows"]


def add_empty_row(cache: Any, mask: Any) -> Any:
    """Append a row with an empty past to ``cache`` (in place); the mask with its row."""
    import torch

    for layer in cache.layers:
        if getattr(layer, "keys", None) is not None and layer.keys.numel():
            zeros = torch.zeros_like(layer.keys[:1])
            layer.keys = torch.cat([layer.keys, zeros])
            layer.values = torch.cat([layer.values, zeros.clone()])
    return torch.cat([mask, mask.new_zeros(1, mask.shape[1])])


def keep_rows(cache: Any, mask: Any, index: Any) -> Any:
    """Keep only the rows ``index`` of ``cache`` (in place); the mask's same rows."""
    cache.batch_select_indices(index)
    return mask[index]
