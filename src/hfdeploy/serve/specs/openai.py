"""OpenAI-compatible wire formats: request bodies, answers, and the error body every route uses.

Request bodies are strict (a boolean field refuses ``"true"``, an integer field ``1.0``), so
what the server accepts is what its OpenAPI document says. The answer models document the
routes' 2xx bodies; the routes serialize with orjson, not through them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from hfdeploy.serve.specs._strict import Body, Int, PositiveInt, SafeInt

__all__ = [
    "ChatCompletion",
    "ChatMessage",
    "ChatRequest",
    "Completion",
    "CompletionRequest",
    "Embeddings",
    "EmbeddingsRequest",
    "ErrorObject",
    "ErrorResponse",
    "ModelList",
    "StreamOptions",
    "Transcription",
]


class ErrorObject(BaseModel):
    message: str = Field(description="What is wrong, and what to send instead.")
    type: str = Field(description="The same as `code`.")
    param: str | None = Field(description="The request field at fault, if one is.")
    code: str = Field(
        description="invalid_request, input_too_long, model_not_found, not_found, "
        "method_not_allowed, payload_too_large, invalid_api_key, not_ready, overloaded, "
        "timeout or internal_error."
    )


class ErrorResponse(BaseModel):
    """The body of every error the server answers (OpenAI's shape)."""

    error: ErrorObject


Texts = Annotated[list[str], Field(min_length=1)]


class EmbeddingsRequest(Body):
    input: str | Texts = Field(description="A text or a batch of texts (not token ids).")
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: PositiveInt | None = None
    user: str | None = None


class StreamOptions(Body):
    include_usage: bool = False


class _Sampling(Body):
    model: str | None = None
    max_tokens: PositiveInt | None = Field(
        default=None,
        description="At most this many tokens; fewer when the prompt leaves less of the "
        "context (finish_reason `length`).",
    )
    temperature: float = Field(
        default=1.0, ge=0.0, le=2.0, description="0 (or under 1e-5): greedy decoding."
    )
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    seed: SafeInt | None = None
    n: Int = Field(default=1, ge=1, le=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class CompletionRequest(_Sampling):
    prompt: str | Annotated[list[str], Field(min_length=1, max_length=1)] = Field(
        description="One prompt (a list of one is accepted too)."
    )


class TextPart(Body):
    type: Literal["text"]
    text: str


class ChatMessage(Body):
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: PositiveInt | None = Field(
        default=None, description="The same as `max_tokens`, and it wins."
    )


# Answers (documentation of the 2xx bodies)


class ModelCard(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    task: str
    max_model_len: int


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


class EmbeddingItem(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 of little-endian f32.")


class EmbeddingsUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class Embeddings(BaseModel):
    object: Literal["list"]
    data: list[EmbeddingItem]
    model: str
    usage: EmbeddingsUsage


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


FinishReason = Literal["stop", "length"]


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: FinishReason
    logprobs: None


class Completion(BaseModel):
    """``stream: false``; with ``stream: true`` the answer is server-sent events of chunks."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None


class ChatCompletion(BaseModel):
    """``stream: false``; with ``stream: true`` the answer is server-sent events of chunks."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class Transcription(BaseModel):
    text: str
