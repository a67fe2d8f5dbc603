"""What ``hfdeploy up`` returns and how it times its steps: ``Step``, ``UpResult``, ``Flow``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfdeploy.envelope import Envelope
from hfdeploy.errors import HfDeployError, UpError

__all__ = ["Flow", "OnStep", "Step", "UpResult"]


@dataclass(slots=True)
class Step:
    name: str
    status: str = "ok"  # ok, skipped, failed
    seconds: float = 0.0
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "seconds": round(self.seconds, 3),
                "detail": self.detail}  # fmt: skip


@dataclass(slots=True)
class UpResult:
    model: str
    out: Path
    steps: list[Step] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    envelope: Envelope | None = None

    @property
    def ok(self) -> bool:
        return all(s.status != "failed" for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "hfdeploy": "up",
            "model": self.model,
            "out": str(self.out),
            "ok": self.ok,
            "steps": [s.to_dict() for s in self.steps],
            **self.data,
            "envelope": self.envelope.to_dict() if self.envelope else None,
        }


OnStep = Callable[[Step], None]


class Flow:
    """Times each step into ``result.steps`` and tells ``on_step`` when one ends."""

    def __init__(self, result: UpResult, on_step: OnStep | None) -> None:
        self.result = result
        self.on_step = on_step

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[Step]:
        step = Step(name)
        t0 = time.perf_counter()
        try:
            yield step
        except UpError:
            step.status = "failed"
            raise
        except HfDeployError as e:  # name the step, keep the library's message and hint
            step.status = "failed"
            step.detail = e.message
            raise UpError(name, e.message, hint=e.hint) from e
        except BaseException:
            step.status = "failed"
            raise
        finally:
            step.seconds = time.perf_counter() - t0
            self.result.steps.append(step)
            if self.on_step:
                self.on_step(step)

    def skip(self, name: str, detail: str) -> None:
        with self.step(name) as s:
            s.status, s.detail = "skipped", detail
