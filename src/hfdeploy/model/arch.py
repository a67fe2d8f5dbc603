"""config.json → ArchSpec: what a model's layers hold per token, per request.

Pure. Each layer is classified by what it keeps for a request, which is what the KV
cache sizing multiplies: full attention (K and V for every token of the context), sliding
window (K and V for the last ``window`` tokens), MLA (one compressed latent per token),
cross-attention (K and V over the encoder's positions), or fixed state (Mamba and linear
attention: a state per request whatever the context length). Layers with the same shape
form a :class:`LayerGroup`. Every figure records the config fields that drove it in
``drivers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["ArchSpec", "LayerGroup", "MoESpec", "arch_from_config", "text_config"]

LayerKind = Literal["full", "sliding", "mla", "cross", "mamba", "linear"]

_FULL_TYPES = {"attention", "full_attention", "global_attention", "full", "global"}
_SLIDING_TYPES = {"sliding_attention", "sliding_window_attention", "local_attention", "sliding"}
_LINEAR_TYPES = {"linear_attention", "linear"}
_MAMBA_TYPES = {"mamba", "mamba2", "ssm"}
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
    ``state_elements`` is per layer and request, for Mamba / linear-attention layers.
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

    @property
    def has_kv_cache(self) -> bool:
        return any(g.kind in {"full", "sliding", "mla"} for g in self.groups)

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
            "drivers": self.drivers,
        }


def text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The language model's fields: ``text_config`` for multimodal wrappers, else config."""
    sub = config.get("text_config")
    if isinstance(sub, Mapping) and sub.get("num_hidden_layers") is not None:
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


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool) or value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


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


def _layer_kinds(cfg: Mapping[str, Any], n_layers: int, drivers: dict[str, Any]) -> list[str]:
    """Per-layer kind names ('full', 'sliding', 'linear', 'mamba'; 'other' when unknown).

    From ``layer_types`` when the config lists one per layer, else ``layers_block_type``
    (hybrids), else Jamba's attention period, else the sliding-window fields.
    """
    layer_types = cfg.get("layer_types")
    if isinstance(layer_types, list) and len(layer_types) == n_layers:
        drivers["layer_types"] = _summarise(layer_types)
        kinds = []
        for t in layer_types:
            t = str(t).lower()
            if t in _SLIDING_TYPES:
                kinds.append("sliding")
            elif t in _LINEAR_TYPES:
                kinds.append("linear")
            elif t in _MAMBA_TYPES:
                kinds.append("mamba")
            elif t in _FULL_TYPES:
                kinds.append("full")
            else:
                kinds.append("other")
        # Qwen2 writes sliding layer types only when use_sliding_window is on; honour the switch.
        if cfg.get("use_sliding_window") is False:
            drivers["use_sliding_window"] = False
            kinds = ["full" if k == "sliding" else k for k in kinds]
        return kinds
    blocks = cfg.get("layers_block_type")  # Jamba, Zamba-style hybrids
    if isinstance(blocks, list) and len(blocks) == n_layers:
        drivers["layers_block_type"] = _summarise(blocks)
        return ["full" if str(b) == "attention" else "mamba" for b in blocks]
    if cfg.get("attn_layer_period") and cfg.get("model_type") == "jamba":
        period, offset = _int(cfg["attn_layer_period"]), _int(cfg.get("attn_layer_offset"))
        drivers["attn_layer_period"], drivers["attn_layer_offset"] = period, offset
        return ["full" if i % period == offset else "mamba" for i in range(n_layers)]
    window = cfg.get("sliding_window")
    if window is None:
        return ["full"] * n_layers
    drivers["sliding_window"] = window
    if cfg.get("use_sliding_window") is False:
        drivers["use_sliding_window"] = False
        return ["full"] * n_layers
    pattern = cfg.get("sliding_window_pattern")
    if isinstance(pattern, int) and pattern > 0:
        # Gemma-3: every pattern-th layer is global (is_sliding = (i + 1) % pattern != 0).
        drivers["sliding_window_pattern"] = pattern
        return ["full" if (i + 1) % pattern == 0 else "sliding" for i in range(n_layers)]
    if cfg.get("model_type") in {"gemma2", "cohere2"}:
        # Gemma-2: even-indexed layers slide, odd ones are global (modeling_gemma2.py).
        drivers["alternation"] = "even layers sliding (Gemma-2)"
        return ["sliding" if i % 2 == 0 else "full" for i in range(n_layers)]
    if cfg.get("use_sliding_window") and cfg.get("max_window_layers") is not None:
        mwl = _int(cfg["max_window_layers"])
        drivers["max_window_layers"] = mwl
        return ["sliding" if i >= mwl else "full" for i in range(n_layers)]
    # Mistral-v0.1 style: a window and no per-layer information: every layer slides.
    return ["sliding"] * n_layers


def _summarise(values: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return out


def _mamba_state(cfg: Mapping[str, Any], hidden: int, drivers: dict[str, Any]) -> int:
    """Elements of one Mamba layer's per-request state (conv + SSM)."""
    d_state = _int(_first(cfg, drivers, "mamba_d_state", "state_size", "ssm_state_size"), 16)
    d_conv = _int(_first(cfg, drivers, "mamba_d_conv", "conv_kernel", "mamba_conv_kernel"), 4)
    heads = _int(_first(cfg, drivers, "mamba_n_heads", "mamba_num_heads"))
    if heads or cfg.get("model_type") == "mamba2":
        heads = heads or _int(cfg.get("num_heads"))
        head_dim = _int(_first(cfg, drivers, "mamba_d_head", "mamba_head_dim", "head_dim"), 64)
        groups = _int(_first(cfg, drivers, "mamba_n_groups", "n_groups"), 1)
        inner = heads * head_dim
        return (inner + 2 * groups * d_state) * (d_conv - 1) + heads * head_dim * d_state
    expand = _int(_first(cfg, drivers, "mamba_expand", "expand"), 2)
    inner = _int(cfg.get("intermediate_size")) if cfg.get("model_type") == "mamba" else 0
    inner = inner or expand * hidden
    return inner * (d_conv - 1) + inner * d_state


def _linear_state(cfg: Mapping[str, Any], drivers: dict[str, Any]) -> int:
    """Elements of one linear-attention (Gated DeltaNet, Qwen3-Next) layer's state."""
    v_heads = _int(_first(cfg, drivers, "linear_num_value_heads"))
    k_heads = _int(_first(cfg, drivers, "linear_num_key_heads"), v_heads)
    k_dim = _int(_first(cfg, drivers, "linear_key_head_dim"))
    v_dim = _int(_first(cfg, drivers, "linear_value_head_dim"))
    conv = _int(_first(cfg, drivers, "linear_conv_kernel_dim"), 4)
    return v_heads * k_dim * v_dim + (2 * k_heads * k_dim + v_heads * v_dim) * (conv - 1)


def arch_from_config(
    config: Mapping[str, Any], *, max_context_override: int | None = None
) -> ArchSpec:
    """Derive the per-layer memory shape of a model from its config.json.

    Args:
        config: the parsed config.json (or a GGUF-derived equivalent).
        max_context_override: a context length known from elsewhere (GGUF metadata).

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

    n_layers = _int(_first(cfg, drivers, "num_hidden_layers", "n_layer", "num_layers", "n_layers"))
    hidden = _int(_first(cfg, drivers, "hidden_size", "n_embd", "d_model", "dim"))
    heads = _int(_first(cfg, drivers, "num_attention_heads", "n_head", "n_heads", "num_heads"))
    inter = _int(_first(cfg, drivers, "intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size"))
    inter = inter or 4 * hidden
    vocab = _int(_first(cfg, drivers, "vocab_size", "padded_vocab_size"))
    max_ctx = max_context_override or _int(
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
        )  # fmt: skip

    kv_heads = _int(
        _first(cfg, drivers, "num_key_value_heads", "num_kv_heads", "multi_query_group_num",
               "attn_config.kv_n_heads", "n_head_kv")
    ) or (1 if cfg.get("multi_query") else heads)  # fmt: skip
    head_dim = _int(_first(cfg, drivers, "head_dim", "kv_channels", "d_kv")) or (
        hidden // heads if heads else 0
    )
    if "head_dim" not in drivers and heads:
        drivers["head_dim"] = f"hidden_size // num_attention_heads = {head_dim}"

    groups: list[LayerGroup] = []
    mla_expanded = 0
    kinds = _layer_kinds(cfg, n_layers, drivers)
    kv_lora = _int(cfg.get("kv_lora_rank"))
    if kv_lora and cfg.get("qk_rope_head_dim") is not None:
        rope = _int(_first(cfg, drivers, "qk_rope_head_dim"))
        drivers["kv_lora_rank"] = kv_lora
        nope = _int(cfg.get("qk_nope_head_dim"))
        v_dim = _int(cfg.get("v_head_dim"), nope)
        mla_expanded = heads * (nope + rope + v_dim)
        n_attn = sum(1 for k in kinds if k in {"full", "sliding"})
        groups.append(
            LayerGroup("mla", n_attn, kv_heads=1, head_dim_k=kv_lora + rope,
                       elements_per_token=kv_lora + rope)
        )  # fmt: skip
    else:
        window = _int(cfg.get("sliding_window")) or None
        for kind in ("full", "sliding"):
            n = sum(1 for k in kinds if k == kind)
            if n:
                groups.append(
                    LayerGroup(kind, n, kv_heads=kv_heads, head_dim_k=head_dim,
                               head_dim_v=head_dim, elements_per_token=2 * kv_heads * head_dim,
                               window=window if kind == "sliding" else None)
                )  # fmt: skip
    n_mamba = sum(1 for k in kinds if k == "mamba")
    if model_type in {"mamba", "mamba2", "falcon_mamba"}:
        n_mamba, groups = n_layers, []
    if n_mamba:
        groups.append(
            LayerGroup("mamba", n_mamba, state_elements=_mamba_state(cfg, hidden, drivers))
        )
    n_linear = sum(1 for k in kinds if k == "linear")
    if n_linear:
        groups.append(LayerGroup("linear", n_linear, state_elements=_linear_state(cfg, drivers)))
    return ArchSpec(
        family="decoder", model_type=model_type, num_layers=n_layers, hidden_size=hidden,
        num_attention_heads=heads, intermediate_size=inter, vocab_size=vocab,
        max_context=max_ctx, groups=tuple(groups), moe=moe,
        mla_expanded_elements=mla_expanded, drivers=drivers,
    )  # fmt: skip


def _moe(cfg: Mapping[str, Any], drivers: dict[str, Any]) -> MoESpec | None:
    n = _int(
        _first(cfg, drivers, "num_local_experts", "n_routed_experts", "num_experts",
               "moe_num_experts", "ffn_config.moe_num_experts")
    )  # fmt: skip
    if n <= 1:
        return None
    active = _int(
        _first(cfg, drivers, "num_experts_per_tok", "num_experts_per_token", "moe_top_k",
               "ffn_config.moe_top_k", "top_k_experts"),
        1,
    )  # fmt: skip
    inter = _int(_first(cfg, drivers, "moe_intermediate_size", "expert_intermediate_size"))
    inter = inter or _int(cfg.get("intermediate_size"))
    shared = _int(_first(cfg, drivers, "n_shared_experts", "num_shared_experts"))
    if not shared and _int(cfg.get("shared_expert_intermediate_size")):
        shared = 1
    return MoESpec(num_experts=n, active=active, expert_intermediate_size=inter,
                   shared_experts=shared)  # fmt: skip


def _encoder_decoder(cfg: Mapping[str, Any], model_type: str | None, drivers: dict[str, Any]
                     ) -> ArchSpec:  # fmt: skip
    """Whisper / BART / T5: decoder self-attention plus cross-attention over the encoder."""
    d_model = _int(_first(cfg, drivers, "d_model", "hidden_size"))
    dec_layers = _int(_first(cfg, drivers, "decoder_layers", "num_decoder_layers", "num_layers"))
    enc_layers = _int(_first(cfg, drivers, "encoder_layers", "num_layers"), dec_layers)
    heads = _int(_first(cfg, drivers, "decoder_attention_heads", "num_heads"))
    head_dim = _int(_first(cfg, drivers, "d_kv")) or (d_model // heads if heads else 0)
    kv_heads = heads
    vocab = _int(_first(cfg, drivers, "vocab_size"))
    inter = _int(_first(cfg, drivers, "decoder_ffn_dim", "d_ff"), 4 * d_model)
    dec_max = (
        _int(_first(cfg, drivers, "max_target_positions", "max_position_embeddings", "n_positions"))
        or None
    )
    enc_positions = _int(_first(cfg, drivers, "max_source_positions"))
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
