"""Kyutai's layout of Moshi (the LM, Mimi and SentencePiece files, PersonaPlex's too) loaded
into Transformers' ``MoshiForConditionalGeneration``: the same network under other names.

Kyutai's checkpoint and Transformers' classes differ in names and in four layouts only:

- attention: one fused ``in_projs.0`` (query, key, value stacked) against three projections;
  the temporal transformer's and Mimi's rotary embedding rotates interleaved pairs where
  Transformers rotates halves, so the query and key rows of each head are reordered;
- the depth transformer's per-codebook weights: Kyutai keeps one module per codebook
  (``in_projs.i``, ``gating.i``, ``depformer_in.i``, ``linears.i``); Transformers stacks
  them into one tensor each;
- norms: Kyutai's RMS ``alpha`` is ``[1, 1, dim]``, Transformers' ``weight`` is ``[dim]``;
- Mimi's convolutions and quantizer: wrapper modules (``conv.conv``), another nesting.

The configuration is Kyutai's too: ``config.json`` of the ``moshi`` package's keys, or none
(the 7B defaults); Mimi's from ``mimi_config_name`` or the package's defaults. Features
Transformers' classes do not have (conditioners, LoRA, quantized weights, other delays) are
refused by name. ``tests/fixtures/kyutai_moshi`` holds a tiny checkpoint and what Kyutai's
own package computes with it; the suite holds this loader to it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hfdeploy.errors import MissingDependencyError, ModelLoadError
from hfdeploy.model.duplex import KyutaiFiles, moshi_delays
from hfdeploy.model.duplex_files import KYUTAI_LM_ARGS, KYUTAI_MIMI_ARGS

__all__ = [
    "SentencePieceText",
    "check_kyutai",
    "kyutai_configs",
    "lm_state",
    "load_kyutai",
    "mimi_state",
    "moshi_config",
]

# Kyutai's LM arguments this loader maps, with the values Transformers' classes implement.
_REQUIRED = {
    "gating": "silu",
    "depformer_gating": "silu",
    "positional_embedding": "rope",
    "depformer_pos_emb": "none",
    "depformer_multi_linear": True,
    "depformer_weights_per_step": True,
    "causal": True,
}
_ABSENT = (
    "conditioners",
    "fuser",
    "lora",
    "quantize",
    "depformer_weights_per_step_schedule",
    "demux_second_stream",
    "demux_second_text_stream",
    "depformer_low_rank_embeddings",
    "text_card_out",
    "extra_heads_num_heads",
    "cross_attention",
)


def _refuse(folder: Path, what: str) -> ModelLoadError:
    return ModelLoadError(
        str(folder),
        f"this Kyutai checkpoint uses {what}, which Transformers' Moshi classes do not have",
        hint="Serve it on its reference server: `hfdeploy plan MODEL --engine moshi` (or "
        "personaplex).",
    )


def kyutai_configs(folder: Path, files: KyutaiFiles) -> tuple[dict[str, Any], dict[str, Any]]:
    """The LM's and Mimi's arguments in Kyutai's keys: the folder's ``config.json`` over the
    package's defaults (none: the 7B), Mimi's file named by ``mimi_config_name`` or its
    defaults."""
    path = folder / "config.json"
    own: dict[str, Any] = {}
    if path.is_file():
        try:
            own = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelLoadError(str(path), f"unreadable config.json ({e})") from e
    lm = dict(KYUTAI_LM_ARGS) | own
    mimi: dict[str, Any] = KYUTAI_MIMI_ARGS
    if name := own.get("mimi_config_name"):
        try:
            mimi = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelLoadError(str(folder / name), f"unreadable Mimi config ({e})") from e
    return lm, mimi


def _ffn(dim: int, dim_feedforward: int) -> int:
    """Transformers' ``ffn_dim`` (the gated MLP's input projection) for Kyutai's arguments."""
    hidden = 21 * dim // 8 if dim_feedforward == 4 * dim else 2 * dim_feedforward // 3
    return 2 * hidden


def _check_args(folder: Path, lm: dict[str, Any]) -> None:
    for key, value in _REQUIRED.items():
        if lm.get(key, value) != value:
            raise _refuse(folder, f"{key}={lm[key]!r}")
    for key in _ABSENT:
        if lm.get(key):
            raise _refuse(folder, key)
    if lm.get("norm") not in ("rms_norm_f32", "rms_norm") or lm.get("layer_scale") is not None:
        raise _refuse(folder, f"norm={lm.get('norm')!r}, layer_scale={lm.get('layer_scale')!r}")
    dep_q, n_q = int(lm["dep_q"]), int(lm["n_q"])
    half = n_q // 2  # the model's codebooks and the user's
    if n_q % 2 or dep_q not in (half, n_q) or list(lm["delays"]) != moshi_delays(half):
        raise _refuse(folder, f"{n_q} codebooks, {dep_q} depth steps, delays {lm['delays']}")


def check_kyutai(folder: Path, files: KyutaiFiles) -> None:
    """Refuse, before the port is bound, a Kyutai folder this server cannot load.

    Raises:
        ModelLoadError: quantized weights, no text tokenizer, an unsupported argument.
        MissingDependencyError: sentencepiece is not installed.
    """
    if files.lm.endswith(".q8.safetensors"):
        raise _refuse(folder, "8-bit quantized weights (model.q8.safetensors)")
    _check_args(folder, kyutai_configs(folder, files)[0])
    if files.text_tokenizer is None:
        raise ModelLoadError(
            str(folder),
            "no SentencePiece text tokenizer (tokenizer_*.model)",
            hint="The folder needs the model's text tokenizer to send its text tokens.",
        )
    try:
        import sentencepiece  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError(
            "sentencepiece",
            extra="duplex",
            purpose="read a Kyutai folder's text tokenizer",
            failure=e,
        ) from e


def moshi_config(folder: Path, lm: dict[str, Any], mimi: dict[str, Any]) -> Any:
    """``MoshiConfig`` for Kyutai's arguments.

    Raises:
        ModelLoadError: an argument Transformers' classes cannot express.
    """
    from transformers import MoshiConfig

    _check_args(folder, lm)
    # The depth steps over the model's codebooks; PersonaPlex's over the user's too are not
    # loaded: their tokens are always replaced by what the user sent (lm_state).
    dep_q = int(lm["n_q"]) // 2
    dim, heads, dep_dim = int(lm["dim"]), int(lm["num_heads"]), int(lm["depformer_dim"])
    dep_ff = lm.get("depformer_dim_feedforward") or int(lm["hidden_scale"] * dep_dim)
    eps = 1e-8 if lm["norm"] == "rms_norm_f32" else 1e-5
    text, card, context = int(lm["text_card"]), int(lm["card"]), int(lm["context"])
    return MoshiConfig(
        vocab_size=text,
        audio_vocab_size=card,
        hidden_size=dim,
        num_hidden_layers=int(lm["num_layers"]),
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=dim // heads,
        ffn_dim=_ffn(dim, int(lm["hidden_scale"] * dim)),
        rms_norm_eps=eps,
        max_position_embeddings=context,
        sliding_window=context,
        num_codebooks=dep_q,
        rope_parameters={"rope_type": "default", "rope_theta": float(lm["max_period"])},
        audio_encoder_config=_mimi_config(mimi),
        depth_decoder_config={
            "vocab_size": text,
            "audio_vocab_size": card,
            "hidden_size": dep_dim,
            "input_size": dim,
            "num_hidden_layers": int(lm["depformer_num_layers"]),
            "num_attention_heads": int(lm["depformer_num_heads"]),
            "num_key_value_heads": int(lm["depformer_num_heads"]),
            "head_dim": dep_dim // int(lm["depformer_num_heads"]),
            "ffn_dim": _ffn(dep_dim, int(dep_ff)),
            "rms_norm_eps": eps,
            "num_codebooks": dep_q,
            "sliding_window": int(lm["depformer_context"]),
            "max_position_embeddings": dep_q,
        },
    )


def _mimi_config(mimi: dict[str, Any]) -> dict[str, Any]:
    seanet, quant, tf = mimi["seanet"], mimi["quantizer"], mimi["transformer"]
    d_model, heads = int(tf["d_model"]), int(tf["num_heads"])
    return {
        "model_type": "mimi",
        "sampling_rate": int(mimi["sample_rate"]),
        "audio_channels": int(mimi["channels"]),
        "hidden_size": int(seanet["dimension"]),
        "num_filters": int(seanet["n_filters"]),
        "num_residual_layers": int(seanet["n_residual_layers"]),
        "upsampling_ratios": list(seanet["ratios"]),
        "kernel_size": int(seanet["kernel_size"]),
        "last_kernel_size": int(seanet["last_kernel_size"]),
        "residual_kernel_size": int(seanet["residual_kernel_size"]),
        "dilation_growth_rate": int(seanet["dilation_base"]),
        "use_causal_conv": bool(seanet["causal"]),
        "pad_mode": str(seanet["pad_mode"]),
        "compress": int(seanet["compress"]),
        "use_conv_shortcut": not seanet.get("true_skip", True),
        "codebook_size": int(quant["bins"]),
        "codebook_dim": int(quant["dimension"]),
        "vector_quantization_hidden_dimension": int(quant["dimension"]),
        "num_quantizers": int(quant["n_q"]),
        "num_semantic_quantizers": 1,
        "upsample_groups": int(seanet["dimension"]),
        "num_hidden_layers": int(tf["num_layers"]),
        "intermediate_size": int(tf["dim_feedforward"]),
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "head_dim": d_model // heads,
        "sliding_window": int(tf["context"]),
        "layer_scale_initial_scale": float(tf["layer_scale"]),
        "rope_parameters": {"rope_type": "default", "rope_theta": float(tf["max_period"])},
    }


# -- tensors ------------------------------------------------------------------------------


def _halves(w: Any, heads: int) -> Any:
    """A query or key projection's rows from interleaved pairs to halves, per head."""
    rows, cols = w.shape
    return w.view(heads, rows // heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def _qkv(w: Any, heads: int | None) -> tuple[Any, Any, Any]:
    """A fused attention input projection split; ``heads`` rotary heads, or None (no rope)."""
    q, k, v = w.chunk(3, dim=0)
    return (q, k, v) if heads is None else (_halves(q, heads), _halves(k, heads), v)


_LM_NAMES = [  # Kyutai's name pattern -> Transformers' (temporal transformer and embeddings)
    (r"^emb\.(\d+)\.weight$", r"embed_tokens.\1.weight"),
    (r"^text_emb\.weight$", "decoder.model.embed_tokens.weight"),
    (r"^text_linear\.weight$", "decoder.lm_head.weight"),
    (r"^out_norm\.alpha$", "decoder.model.norm.weight"),
    (
        r"^transformer\.layers\.(\d+)\.self_attn\.out_projs\.0\.weight$",
        r"decoder.model.layers.\1.self_attn.o_proj.linear.weight",
    ),
    (
        r"^transformer\.layers\.(\d+)\.norm1\.alpha$",
        r"decoder.model.layers.\1.input_layernorm.weight",
    ),
    (
        r"^transformer\.layers\.(\d+)\.norm2\.alpha$",
        r"decoder.model.layers.\1.post_attention_layernorm.weight",
    ),
    (
        r"^transformer\.layers\.(\d+)\.gating\.linear_in\.weight$",
        r"decoder.model.layers.\1.mlp.fc1.weight",
    ),
    (
        r"^transformer\.layers\.(\d+)\.gating\.linear_out\.weight$",
        r"decoder.model.layers.\1.mlp.fc2.weight",
    ),
    (r"^depformer_emb\.(\d+)\.weight$", r"depth_decoder.embed_tokens.\1.weight"),
    (r"^depformer_text_emb\.weight$", "depth_decoder.text_embed_tokens.weight"),
    (
        r"^depformer\.layers\.(\d+)\.norm1\.alpha$",
        r"depth_decoder.layers.\1.input_layernorm.weight",
    ),
    (
        r"^depformer\.layers\.(\d+)\.norm2\.alpha$",
        r"depth_decoder.layers.\1.post_attention_layernorm.weight",
    ),
]


_LEGACY = {
    "in_proj_weight": "in_projs",
    "in_proj.weight": "in_projs",
    "out_proj.weight": "out_projs",
}


def _split_legacy(state: dict[str, Any]) -> None:
    """Older checkpoints' attention names (one ``in_proj_weight`` for every depth step) as
    the current ones (``in_projs.{step}.weight``), in place."""
    for name in list(state):
        head, _, leaf = name.rpartition(".self_attn.")
        if leaf not in _LEGACY:
            continue
        w = state.pop(name)
        per_step = (3 if leaf.startswith("in_proj") else 1) * w.shape[1]
        for i, part in enumerate(w.view(w.shape[0] // per_step, per_step, w.shape[1])):
            state[f"{head}.self_attn.{_LEGACY[leaf]}.{i}.weight"] = part


def _drop_user_depth_steps(state: dict[str, Any], steps: int) -> None:
    """PersonaPlex's depth steps past the model's codebooks (the user's): their samples are
    always replaced by the user's own tokens, so they are not loaded."""
    pattern = re.compile(
        r"^(depformer_in|linears|depformer\.layers\.\d+\.(gating|self_attn\.(in|out)_projs))"
        r"\.(\d+)\.|^depformer_emb\.(\d+)\."
    )
    for name in list(state):
        m = pattern.match(name)
        if m and (int(m[4]) >= steps if m[4] is not None else int(m[5]) >= steps - 1):
            del state[name]


def lm_state(state: dict[str, Any], config: Any) -> dict[str, Any]:
    """Kyutai's LM tensors under Transformers' names (``state`` is consumed)."""
    import torch

    out: dict[str, Any] = {}
    heads, dep_q = int(config.num_attention_heads), int(config.num_codebooks)
    _split_legacy(state)
    _drop_user_depth_steps(state, dep_q)
    for i in range(int(config.num_hidden_layers)):
        pre, new = f"transformer.layers.{i}.self_attn.", f"decoder.model.layers.{i}.self_attn."
        q, k, v = _qkv(state.pop(pre + "in_projs.0.weight"), heads)
        out |= {
            new + "q_proj.linear.weight": q,
            new + "k_proj.linear.weight": k,
            new + "v_proj.linear.weight": v,
        }
    for i in range(int(config.depth_decoder_config.num_hidden_layers)):
        pre, new = f"depformer.layers.{i}.", f"depth_decoder.layers.{i}."
        split = [_qkv(state.pop(f"{pre}self_attn.in_projs.{c}.weight"), None) for c in range(dep_q)]
        for n, name in enumerate(("q_proj", "k_proj", "v_proj")):
            out[f"{new}self_attn.{name}.linear.weight"] = torch.stack([s[n] for s in split])
        for kyutai, hf in (
            ("self_attn.out_projs.{}", "self_attn.o_proj.linear"),
            ("gating.{}.linear_in", "mlp.fc1"),
            ("gating.{}.linear_out", "mlp.fc2"),
        ):
            parts = [state.pop(f"{pre}{kyutai.format(c)}.weight") for c in range(dep_q)]
            out[f"{new}{hf}.weight"] = torch.stack(parts)
    out["depth_decoder.input_projections.weight"] = torch.stack(
        [state.pop(f"depformer_in.{c}.weight") for c in range(dep_q)]
    )
    out["depth_decoder.lm_heads.weight"] = torch.stack(
        [state.pop(f"linears.{c}.weight") for c in range(dep_q)]
    )
    for name in list(state):
        for pattern, repl in _LM_NAMES:
            if re.match(pattern, name):
                t = state.pop(name)
                out[re.sub(pattern, repl, name)] = t.reshape(-1) if name.endswith("alpha") else t
                break
    return out


_MIMI_NAMES = [  # applied in order, each to what the last left
    (r"\.(conv|convtr)(\.(conv|convtr)){1,2}\.", ".conv."),
    (r"^encoder\.model\.", "encoder.encoder_seanet.layers."),
    (r"^decoder\.model\.", "decoder.decoder_seanet.layers."),
    (r"^encoder_transformer\.transformer\.", "encoder.encoder_transformer."),
    (r"^decoder_transformer\.transformer\.", "decoder.decoder_transformer."),
    (r"^downsample\.", "encoder.downsample."),
    (r"^upsample\.", "decoder.upsample."),
    (r"^quantizer\.rvq_first\.(vq\.)?", "quantizer.semantic_residual_vector_quantizer."),
    (r"^quantizer\.rvq_rest\.(vq\.)?", "quantizer.acoustic_residual_vector_quantizer."),
    (r"\._codebook\._initialized$", ".codebook.initialized"),
    (r"\._codebook\.embedding_sum$", ".codebook.embed_sum"),
    (r"\._codebook\.", ".codebook."),
    (r"\.linear1\.", ".mlp.fc1."),
    (r"\.linear2\.", ".mlp.fc2."),
    (r"\.self_attn\.out_projs\.0\.", ".self_attn.o_proj."),
    (r"\.norm1\.", ".input_layernorm."),
    (r"\.norm2\.", ".post_attention_layernorm."),
    (r"\.layer_scale_1\.", ".self_attn_layer_scale."),
    (r"\.layer_scale_2\.", ".mlp_layer_scale."),
]


def mimi_state(state: dict[str, Any], config: Any) -> dict[str, Any]:
    """Kyutai's Mimi tensors under the names of Transformers' ``MimiModel`` (consumed)."""
    out: dict[str, Any] = {}
    heads = int(config.num_attention_heads)
    _split_legacy(state)
    for name in list(state):
        t = state.pop(name)
        new = name
        for pattern, repl in _MIMI_NAMES:
            new = re.sub(pattern, repl, new)
        if new.endswith(".self_attn.in_projs.0.weight"):
            q, k, v = _qkv(t, heads)
            pre = new.removesuffix("in_projs.0.weight")
            out |= {pre + "q_proj.weight": q, pre + "k_proj.weight": k, pre + "v_proj.weight": v}
        else:
            out[new] = t
    return out


def load_kyutai(folder: Path, files: KyutaiFiles, *, dtype: Any, device: Any) -> Any:
    """The folder's LM and Mimi as one ``MoshiForConditionalGeneration``.

    Raises:
        ModelLoadError: quantized weights, an unsupported argument, or tensors that do not
            match the configuration's shape.
    """
    import torch
    from safetensors.torch import load_file
    from transformers import MoshiForConditionalGeneration

    check_kyutai(folder, files)
    lm_args, mimi_args = kyutai_configs(folder, files)
    config = moshi_config(folder, lm_args, mimi_args)
    lm_file = str(lm_args.get("moshi_name") or files.lm)
    codec_file = str(lm_args.get("mimi_name") or files.codec)
    mismatch = ModelLoadError(
        str(folder),
        "the checkpoint does not match its configuration",
        hint="config.json (Kyutai's keys) must describe the weights in the folder.",
    )
    try:
        state = lm_state(load_file(str(folder / lm_file)), config)
        codec = mimi_state(load_file(str(folder / codec_file)), config.audio_encoder_config)
    except (KeyError, RuntimeError) as e:  # a tensor missing, or not of the heads' shape
        raise mismatch from e
    state |= {f"audio_encoder.{k}": v for k, v in codec.items()}
    with torch.device("meta"):
        expected = MoshiForConditionalGeneration(config).state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or extra or wrong:
        raise ModelLoadError(
            str(folder),
            f"{mismatch.reason}: missing {missing[:3]}, unexpected {extra[:3]}, "
            f"other shapes {wrong[:3]}",
            hint=mismatch.hint,
        )
    # Transformers' own loading from the renamed tensors: dtype, buffers, tied weights.
    model = MoshiForConditionalGeneration.from_pretrained(
        None, config=config, state_dict=state, dtype=dtype
    )
    return model.to(device).eval()


class SentencePieceText:
    """A Kyutai folder's SentencePiece text tokenizer, as the frame loop reads text tokens:
    pieces by id; 0 and 3 (end of padding, padding) are not text (Kyutai's server)."""

    all_special_ids = (0, 3)

    def __init__(self, path: Path) -> None:
        import sentencepiece

        try:
            self._sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
        except (OSError, RuntimeError) as e:
            raise ModelLoadError(str(path), f"unreadable SentencePiece model ({e})") from e

    def encode(self, text: str) -> list[int]:
        return [int(t) for t in self._sp.encode(text)]

    def convert_ids_to_tokens(self, token: int) -> str | None:
        return str(self._sp.id_to_piece(token)) if 0 <= token < self._sp.get_piece_size() else None
