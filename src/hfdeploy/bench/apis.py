"""The APIs the benchmark speaks: request bodies out, content chunks and usage back.

Pure: an adapter builds a JSON body from an :class:`Item` and reads answers; sending is the
runner's. Streaming APIs are parsed with :class:`SSEParser` as bytes arrive, so the time of
every content chunk is known.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hfdeploy.bench.dataset import Item
from hfdeploy.bench.sse import SSEParser

__all__ = ["API_NAMES", "Api", "Reply", "api_by_name"]


@dataclass(slots=True)
class Reply:
    """What one answer held, as parsed so far."""

    #: perf_counter() of each piece that carried content (a chunk may hold several tokens).
    content_times: list[float] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    #: Server-reported counts, when it gave any.
    input_tokens: int | None = None
    output_tokens: int | None = None
    #: Token events seen (TGI sends one per token; OpenAI chunks may bundle several).
    token_events: int = 0
    error: str | None = None
    done: bool = False


class Api:
    """One API: its route, its request body and how to read its answers."""

    name = ""
    path = ""
    streaming = False
    generates = False

    def body(self, item: Item, model: str | None) -> dict[str, Any]:
        raise NotImplementedError

    def encode(self, item: Item, model: str | None) -> bytes:
        return json.dumps(self.body(item, model), separators=(",", ":")).encode()

    # streaming
    def new_parser(self) -> SSEParser:
        return SSEParser()

    def feed(self, parser: SSEParser, reply: Reply, piece: bytes, at: float) -> None:
        """Parse a streamed piece; mark the piece's time if it carried content."""
        content = False
        for event in parser.feed(piece):
            if event.done:
                reply.done = True
                continue
            try:
                obj = json.loads(event.data)
            except json.JSONDecodeError:
                reply.error = reply.error or "bad_stream_event"
                continue
            if isinstance(obj, dict):
                content |= self.event(obj, reply)
        if content:
            reply.content_times.append(at)

    def event(self, obj: dict[str, Any], reply: Reply) -> bool:
        """Read one decoded event; True when it carried output content."""
        raise NotImplementedError

    # whole bodies
    def answer(self, body: bytes, reply: Reply) -> None:
        """Read a complete (non-streamed) answer."""
        try:
            obj = json.loads(body)
        except json.JSONDecodeError:
            reply.error = "bad_json"
            return
        self.whole(obj, reply)

    def whole(self, obj: Any, reply: Reply) -> None:
        if isinstance(obj, dict):
            _usage(obj.get("usage"), reply)


def _usage(usage: Any, reply: Reply) -> None:
    if isinstance(usage, dict):
        if isinstance(usage.get("prompt_tokens"), int):
            reply.input_tokens = usage["prompt_tokens"]
        if isinstance(usage.get("completion_tokens"), int):
            reply.output_tokens = usage["completion_tokens"]


def _error_in(obj: dict[str, Any], reply: Reply) -> bool:
    if obj.get("error"):
        err = obj["error"]
        reply.error = str(err.get("type") or err.get("message") if isinstance(err, dict) else err)
        return True
    return False


class OpenAIChat(Api):
    name, path, streaming, generates = "openai-chat", "/v1/chat/completions", True, True

    def prompt(self, item: Item) -> dict[str, Any]:
        return {"messages": list(item.messages) or [{"role": "user", "content": item.prompt}]}

    def text(self, choice: dict[str, Any]) -> str:
        delta = choice.get("delta") or {}
        return str(delta.get("content") or delta.get("reasoning_content") or "")

    def body(self, item: Item, model: str | None) -> dict[str, Any]:
        return {
            "model": model or "",
            **self.prompt(item),
            "max_tokens": item.output_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            "ignore_eos": True,
        }

    def event(self, obj: dict[str, Any], reply: Reply) -> bool:
        if _error_in(obj, reply):
            return False
        _usage(obj.get("usage"), reply)
        content = False
        for choice in obj.get("choices") or ():
            if text := self.text(choice):
                reply.text.append(text)
                reply.token_events += 1
                content = True
        return content


class OpenAICompletions(OpenAIChat):
    name, path = "openai-completions", "/v1/completions"

    def prompt(self, item: Item) -> dict[str, Any]:
        return {"prompt": item.prompt}

    def text(self, choice: dict[str, Any]) -> str:
        return str(choice.get("text") or "")


class OpenAIEmbeddings(Api):
    name, path = "openai-embeddings", "/v1/embeddings"

    def body(self, item: Item, model: str | None) -> dict[str, Any]:
        return {"model": model or "", "input": list(item.texts), "encoding_format": "base64"}


class TeiEmbed(Api):
    name, path = "tei-embed", "/embed"

    def body(self, item: Item, model: str | None) -> dict[str, Any]:
        return {"inputs": list(item.texts)}


class TeiRerank(Api):
    name, path = "tei-rerank", "/rerank"

    def body(self, item: Item, model: str | None) -> dict[str, Any]:
        return {"query": item.prompt, "texts": list(item.texts)}


class TeiPredict(Api):
    name, path = "tei-predict", "/predict"

    def body(self, item: Item, model: str | None) -> dict[str, Any]:
        return {"inputs": list(item.texts) if len(item.texts) > 1 else item.prompt}


class TgiGenerate(Api):
    name, path, streaming, generates = "tgi-generate", "/generate_stream", True, True

    def body(self, item: Item, model: str | None) -> dict[str, Any]:
        return {
            "inputs": item.prompt,
            "parameters": {"max_new_tokens": item.output_tokens, "details": True},
        }

    def event(self, obj: dict[str, Any], reply: Reply) -> bool:
        if _error_in(obj, reply):
            return False
        details = obj.get("details")
        if isinstance(details, dict) and isinstance(details.get("generated_tokens"), int):
            reply.output_tokens = details["generated_tokens"]
        token = obj.get("token")
        if isinstance(token, dict) and not token.get("special"):
            reply.text.append(str(token.get("text", "")))
            reply.token_events += 1
            return True
        return False


_APIS: dict[str, type[Api]] = {
    a.name: a
    for a in (
        OpenAIChat,
        OpenAICompletions,
        OpenAIEmbeddings,
        TeiEmbed,
        TeiRerank,
        TeiPredict,
        TgiGenerate,
    )
}
API_NAMES = ("auto", *_APIS)


def api_by_name(name: str) -> Api:
    return _APIS[name]()
