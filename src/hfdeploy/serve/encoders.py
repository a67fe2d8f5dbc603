"""Encoder runners: the shared tokenize-and-batch core, reranking, classification.

Each ``run`` gets a batch of inputs from the batcher, tokenizes them in one call of
the fast tokenizer, applies the token limit per input (422 or truncation), groups
them by length under the token budget and runs one forward pass per group.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hfdeploy.errors import InputTooLongError, ModelLoadError
from hfdeploy.model.profile import ModelProfile
from hfdeploy.serve.batching import split_by_tokens
from hfdeploy.serve.runtime import (
    Encoded,
    WarmupShape,
    import_torch,
    load_kwargs,
    pad_batch,
    token_limit,
)
from hfdeploy.serve.settings import ServeSettings

__all__ = [
    "Encoder",
    "ScoreInput",
    "ScoreRunner",
    "Scored",
    "TokenInput",
    "TokenRunner",
    "Tokens",
    "encoder_warmup_shapes",
    "entities",
    "scatter",
    "scores_from_logits",
]


@dataclass(frozen=True, slots=True)
class ScoreInput:
    text: str
    pair: str | None = None
    truncate: bool = False


@dataclass(frozen=True, slots=True)
class Scored:
    logits: np.ndarray
    tokens: int


@dataclass(frozen=True, slots=True)
class TokenInput:
    text: str
    truncate: bool = False


@dataclass(frozen=True, slots=True)
class Tokens:
    """Per-token logits of one input, with each token's character span."""

    logits: np.ndarray
    offsets: list[tuple[int, int]]
    special: list[bool]
    tokens: int


class Encoder:
    """Tokenize, limit, group, pad, forward: what all encoder tasks share."""

    task: str
    max_input_tokens: int

    def __init__(self, folder: Path, settings: ServeSettings, profile: ModelProfile) -> None:
        from transformers import AutoTokenizer

        self.torch = import_torch()
        self.settings = settings
        self.device = settings.device
        self._tokenizer = AutoTokenizer.from_pretrained(
            folder, local_files_only=True, trust_remote_code=settings.trust_remote_code
        )
        self._local = threading.local()
        self._local.tokenizer = self._tokenizer
        if not getattr(self.tokenizer, "is_fast", False):
            raise ModelLoadError(
                str(folder),
                "the tokenizer has no fast (Rust) version",
                hint="Add a tokenizer.json to the folder (tokenizer.save_pretrained writes one).",
            )
        self.pad_id = self.tokenizer.pad_token_id or 0
        self.max_batch_tokens = settings.max_batch_tokens
        self.max_batch_size = settings.max_batch_size
        self.uses_type_ids = "token_type_ids" in self.tokenizer.model_input_names
        self.tokenizer_limit = _tokenizer_limit(self.tokenizer)
        self.profile = profile

    @property
    def tokenizer(self) -> Any:
        """This thread's tokenizer: a fast tokenizer changes its own truncation state on
        each call, so model workers running side by side each use a copy."""
        tok = getattr(self._local, "tokenizer", None)
        if tok is None:
            tok = self._local.tokenizer = copy.deepcopy(self._tokenizer)
        return tok

    def _limit(self, model_limit: int | None) -> int:
        candidates = [x for x in (model_limit, self.tokenizer_limit) if x]
        return token_limit(self.settings, min(candidates) if candidates else None)

    def encode(
        self,
        texts: Sequence[str],
        pairs: Sequence[str | None],
        truncate: Sequence[bool],
        *,
        offsets: bool = False,
    ) -> list[Encoded | BaseException]:
        """Token ids per input, or the error for an input over the limit."""
        out: list[Encoded | BaseException] = [BaseException()] * len(texts)
        singles = [i for i, p in enumerate(pairs) if p is None]
        doubles = [i for i, p in enumerate(pairs) if p is not None]
        for idx, with_pair in ((singles, False), (doubles, True)):
            if not idx:
                continue
            encs = self._tokenize(texts, pairs, idx, with_pair, offsets=offsets, max_length=None)
            over = [k for k, e in enumerate(encs) if len(e.ids) > self.max_input_tokens]
            redo = [idx[k] for k in over if truncate[idx[k]]]
            fixed = {}
            if redo:
                again = self._tokenize(
                    texts, pairs, redo, with_pair, offsets=offsets, max_length=self.max_input_tokens
                )
                fixed = dict(zip(redo, again, strict=True))
            for k, i in enumerate(idx):
                if i in fixed:
                    out[i] = fixed[i]
                elif len(encs[k].ids) > self.max_input_tokens:
                    out[i] = InputTooLongError(len(encs[k].ids), self.max_input_tokens)
                else:
                    out[i] = encs[k]
        return out

    def _tokenize(
        self,
        texts: Sequence[str],
        pairs: Sequence[str | None],
        idx: list[int],
        with_pair: bool,
        *,
        offsets: bool,
        max_length: int | None,
    ) -> list[Encoded]:
        kwargs: dict[str, Any] = {
            "add_special_tokens": True,
            "return_attention_mask": False,
            "return_token_type_ids": self.uses_type_ids,
            "return_offsets_mapping": offsets,
            "verbose": False,
        }
        if max_length is not None:
            kwargs |= {"truncation": True, "max_length": max_length}
        firsts = [texts[i] for i in idx]
        if with_pair:
            enc = self.tokenizer(firsts, [pairs[i] for i in idx], **kwargs)
        else:
            enc = self.tokenizer(firsts, **kwargs)
        types = enc.get("token_type_ids")
        offs = enc.get("offset_mapping")
        return [
            Encoded(
                ids=ids,
                type_ids=types[k] if types is not None else None,
                offsets=[tuple(o) for o in offs[k]] if offs is not None else None,
            )
            for k, ids in enumerate(enc["input_ids"])
        ]

    def forward_groups(self, encs: list[Encoded]) -> list[tuple[list[int], Any]]:
        """One forward pass per length group: ``(indices, model output)`` pairs."""
        groups = split_by_tokens(
            [len(e.ids) for e in encs],
            max_batch_size=self.max_batch_size,
            max_batch_tokens=self.max_batch_tokens,
        )
        results = []
        with self.torch.inference_mode():
            for group in groups:
                batch = pad_batch([encs[i] for i in group], pad_id=self.pad_id, device=self.device)
                results.append((group, self.forward(batch)))
        return results

    def forward(self, batch: dict[str, Any]) -> Any:
        raise NotImplementedError

    def warmup_shapes(self, settings: ServeSettings) -> list[WarmupShape]:
        return encoder_warmup_shapes(
            self.max_input_tokens, settings.max_batch_size, settings.max_batch_tokens
        )

    def warm(self, shape: WarmupShape) -> None:
        token = self.tokenizer.unk_token_id or self.tokenizer.cls_token_id or 1
        enc = Encoded(
            ids=[token] * shape.tokens, type_ids=[0] * shape.tokens if self.uses_type_ids else None
        )
        with self.torch.inference_mode():
            self.forward(pad_batch([enc] * shape.batch, pad_id=self.pad_id, device=self.device))

    def tokenize(
        self, texts: Sequence[str], *, add_special_tokens: bool
    ) -> list[list[dict[str, Any]]]:
        """TEI's /tokenize: each token with its id, text, special flag and character span."""
        enc = self.tokenizer(
            list(texts),
            add_special_tokens=add_special_tokens,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        out = []
        for k, text in enumerate(texts):
            tokens = []
            for tid, (start, stop), special in zip(
                enc["input_ids"][k],
                enc["offset_mapping"][k],
                enc["special_tokens_mask"][k],
                strict=True,
            ):
                piece = self.tokenizer.convert_ids_to_tokens(tid)
                tokens.append(
                    {
                        "id": tid,
                        "text": piece if special else text[start:stop],
                        "special": bool(special),
                        "start": None if special else start,
                        "stop": None if special else stop,
                    }
                )
            out.append(tokens)
        return out


def encoder_warmup_shapes(max_tokens: int, max_batch: int, budget: int) -> list[WarmupShape]:
    """A small batch, the largest batch at a typical length, and the longest input."""
    shapes = [
        WarmupShape(1, min(16, max_tokens)),
        WarmupShape(max_batch, max(1, min(max_tokens, 32, budget // max_batch))),
        WarmupShape(max(1, min(max_batch, budget // max_tokens)), max_tokens),
    ]
    return list(dict.fromkeys(shapes))


def _tokenizer_limit(tokenizer: Any) -> int | None:
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, int) and 0 < limit < 1_000_000 else None


# --- sequence classification: classifiers and rerankers -----------------------------


def scores_from_logits(logits: np.ndarray, *, raw: bool, multi_label: bool = False) -> np.ndarray:
    """Probabilities from logits: softmax, or sigmoid for one label or multi-label models."""
    x = logits.astype(np.float64)
    if raw:
        return x
    if multi_label or x.shape[-1] == 1:
        sig: np.ndarray = 1.0 / (1.0 + np.exp(-x))
        return sig
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    soft: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return soft


class ScoreRunner(Encoder):
    """Sequence classification: text-classification, and reranking (one label, pairs)."""

    def __init__(
        self, folder: Path, settings: ServeSettings, profile: ModelProfile, *, task: str
    ) -> None:
        super().__init__(folder, settings, profile)
        from transformers import AutoModelForSequenceClassification

        self.task = task
        self.model = AutoModelForSequenceClassification.from_pretrained(
            folder, **load_kwargs(settings, profile)
        )
        self.model.to(self.device).eval()
        cfg = self.model.config
        self.labels = [str(cfg.id2label[i]) for i in range(int(cfg.num_labels))]
        self.multi_label = cfg.problem_type == "multi_label_classification"
        self.max_input_tokens = self._limit(profile.max_context)

    def info(self) -> dict[str, Any]:
        return {"labels": self.labels, "multi_label": self.multi_label}

    def forward(self, batch: dict[str, Any]) -> Any:
        return self.model(**batch).logits.float()

    def run(self, payloads: list[Any]) -> list[Any]:
        items: list[ScoreInput] = payloads
        encs = self.encode(
            [p.text for p in items], [p.pair for p in items], [p.truncate for p in items]
        )
        return scatter(self, encs, lambda i, row, e: Scored(row, len(e.ids)))


def scatter(runner: Encoder, encs: list[Encoded | BaseException], make: Any) -> list[Any]:
    """Forward the inputs that encoded; ``make(index, output_row, encoded)`` builds each
    result, in input order. Inputs that failed to encode keep their error."""
    ok = [i for i, e in enumerate(encs) if isinstance(e, Encoded)]
    good: list[Encoded] = [encs[i] for i in ok]  # type: ignore[misc]
    results: list[Any] = list(encs)
    for group, out in runner.forward_groups(good):
        arr = out.cpu().numpy()
        for row, g in enumerate(group):
            results[ok[g]] = make(ok[g], arr[row], good[g])
    return results


class TokenRunner(Encoder):
    """Token classification (NER, PoS): per-token labels with character spans."""

    task = "token-classification"

    def __init__(self, folder: Path, settings: ServeSettings, profile: ModelProfile) -> None:
        super().__init__(folder, settings, profile)
        from transformers import AutoModelForTokenClassification

        self.model = AutoModelForTokenClassification.from_pretrained(
            folder, **load_kwargs(settings, profile)
        )
        self.model.to(self.device).eval()
        cfg = self.model.config
        self.labels = [str(cfg.id2label[i]) for i in range(int(cfg.num_labels))]
        self.max_input_tokens = self._limit(profile.max_context)

    def info(self) -> dict[str, Any]:
        return {"labels": self.labels}

    def forward(self, batch: dict[str, Any]) -> Any:
        return self.model(**batch).logits.float()

    def run(self, payloads: list[Any]) -> list[Any]:
        items: list[TokenInput] = payloads
        encs = self.encode(
            [p.text for p in items], [None] * len(items), [p.truncate for p in items], offsets=True
        )

        def make(i: int, row: np.ndarray, e: Encoded) -> Tokens:
            n = len(e.ids)
            offsets = e.offsets or [(0, 0)] * n
            special = [a == b == 0 for a, b in offsets]
            return Tokens(row[:n], offsets, special, n)

        return scatter(self, encs, make)


def entities(
    tok: Tokens, text: str, labels: list[str], *, aggregate: bool, ignore: tuple[str, ...] = ("O",)
) -> list[dict[str, Any]]:
    """Labelled spans from token logits; ``aggregate`` merges B-/I- runs of one entity."""
    probs = scores_from_logits(tok.logits, raw=False)
    out: list[dict[str, Any]] = []
    for k, (start, end) in enumerate(tok.offsets):
        if tok.special[k]:
            continue
        best = int(probs[k].argmax())
        label = labels[best]
        if label in ignore:
            continue
        score = float(probs[k, best])
        group = label[2:] if label[:2] in ("B-", "I-") else label
        prev = out[-1] if out else None
        if (
            aggregate
            and prev is not None
            and prev["entity_group"] == group
            and not label.startswith("B-")
            and prev["end"] >= start - 1
        ):
            prev["end"] = end
            prev["word"] = text[prev["start"] : end]
            prev["_scores"].append(score)
            prev["score"] = float(sum(prev["_scores"]) / len(prev["_scores"]))
            continue
        item: dict[str, Any] = {
            "entity_group": group,
            "score": score,
            "word": text[start:end],
            "start": start,
            "end": end,
            "_scores": [score],
        }
        if not aggregate:
            item["entity"] = label
            item["index"] = k
        out.append(item)
    for item in out:
        item.pop("_scores")
    return out
