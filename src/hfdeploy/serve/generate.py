"""Text generation for small decoder models: one sequence at a time, streamed.

Not continuous batching: that is vLLM's and SGLang's job, and ``hfdeploy plan``
sends large generators there. This runner is for small models on CPU or one GPU.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfdeploy.errors import BadRequestError, InputTooLongError, ModelLoadError
from hfdeploy.model.profile import ModelProfile
from hfdeploy.serve.runtime import WarmupShape, import_torch, load_kwargs, token_limit
from hfdeploy.serve.settings import ServeSettings

__all__ = ["MIN_TEMPERATURE", "GenInput", "GenResult", "GenerateRunner", "StopText"]

DEFAULT_MAX_TOKENS = 256
#: Below this temperature, decoding is greedy.
MIN_TEMPERATURE = 1e-5
_WARMUP_CAP = 1024


@dataclass(slots=True)
class GenInput:
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    on_text: Callable[[str], None] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True, slots=True)
class GenResult:
    text: str
    finish_reason: str  # "stop" | "length" | "cancelled"
    prompt_tokens: int
    completion_tokens: int


class StopText:
    """Incremental text with stop sequences: emits only what no stop can still claim.

    >>> s = StopText(("\\nUser:",))
    >>> s.update("Hello\\nUs")
    'Hello'
    >>> s.update("Hello\\nUser: hi")
    ''
    >>> s.stopped, s.text
    (True, 'Hello')
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.emitted = 0
        self.stopped = False
        self.text = ""

    def update(self, full: str) -> str:
        """The new text safe to send, given everything generated so far."""
        if self.stopped:
            return ""
        hits = [i for i in (full.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            self.text = full[: min(hits)]
            return self._emit(len(self.text))
        self.text = full
        safe = len(full)
        if full.endswith("\ufffd"):  # an incomplete multi-byte character
            safe -= 1
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(full)), 0, -1):
                if full.endswith(stop[:k]):
                    safe = min(safe, len(full) - k)
                    break
        return self._emit(safe)

    def finish(self) -> str:
        """Whatever was held back, once generation has ended without a stop."""
        return self._emit(len(self.text))

    def _emit(self, upto: int) -> str:
        delta = self.text[self.emitted : upto] if upto > self.emitted else ""
        self.emitted = max(self.emitted, upto)
        return delta


class GenerateRunner:
    """A causal LM with its tokenizer and chat template."""

    task = "text-generation"

    def __init__(self, folder: Path, settings: ServeSettings, profile: ModelProfile) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = import_torch()
        self.settings = settings
        self.tokenizer = AutoTokenizer.from_pretrained(
            folder, local_files_only=True, trust_remote_code=settings.trust_remote_code
        )
        self.model = AutoModelForCausalLM.from_pretrained(folder, **load_kwargs(settings, profile))
        self.model.to(settings.device).eval()
        self.context = token_limit(settings, profile.max_context or 2048)
        self.max_input_tokens = self.context
        #: The most ``max_tokens`` may ask for: the context less one prompt token.
        self.max_new_tokens = self.context - 1
        self.eos_ids = _eos_ids(self.model, self.tokenizer)
        if not self.eos_ids:
            raise ModelLoadError(str(folder), "no end-of-sequence token in config or tokenizer")
        self.has_chat_template = bool(getattr(self.tokenizer, "chat_template", None))

    def info(self) -> dict[str, Any]:
        return {"context": self.context, "chat_template": self.has_chat_template}

    def prompt_ids(self, p: GenInput) -> list[int]:
        if p.messages is not None:
            if not self.has_chat_template:
                raise BadRequestError(
                    "this model has no chat template; use /v1/completions with a prompt",
                    param="messages",
                )
            text = self.tokenizer.apply_chat_template(
                p.messages, add_generation_prompt=True, tokenize=False
            )
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        else:
            ids = self.tokenizer(p.prompt or "", add_special_tokens=True)["input_ids"]
        return list(ids)

    def run(self, payloads: list[Any]) -> list[Any]:
        out: list[Any] = []
        for p in payloads:
            try:
                out.append(self.generate(p))
            except (BadRequestError, InputTooLongError) as e:
                out.append(e)
        return out

    def generate(self, p: GenInput) -> GenResult:
        torch = self.torch
        ids = self.prompt_ids(p)
        if not ids:
            raise BadRequestError("the prompt is empty", param="prompt")
        room = self.context - len(ids)
        if room < 1:
            raise InputTooLongError(len(ids), self.context - 1, param="prompt")
        # max_tokens is a ceiling (the route keeps it within the context): past what the
        # prompt leaves of the context, generation stops there, finish_reason "length".
        max_new = min(p.max_tokens or DEFAULT_MAX_TOKENS, room)
        stopper = StopText(p.stop)
        generated: list[int] = []
        tokenizer = self.tokenizer

        class _Streamer:
            first = True

            def put(self, value: Any) -> None:
                if self.first:  # generate() sends the prompt first
                    self.first = False
                    return
                generated.extend(int(t) for t in value.reshape(-1).tolist())
                text = tokenizer.decode(generated, skip_special_tokens=True)
                delta = stopper.update(text)
                if delta and p.on_text is not None:
                    p.on_text(delta)

            def end(self) -> None:
                return None

        class _Stop:
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                done = stopper.stopped or p.cancel.is_set()
                return torch.full((input_ids.shape[0],), done, dtype=torch.bool)

        from transformers import StoppingCriteriaList

        # Logits divided by a temperature near 0 overflow to inf, and sampling from them
        # fails: below MIN_TEMPERATURE, greedy (its limit as the temperature goes to 0).
        sample = p.temperature >= MIN_TEMPERATURE
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new,
            "do_sample": sample,
            "streamer": _Streamer(),
            "stopping_criteria": StoppingCriteriaList([_Stop()]),
            "pad_token_id": self.eos_ids[0],
            "eos_token_id": self.eos_ids,
        }
        if sample:
            kwargs |= {"temperature": p.temperature, "top_p": p.top_p, "top_k": 0}
        else:  # neutralize sampling defaults from generation_config.json
            kwargs |= {"temperature": None, "top_p": None, "top_k": None}
        if p.seed is not None:
            torch.manual_seed(p.seed)
        with torch.inference_mode():
            input_ids = torch.tensor([ids], device=self.settings.device)
            self.model.generate(
                input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs
            )
        if not stopper.stopped:
            rest = stopper.finish()
            if rest and p.on_text is not None:
                p.on_text(rest)
        if p.cancel.is_set() and not stopper.stopped:
            reason = "cancelled"
        elif stopper.stopped or (generated and generated[-1] in self.eos_ids):
            reason = "stop"
        else:
            reason = "length"
        return GenResult(stopper.text, reason, len(ids), len(generated))

    def warmup_shapes(self, settings: ServeSettings) -> list[WarmupShape]:
        return list(
            dict.fromkeys([WarmupShape(1, 8), WarmupShape(1, min(self.context - 4, _WARMUP_CAP))])
        )

    def warm(self, shape: WarmupShape) -> None:
        token = self.tokenizer.unk_token_id or self.eos_ids[0]
        torch = self.torch
        with torch.inference_mode():
            ids = torch.full((shape.batch, shape.tokens), token, device=self.settings.device)
            self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=2,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=self.eos_ids[0],
            )


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: list[int] = []
    for source in (getattr(model, "generation_config", None), model.config):
        eos = getattr(source, "eos_token_id", None)
        if isinstance(eos, int):
            ids.append(eos)
        elif isinstance(eos, list):
            ids.extend(int(x) for x in eos)
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    return list(dict.fromkeys(ids))
