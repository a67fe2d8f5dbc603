"""What the benchmark sends: synthetic prompts from length distributions, or a JSONL file.

Pure apart from :func:`load_jsonl`. Synthetic prompts are words drawn with a seeded RNG; a
word is about one token for common English words in BPE vocabularies, so lengths are
approximate unless the server reports usage or a tokenizer is given.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfdeploy.errors import InvalidSettingError

__all__ = ["Dist", "Item", "load_jsonl", "parse_dist", "synthetic_items"]

_WORDS = [
    "time",
    "year",
    "people",
    "way",
    "day",
    "man",
    "thing",
    "woman",
    "life",
    "child",
    "world",
    "school",
    "state",
    "family",
    "student",
    "group",
    "country",
    "problem",
    "hand",
    "part",
    "place",
    "case",
    "week",
    "company",
    "system",
    "program",
    "question",
    "work",
    "government",
    "number",
    "night",
    "point",
    "home",
    "water",
    "room",
    "mother",
    "area",
    "money",
    "story",
    "fact",
    "month",
    "lot",
    "right",
    "study",
    "book",
    "eye",
    "job",
    "word",
    "business",
    "issue",
    "side",
    "kind",
    "head",
    "house",
    "service",
    "friend",
    "father",
    "power",
    "hour",
    "game",
    "line",
    "end",
    "member",
    "law",
    "car",
    "city",
    "community",
    "name",
    "president",
    "team",
    "minute",
    "idea",
    "kid",
    "body",
    "information",
    "back",
    "parent",
    "face",
    "others",
    "level",
    "office",
    "door",
    "health",
    "person",
    "art",
    "war",
    "history",
    "party",
    "result",
    "change",
    "morning",
    "reason",
    "research",
    "girl",
    "guy",
    "moment",
    "air",
    "teacher",
    "force",
    "education",
    "foot",
    "boy",
    "age",
    "policy",
    "music",
    "market",
    "sense",
    "nation",
    "plan",
    "college",
    "interest",
    "death",
]


@dataclass(frozen=True, slots=True)
class Dist:
    """A length distribution: ``N``, ``uniform:A:B`` or ``normal:MEAN:STD`` (at least 1)."""

    kind: str
    a: float
    b: float = 0.0

    def sample(self, rng: random.Random) -> int:
        match self.kind:
            case "fixed":
                return int(self.a)
            case "uniform":
                return rng.randint(int(self.a), int(self.b))
            case _:
                return max(1, round(rng.gauss(self.a, self.b)))

    def __str__(self) -> str:
        if self.kind == "fixed":
            return str(int(self.a))
        return f"{self.kind}:{self.a:g}:{self.b:g}"


def parse_dist(text: str, name: str) -> Dist:
    """Parse ``N``, ``fixed:N``, ``uniform:A:B`` or ``normal:MEAN:STD``."""
    parts = text.strip().split(":")
    try:
        nums = [float(p) for p in parts[1:]] if len(parts) > 1 else [float(parts[0])]
    except ValueError:
        nums = []
    kind = parts[0] if len(parts) > 1 else "fixed"
    ok = (
        (kind == "fixed" and len(nums) == 1 and nums[0] >= 1)
        or (kind == "uniform" and len(nums) == 2 and 1 <= nums[0] <= nums[1])
        or (kind == "normal" and len(nums) == 2 and nums[0] >= 1 and nums[1] >= 0)
    )
    if not ok:
        raise InvalidSettingError(
            name, text, "expected N, uniform:MIN:MAX or normal:MEAN:STD (lengths >= 1)",
            hint=f"e.g. {name} 128 or {name} uniform:64:512",
        )  # fmt: skip
    return Dist(kind, *nums)


@dataclass(frozen=True, slots=True)
class Item:
    """One request's content, whatever the API."""

    prompt: str
    output_tokens: int
    #: Extra inputs for batch APIs (embeddings) and the documents of a rerank.
    texts: tuple[str, ...] = ()
    messages: tuple[dict[str, Any], ...] = ()
    #: Input length the dataset intended (words for synthetic prompts), for when nothing better.
    input_words: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(_WORDS, k=n))


def synthetic_items(
    n: int, *, input_tokens: Dist, output_tokens: Dist, batch: int, seed: int
) -> list[Item]:
    """``n`` items: prompts of ``input_tokens`` words; ``batch`` texts per item for batch APIs."""
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        texts = tuple(_words(rng, input_tokens.sample(rng)) for _ in range(batch))
        items.append(
            Item(
                prompt=texts[0],
                output_tokens=output_tokens.sample(rng),
                texts=texts,
                input_words=sum(len(t.split()) for t in texts),
            )
        )
    return items


def load_jsonl(path: Path, *, output_tokens: Dist, seed: int) -> list[Item]:
    """Items from a JSONL file: one object per line with ``prompt``, ``messages``, ``text``,
    or ``texts`` (plus ``query`` for rerank) and optionally ``output_tokens``."""
    rng = random.Random(seed)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise InvalidSettingError("--dataset", str(path), e.strerror or str(e)) from e
    items = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidSettingError("--dataset", f"{path}:{no}", f"not JSON: {e.msg}") from None
        if not isinstance(obj, dict):
            raise InvalidSettingError("--dataset", f"{path}:{no}", "each line must be an object")
        messages = obj.get("messages") or ()
        texts = obj.get("texts") or ([obj["text"]] if isinstance(obj.get("text"), str) else [])
        prompt = obj.get("prompt") or obj.get("query") or (texts[0] if texts else "")
        if messages and not prompt:
            prompt = str(messages[-1].get("content", ""))
        if not (prompt or texts or messages):
            raise InvalidSettingError(
                "--dataset", f"{path}:{no}", "no prompt, messages, text or texts field"
            )
        out = obj.get("output_tokens")
        n_out = int(out) if isinstance(out, int) and out > 0 else output_tokens.sample(rng)
        all_texts = tuple(str(t) for t in texts) or (prompt,)
        items.append(
            Item(
                prompt=str(prompt),
                output_tokens=n_out,
                texts=all_texts,
                messages=tuple(messages),
                input_words=sum(len(t.split()) for t in all_texts),
            )
        )
    if not items:
        raise InvalidSettingError("--dataset", str(path), "no items")
    return items
