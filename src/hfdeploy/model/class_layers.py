"""Ask transformers' config class for a model's per-layer cache types.

For configs that carry no per-layer list and whose model type has no rule in
:mod:`hfdeploy.model.layers`: the config class fills its defaults (``GptOssConfig``
alternates sliding and full layers when ``layer_types`` is absent, for example), and
transformers' cache code says what each layer keeps. Optional: without transformers, or
for a model type it does not know, the answer is None and sizing assumes full attention.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Mapping
from typing import Any

from hfdeploy.model.layers import LayerTypes

__all__ = ["class_layer_types"]


def _text_config(config: Any) -> Any:
    getter = getattr(config, "get_text_config", None)
    if getter is None:
        return config
    with contextlib.suppress(Exception):
        return getter(decoder=True)
    return config


def class_layer_types(config: Mapping[str, Any]) -> LayerTypes | None:
    """The layer types transformers' config class gives this config, or None."""
    model_type = config.get("model_type")
    if not isinstance(model_type, str):
        return None
    try:
        import transformers
        from transformers import AutoConfig
    except ImportError:
        return None
    values = {k: v for k, v in config.items() if k != "model_type"}
    sink = io.StringIO()
    level = logging.getLogger("transformers").level
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            built = AutoConfig.for_model(model_type, **values)
            text = _text_config(built)
            names, windows = _types_of(text)
    except Exception:  # an unknown model type, or a config its class rejects
        return None
    finally:
        logging.getLogger("transformers").setLevel(level)
    if not names:
        return None
    return LayerTypes(
        tuple(str(n).lower() for n in names),
        f"transformers {transformers.__version__} {type(text).__name__} defaults",
        windows=windows,
    )


def _types_of(text: Any) -> tuple[list[str], tuple[int | None, ...]]:
    """Layer types and windows, as transformers' cache builds its layers."""
    try:
        from transformers.cache_utils import get_layer_types_and_kwargs
    except ImportError:  # transformers 4.x: the config's own list
        names = getattr(text, "layer_types", None) or getattr(text, "layers_block_type", None)
        return (list(names) if names else []), ()
    names, kwargs = get_layer_types_and_kwargs(text)
    windows = tuple(int(k["sliding_window"]) if k.get("sliding_window") else None for k in kwargs)
    return list(names), windows
