"""What ``hfdeploy bench`` is asked to do: ``BenchConfig`` and the load profile's phases.

Every flag is checked in ``BenchConfig.validate`` before any request is sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from hfdeploy.bench.apis import API_NAMES
from hfdeploy.bench.dataset import parse_dist
from hfdeploy.bench.http import Endpoint
from hfdeploy.bench.metrics import parse_slo
from hfdeploy.errors import InvalidSettingError

__all__ = ["BenchConfig", "Phase", "parse_profile"]


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    #: "closed": ``concurrency`` requests in flight; "constant"/"poisson": open loop at ``rate``.
    kind: str
    concurrency: int | None = None
    rate: float | None = None


def parse_profile(text: str, max_concurrency: int) -> list[Phase] | str:
    """Phases for a profile string; ``"sweep"`` is returned as is (planned while it runs)."""
    name, _, arg = text.strip().partition(":")

    def bad(why: str) -> InvalidSettingError:
        return InvalidSettingError(
            "--profile", text, why,
            hint="synchronous, concurrent:N[,N...], constant:RPS, poisson:RPS, throughput "
            "or sweep",
        )  # fmt: skip

    match name:
        case "synchronous" | "sweep" | "throughput" if arg:
            raise bad(f"{name} takes no argument")
        case "synchronous":
            return [Phase("synchronous", "closed", concurrency=1)]
        case "throughput":
            return [Phase("throughput", "closed", concurrency=max_concurrency)]
        case "sweep":
            return "sweep"
        case "concurrent":
            try:
                ns = [int(x) for x in arg.split(",")]
            except ValueError:
                raise bad("concurrencies must be integers") from None
            if not ns or min(ns) < 1:
                raise bad("concurrencies must be at least 1")
            return [Phase(f"concurrent:{n}", "closed", concurrency=n) for n in ns]
        case "constant" | "poisson":
            try:
                rate = float(arg)
            except ValueError:
                raise bad("the rate must be a number of requests per second") from None
            if not rate > 0 or math.isinf(rate):
                raise bad("the rate must be positive and finite")
            return [Phase(f"{name}:{rate:g}", name, rate=rate)]
    raise bad("unknown profile")


@dataclass(frozen=True, slots=True)
class BenchConfig:
    url: str
    api: str = "auto"
    profile: str = "synchronous"
    duration: float | None = 10.0
    requests: int | None = None
    dataset: str = "synthetic"
    input_tokens: str = "128"
    output_tokens: str = "128"
    batch_size: int = 1
    slo: str | None = None
    seed: int = 0
    model: str | None = None
    max_concurrency: int = 256
    timeout: float = 600.0
    warmup: int = 10
    sweep_size: int = 6
    tokenizer: str | None = None
    api_key: str | None = None
    #: Skip the keep-up checks (results may then measure the client, not the server).
    no_client_check: bool = False
    #: Sample this process tree's memory during the run and give a leak verdict.
    memory_pid: int | None = None
    memory_interval: float = 0.5

    def validate(self) -> None:
        if self.duration is None and self.requests is None:
            raise InvalidSettingError("--duration/--requests", None, "give one of them")
        if self.duration is not None and self.duration <= 0:
            raise InvalidSettingError("--duration", self.duration, "must be positive")
        if self.requests is not None and self.requests < 1:
            raise InvalidSettingError("--requests", self.requests, "must be at least 1")
        if self.batch_size < 1:
            raise InvalidSettingError("--batch-size", self.batch_size, "must be at least 1")
        if self.sweep_size < 3:
            raise InvalidSettingError("--sweep-size", self.sweep_size, "must be at least 3")
        if self.warmup < 0:
            raise InvalidSettingError("--warmup", self.warmup, "must be 0 or more")
        # Everything parsed up front, so a bad flag fails before any request is sent.
        if self.url.strip().lower().startswith(("ws://", "wss://")):
            raise InvalidSettingError(
                "URL", self.url, f"a WebSocket URL; --api {self.api} speaks HTTP",
                hint="Pass --api duplex for a full-duplex speech server (Moshi, PersonaPlex).",
            )  # fmt: skip
        Endpoint.parse(self.url)
        parse_profile(self.profile, self.max_concurrency)
        parse_slo(self.slo)
        parse_dist(self.input_tokens, "--input-tokens")
        parse_dist(self.output_tokens, "--output-tokens")
        if self.api != "auto" and self.api not in API_NAMES:
            raise InvalidSettingError("--api", self.api, f"not one of {', '.join(API_NAMES)}")
        if self.dataset != "synthetic" and not Path(self.dataset).is_file():
            raise InvalidSettingError("--dataset", self.dataset, "no such file")
