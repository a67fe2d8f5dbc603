"""Text Embeddings Inference wire formats: request bodies and answers.

Field names and defaults follow TEI's OpenAPI (``/embed``, ``/rerank``, ``/predict``,
``/tokenize``), so TEI clients and ``huggingface_hub.InferenceClient`` work unchanged.
Request bodies are strict: a boolean field refuses ``"true"`` and ``1``, as the schema says.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hfdeploy.serve.specs._strict import Body, PositiveInt

__all__ = [
    "EmbedRequest",
    "Entity",
    "Health",
    "Info",
    "Label",
    "PredictRequest",
    "Rank",
    "RerankRequest",
    "RootPredictRequest",
    "Token",
    "TokenPredictRequest",
    "TokenizeRequest",
]

Direction = Literal["right", "Right"]
Texts = Annotated[list[str], Field(min_length=1)]
#: A text with its pair, for a cross-encoder or a pair classifier.
Pair = Annotated[list[str], Field(min_length=2, max_length=2)]
#: One input of a batch: ``[text]`` or ``[text, pair]``.
PairOrSingle = Annotated[list[str], Field(min_length=1, max_length=2)]


class EmbedRequest(Body):
    inputs: str | Texts
    normalize: bool = True
    truncate: bool = False
    truncation_direction: Direction = "right"
    prompt_name: str | None = None
    dimensions: PositiveInt | None = None


class RerankRequest(Body):
    query: str
    texts: Texts
    truncate: bool = False
    truncation_direction: Direction = "right"
    raw_scores: bool = False
    return_text: bool = False


class PredictRequest(Body):
    """Sequence classification: a text, a ``[text, pair]``, or a batch of ``[text]`` / pairs."""

    inputs: str | Pair | Annotated[list[PairOrSingle], Field(min_length=1)]
    truncate: bool = False
    truncation_direction: Direction = "right"
    raw_scores: bool = False


class TopK(Body):
    top_k: PositiveInt | None = None


class RootPredictRequest(PredictRequest):
    """The Inference API's classification body: TEI's, with ``parameters.top_k``."""

    parameters: TopK | None = None


class TokenPredictRequest(Body):
    """Token classification: a text or a batch of texts."""

    inputs: str | Texts
    truncate: bool = False
    truncation_direction: Direction = "right"
    # Merge B-/I- runs into one entity.
    aggregation_strategy: Literal["none", "simple"] = "simple"


class TokenizeRequest(Body):
    inputs: str | Texts
    add_special_tokens: bool = True


# Answers (documentation of the 2xx bodies)


class Rank(BaseModel):
    index: int
    score: float
    text: str | None = Field(default=None, description="Only with `return_text`.")


class Label(BaseModel):
    label: str
    score: float


class Entity(BaseModel):
    entity_group: str
    score: float
    word: str
    start: int
    end: int
    entity: str | None = Field(default=None, description="With aggregation_strategy none.")
    index: int | None = Field(default=None, description="With aggregation_strategy none.")


class Token(BaseModel):
    id: int
    text: str
    special: bool
    start: int | None
    stop: int | None


class Health(BaseModel):
    status: str = Field(description="ok, or the phase: starting, loading, warming, ready, ...")
    phase: str | None = None
    error: str | None = None


class Info(BaseModel):
    model_config = ConfigDict(extra="allow")

    model_id: str | None
    model_sha: str | None
    model_dtype: str
    model_type: dict[str, dict[str, Any]] | None
    task: str
    phase: str
    max_concurrent_requests: int
    max_input_length: int | None
    max_batch_tokens: int
    max_batch_requests: int
    max_client_batch_size: int
    max_wait_ms: float
    device: str
    version: str
    server: str
