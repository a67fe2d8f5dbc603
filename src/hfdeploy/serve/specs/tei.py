"""Text Embeddings Inference request bodies.

Field names and defaults follow TEI's OpenAPI (``/embed``, ``/rerank``, ``/predict``,
``/tokenize``), so TEI clients and ``huggingface_hub.InferenceClient`` work unchanged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EmbedRequest", "PredictRequest", "RerankRequest", "TokenizeRequest"]

Direction = Literal["right", "Right"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class EmbedRequest(_Body):
    inputs: str | list[str]
    normalize: bool = True
    truncate: bool = False
    truncation_direction: Direction = "right"
    prompt_name: str | None = None
    dimensions: int | None = Field(default=None, gt=0)


class RerankRequest(_Body):
    query: str
    texts: list[str]
    truncate: bool = False
    truncation_direction: Direction = "right"
    raw_scores: bool = False
    return_text: bool = False


class PredictRequest(_Body):
    # TEI: a string, a [text, text_pair] pair, or a batch of either.
    inputs: str | list[str] | list[list[str]]
    truncate: bool = False
    truncation_direction: Direction = "right"
    raw_scores: bool = False
    # Token classification: merge B-/I- runs into one entity.
    aggregation_strategy: Literal["none", "simple"] = "simple"


class TokenizeRequest(_Body):
    inputs: str | list[str]
    add_special_tokens: bool = True
