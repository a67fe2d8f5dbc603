"""ModelSource → ModelProfile: everything sizing and planning need to know of a model.

Reads config.json, the tokenizer's presence, safetensors headers (all shards) or GGUF
metadata; never tensor data. Falls back to meta-device counting only when a folder has
no safetensors weights to read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hfdeploy.envelope import Confidence, Envelope, lowest
from hfdeploy.errors import MissingConfigError
from hfdeploy.model.arch import ArchSpec, arch_from_config, text_config
from hfdeploy.model.class_layers import class_layer_types
from hfdeploy.model.duplex import (
    DuplexSpec,
    KyutaiFiles,
    duplex_arch,
    duplex_config,
    duplex_from_headers,
    duplex_task,
    kyutai_files,
)
from hfdeploy.model.gguf import GGUFInfo, gguf_config
from hfdeploy.model.layers import needs_class_layer_types
from hfdeploy.model.meta import config_dtype, meta_tensors
from hfdeploy.model.safetensors import SafetensorsHeader
from hfdeploy.model.source import HubMeta, ModelSource, SourceKind
from hfdeploy.model.task import TaskInfo, detect_task
from hfdeploy.model.weights import DtypeStats, WeightStats, weight_stats

__all__ = ["Formats", "ModelProfile", "build_profile", "select_weight_files"]

_PICKLE_EXT = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
_TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer.model", "spiece.model", "vocab.txt", "vocab.json",
    "sentencepiece.bpe.model", "tekken.json", "tokenizer_config.json",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Formats:
    """Weight formats present, by file. Pickle files can run code when loaded: unsafe."""

    safetensors: tuple[str, ...] = ()
    pickle: tuple[str, ...] = ()
    gguf: tuple[GGUFInfo, ...] = ()
    gguf_unread: tuple[str, ...] = ()
    onnx: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "safetensors": list(self.safetensors),
            "pickle": {"files": list(self.pickle), "unsafe": bool(self.pickle)},
            "gguf": [g.to_dict() for g in self.gguf] + [{"file": f} for f in self.gguf_unread],
            "onnx": list(self.onnx),
        }


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """What a model is: identity, architecture, task, weights, formats, limits."""

    ref: str
    source: SourceKind
    location: str
    repo_id: str | None
    revision: str | None
    commit_sha: str | None
    architectures: tuple[str, ...]
    model_type: str | None
    task: TaskInfo
    weights: WeightStats
    weights_source: str
    arch: ArchSpec
    formats: Formats
    quantization: dict[str, Any] | None
    max_context: int | None
    tokenizer: bool
    size_on_disk: int
    files: int
    config: Mapping[str, Any] = field(repr=False)
    hub: HubMeta | None = None
    bytes_read: int = 0
    notes: tuple[str, ...] = ()
    #: Full-duplex speech models (Moshi, PersonaPlex): their shape, LM and codec.
    duplex: DuplexSpec | None = None

    @property
    def parameters(self) -> int:
        return self.weights.parameters

    @property
    def quant_method(self) -> str | None:
        if self.quantization:
            method = self.quantization.get("quant_method") or self.quantization.get("quant_algo")
            return str(method) if method else "unknown"
        gguf = self.formats.gguf
        if self.weights_source.startswith("gguf") and gguf:
            return f"gguf:{gguf[0].file_type}" if gguf[0].file_type else "gguf"
        return None

    def envelope(self) -> Envelope:
        """The profile as an answer: what it is, how sure, what could be off, how to check."""
        name = self.repo_id or self.location
        arch = ", ".join(self.architectures) or self.model_type or "unknown architecture"
        result = (
            f"{name}: {arch}, "
            f"task {self.task.task} ({self.task.kind}), {self.parameters:,} parameters, "
            f"{self.weights.bytes / 2**30:.2f} GiB of weights"
            + (f", max context {self.max_context:,}" if self.max_context else "")
        )
        factors: list[str] = list(self.notes)
        if self.weights_source == "safetensors":
            confidence: Confidence = "high"
            why = "parameters and bytes counted from the safetensors headers"
        elif self.weights_source.startswith("gguf"):
            confidence = "high"
            why = "tensor table read from the GGUF file"
        else:
            confidence = "medium"
            why = "no weights read: counted from config.json on the meta device"
        if self.task.task == "unknown" or "without architectures" in self.task.source:
            confidence = lowest(confidence, "medium")
            factors.append(f"task guessed ({self.task.source}); pass --task where it matters")
        if self.formats.pickle:
            factors.append("pickle weights present: loading them can run code")
        if not self.commit_sha:
            factors.append("no commit sha: the files can change under the same name")
        verification = [f"hfdeploy inspect {self.ref} --json"]
        if self.repo_id:
            verification.append(
                f"huggingface_hub.HfApi().model_info({self.repo_id!r}, files_metadata=True)"
            )
        return Envelope(result, confidence, why, tuple(factors), tuple(verification))

    def _components(self) -> dict[str, Any]:
        if self.duplex is None:
            return {}
        return {"components": {"lm": self.duplex.lm.to_dict(),
                               "codec": self.duplex.codec.to_dict()}}  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The ``hfdeploy inspect --json`` object."""
        return {
            "ref": self.ref,
            "source": self.source,
            "location": self.location,
            "repo_id": self.repo_id,
            "revision": self.revision,
            "commit_sha": self.commit_sha,
            "architectures": list(self.architectures),
            "model_type": self.model_type,
            "task": self.task.task,
            "kind": self.task.kind,
            "task_source": self.task.source,
            "parameters": self.weights.to_dict() | self._components(),
            "weights_source": self.weights_source,
            "architecture": self.arch.to_dict(),
            "formats": self.formats.to_dict(),
            "quantization": {"method": self.quant_method, "config": self.quantization},
            "max_context": self.max_context,
            "tokenizer": self.tokenizer,
            "size_on_disk": self.size_on_disk,
            "files": self.files,
            "hub": self.hub.to_dict() if self.hub else None,
            "bytes_read": self.bytes_read,
            "notes": list(self.notes),
            **({"duplex": self.duplex.to_dict()} if self.duplex else {}),
        }


def select_weight_files(
    files: Mapping[str, int | None],
    *,
    index: Mapping[str, Any] | None,
    modules: list[Any] | None,
) -> list[str]:
    """The safetensors files that hold the model's weights, each once.

    The index's ``weight_map`` when there is one; else top-level ``*.safetensors`` (Mistral's
    ``consolidated.safetensors`` duplicate skipped when others exist); plus the weights of
    Sentence-Transformers modules (``2_Dense/model.safetensors``) named in modules.json.
    """
    chosen: list[str] = []
    if index is not None:
        weight_map = index.get("weight_map") or {}
        chosen = sorted({str(v) for v in weight_map.values()})
    else:
        top = sorted(n for n in files if "/" not in n and n.endswith(".safetensors"))
        rest = [n for n in top if not n.startswith("consolidated")]
        chosen = rest or top
    for module in modules or []:
        path = module.get("path") if isinstance(module, dict) else None
        if path:
            extra = sorted(
                n for n in files if n.startswith(f"{path}/") and n.endswith(".safetensors")
            )
            chosen.extend(n for n in extra if n.count("/") == path.count("/") + 1)
    return chosen


def _gguf_profile_stats(info: GGUFInfo) -> WeightStats:
    by_type = {
        name: DtypeStats(v["tensors"], v["parameters"], v["parameters"], v["bytes"])
        for name, v in info.tensor_types.items()
    }
    return WeightStats(
        parameters=info.parameters, bytes=info.bytes, by_dtype=by_type, float_parameters=0,
        float_bytes=0, linear_float_parameters=0, linear_rows=0, embedding_parameters=0,
        expert_parameters=0, expert_bytes=0, quant_aux_bytes=0, buffer_bytes=0,
        one_dim_bytes=0, source=f"GGUF tensor table ({info.file})",
    )  # fmt: skip


def build_profile(source: ModelSource, *, ref: str, gguf_file: str | None = None) -> ModelProfile:
    """Profile a model from its source, reading only configs and headers.

    Args:
        source: where the files are.
        ref: the reference the user gave, echoed in the profile.
        gguf_file: the GGUF file to size when a folder holds several.

    Raises:
        MissingConfigError: neither config.json nor a readable GGUF file.
        SafetensorsHeaderError: a shard's header is corrupt (subclasses say how).
        UnknownModelTypeError: config-only and transformers cannot build it.
    """
    files = source.files()
    names = set(files)
    formats = _formats(source, names, gguf_file=gguf_file)
    notes = list(source.notes)
    if formats.pickle:
        notes.append(
            f"pickle files present ({', '.join(formats.pickle[:3])}"
            f"{'...' if len(formats.pickle) > 3 else ''}): loading them can run arbitrary code"
        )
    kyutai = kyutai_files(names)
    config, config_notes = _config(source, formats.gguf, kyutai=kyutai)
    quant = config.get("quantization_config")
    quant = dict(quant) if isinstance(quant, Mapping) else None
    stats, weights_source, weight_notes, headers = _weights(
        source, files, config=config, quant=quant, gguf=formats.gguf
    )
    notes += [*config_notes, *weight_notes]
    duplex = duplex_from_headers(config, headers, kyutai)
    if duplex is not None:
        notes += [f"assumed {a}" for a in duplex.assumed]
        config = {**duplex_config(duplex), **config}

    from_gguf = bool(formats.gguf) and weights_source.startswith("gguf")
    max_ctx = None
    if from_gguf:
        ctx = formats.gguf[0].metadata.get("context_length")
        max_ctx = ctx if isinstance(ctx, int) else None
    # Local or recurrent layers with no per-layer list and no rule here: the model class says.
    class_types = (
        class_layer_types(config)
        if needs_class_layer_types(text_config(config), config.get("model_type"))
        else None
    )
    arch = (
        duplex_arch(duplex)
        if duplex is not None
        else arch_from_config(config, max_context_override=max_ctx, class_types=class_types)
    )
    hub_meta = source.hub
    task = (
        duplex_task(duplex)
        if duplex is not None
        else detect_task(config, names, pipeline_tag=hub_meta.pipeline_tag if hub_meta else None)
    )
    # A GGUF file carries its tokenizer in its metadata; a Kyutai repository a SentencePiece.
    tokenizer = (
        any(n in names for n in _TOKENIZER_FILES)
        or from_gguf
        or bool(duplex and duplex.text_tokenizer)
    )
    return ModelProfile(
        ref=ref,
        source=source.kind,
        location=source.location,
        repo_id=source.repo_id,
        revision=source.revision,
        commit_sha=source.commit_sha,
        architectures=tuple(str(a) for a in config.get("architectures") or []),
        model_type=config.get("model_type"),
        task=task,
        weights=stats,
        weights_source=weights_source,
        arch=arch,
        formats=formats,
        quantization=quant,
        max_context=arch.max_context,
        tokenizer=tokenizer,
        size_on_disk=sum(s for s in files.values() if s),
        files=len(files),
        config=config,
        hub=hub_meta,
        bytes_read=source.bytes_read,
        notes=tuple(notes),
        duplex=duplex,
    )


def _formats(source: ModelSource, names: set[str], *, gguf_file: str | None) -> Formats:
    """The weight formats present; every GGUF file read (``gguf_file`` first) or listed unread."""
    gguf_names = sorted(n for n in names if n.endswith(".gguf"))
    if gguf_file:
        gguf_names = [gguf_file] + [n for n in gguf_names if n != gguf_file]
    gguf_infos: list[GGUFInfo] = []
    gguf_unread: list[str] = []
    for name in gguf_names:
        info = source.read_gguf(name)
        if info is None:
            gguf_unread.append(name)
        else:
            gguf_infos.append(info)
    return Formats(
        safetensors=tuple(sorted(n for n in names if n.endswith(".safetensors"))),
        pickle=tuple(sorted(n for n in names if n.endswith(_PICKLE_EXT))),
        gguf=tuple(gguf_infos),
        gguf_unread=tuple(gguf_unread),
        onnx=tuple(sorted(n for n in names if n.endswith(".onnx"))),
    )


def _config(
    source: ModelSource, gguf: tuple[GGUFInfo, ...], *, kyutai: KyutaiFiles | None
) -> tuple[dict[str, Any], list[str]]:
    """config.json, else a config made from the first GGUF file's metadata, else nothing for
    a Kyutai-layout repository (its shape is read from the headers); and a note.

    Raises:
        MissingConfigError: config.json is not a JSON object, or there is none of these.
    """
    config = source.read_json("config.json")
    if config is not None and not isinstance(config, dict):
        raise MissingConfigError(f"{source.location} (config.json is not a JSON object)")
    if config is None and kyutai is not None:
        return {}, [
            f"no config.json: a Kyutai-layout full-duplex model ({kyutai.lm}, the Mimi codec "
            f"{kyutai.codec}); shape read from the safetensors headers"
        ]
    if config is None and gguf:
        note = f"no config.json: architecture from GGUF metadata of {gguf[0].file}"
        return gguf_config(gguf[0]), [note]
    if config is None:
        raise MissingConfigError(source.location)
    return config, []


def _weights(
    source: ModelSource,
    files: Mapping[str, int | None],
    *,
    config: dict[str, Any],
    quant: dict[str, Any] | None,
    gguf: tuple[GGUFInfo, ...],
) -> tuple[WeightStats, str, list[str], list[SafetensorsHeader]]:
    """The weights, where they were counted from, notes on how, and the headers read.

    From the safetensors headers when every weight file is at hand (a Hub source reads them
    remotely); else from the GGUF tensor table; else counted from config.json on the meta
    device.
    """
    notes: list[str] = []
    index = source.read_json("model.safetensors.index.json")
    index = index if isinstance(index, dict) else None
    modules_doc = source.read_json("modules.json") if "modules.json" in files else None
    modules_doc = modules_doc if isinstance(modules_doc, list) else None
    weight_files = select_weight_files(files, index=index, modules=modules_doc)
    present = [n for n in weight_files if files.get(n) is not None or source.kind == "hub"]
    if weight_files and len(present) == len(weight_files):
        headers = source.read_safetensors_headers(weight_files)
        stats = weight_stats(
            (t for h in headers for t in h.tensors),
            quantization_config=quant,
            source=f"safetensors headers ({len(headers)} file{'s' * (len(headers) != 1)})",
        )
        return stats, "safetensors", notes, headers
    if gguf and not weight_files:
        if len(gguf) > 1:
            notes.append(
                "several GGUF files: sized "
                f"{gguf[0].file}; pass the file itself as MODEL to size another"
            )
        return _gguf_profile_stats(gguf[0]), f"gguf ({gguf[0].file})", notes, []
    if weight_files:
        notes.append(
            f"{len(weight_files) - len(present)} of {len(weight_files)} safetensors files "
            "are not present locally: counted from config.json instead"
        )
    tensors, how = meta_tensors(config, location=source.location)
    stats = weight_stats(tensors, quantization_config=None, source=how)
    dtype, why = config_dtype(config)
    notes.append(f"no weights read: {how}; stored dtype {dtype} from {why}")
    if quant:
        notes.append(
            "quantization_config present but no weights read: sized as the unquantized architecture"
        )
    return stats, "config (meta device)", notes, []
