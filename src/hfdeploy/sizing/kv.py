"""KV cache and recurrent state: bytes per token and per request, by layer group (full and
sliding attention, MLA latent, cross-attention, Mamba and linear-attention state).

Pure arithmetic over an :class:`ArchSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hfdeploy.model.arch import ArchSpec, LayerGroup

__all__ = ["KVLayout", "ceil_div", "kv_layout"]


def ceil_div(a: int, b: int) -> int:
    """Integer ceiling division (0 for b == 0)."""
    return -(-a // b) if b else 0


@dataclass(frozen=True, slots=True)
class KVLayout:
    """What one request holds, per GPU rank and over all ranks."""

    #: Full-attention-equivalent bytes per token (every attention layer as if full), all ranks.
    bytes_per_token: int
    #: Bytes of one request at ``context`` tokens, all ranks, block-rounded.
    bytes_per_sequence: int
    bytes_per_sequence_per_rank: int
    groups: tuple[dict[str, Any], ...]
    formula: str


def _rank_share(group: LayerGroup, tp: int) -> float:
    """Fraction of a group's cache one rank holds: KV heads split, replicated below TP."""
    if group.kind == "mla":
        return 1.0  # one latent head: held in full on every rank
    if group.kind in {"mamba", "linear"}:
        return 1.0 / tp
    heads = group.kv_heads or 1
    return max(1, heads // tp) / heads


def kv_layout(
    arch: ArchSpec,
    *,
    context: int,
    kv_bytes: float,
    state_bytes: float,
    block_size: int,
    batched_tokens: int,
    tp: int,
    mla_latent: bool,
) -> KVLayout:
    """Per-request cache of a model at ``context`` tokens.

    Args:
        arch: the model's layer groups.
        context: tokens per request (prompt + output).
        kv_bytes: bytes per KV element (1 for fp8, 2 for bf16...).
        state_bytes: bytes per Mamba / linear-attention state element.
        block_size: paged-cache block in tokens (0: contiguous, no rounding).
        batched_tokens: the engine's prefill chunk, which vLLM adds to sliding windows.
        tp: tensor-parallel degree.
        mla_latent: store MLA's latent (vLLM, SGLang) or expanded K/V (transformers).
    """

    def pages(tokens: int, *, sliding: bool) -> int:
        if block_size <= 0:
            return tokens
        return (ceil_div(tokens, block_size) + (1 if sliding else 0)) * block_size

    per_token = total = per_rank = 0.0
    rows: list[dict[str, Any]] = []
    for g in arch.groups:
        ept = g.elements_per_token
        if g.kind == "mla" and not mla_latent:
            ept = arch.mla_expanded_elements or ept
        match g.kind:
            case "full" | "mla":
                held = pages(context, sliding=False)
                tok_bytes = g.count * ept * kv_bytes
                seq = held * tok_bytes
            case "sliding":
                window = g.window or context
                span = (
                    min(window - 1 + batched_tokens, context)
                    if block_size > 0
                    else min(window, context)
                )
                held = pages(span, sliding=block_size > 0)
                tok_bytes = g.count * ept * kv_bytes
                seq = held * tok_bytes
            case "cross":
                held = pages(arch.encoder_positions, sliding=False)
                tok_bytes = 0.0  # fixed per request: the encoder output, not generated tokens
                seq = held * g.count * ept * kv_bytes
            case _:  # mamba, linear: a fixed state per request
                held = 0
                tok_bytes = 0.0
                seq = g.count * g.state_elements * state_bytes
        per_token += tok_bytes
        total += seq
        per_rank += seq * _rank_share(g, tp)
        rows.append(
            {
                "kind": g.kind,
                "layers": g.count,
                "elements_per_token_per_layer": ept,
                "tokens_held": held,
                "bytes_per_sequence": round(seq),
                "window": g.window,
                "state_elements_per_layer": g.state_elements,
            }
        )
    formula = (
        "per layer: full/sliding = 2 x kv_heads x head_dim x b; MLA = (kv_lora_rank + "
        "qk_rope_head_dim) x b; sliding layers hold min(window - 1 + batched_tokens, context) "
        "tokens (+1 block); cross-attention holds the encoder positions; Mamba/linear layers "
        "a fixed state; tokens rounded up to whole blocks"
    )
    return KVLayout(
        bytes_per_token=round(per_token),
        bytes_per_sequence=round(total),
        bytes_per_sequence_per_rank=round(per_rank),
        groups=tuple(rows),
        formula=formula,
    )
