"""Full-duplex speech models (Kyutai's Moshi, NVIDIA's PersonaPlex): layout, shape, weights.

Pure. Such a model is a language model over text and audio-codebook streams (a temporal
transformer of 32 layers, one step per 80 ms frame, and a small "depformer" that predicts
the frame's codebooks one by one) plus the Mimi audio codec. Two layouts are read:

- **Kyutai's**: ``model.safetensors`` (or ``model.q8.safetensors``) for the LM, a
  ``tokenizer-*.safetensors`` Mimi file, a SentencePiece model, optionally ``voices.tgz``
  and a ``config.json`` of Kyutai's keys (``dim``, ``num_layers``, ``dep_q``...). Without
  the config, the shape is read from the LM's tensor names and shapes; what headers cannot
  tell (the head count, the context) takes the package's defaults, and says so.
- **Transformers'**: ``model_type: "moshi"`` with ``depth_decoder_config`` and
  ``audio_encoder_config``; the codec's tensors are the ones under ``audio_encoder.``.

PersonaPlex is Moshi with 16 depformer steps (Moshi has 8) and voice prompts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from hfdeploy.model.arch import ArchSpec
from hfdeploy.model.fields import int_field
from hfdeploy.model.safetensors import SafetensorsHeader, TensorInfo
from hfdeploy.model.task import TaskInfo

__all__ = [
    "DUPLEX_MODEL_TYPES",
    "FRAME_MS",
    "Component",
    "DuplexSpec",
    "KyutaiFiles",
    "duplex_arch",
    "duplex_config",
    "duplex_from_headers",
    "duplex_spec",
    "duplex_task",
    "is_kyutai_config",
    "kyutai_files",
    "moshi_delays",
]

FRAME_MS = 80
SAMPLE_RATE = 24_000
DUPLEX_MODEL_TYPES = frozenset({"moshi", "personaplex"})


def moshi_delays(per_stream: int) -> list[int]:
    """Each stream's delay in frames, Moshi's acoustic delay: the text, then the model's and
    the user's codebooks (``per_stream`` each): each stream's first at 0, the rest 1."""
    return [0] + ([0] + [1] * (per_stream - 1)) * 2


# The moshi package's defaults (models/loaders.py, 0.2.13): the 7B Moshiko shape.
_DEFAULTS = {
    "dim": 4096, "num_layers": 32, "num_heads": 32, "context": 3000, "n_q": 16, "dep_q": 8,
    "depformer_dim": 1024, "depformer_num_layers": 6, "depformer_num_heads": 16,
    "depformer_context": 8, "text_card": 32000, "card": 2048,
}  # fmt: skip
_KYUTAI_KEYS = {"dim", "num_layers", "dep_q", "n_q", "depformer_dim", "moshi_name", "mimi_name"}


@dataclass(frozen=True, slots=True)
class KyutaiFiles:
    """The files of a Kyutai-layout repository."""

    lm: str
    codec: str
    text_tokenizer: str | None
    voices: str | None


def kyutai_files(names: Iterable[str]) -> KyutaiFiles | None:
    """The Kyutai layout's files among ``names`` (repository-relative), or None."""
    top = sorted(n for n in names if "/" not in n)
    lm = next((n for n in ("model.safetensors", "model.q8.safetensors") if n in top), None)
    codec = next((n for n in top if re.fullmatch(r"tokenizer-.+\.safetensors", n)), None)
    if lm is None or codec is None:
        return None
    spm = next((n for n in top if n.endswith(".model") and "tokenizer" in n), None)
    voices = "voices.tgz" if "voices.tgz" in top else None
    if voices is None and any(n.startswith("voices/") for n in names):
        voices = "voices/"
    return KyutaiFiles(lm=lm, codec=codec, text_tokenizer=spm, voices=voices)


def is_kyutai_config(config: Mapping[str, Any] | None) -> bool:
    """A config.json of Kyutai's keys (not a Transformers config)."""
    if not config:
        return False
    return bool(_KYUTAI_KEYS & set(config)) and "architectures" not in config


@dataclass(frozen=True, slots=True)
class Component:
    """One part of the model, as its files hold it."""

    role: Literal["lm", "codec"]
    files: tuple[str, ...]
    parameters: int
    bytes: int
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "files": list(self.files)}


@dataclass(frozen=True, slots=True)
class DuplexSpec:
    """The shape a full-duplex model's memory and frame step depend on."""

    variant: Literal["personaplex", "moshi"]
    layout: Literal["kyutai", "transformers"]
    layers: int
    dim: int
    heads: int
    kv_heads: int
    head_dim: int
    codebooks: int  # audio streams the LM reads (its own and the user's)
    dep_q: int  # codebooks the depformer predicts per frame: its steps
    depformer_layers: int
    depformer_dim: int
    depformer_heads: int
    depformer_context: int
    context_frames: int
    text_vocab: int
    audio_vocab: int
    lm: Component
    codec: Component
    shape_source: str
    text_tokenizer: str | None = None
    voices: str | None = None
    frame_ms: int = FRAME_MS
    sample_rate: int = SAMPLE_RATE
    assumed: tuple[str, ...] = ()
    drivers: dict[str, Any] = field(default_factory=dict)

    def kv_bytes_per_frame(self, element_bytes: float) -> int:
        """Temporal transformer K and V per frame, every layer (a session's ring buffer grows
        by this each frame until it holds the context)."""
        return round(2 * self.layers * self.kv_heads * self.head_dim * element_bytes)

    def depformer_layer_parameters(self) -> int:
        """One depformer layer: attention (4 x dim^2) and its SiLU-gated MLP (3 x hidden x
        dim, hidden = 2/3 of 4.125 x dim)."""
        d = self.depformer_dim
        return 4 * d * d + 3 * round(4.125 * d * 2 / 3) * d

    def user_depth_parameters(self) -> int:
        """The depformer steps over the user's codebooks (PersonaPlex's 8 of 16; none for
        Moshi): each step's layers, input projection, head and input embedding."""
        d = self.depformer_dim
        per_step = (self.depformer_layers * self.depformer_layer_parameters() + d * self.dim
                    + self.audio_vocab * d + (self.audio_vocab + 1) * d)  # fmt: skip
        return max(0, self.dep_q - self.codebooks // 2) * per_step

    def depformer_cache_bytes(self, element_bytes: float) -> int:
        """The depformer's K and V over its short context, per session."""
        return round(2 * self.depformer_layers * self.depformer_dim * element_bytes
                     * self.depformer_context)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["lm"], out["codec"] = self.lm.to_dict(), self.codec.to_dict()
        out["assumed"] = list(self.assumed)
        out["kv_bytes_per_frame_bf16"] = self.kv_bytes_per_frame(2)
        return out


def _layer_count(tensors: Sequence[TensorInfo], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = [int(m.group(1)) for t in tensors if (m := pattern.match(t.name))]
    return max(found) + 1 if found else 0


def _shape(tensors: Sequence[TensorInfo], name: str) -> tuple[int, ...] | None:
    return next((t.shape for t in tensors if t.name == name), None)


def _from_headers(tensors: Sequence[TensorInfo], drivers: dict[str, Any]) -> dict[str, int]:
    """What the LM's tensor names and shapes say of its shape (Kyutai names)."""
    out: dict[str, int] = {}
    text = _shape(tensors, "text_emb.weight")
    if text and len(text) == 2:
        out["dim"], out["text_card"] = text[1], text[0] - 1
    out["num_layers"] = _layer_count(tensors, "transformer.layers.")
    out["n_q"] = sum(1 for t in tensors if re.fullmatch(r"emb\.\d+\.weight", t.name))
    out["dep_q"] = sum(1 for t in tensors if re.fullmatch(r"linears\.\d+\.weight", t.name))
    audio = _shape(tensors, "emb.0.weight")
    if audio:
        out["card"] = audio[0] - 1
    dep_in = _shape(tensors, "depformer_in.0.weight")
    if dep_in:
        out["depformer_dim"] = dep_in[0]
    out["depformer_num_layers"] = _layer_count(tensors, "depformer.layers.")
    found = {k: v for k, v in out.items() if v}
    drivers.update({f"header:{k}": v for k, v in found.items()})
    return found


def _component(role: Literal["lm", "codec"], files: Sequence[str],
               tensors: Sequence[TensorInfo]) -> Component:  # fmt: skip
    by_dtype: dict[str, int] = {}
    for t in tensors:
        by_dtype[t.dtype] = by_dtype.get(t.dtype, 0) + t.nbytes
    dtype = max(by_dtype, key=lambda d: by_dtype[d]) if by_dtype else "?"
    return Component(role, tuple(files), sum(t.numel for t in tensors),
                     sum(t.nbytes for t in tensors), dtype)  # fmt: skip


def duplex_spec(
    config: Mapping[str, Any] | None,
    *,
    lm: Sequence[TensorInfo],
    codec: Sequence[TensorInfo],
    files: KyutaiFiles | None,
    lm_files: Sequence[str],
    codec_files: Sequence[str],
) -> DuplexSpec:
    """The shape of a full-duplex model, from its config (Kyutai's or Transformers') and the
    headers of its LM and codec tensors."""
    drivers: dict[str, Any] = {}
    assumed: list[str] = []
    if config and config.get("model_type") == "moshi" and "depth_decoder_config" in config:
        values, source = _from_transformers(config, drivers), "config.json (Transformers Moshi)"
    else:
        values = _from_headers(lm, drivers)
        source = "safetensors headers"
        if is_kyutai_config(config):
            assert config is not None
            keys = {k: int_field(config[k]) for k in _DEFAULTS if config.get(k) is not None}
            values |= keys
            drivers.update({f"config:{k}": v for k, v in keys.items()})
            source = "config.json (Kyutai keys) and safetensors headers"
        for key, default in _DEFAULTS.items():
            if not values.get(key):
                values[key] = default
                assumed.append(f"{key} = {default} (the moshi package's default)")
    heads = values["num_heads"]
    dep_q = values["dep_q"]
    variant: Literal["personaplex", "moshi"] = (
        "personaplex"
        if dep_q >= 16 or (files is not None and files.voices) or _named_personaplex(config)
        else "moshi"
    )
    kv_heads = values.get("num_kv_heads", heads)
    return DuplexSpec(
        variant=variant, layout="transformers" if "Transformers" in source else "kyutai",
        layers=values["num_layers"], dim=values["dim"], heads=heads, kv_heads=kv_heads,
        head_dim=values["dim"] // heads if heads else 0, codebooks=values["n_q"], dep_q=dep_q,
        depformer_layers=values["depformer_num_layers"], depformer_dim=values["depformer_dim"],
        depformer_heads=values["depformer_num_heads"],
        depformer_context=values["depformer_context"], context_frames=values["context"],
        text_vocab=values["text_card"], audio_vocab=values["card"],
        lm=_component("lm", lm_files, lm), codec=_component("codec", codec_files, codec),
        shape_source=source, text_tokenizer=files.text_tokenizer if files else None,
        voices=files.voices if files else None, assumed=tuple(assumed), drivers=drivers,
    )  # fmt: skip


def _named_personaplex(config: Mapping[str, Any] | None) -> bool:
    if not config:
        return False
    text = " ".join(str(config.get(k, "")) for k in ("model_id", "model_type", "_name_or_path"))
    return "personaplex" in text.lower()


def _from_transformers(config: Mapping[str, Any], drivers: dict[str, Any]) -> dict[str, int]:
    """Transformers' MoshiConfig keys → the package's names."""
    dep = config.get("depth_decoder_config") or {}

    def pick(src: Mapping[str, Any], key: str, default: int) -> int:
        value = int_field(src.get(key), default)
        drivers[key if src is config else f"depth_decoder_config.{key}"] = value
        return value

    codebooks = pick(config, "num_codebooks", 8)
    return {
        "dim": pick(config, "hidden_size", 4096),
        "num_layers": pick(config, "num_hidden_layers", 32),
        "num_heads": pick(config, "num_attention_heads", 32),
        "num_kv_heads": pick(
            config, "num_key_value_heads", pick(config, "num_attention_heads", 32)
        ),
        "context": pick(config, "max_position_embeddings", 3000),
        "n_q": 2 * codebooks,
        "dep_q": codebooks,
        "depformer_dim": pick(dep, "hidden_size", 1024),
        "depformer_num_layers": pick(dep, "num_hidden_layers", 6),
        "depformer_num_heads": pick(dep, "num_attention_heads", 16),
        "depformer_context": pick(dep, "max_position_embeddings", 8),
        "text_card": pick(config, "vocab_size", 32000),
        "card": pick(config, "audio_vocab_size", 2048),
    }


def duplex_from_headers(
    config: Mapping[str, Any],
    headers: Sequence[SafetensorsHeader],
    files: KyutaiFiles | None,
) -> DuplexSpec | None:
    """The duplex shape of a profiled model, or None when it is not one.

    Kyutai layout: the LM and codec are their own files. Transformers' Moshi: the codec is
    the ``audio_encoder.`` tensors of the same checkpoint.
    """
    # The Kyutai layout's files decide, whatever its config.json holds (Kyutai's keys,
    # PersonaPlex's download-counter file), unless that config names a Transformers class.
    if files is not None and not config.get("architectures"):
        lm = [t for h in headers if h.file == files.lm for t in h.tensors]
        codec = [t for h in headers if h.file == files.codec for t in h.tensors]
        if not lm or not codec:
            return None
        return duplex_spec(config or None, lm=lm, codec=codec, files=files,
                           lm_files=[files.lm], codec_files=[files.codec])  # fmt: skip
    if config.get("model_type") == "moshi" and headers:
        lm = [t for h in headers for t in h.tensors if not t.name.startswith("audio_encoder.")]
        codec = [t for h in headers for t in h.tensors if t.name.startswith("audio_encoder.")]
        names = sorted({h.file for h in headers})
        return duplex_spec(config, lm=lm, codec=codec, files=None, lm_files=names,
                           codec_files=names if codec else [])  # fmt: skip
    return None


def duplex_config(spec: DuplexSpec) -> dict[str, Any]:
    """The config.json fields the rest of hfdeploy reads, for a model that may have none."""
    return {"model_type": spec.variant, "architectures": []}


def duplex_arch(spec: DuplexSpec) -> ArchSpec:
    """The generic shape record; the per-frame cache is sized from the DuplexSpec."""
    return ArchSpec(
        family="other", model_type=spec.variant, num_layers=spec.layers, hidden_size=spec.dim,
        num_attention_heads=spec.heads, intermediate_size=0, vocab_size=spec.text_vocab,
        max_context=spec.context_frames, drivers=dict(spec.drivers),
        layer_types_source=f"full-duplex: a ring buffer of {spec.context_frames:,} frames",
    )  # fmt: skip


def duplex_task(spec: DuplexSpec) -> TaskInfo:
    """Audio in, audio out, at the same time: sessions held in real time."""
    name = "PersonaPlex" if spec.variant == "personaplex" else "Moshi"
    return TaskInfo(
        task="audio-to-audio", kind="full-duplex-speech",
        source=f"{name} full-duplex speech model ({spec.layout} layout, {spec.dep_q} "
        "depformer steps a frame)",
    )  # fmt: skip
