"""Recurrent layers: the fixed state one request holds per layer, in elements.

Pure. A recurrent layer keeps a state whatever the context length: Mamba's convolution and
SSM state, a linear-attention layer's key-value state (Gated DeltaNet, KDA, lightning
attention), a short convolution's window (LFM2), an RG-LRU's state (RecurrentGemma). The
family is read from the config's fields; when none is recognised the answer is None, and
sizing refuses the layer type by name rather than count it as nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hfdeploy.model.fields import int_field

__all__ = ["state_shape"]

Drivers = dict[str, Any]


def _pick(cfg: Mapping[str, Any], drivers: Drivers, *names: str, default: int = 0) -> int:
    for name in names:
        if cfg.get(name) is not None:
            drivers[name] = cfg[name]
            return int_field(cfg[name], default)
    return default


def _mamba(cfg: Mapping[str, Any], hidden: int, drivers: Drivers) -> int:
    """Mamba-1 (inner x (conv - 1) + inner x d_state) or Mamba-2 (heads x head_dim x
    d_state + (inner + 2 x groups x d_state) x (conv - 1))."""
    d_state = _pick(cfg, drivers, "mamba_d_state", "state_size", "ssm_state_size", default=16)
    d_conv = _pick(cfg, drivers, "mamba_d_conv", "conv_kernel", "mamba_conv_kernel", default=4)
    heads = _pick(cfg, drivers, "mamba_n_heads", "mamba_num_heads", "n_mamba_heads")
    if heads or cfg.get("model_type") == "mamba2":
        heads = heads or _pick(cfg, drivers, "num_heads")
        head_dim = _pick(
            cfg, drivers, "mamba_d_head", "mamba_head_dim", "mamba_headdim", "head_dim",
            default=64,
        )  # fmt: skip
        groups = _pick(cfg, drivers, "mamba_n_groups", "mamba_ngroups", "n_groups", default=1)
        inner = heads * head_dim
        return (inner + 2 * groups * d_state) * (d_conv - 1) + heads * head_dim * d_state
    expand = _pick(cfg, drivers, "mamba_expand", "expand", default=2)
    inner = int_field(cfg.get("intermediate_size")) if cfg.get("model_type") == "mamba" else 0
    inner = inner or expand * hidden
    return inner * (d_conv - 1) + inner * d_state


def _delta(cfg: Mapping[str, Any], hidden: int, drivers: Drivers) -> int:
    """Gated DeltaNet / KDA: value heads x key dim x value dim, plus the q/k/v convolution."""
    v_heads = _pick(cfg, drivers, "linear_num_value_heads", "linear_num_heads")
    k_heads = _pick(cfg, drivers, "linear_num_key_heads", "linear_num_heads", default=v_heads)
    k_dim = _pick(cfg, drivers, "linear_key_head_dim", "linear_head_dim")
    v_dim = _pick(cfg, drivers, "linear_value_head_dim", "linear_head_dim")
    conv = _pick(cfg, drivers, "linear_conv_kernel_dim", "short_conv_kernel_size", default=4)
    return v_heads * k_dim * v_dim + (2 * k_heads * k_dim + v_heads * v_dim) * (conv - 1)


def _lightning(cfg: Mapping[str, Any], hidden: int, drivers: Drivers) -> int:
    """MiniMax lightning attention: one head_dim x head_dim key-value state per head."""
    heads = _pick(cfg, drivers, "num_attention_heads")
    head_dim = _pick(cfg, drivers, "head_dim") or (hidden // heads if heads else 0)
    return heads * head_dim * head_dim


def _short_conv(cfg: Mapping[str, Any], hidden: int, drivers: Drivers) -> int:
    """LFM2 short convolution: the last conv_L_cache inputs of width hidden."""
    return hidden * _pick(cfg, drivers, "conv_L_cache", default=3)


def _rg_lru(cfg: Mapping[str, Any], hidden: int, drivers: Drivers) -> int:
    """RecurrentGemma: the RG-LRU state plus the temporal convolution's window."""
    width = _pick(cfg, drivers, "lru_width") or hidden
    return width + width * (_pick(cfg, drivers, "conv1d_width", default=4) - 1)


_FAMILIES: tuple[tuple[str, tuple[str, ...], Callable[..., int]], ...] = (
    ("mamba", ("mamba_d_state", "state_size", "ssm_state_size", "mamba_n_heads",
               "mamba_num_heads", "n_mamba_heads", "mamba_expand"), _mamba),
    ("linear", ("linear_num_value_heads", "linear_key_head_dim", "linear_num_heads"), _delta),
    ("linear", ("conv_L_cache",), _short_conv),
    ("linear", ("lru_width",), _rg_lru),
)  # fmt: skip


def state_shape(
    cfg: Mapping[str, Any], model_type: str | None, hidden: int, drivers: Drivers
) -> tuple[str, int] | None:
    """``("mamba" | "linear", elements per layer and request)``, or None if unknown."""
    if model_type in {"mamba", "mamba2", "falcon_mamba", "jamba"}:
        return "mamba", _mamba(cfg, hidden, drivers)
    if model_type == "minimax":
        return "linear", _lightning(cfg, hidden, drivers)
    for kind, keys, size in _FAMILIES:
        if any(cfg.get(k) is not None for k in keys):
            elements = size(cfg, hidden, drivers)
            return (kind, elements) if elements > 0 else None
    return None
