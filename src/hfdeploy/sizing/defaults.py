"""An engine's own defaults on a given GPU: the batched-token budget, the most sequences it runs
at once, its memory fraction. Pure: the rules are the engine catalog's (``sizing.by_gpu``,
``static_fraction``, ``prefill_rule``), each with its evidence in the released source.
"""

from __future__ import annotations

from dataclasses import dataclass

from hfdeploy.catalog.engines import EngineSizing
from hfdeploy.catalog.gpus import GPU
from hfdeploy.model.profile import ModelProfile

__all__ = ["EngineDefaults", "engine_defaults", "tgi_prefill_tokens"]

_GIB = 1024**3


@dataclass(frozen=True, slots=True)
class EngineDefaults:
    """What the engine picks by itself when no flag says otherwise."""

    batched_tokens: int | None
    max_seqs: int | None
    memory_fraction: float | None
    #: Where the values come from, for the settings' sources.
    basis: str


def engine_defaults(
    profile: ModelProfile, eng: EngineSizing, gpu: GPU | None, *, tp: int = 1, pp: int = 1
) -> EngineDefaults:
    """The engine's defaults on ``gpu`` at ``tp`` x ``pp`` (no GPU: its defaults without one)."""
    memory_gib = gpu.memory_bytes / _GIB if gpu else None
    rule = eng.defaults_on(gpu.name if gpu else None, memory_gib)
    batched = rule.batched_tokens if rule else eng.batched_tokens
    max_seqs = rule.max_seqs if rule and rule.max_seqs else eng.max_seqs
    where = f"on {gpu.name} ({memory_gib:.0f} GiB)" if gpu else "without a GPU"
    basis = f"{eng.name}'s default {where}"
    if eng.prefill_rule == "tgi" and gpu is not None:
        batched = tgi_prefill_tokens(profile, eng, gpu, tp=tp)
        basis = f"{eng.name}'s default {where}: its compute-optimal prefill"
    fraction = eng.memory_fraction
    if fraction is None and eng.static_fraction is not None and gpu is not None:
        graph_bs = 0
        if rule is not None:
            graph_bs = (rule.graph_max_bs_tp4 if tp >= 4 and rule.graph_max_bs_tp4
                        else rule.graph_max_bs or 0)  # fmt: skip
        fraction = eng.static_fraction.fraction(
            gpu.memory_mib, batched_tokens=batched or 0, tp=tp, pp=pp, graph_max_bs=graph_bs
        )
    return EngineDefaults(batched, max_seqs, fraction, basis)


def tgi_prefill_tokens(profile: ModelProfile, eng: EngineSizing, gpu: GPU, *, tp: int) -> int:
    """TGI's default ``max_batch_prefill_tokens``: the card's f16 FLOP/s x shards over the
    model's FLOPs per token (4,096 for a card its table lacks), at most the model's maximum
    positions and the tokens that fit 95% of the memory after the weights, as TGI's launcher
    computes them (its own formulas, approximations included)."""
    a = profile.arch
    group = next((g for g in a.groups if g.kind in {"full", "sliding"}), None)
    default = 4096
    if group is None or not a.num_attention_heads:
        return default
    heads, kv, hd, h = a.num_attention_heads, group.kv_heads, group.head_dim_k, a.hidden_size
    inter = a.moe.expert_intermediate_size if a.moe else a.intermediate_size
    active = (a.moe.active + a.moe.shared_experts) if a.moe else 1
    experts = a.moe.num_experts if a.moe else 1
    flop = a.num_layers * (2 * hd * h * (3 * heads + 2 * kv) + 6 * h * inter * active)
    card = eng.card_f16_tflops.get(gpu.name)
    optimal = int(card * 1e12 * tp / flop) if card and flop else 0
    value = optimal if optimal > 100 else default
    if profile.max_context:
        value = min(value, profile.max_context)
    if profile.quant_method:
        return value  # TGI leaves quantized models uncapped
    available = int(gpu.memory_bytes * tp * (eng.memory_fraction or 1.0) * 0.95)
    layer = 3 * inter * experts * h + (heads + 2 * kv) * hd + heads * hd * h
    model = (layer * a.num_layers + 2 * h * a.vocab_size) * 2
    per_token = kv * 2 * hd * 2 * a.num_layers + (inter + inter // 2) * experts * 2 * 3
    if available > model and per_token:
        value = min(value, (available - model) // per_token)
    return int(value)
