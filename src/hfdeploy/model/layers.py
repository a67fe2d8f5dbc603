"""What each decoder layer keeps for a request, from config.json: the per-layer cache types.

Pure. Every layer gets one type name, from the first source that has it:

1. the config's own per-layer list (``layer_types``, ``layers_block_type``,
   ``hybrid_override_pattern``, ``block_types``);
2. the model class's default rule, for the model types written out here (each one checked
   against transformers' own config class by the test suite);
3. the model class itself, read from transformers where it is installed (the profile step
   does that, for configs with local or recurrent layers and no rule here);
4. otherwise: every layer full attention, which never under-counts, flagged as assumed when
   the config has signs of local or recurrent layers.

:data:`TYPE_KINDS` maps a type name to what the layer holds; a name missing from it is
unknown, and sizing refuses it by name rather than count it as nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hfdeploy.model.fields import int_field

__all__ = [
    "RULE_MODEL_TYPES",
    "TYPE_KINDS",
    "LayerKind",
    "LayerTypes",
    "config_layer_types",
    "needs_class_layer_types",
]

LayerKind = Literal[
    "full", "sliding", "chunked", "mla", "cross", "mamba", "linear", "hybrid", "none"
]  # fmt: skip

#: Layer type names, as configs and transformers write them, and what such a layer holds:
#: ``full`` K/V for every token; ``sliding`` / ``chunked`` K/V for a window or an attention
#: chunk (engines differ in how much more they keep); ``state`` a fixed recurrent state
#: (Mamba, linear attention, short convolutions); ``hybrid`` / ``hybrid_sliding`` both on one
#: layer; ``indexed`` MLA plus a sparse-attention indexer's keys; ``none`` nothing (MLP-only
#: layers, layers that reuse another layer's cache).
TYPE_KINDS: dict[str, str] = {
    **dict.fromkeys(("attention", "full_attention", "global_attention", "full", "global",
                     "attn", "*"), "full"),
    **dict.fromkeys(("sliding_attention", "sliding_window_attention", "local_attention",
                     "sliding", "local", "swa"), "sliding"),
    "chunked_attention": "chunked",
    **dict.fromkeys(("linear_attention", "linear", "mamba", "mamba2", "ssm", "m", "recurrent",
                     "conv", "short_conv", "kda", "deltanet", "gated_deltanet"), "state"),
    "hybrid": "hybrid",
    "hybrid_sliding": "hybrid_sliding",
    "indexed_attention": "indexed",
    **dict.fromkeys(("dummy", "mlp", "moe", "-", "e", "ffn", "no_op", "none"), "none"),
}  # fmt: skip

#: Model types whose per-layer rule is written out below (and checked against transformers'
#: config classes by tests/model/test_layer_sweep.py); others with local or recurrent
#: layers ask transformers.
RULE_MODEL_TYPES = frozenset({
    "gpt_oss", "llama4", "llama4_text", "gemma2", "gemma3", "gemma3_text", "cohere2",
    "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "mistral", "mixtral", "ministral", "jamba",
    "bamba", "mamba", "mamba2", "falcon_mamba", "lfm2", "lfm2_moe", "llama", "phi3",
})  # fmt: skip

# Config keys that say some layers are not plain full attention.
_LOCAL_SIGNS = re.compile(
    r"window|chunk_size|layer_types|block_type|pattern|rope_layers|attn_layer|full_attn|"
    r"linear_|mamba|ssm|state_size|conv_l_cache|kv_shared|lru_width|hybrid"
)


@dataclass(frozen=True, slots=True)
class LayerTypes:
    """One type name per layer, where they came from, and how sure that is."""

    names: tuple[str, ...]
    source: str
    assumed: bool = False
    #: Per-layer window (sliding) or attention chunk (chunked), where the source gives one.
    windows: tuple[int | None, ...] = ()


def _norm(name: Any) -> str:
    return str(name).strip().lower()


def _listed(cfg: Mapping[str, Any], n: int) -> LayerTypes | None:
    """The config's own per-layer list, if it has one of the right length."""
    for key in ("layer_types", "layers_block_type"):
        values = cfg.get(key)
        if isinstance(values, Sequence) and not isinstance(values, str) and len(values) == n:
            names = [_norm(v) for v in values]
            if cfg.get("use_sliding_window") is False:
                # Qwen2 writes sliding layer types only when the switch is on; honour it.
                names = ["full_attention" if TYPE_KINDS.get(t) == "sliding" else t for t in names]
            return LayerTypes(tuple(names), f"config.json {key}")
    pattern = cfg.get("hybrid_override_pattern")  # Nemotron-H: M mamba, * attention, - MLP
    if isinstance(pattern, str) and len(pattern) == n:
        return LayerTypes(tuple(_norm(c) for c in pattern), "config.json hybrid_override_pattern")
    blocks = cfg.get("block_types")  # RecurrentGemma: a cycle of recurrent and local blocks
    if isinstance(blocks, Sequence) and not isinstance(blocks, str) and blocks:
        cycle = [_norm(b) for b in blocks]
        names = ["recurrent" if b == "recurrent" else "local_attention" for b in cycle]
        return LayerTypes(tuple((names * (n // len(names) + 1))[:n]), "config.json block_types")
    return None


def _window(cfg: Mapping[str, Any]) -> int:
    return int_field(cfg.get("sliding_window")) or int_field(cfg.get("attention_window_size"))


def _rule(cfg: Mapping[str, Any], model_type: str, n: int) -> tuple[list[str], str] | None:
    """The model class's default per-layer rule, for the model types in RULE_MODEL_TYPES."""
    window = _window(cfg)
    full, slide = "full_attention", "sliding_attention"
    if model_type == "gpt_oss":  # GptOssConfig: even layers slide, odd ones are full
        return [slide if i % 2 == 0 else full for i in range(n)], "gpt-oss: even layers slide"
    if model_type in {"llama4", "llama4_text"}:
        # Llama4TextConfig: no_rope_layers[i] == 1 marks a RoPE layer, which attends within
        # its chunk; NoPE layers (every no_rope_layer_interval-th) attend to everything.
        interval = int_field(cfg.get("no_rope_layer_interval"), 4) or 4
        no_rope = cfg.get("no_rope_layers")
        if not (isinstance(no_rope, Sequence) and len(no_rope) == n and any(no_rope)):
            no_rope = [int((i + 1) % interval != 0) for i in range(n)]
        local = "chunked_attention" if int_field(cfg.get("attention_chunk_size")) else full
        return [local if r else full for r in no_rope], "Llama 4: RoPE layers are chunked"
    if model_type == "gemma2":  # even-indexed layers slide
        return [slide if i % 2 == 0 else full for i in range(n)], "Gemma-2: even layers slide"
    if model_type in {"gemma3", "gemma3_text", "cohere2"}:
        # Every pattern-th layer is global (Gemma-3: 6, Cohere2: 4).
        default = 4 if model_type == "cohere2" else 6
        p = int_field(cfg.get("sliding_window_pattern"), default) or default
        return (
            [full if (i + 1) % p == 0 else slide for i in range(n)],
            f"every {p}th layer global (sliding_window_pattern)",
        )
    if model_type in {"qwen2", "qwen2_moe", "qwen3", "qwen3_moe"}:
        if not cfg.get("use_sliding_window") or not window:
            return [full] * n, "use_sliding_window off: all full"
        mwl = int_field(cfg.get("max_window_layers"), 28)
        if model_type == "qwen2_moe":  # even layers below max_window_layers slide
            return [slide if i % 2 == 0 and i < mwl else full for i in range(n)], (
                "even layers below max_window_layers slide"
            )
        if model_type == "qwen3_moe":  # the window applies to every layer
            return [slide] * n, "use_sliding_window: every layer"
        return [slide if i >= mwl else full for i in range(n)], "from max_window_layers on"
    if model_type == "jamba":
        period = int_field(cfg.get("attn_layer_period"), 8) or 8
        offset = int_field(cfg.get("attn_layer_offset"), 4)
        return (
            ["attention" if i % period == offset else "mamba" for i in range(n)],
            f"attention every {period} layers from {offset} (attn_layer_period/offset)",
        )
    if model_type == "bamba":
        idx = set(cfg.get("attn_layer_indices") or ())
        return ["attention" if i in idx else "mamba" for i in range(n)], "attn_layer_indices"
    if model_type in {"mamba", "mamba2", "falcon_mamba"}:
        return ["mamba"] * n, "state-space model: every layer a Mamba block"
    if model_type in {"lfm2", "lfm2_moe"}:
        listed_idx = cfg.get("full_attn_idxs")
        idx = set(range(n)) if listed_idx is None else set(listed_idx)
        return [full if i in idx else "conv" for i in range(n)], "full_attn_idxs, else conv"
    # Mistral, Mixtral, Ministral, Phi-3, Llama: a window with no per-layer information
    # slides on every layer; no window, every layer is full.
    if window and cfg.get("use_sliding_window") is not False:
        return [slide] * n, "sliding_window on every layer"
    return [full] * n, "every layer full attention"


def needs_class_layer_types(cfg: Mapping[str, Any], model_type: str | None) -> bool:
    """Whether the model class must be asked for its layers: no per-layer list, no rule
    here, and signs in the config of layers that are not plain full attention."""
    n = int_field(cfg.get("num_hidden_layers"))
    if not n or _listed(cfg, n) is not None or model_type in RULE_MODEL_TYPES:
        return False
    return any(_LOCAL_SIGNS.search(str(k).lower()) for k, v in cfg.items() if v not in (None, 0))


def config_layer_types(
    cfg: Mapping[str, Any],
    model_type: str | None,
    n_layers: int,
    *,
    class_types: LayerTypes | None = None,
) -> LayerTypes:
    """One type name per layer (see the module docstring for the order of sources).

    The last ``num_kv_shared_layers`` layers (Gemma-3n, Gemma 4) reuse an earlier layer's
    cache and keep nothing of their own, whatever the source says they are.

    Args:
        cfg: the text model's config.
        model_type: the top-level config's ``model_type``.
        n_layers: the number of decoder layers.
        class_types: what the model class (transformers) says, when it was asked.
    """
    types = _layer_types(cfg, model_type, n_layers, class_types)
    shared = min(int_field(cfg.get("num_kv_shared_layers")), n_layers)
    if shared <= 0:
        return types
    names = types.names[: n_layers - shared] + ("dummy",) * shared
    return LayerTypes(
        names,
        f"{types.source}; the last {shared} layers reuse earlier caches (num_kv_shared_layers)",
        assumed=types.assumed,
        windows=types.windows,
    )


def _layer_types(
    cfg: Mapping[str, Any],
    model_type: str | None,
    n_layers: int,
    class_types: LayerTypes | None,
) -> LayerTypes:
    listed = _listed(cfg, n_layers)
    if listed is not None:
        return listed
    mt = str(model_type or "")
    if mt in RULE_MODEL_TYPES:
        names, why = _rule(cfg, mt, n_layers) or ([], "")
        return LayerTypes(tuple(names), f"{mt} class default: {why}")
    if class_types is not None and len(class_types.names) == n_layers:
        return class_types
    if needs_class_layer_types(cfg, model_type):
        return LayerTypes(
            ("full_attention",) * n_layers,
            f"assumed: every layer full attention (model type {mt or '?'} has fields of local "
            "or recurrent layers and no per-layer list; install transformers to read its "
            "class)",
            assumed=True,
        )
    return LayerTypes(("full_attention",) * n_layers, "every layer full attention")
