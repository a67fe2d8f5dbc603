"""config.json → ArchSpec: what a model's layers hold per token, per request.

Pure. Each layer is classified by what it keeps for a request, which is what the KV
cache sizing multiplies: full attention (K and V for every token of the context), sliding
window or attention chunk (K and V for the last ``window`` tokens, or the current chunk;
engines keep more, see :mod:`hfdeploy.sizing.kv`), MLA (one compressed latent per token),
cross-attention (K and V over the encoder's positions), fixed state (Mamba, linear
attention, short convolutions: a state per request whatever the context length), both on
one layer (hybrid), or nothing. Layers with the same shape form a :class:`LayerGroup`, and
every decoder layer is in exactly one group; a layer type not known here is listed in
``unknown_layers`` for sizing to refuse by name. Every figure records the config fields
that drove it in ``drivers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from hfdeploy.model.fields import int_field
from hfdeploy.model.layers import TYPE_KINDS, LayerKind, LayerTypes, config_layer_types
from hfdeploy.model.state import state_shape

__all__ = ["ArchSpec", "LayerGroup", "MoESpec", "arch_from_config", "text_config"]

_ENCODER_ONLY = {
    "bert", "roberta", "xlm-roberta", "distilbert", "deberta", "deberta-v2", "electra",
    "albert", "mpnet", "camembert", "modernbert", "nomic_bert", "xlm", "ernie", "new",
    "vit", "deit", "beit", "dinov2", "convnext", "resnet", "swin", "clip_vision_model",
    "siglip_vision_model", "wav2vec2", "hubert", "wavlm", "data2vec-audio", "jina_bert",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class LayerGroup:
    """Layers that hold the same state per token (or per request, for fixed state).

    ``elements_per_token`` is per layer and counts K and V together (MLA: the latent).
    ``state_elements`` is per layer and request, for Mamba / linear-attention layers (and
    hybrid layers, which hold both). ``window`` is the sliding window or attention chunk.
    """

    kind: LayerKind
    count: int
    kv_heads: int = 0
    head_dim_k: int = 0
    head_dim_v: int = 0
    elements_per_token: int = 0
    window: int | None = None
    state_elements: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class MoESpec:
    """Mixture-of-experts shape: every expert is resident; ``active`` drive compute."""

    num_experts: int
    active: int
    expert_intermediate_size: int
    shared_experts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ArchSpec:
    """The shape facts sizing needs, from config.json alone."""

    family: Literal["decoder", "encoder", "encoder-decoder", "other"]
    model_type: str | None
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    intermediate_size: int
    vocab_size: int
    max_context: int | None
    groups: tuple[LayerGroup, ...] = ()
    moe: MoESpec | None = None
    #: Encoder positions that cross-attention holds per request (Whisper: 1500).
    encoder_positions: int = 0
    #: Elements per token and layer that an engine without MLA support stores.
    mla_expanded_elements: int = 0
    drivers: dict[str, Any] = field(default_factory=dict)
    #: Layer types sizing does not know, with their layer counts: it refuses to size them.
    unknown_layers: tuple[tuple[str, int], ...] = ()
    #: Where the per-layer types came from, and whether they were assumed.
    layer_types_source: str = ""
    layer_types_assumed: bool = False

    @property
    def has_kv_cache(self) -> bool:
        return any(g.elements_per_token and g.kind != "cross" for g in self.groups)

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "model_type": self.model_type,
            "num_layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "num_attention_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size,
            "vocab_size": self.vocab_size,
            "max_context": self.max_context,
            "layer_groups": [g.to_dict() for g in self.groups],
            "moe": self.moe.to_dict() if self.moe else None,
            "encoder_positions": self.encoder_positions,
            "layer_types_source": self.layer_types_source,
            "layer_types_assumed": self.layer_types_assumed,
            "unknown_layer_types": dict(self.unknown_layers),
            "drivers": self.drivers,
        }


def text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The language model's fields: ``text_config`` for multimodal wrappers, else config."""
    sub = config.get("text_config")
    if isinstance(sub, Mapping) and any(
        sub.get(k) for k in ("num_hidden_layers", "layers_block_type", "hybrid_override_pattern")
    ):
        return sub
    return config


def _first(cfg: Mapping[str, Any], drivers: dict[str, Any], *names: str) -> Any:
    for name in names:
        if "." in name:
            outer, inner = name.split(".", 1)
            sub = cfg.get(outer)
            value = sub.get(inner) if isinstance(sub, Mapping) else None
        else:
            value = cfg.get(name)
        if value is not None:
            drivers[name] = value
            return value
    return None


def _family(cfg: Mapping[str, Any], model_type: str | None, archs: list[str]) -> str:
    if cfg.get("is_encoder_decoder") or model_type in {
        "whisper",
        "t5",
        "bart",
        "mbart",
        "mt5",
        "marian",
        "pegasus",
        "m2m_100",
        "umt5",
    }:
        return "encoder-decoder"
    if model_type in _ENCODER_ONLY:
        return "encoder"
    if any(a.endswith(("ForMaskedLM", "ForImageClassification", "ForCTC")) for a in archs):
        return "encoder"
    # Everything else with attention layers is treated as a decoder (causal LMs, VLM wrappers,
    # decoder-based embedders): it has a KV cache when an engine generates with it.
    return "decoder"


def _summarise(values: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return out


def arch_from_config(
    config: Mapping[str, Any],
    *,
    max_context_override: int | None = None,
    class_types: LayerTypes | None = None,
) -> ArchSpec:
    """Derive the per-layer memory shape of a model from its config.json.

    Args:
        config: the parsed config.json (or a GGUF-derived equivalent).
        max_context_override: a context length known from elsewhere (GGUF metadata).
        class_types: the per-layer types transformers' config class gives, when the
            profile step asked it (:func:`hfdeploy.model.class_layers.class_layer_types`).

    Returns:
        An :class:`ArchSpec`; encoder-only models have no layer groups (no KV cache).
    """
    archs = [str(a) for a in config.get("architectures") or []]
    model_type = config.get("model_type")
    cfg = text_config(config)
    drivers: dict[str, Any] = {}
    family = _family(config, model_type, archs)

    if model_type == "whisper" or (family == "encoder-decoder" and "d_model" in cfg):
        return _encoder_decoder(cfg, model_type, drivers)

    n_layers = int_field(
        _first(cfg, drivers, "num_hidden_layers", "n_layer", "num_layers", "n_layers")
    )
    if not n_layers:  # Nemotron-H writes only its per-layer list
        listed = next(
            (cfg[k] for k in ("layer_types", "layers_block_type", "hybrid_override_pattern")
             if isinstance(cfg.get(k), list | str) and cfg[k]),
            (),
        )  # fmt: skip
        n_layers = len(listed)
    if model_type in _TWO_ATTENTION_SUBLAYERS and "num_hidden_layers" not in cfg:
        n_layers *= 2
        drivers["attention_sublayers"] = f"2 per decoder layer ({model_type})"
    hidden = int_field(_first(cfg, drivers, "hidden_size", "n_embd", "d_model", "dim"))
    heads = int_field(_first(cfg, drivers, "num_attention_heads", "n_head", "n_heads", "num_heads"))
    inter = int_field(
        _first(cfg, drivers, "intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size")
    )
    inter = inter or 4 * hidden
    vocab = int_field(_first(cfg, drivers, "vocab_size", "padded_vocab_size"))
    max_ctx = max_context_override or int_field(
        _first(
            cfg, drivers, "max_position_embeddings", "n_positions", "max_seq_len",
            "seq_length", "max_sequence_length", "model_max_length",
        )
    ) or None  # fmt: skip
    moe = _moe(cfg, drivers)
    if family == "encoder" or n_layers == 0:
        return ArchSpec(
            family="encoder" if family == "encoder" else "other",
            model_type=model_type, num_layers=n_layers, hidden_size=hidden,
            num_attention_heads=heads, intermediate_size=inter, vocab_size=vocab,
            max_context=max_ctx, moe=moe, drivers=drivers,
            # A generator whose layers cannot be counted: sizing refuses its cache.
            unknown_layers=() if family == "encoder" else (("no layer count in config", 0),),
        )  # fmt: skip

    kv_heads = int_field(
        _first(cfg, drivers, "num_key_value_heads", "num_kv_heads", "multi_query_group_num",
               "attn_config.kv_n_heads", "n_head_kv")
    ) or (1 if cfg.get("multi_query") else heads)  # fmt: skip
    head_dim = int_field(_first(cfg, drivers, "head_dim", "kv_channels", "d_kv")) or (
        hidden // heads if heads else 0
    )
    if "head_dim" not in drivers and heads:
        drivers["head_dim"] = f"hidden_size // num_attention_heads = {head_dim}"

    types = config_layer_types(cfg, model_type, n_layers, class_types=class_types)
    drivers["layer_types"] = _summarise(list(types.names))
    groups, mla_expanded, unknown = _decoder_groups(
        cfg, model_type, types, hidden=hidden, heads=heads, kv_heads=kv_heads,
        head_dim=head_dim, drivers=drivers,
    )  # fmt: skip
    return ArchSpec(
        family="decoder", model_type=model_type, num_layers=n_layers, hidden_size=hidden,
        num_attention_heads=heads, intermediate_size=inter, vocab_size=vocab,
        max_context=max_ctx, groups=groups, moe=moe, mla_expanded_elements=mla_expanded,
        drivers=drivers, unknown_layers=unknown, layer_types_source=types.source,
        layer_types_assumed=types.assumed,
    )  # fmt: skip


_ATTENTION = {"full", "sliding", "chunked", "indexed"}
# Decoder layers with two attention sublayers, each with its own cache (LongCat-Flash:
# transformers' num_hidden_layers is 2 x num_layers).
_TWO_ATTENTION_SUBLAYERS = {"longcat_flash"}


def _decoder_groups(
    cfg: Mapping[str, Any],
    model_type: str | None,
    types: LayerTypes,
    *,
    hidden: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    drivers: dict[str, Any],
) -> tuple[tuple[LayerGroup, ...], int, tuple[tuple[str, int], ...]]:
    """Layers with the same shape, in first-seen order; MLA's expanded width; unknown types.

    Every layer lands in one group (``none`` for layers that keep nothing), or in the
    unknown list: a type name sizing does not know, or a recurrent layer whose state size
    no config field gives.
    """
    kv_lora = int_field(cfg.get("kv_lora_rank"))
    mla = bool(kv_lora) and cfg.get("qk_rope_head_dim") is not None
    mla_expanded = index_dim = rope = 0
    if mla:
        rope = int_field(_first(cfg, drivers, "qk_rope_head_dim"))
        drivers["kv_lora_rank"] = kv_lora
        nope = int_field(cfg.get("qk_nope_head_dim"))
        mla_expanded = heads * (nope + rope + int_field(cfg.get("v_head_dim"), nope))
    state = state_shape(cfg, model_type, hidden, drivers)
    window = (
        int_field(cfg.get("sliding_window")) or int_field(cfg.get("attention_window_size")) or None
    )
    chunk = int_field(_first(cfg, drivers, "attention_chunk_size")) or None
    per_token = 2 * kv_heads * head_dim
    counts: dict[tuple[Any, ...], int] = {}
    unknown: dict[str, int] = {}
    for i, name in enumerate(types.names):
        kind = TYPE_KINDS.get(name)
        own = types.windows[i] if i < len(types.windows) else None
        if kind == "indexed" and mla:
            index_dim = int_field(_first(cfg, drivers, "index_head_dim"), 128)
        key: tuple[Any, ...] | None
        if kind in _ATTENTION and mla:
            key = ("mla", kv_lora + rope + (index_dim if kind == "indexed" else 0), None, 0)
        elif kind in {"full", "sliding", "chunked"}:
            local = {"full": None, "sliding": own or window, "chunked": own or chunk}[kind]
            kind = kind if local else "full"  # a local type with no window holds everything
            key = (kind, per_token, local, 0)
        elif kind in {"state", "hybrid", "hybrid_sliding"} and state is not None:
            state_kind, elements = state
            key = (
                (state_kind, 0, None, elements) if kind == "state"
                else ("hybrid", per_token, (own or window) if kind == "hybrid_sliding" else None,
                      elements)
            )  # fmt: skip
        elif kind == "none":
            key = ("none", 0, None, 0)
        else:
            key = None
        if key is None:
            label = name if kind in {None, "indexed"} else f"{name} (no state size in config)"
            unknown[label] = unknown.get(label, 0) + 1
        else:
            counts[key] = counts.get(key, 0) + 1
    groups = tuple(
        LayerGroup(
            kind, n, kv_heads=(1 if kind == "mla" else kv_heads) if ept else 0,
            head_dim_k=(ept if kind == "mla" else head_dim) if ept else 0,
            head_dim_v=head_dim if ept and kind != "mla" else 0, elements_per_token=ept,
            window=win, state_elements=st,
        )
        for (kind, ept, win, st), n in counts.items()
    )  # fmt: skip
    return groups, mla_expanded, tuple(unknown.items())


def _moe(cfg: Mapping[str, Any], drivers: dict[str, Any]) -> MoESpec | None:
    n = int_field(
        _first(cfg, drivers, "num_local_experts", "n_routed_experts", "num_experts",
               "moe_num_experts", "ffn_config.moe_num_experts")
    )  # fmt: skip
    if n <= 1:
        return None
    active = int_field(
        _first(cfg, drivers, "num_experts_per_tok", "num_experts_per_token", "moe_top_k",
               "ffn_config.moe_top_k", "top_k_experts"),
        1,
    )  # fmt: skip
    inter = int_field(_first(cfg, drivers, "moe_intermediate_size", "expert_intermediate_size"))
    inter = inter or int_field(cfg.get("intermediate_size"))
    shared = int_field(_first(cfg, drivers, "n_shared_experts", "num_shared_experts"))
    if not shared and int_field(cfg.get("shared_expert_intermediate_size")):
        shared = 1
    return MoESpec(num_experts=n, active=active, expert_intermediate_size=inter,
                   shared_experts=shared)  # fmt: skip


def _encoder_decoder(cfg: Mapping[str, Any], model_type: str | None, drivers: dict[str, Any]
                     ) -> ArchSpec:  # fmt: skip
    """Whisper / BART / T5: decoder self-attention plus cross-attention over the encoder."""
    d_model = int_field(_first(cfg, drivers, "d_model", "hidden_size"))
    dec_layers = int_field(
        _first(cfg, drivers, "decoder_layers", "num_decoder_layers", "num_layers")
    )
    enc_layers = int_field(_first(cfg, drivers, "encoder_layers", "num_layers"), dec_layers)
    heads = int_field(_first(cfg, drivers, "decoder_attention_heads", "num_heads"))
    head_dim = int_field(_first(cfg, drivers, "d_kv")) or (d_model // heads if heads else 0)
    kv_heads = heads
    vocab = int_field(_first(cfg, drivers, "vocab_size"))
    inter = int_field(_first(cfg, drivers, "decoder_ffn_dim", "d_ff"), 4 * d_model)
    dec_max = (
        int_field(
            _first(cfg, drivers, "max_target_positions", "max_position_embeddings", "n_positions")
        )
        or None
    )
    enc_positions = int_field(_first(cfg, drivers, "max_source_positions"))
    if not enc_positions:
        enc_positions = dec_max or 512
        drivers["encoder_positions"] = f"assumed equal to the decoder maximum ({enc_positions})"
    per_token = 2 * kv_heads * head_dim
    groups = (
        LayerGroup("full", dec_layers, kv_heads=kv_heads, head_dim_k=head_dim,
                   head_dim_v=head_dim, elements_per_token=per_token),
        LayerGroup("cross", dec_layers, kv_heads=kv_heads, head_dim_k=head_dim,
                   head_dim_v=head_dim, elements_per_token=per_token),
    )  # fmt: skip
    return ArchSpec(
        family="encoder-decoder", model_type=model_type, num_layers=enc_layers + dec_layers,
        hidden_size=d_model, num_attention_heads=heads, intermediate_size=inter,
        vocab_size=vocab, max_context=dec_max, groups=groups, encoder_positions=enc_positions,
        drivers=drivers,
    )  # fmt: skip
