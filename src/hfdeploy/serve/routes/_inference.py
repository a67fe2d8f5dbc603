"""Model calls both protocols make through the batcher: embed, transcribe, and their checks.

TEI's and OpenAI's routes differ in their bodies and answers, not in how they run the
model: the checks (inputs per request) and the calls are here once. A route is mounted
only for the task it serves (:mod:`hfdeploy.serve.routes`), so the runner a route finds is
the one it expects.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from hfdeploy.errors import BadRequestError
from hfdeploy.serve.embed import EmbedInput, EmbedRunner
from hfdeploy.serve.speech import SpeechInput, SpeechRunner, decode_audio
from hfdeploy.serve.state import ServerState

__all__ = ["check_count", "embed", "runner_of", "transcribe"]

R = TypeVar("R")


def check_count(state: ServerState, n: int, field: str) -> None:
    """Refuse an empty request and one over ``max_client_batch_size`` inputs (422).

    The OpenAPI document states the same bounds (``minItems``, ``maxItems``).
    """
    limit = state.settings.max_client_batch_size
    if n > limit:
        raise BadRequestError(
            f"{n} inputs in one request, more than the limit of {limit}", param=field
        )
    if n == 0:
        raise BadRequestError(f"{field} is empty", param=field)


def runner_of(state: ServerState, kind: type[R]) -> R:
    """The loaded runner, a ``kind`` (503 until the model is ready)."""
    loaded = state.require_model()
    runner = loaded.runner
    if not isinstance(runner, kind):  # the app mounts a task's routes only: a bug if here
        raise TypeError(f"a {kind.__name__} route reached a {runner.task} model")
    return runner


async def embed(
    state: ServerState,
    texts: list[str],
    *,
    normalize: bool,
    truncate: bool,
    prompt_name: str | None,
    dimensions: int | None,
    field: str,
) -> list[Any]:
    """Embed ``texts`` through the batcher: :class:`Embedding` per text, in order."""
    runner = runner_of(state, EmbedRunner)
    _, batcher = state.require()
    check_count(state, len(texts), field)
    if dimensions is not None and dimensions > runner.dimension:
        raise BadRequestError(
            f"dimensions {dimensions} is more than the model's {runner.dimension}",
            param="dimensions",
        )
    prompt = runner.prompt_text(prompt_name)
    items = [EmbedInput(t, truncate, normalize, prompt, dimensions) for t in texts]
    results = await batcher.run(items, timeout=state.settings.request_timeout)
    state.metrics.tokens.labels("input").inc(sum(r.tokens for r in results))
    return results


async def transcribe(state: ServerState, data: bytes, *, language: str | None) -> str:
    """Decode ``data`` (off the event loop) and transcribe it through the batcher."""
    runner = runner_of(state, SpeechRunner)
    _, batcher = state.require()
    audio = await asyncio.to_thread(decode_audio, data, runner.rate)
    (text,) = await batcher.run(
        [SpeechInput(audio, language)], timeout=state.settings.request_timeout
    )
    return str(text)
