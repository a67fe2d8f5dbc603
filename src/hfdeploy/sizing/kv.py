"""KV cache and recurrent state: bytes per token and per request, by layer group (full,
sliding-window and chunked attention, MLA latent, cross-attention, Mamba and
linear-attention state, hybrid layers holding both, layers holding nothing).

Pure arithmetic over an :class:`ArchSpec`. What a local layer (sliding window, attention
chunk) holds depends on the engine, described by :class:`LocalRules`:

- ``window``: the window itself, in a contiguous cache (Transformers' dynamic cache);
- ``in_flight``: vLLM's paged cache frees blocks behind the window only once the tokens
  in flight are done: ``window - 1 + in-flight tokens`` and one more block (sliding), or
  ``chunk + in-flight tokens`` (chunked);
- ``ubatch``: llama.cpp's sliding cache, ``window + ubatch`` cells, padded;
- ``pool_ratio``: SGLang's separate SWA pool, a fixed ratio of the full pool's tokens; a
  request holds its window (plus the eviction slack) there, and the full pool is made large
  enough for the SWA pool to hold it;
- ``full``: the whole context, like a full-attention layer (TGI; vLLM's chunked layers
  while its hybrid allocator is off; SGLang for architectures without its SWA pool).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from hfdeploy.model.arch import ArchSpec, LayerGroup

__all__ = ["KVLayout", "LocalRules", "ceil_div", "kv_layout"]

Rule = Literal["window", "in_flight", "ubatch", "pool_ratio", "full"]


def ceil_div(a: int, b: int) -> int:
    """Integer ceiling division (0 for b == 0)."""
    return -(-a // b) if b else 0


@dataclass(frozen=True, slots=True)
class LocalRules:
    """How an engine holds sliding-window and chunked-attention layers (resolved for one
    model and one set of settings)."""

    sliding: Rule = "window"
    chunked: Rule = "window"
    #: Tokens scheduled but not yet done (vLLM: concurrent batches x batched tokens).
    in_flight_tokens: int = 0
    #: llama.cpp's micro-batch, added to the window.
    ubatch: int = 0
    #: SGLang: SWA pool tokens / full pool tokens, and the tokens a request keeps beyond its
    #: window before eviction runs.
    pool_ratio: float = 0.0
    pool_slack: int = 0
    #: The engine, for the rows' explanations.
    engine: str = ""


@dataclass(frozen=True, slots=True)
class KVLayout:
    """What one request holds, per GPU rank and over all ranks."""

    #: Bytes written per token over every attention layer (local ones too), all ranks.
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


def _is_local(group: LayerGroup) -> bool:
    return group.kind in {"sliding", "chunked"} or (group.kind == "hybrid" and bool(group.window))


def _local_held(group: LayerGroup, rules: LocalRules, context: int, block: int) -> tuple[int, str]:
    """Tokens a local layer holds per request, and why (pool_ratio is settled by the caller)."""
    window = group.window or context
    chunked = group.kind == "chunked"
    rule = rules.chunked if chunked else rules.sliding
    what = "chunk" if chunked else "window"
    if rule == "full":
        return _pages(context, block), f"{rules.engine} keeps the whole context on these layers"
    if rule == "in_flight":
        t = rules.in_flight_tokens
        if chunked:
            span = min(window + t, context)
            return _pages(span, block), f"min(chunk + {t:,} in-flight tokens, context)"
        span = min(window - 1 + t, context)
        held = (ceil_div(span, block) + 1) * block if block > 0 else span
        return held, f"min(window - 1 + {t:,} in-flight tokens, context) + 1 block"
    if rule == "ubatch":
        span = min(context, window + rules.ubatch)
        return _pages(span, block), f"min(context, {what} + {rules.ubatch} ubatch), padded"
    if rule == "pool_ratio":
        span = min(context, window + rules.pool_slack)
        return span, f"{what} + {rules.pool_slack} tokens before eviction"
    return _pages(min(window, context), block), f"the {what}"


def _pages(tokens: int, block: int) -> int:
    return ceil_div(tokens, block) * block if block > 0 else tokens


def kv_layout(
    arch: ArchSpec,
    *,
    context: int,
    kv_bytes: float,
    state_bytes: float,
    block_size: int,
    tp: int,
    mla_latent: bool,
    local: LocalRules | None = None,
) -> KVLayout:
    """Per-request cache of a model at ``context`` tokens.

    Args:
        arch: the model's layer groups.
        context: tokens per request (prompt + output).
        kv_bytes: bytes per KV element (1 for fp8, 2 for bf16...).
        state_bytes: bytes per Mamba / linear-attention state element.
        block_size: paged-cache block in tokens (0: contiguous, no rounding).
        tp: tensor-parallel degree.
        mla_latent: store MLA's latent (vLLM, SGLang) or expanded K/V (transformers).
        local: how the engine holds local layers (default: the window, contiguous).
    """
    rules = local or LocalRules()
    held_by: dict[int, tuple[int, str]] = {}
    for i, g in enumerate(arch.groups):
        if _is_local(g):
            held_by[i] = _local_held(g, rules, context, block_size)
    full_held = _pages(context, block_size)
    full_why = "the whole context"
    pooled = [i for i, g in enumerate(arch.groups) if i in held_by and _pooled(g, rules)]
    has_full = any(
        g.elements_per_token and g.kind != "cross" and i not in held_by
        for i, g in enumerate(arch.groups)
    )
    if pooled and has_full:
        # SGLang sizes its SWA pool at pool_ratio x the full pool: the full pool must be large
        # enough for every request's window to fit in the SWA pool.
        need = max(held_by[i][0] for i in pooled)
        full_held = max(context, math.ceil(need / rules.pool_ratio))
        full_why = (
            f"max(context, window / {rules.pool_ratio}): the SWA pool is {rules.pool_ratio} "
            "of the full pool"
        )
        for i in pooled:
            held_by[i] = (
                math.ceil(rules.pool_ratio * full_held),
                f"{rules.pool_ratio} x the full pool's tokens per request (SWA pool)",
            )

    per_token = total = per_rank = 0.0
    rows: list[dict[str, Any]] = []
    for i, g in enumerate(arch.groups):
        ept = g.elements_per_token
        if g.kind == "mla" and not mla_latent:
            ept = arch.mla_expanded_elements or ept
        tok_bytes = g.count * ept * kv_bytes if g.kind != "cross" else 0.0
        state = g.count * g.state_elements * state_bytes
        if g.kind == "cross":
            held, why = _pages(arch.encoder_positions, block_size), "the encoder's positions"
            seq = held * g.count * ept * kv_bytes
        elif i in held_by:
            held, why = held_by[i]
            seq = held * tok_bytes + state
        elif ept:
            held, why = full_held, full_why
            seq = held * tok_bytes + state
        else:  # recurrent state only, or nothing
            held, why = 0, "a fixed state per request" if state else "nothing (no cache)"
            seq = state
        per_token += tok_bytes
        total += seq
        per_rank += seq * _rank_share(g, tp)
        rows.append(
            {
                "kind": g.kind,
                "layers": g.count,
                "elements_per_token_per_layer": ept,
                "tokens_held": held,
                "held": why,
                "bytes_per_sequence": round(seq),
                "window": g.window,
                "state_elements_per_layer": g.state_elements,
            }
        )
    formula = (
        "per layer: full/sliding/chunked = 2 x kv_heads x head_dim x b; MLA = (kv_lora_rank "
        "+ qk_rope_head_dim) x b; local layers hold what the engine keeps (see each group's "
        "'held'); cross-attention holds the encoder positions; Mamba/linear layers a fixed "
        "state; tokens rounded up to whole blocks"
    )
    return KVLayout(
        bytes_per_token=round(per_token),
        bytes_per_sequence=round(total),
        bytes_per_sequence_per_rank=round(per_rank),
        groups=tuple(rows),
        formula=formula,
    )


def _pooled(group: LayerGroup, rules: LocalRules) -> bool:
    rule = rules.chunked if group.kind == "chunked" else rules.sliding
    return rule == "pool_ratio" and rules.pool_ratio > 0
