"""Exact parameter counts for config-only models: instantiate on PyTorch's meta device.

The class is the one ``architectures`` names (``LlamaForCausalLM``, not ``AutoModel``,
which drops an untied ``lm_head``). The meta device allocates nothing. torch and
transformers are imported here only, behind the ``meta`` extra.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Mapping
from typing import Any

from hfdeploy.errors import MissingDependencyError, UnknownModelTypeError
from hfdeploy.model.safetensors import DTYPE_BITS, TensorInfo

__all__ = ["TORCH_DTYPES", "config_dtype", "meta_tensors"]

TORCH_DTYPES = {
    "float32": "F32", "float": "F32", "float16": "F16", "half": "F16", "bfloat16": "BF16",
    "float64": "F64", "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
}  # fmt: skip


def config_dtype(config: Mapping[str, Any]) -> tuple[str, str]:
    """The checkpoint dtype a config declares (``torch_dtype`` or ``dtype``), and its source."""
    for key in ("torch_dtype", "dtype"):
        value = config.get(key)
        if isinstance(value, str) and value.removeprefix("torch.") in TORCH_DTYPES:
            return TORCH_DTYPES[value.removeprefix("torch.")], f"config.json {key}={value!r}"
    sub = config.get("text_config")
    if isinstance(sub, Mapping):
        return config_dtype({k: sub.get(k) for k in ("torch_dtype", "dtype")})
    return "F32", "no dtype in config.json: transformers' default float32"


def meta_tensors(config: Mapping[str, Any], *, location: str) -> tuple[list[TensorInfo], str]:
    """The parameters a model would have, from its config alone.

    Returns:
        The tensors (stored dtype from the config) and a note saying which class was built.

    Raises:
        MissingDependencyError: torch or transformers is not installed.
        UnknownModelTypeError: transformers does not know the model type or class.
    """
    try:
        import torch
        import transformers
    except ImportError as e:
        raise MissingDependencyError(
            "torch and transformers",
            extra="meta",
            purpose="count the parameters of a model folder that has no weights",
        ) from e
    model_type = config.get("model_type")
    if not isinstance(model_type, str):
        raise UnknownModelTypeError(None, reason="config.json has no model_type", location=location)
    from transformers import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        reason = f"transformers {transformers.__version__} does not know this model type"
        if config.get("auto_map"):
            reason += " (it needs trust_remote_code, which hfdeploy does not run to size a model)"
        raise UnknownModelTypeError(model_type, reason=reason, location=location)
    clean = {k: v for k, v in config.items() if k not in {"quantization_config", "auto_map"}}
    archs = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    cls = getattr(transformers, archs[0], None) if archs else None
    note = f"counted by instantiating {archs[0] if archs else 'AutoModel'} on the meta device"
    if archs and cls is None:
        raise UnknownModelTypeError(
            model_type,
            reason=f"transformers {transformers.__version__} has no class {archs[0]}",
            location=location,
        )
    dtype, _ = config_dtype(config)
    bits = DTYPE_BITS[dtype]
    quiet = logging.getLogger("transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stderr(io.StringIO()),
            torch.device("meta"),
        ):
            warnings.simplefilter("ignore")
            cfg_obj = CONFIG_MAPPING[model_type].from_dict(clean)
            model = cls(cfg_obj) if cls is not None else transformers.AutoModel.from_config(cfg_obj)
    except Exception as e:  # a config transformers rejects: report it, do not crash
        raise UnknownModelTypeError(
            model_type, reason=f"transformers could not build it: {e}", location=location
        ) from e
    finally:
        quiet.setLevel(level)
    if not archs:
        note += " (no architectures in config.json: a task head, if any, is not counted)"
    tensors = [
        TensorInfo(
            name=name,
            dtype=dtype,
            shape=tuple(int(d) for d in p.shape),
            nbytes=(p.numel() * bits + 7) // 8,
        )
        for name, p in model.named_parameters()
    ]
    return tensors, note
