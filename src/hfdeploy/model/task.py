"""Which task a model serves, from ``architectures``, files and the Hub's pipeline tag.

Pure. Task names are the Hub's pipeline tags. ``kind`` groups tasks by the serving
stack that runs them (engines choose by kind).
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Kind", "TaskInfo", "detect_task"]

Kind = Literal[
    "generator", "embedder", "reranker", "classifier", "speech", "vision", "seq2seq",
    "full-duplex-speech", "other",
]  # fmt: skip

_KIND_OF_TASK: dict[str, Kind] = {
    "text-generation": "generator",
    "image-text-to-text": "generator",
    "feature-extraction": "embedder",
    "sentence-similarity": "embedder",
    "text-ranking": "reranker",
    "reranking": "reranker",
    "text-classification": "classifier",
    "token-classification": "classifier",
    "zero-shot-classification": "classifier",
    "fill-mask": "classifier",
    "question-answering": "classifier",
    "automatic-speech-recognition": "speech",
    "text-to-speech": "speech",
    "text-to-audio": "speech",
    "audio-classification": "speech",
    "audio-to-audio": "speech",
    "image-classification": "vision",
    "object-detection": "vision",
    "image-segmentation": "vision",
    "image-feature-extraction": "vision",
    "text2text-generation": "seq2seq",
    "translation": "seq2seq",
    "summarization": "seq2seq",
}

# Suffix of the architecture class name → task (longest suffixes first).
_SUFFIX_TASKS: tuple[tuple[str, str], ...] = (
    ("ForSpeechSeq2Seq", "automatic-speech-recognition"),
    ("ForCTC", "automatic-speech-recognition"),
    ("ForTextToSpeech", "text-to-speech"),
    ("ForTextToWaveform", "text-to-speech"),
    ("ForAudioClassification", "audio-classification"),
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForMaskedLM", "fill-mask"),
    ("ForImageClassification", "image-classification"),
    ("ForObjectDetection", "object-detection"),
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
)

_CONDITIONAL_GENERATION_BY_TYPE: dict[str, str] = {
    "whisper": "automatic-speech-recognition",
    "speech_to_text": "automatic-speech-recognition",
    "seamless_m4t": "automatic-speech-recognition",
    "speecht5": "text-to-speech",
    "bark": "text-to-speech",
    "musicgen": "text-to-audio",
    "t5": "text2text-generation",
    "mt5": "text2text-generation",
    "umt5": "text2text-generation",
    "bart": "text2text-generation",
    "mbart": "text2text-generation",
    "marian": "translation",
    "pegasus": "summarization",
}

_ST_FILES = {"modules.json", "config_sentence_transformers.json", "sentence_bert_config.json"}


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """The detected task, its kind, and what decided it."""

    task: str
    kind: Kind
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "kind": self.kind, "source": self.source}


def _info(task: str, source: str) -> TaskInfo:
    return TaskInfo(task=task, kind=_KIND_OF_TASK.get(task, "other"), source=source)


def _num_labels(config: Mapping[str, Any]) -> int | None:
    id2label = config.get("id2label")
    if isinstance(id2label, Mapping) and id2label:
        return len(id2label)
    n = config.get("num_labels")
    return n if isinstance(n, int) else None


#: Model types that exist only as causal LMs on the Hub: a config.json of one of these without
#: ``architectures`` (as ``LlamaConfig().save_pretrained`` writes) is a generator, not an encoder.
_CAUSAL_LM_TYPES = frozenset({
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2",
    "gemma3_text", "phi", "phi3", "gpt2", "gpt_neox", "gptj", "falcon", "bloom", "opt", "mpt",
    "starcoder2", "olmo", "olmo2", "cohere", "granite", "deepseek_v2", "deepseek_v3", "gpt_oss",
})  # fmt: skip


def detect_task(
    config: Mapping[str, Any],
    files: Set[str],
    *,
    pipeline_tag: str | None = None,
) -> TaskInfo:
    """Detect the serving task.

    Order: Sentence-Transformers files (an embedder, or a reranker for a CrossEncoder),
    the Hub's pipeline tag, the architecture class name, then the model type.

    Args:
        config: config.json contents.
        files: repository-relative file names.
        pipeline_tag: the Hub's tag, when known.
    """
    archs = [str(a) for a in config.get("architectures") or []]
    model_type = str(config.get("model_type") or "")
    st_files = sorted(_ST_FILES & set(files))
    classifier_arch = next((a for a in archs if a.endswith("ForSequenceClassification")), None)

    if st_files and classifier_arch is None:
        return _info("sentence-similarity", f"Sentence-Transformers files ({', '.join(st_files)})")
    if classifier_arch is not None and (
        _num_labels(config) == 1 or "config_sentence_transformers.json" in files
    ):
        # TEI serves single-label sequence classifiers as rerankers (cross-encoders).
        return _info("text-ranking", f"{classifier_arch} with one label (a cross-encoder)")
    if pipeline_tag:
        return _info(pipeline_tag, f"Hub pipeline tag {pipeline_tag!r}")
    for arch in archs:
        for suffix, task in _SUFFIX_TASKS:
            if arch.endswith(suffix):
                return _info(task, f"architecture {arch}")
        if arch.endswith("ForConditionalGeneration"):
            by_type = _CONDITIONAL_GENERATION_BY_TYPE.get(model_type)
            if by_type:
                return _info(by_type, f"architecture {arch} (model_type {model_type!r})")
            vision = any(k in config for k in ("vision_config", "image_token_index"))
            generic = "image-text-to-text" if vision else "text-generation"
            return _info(generic, f"architecture {arch}")
        if arch.endswith("Model"):
            return _info("feature-extraction", f"architecture {arch} (a base model: hidden states)")
    if model_type in _CONDITIONAL_GENERATION_BY_TYPE:
        return _info(_CONDITIONAL_GENERATION_BY_TYPE[model_type], f"model_type {model_type!r}")
    if model_type in _CAUSAL_LM_TYPES:
        return _info("text-generation", f"model_type {model_type!r} (a causal LM family)")
    if model_type:
        return _info("feature-extraction", f"model_type {model_type!r} without architectures")
    return _info("unknown", "no architectures, model_type or pipeline tag")
