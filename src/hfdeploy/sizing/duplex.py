"""GPU memory of a full-duplex speech server: the LM, its codecs, and one KV ring buffer per
conversation. Pure.

- weights: the LM at the serving dtype (the servers load it in bf16) plus the Mimi codec
  in fp32, once per instance the server loads (PersonaPlex: two; Moshi: one); hfdeploy's
  server does not load PersonaPlex's depformer steps over the user's codebooks;
- KV cache: per session, the temporal transformer's ring buffer, allocated at its full
  capacity when the session starts: 2 (K, V) x layers x KV heads x head_dim x bytes per
  frame, x context frames; plus the depformer's over its short context;
- activations: one step of every session (a frame each): the widest hidden state of the
  temporal transformer and the depformer, and the text and audio logits, in float32;
- CUDA context, non-torch memory and CUDA graphs: the same priors as other engines.
"""

from __future__ import annotations

from hfdeploy.catalog.engines import EngineSizing
from hfdeploy.model.profile import ModelProfile
from hfdeploy.sizing.settings import DTYPES, KV_DTYPES, ServingSettings

__all__ = ["duplex_terms"]

_BYTES = {"F32": 4, "F16": 2, "BF16": 2}


def duplex_terms(
    profile: ModelProfile, s: ServingSettings, eng: EngineSizing
) -> dict[str, tuple[int, str, dict[str, object]]]:
    """``weights``, ``weights_total``, ``kv`` (per session), ``activations``: bytes, basis and
    drivers of each."""
    d = profile.duplex
    assert d is not None
    b = _BYTES.get(DTYPES.get(s.dtype) or d.lm.dtype, 2)
    lm_elem = _BYTES.get(d.lm.dtype, 2)
    lm_bytes = round(d.lm.bytes * b / lm_elem) if d.lm.dtype in _BYTES else d.lm.bytes
    skipped = d.user_depth_parameters() if eng.lockstep_sessions else 0
    lm_bytes -= skipped * b
    codecs = eng.codec_instances
    weights = lm_bytes + codecs * d.codec.bytes
    kv_b = KV_DTYPES[s.kv_dtype] or b
    per_frame = d.kv_bytes_per_frame(kv_b)
    ring = per_frame * s.context
    dep = d.depformer_cache_bytes(kv_b)
    per_session = ring + dep
    sessions = s.concurrency
    widest = max(round(4.125 * d.dim * 2 / 3) * 2, 3 * d.dim)  # gated MLP input, or QKV
    logits = d.text_vocab + d.dep_q * d.audio_vocab
    acts = sessions * (widest * b * 4 + logits * 4 * 2)
    return {
        "weights": (
            weights,
            f"LM {d.lm.parameters - skipped:,} parameters at {s.dtype} + {codecs} x Mimi "
            f"codec ({d.codec.parameters:,} parameters, {d.codec.dtype}, as the server loads "
            "it)"
            + (
                f"; the depformer's steps over the user's codebooks ({skipped:,} "
                "parameters) are not loaded"
                if skipped
                else ""
            ),
            {
                "lm_bytes": lm_bytes,
                "codec_bytes": d.codec.bytes,
                "codec_instances": codecs,
                "skipped_parameters": skipped,
            },
        ),
        "kv": (
            per_session,
            f"per session: a ring buffer of {s.context:,} frames x {per_frame:,} B (2 x "
            f"{d.layers} layers x {d.kv_heads} KV heads x {d.head_dim} x {kv_b:g} B), "
            f"allocated whole when the session starts, + the depformer's {dep:,} B over its "
            f"{d.depformer_context}-step context",
            {
                "frames": s.context,
                "bytes_per_frame": per_frame,
                "depformer_bytes": dep,
                "frame_ms": d.frame_ms,
                "sessions": sessions,
            },
        ),
        "activations": (
            acts,
            f"one step of {sessions} session(s): the widest hidden state ({widest:,}) and "
            f"the text and {d.dep_q} audio-codebook logits in float32, twice over",
            {"sessions": sessions, "widest": widest, "logits": logits},
        ),
    }
