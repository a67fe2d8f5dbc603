"""``hfdeploy bench``: drive load at an endpoint and measure it.

Profiles: ``synchronous``; ``concurrent:N[,N...]`` (closed loop); ``constant:RPS`` and
``poisson:RPS`` (open loop: sends follow a precomputed schedule whatever the server does);
``throughput`` (closed loop at ``max_concurrency``); ``sweep`` (synchronous, throughput, then
constant rates in between). Each profile step is a phase with its own summary.

The client checks itself: a warm-up measures its CPU cost per request and refuses an offered
rate it cannot send; during open-loop phases it watches how late its own dispatches run and
its CPU use, and fails the run (``ClientBottleneckError``) when it fell behind.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfdeploy.bench.apis import API_NAMES, Api, Reply, api_by_name
from hfdeploy.bench.dataset import Dist, Item, load_jsonl, parse_dist, synthetic_items
from hfdeploy.bench.http import Endpoint, Pool
from hfdeploy.bench.metrics import FORMULAS, Record, Slo, parse_slo, percentiles, summarize
from hfdeploy.envelope import Confidence, Envelope
from hfdeploy.errors import ClientBottleneckError, EndpointError, InvalidSettingError

__all__ = ["BenchConfig", "BenchResult", "Phase", "parse_profile", "run_bench"]

#: Fail a phase when the client used more than this share of one core.
CPU_LIMIT = 0.95
#: Fail an open-loop phase when dispatches fell this far behind schedule (p99), or when the
#: dispatched rate was below this share of the offered rate.
LAG_LIMIT_S = 0.05
RATE_SHARE = 0.95

Progress = Callable[[str, int, int | None], None]


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
        Endpoint.parse(self.url)
        parse_profile(self.profile, self.max_concurrency)
        parse_slo(self.slo)
        parse_dist(self.input_tokens, "--input-tokens")
        parse_dist(self.output_tokens, "--output-tokens")
        if self.api != "auto" and self.api not in API_NAMES:
            raise InvalidSettingError("--api", self.api, f"not one of {', '.join(API_NAMES)}")
        if self.dataset != "synthetic" and not Path(self.dataset).is_file():
            raise InvalidSettingError("--dataset", self.dataset, "no such file")


@dataclass(slots=True)
class PhaseResult:
    phase: Phase
    summary: dict[str, Any]
    records: list[Record]
    t0: float
    client: dict[str, Any]
    server: dict[str, Any] | None

    def to_dict(self, *, records: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.phase.name,
            "kind": self.phase.kind,
            "concurrency": self.phase.concurrency,
            "rate": self.phase.rate,
            "summary": self.summary,
            "client": self.client,
            "server": self.server,
        }
        if records:
            out["records"] = [r.row(self.t0) for r in self.records]
        return out


@dataclass(slots=True)
class BenchResult:
    config: BenchConfig
    api: str
    model: str | None
    phases: list[PhaseResult]
    token_sources: dict[str, str]
    sweep: dict[str, Any] | None = None
    valid: bool = True
    invalid_reason: str | None = None
    started: str = ""
    preflight: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] | None = None

    @property
    def main(self) -> PhaseResult | None:
        """The phase ``summary`` reports: the only one, else the highest-throughput one."""
        if not self.phases:
            return None
        if len(self.phases) == 1:
            return self.phases[0]
        return max(self.phases, key=lambda p: p.summary["request_throughput"])

    def envelope(self) -> Envelope:
        """The answer: throughput and latency of the main phase, how far to trust them."""
        main = self.main
        if main is None:
            return Envelope("no phase ran", "low", "nothing was measured")
        s = main.summary
        e2e = s["e2e_ms"] or {}
        ttft = s["ttft_ms"] or {}
        result = (
            f"{s['request_throughput']:,.1f} req/s at {main.phase.name} on {self.config.url} "
            f"({self.api}); E2E p50 {e2e.get('p50', '-')} ms, p99 {e2e.get('p99', '-')} ms"
            + (f"; TTFT p50 {ttft['p50']} ms" if ttft else "")
            + f"; {s['errors']} errors of {s['requests']}"
        )
        factors = (
            f"token counts: input from {self.token_sources.get('input', 'none')}, output from "
            f"{self.token_sources.get('output', 'none')}",
            "latency from the intended send time (coordinated omission corrected); "
            "errors are kept out of the percentiles",
            f"{s['requests']} requests in {s['duration_s']} s: short runs have wide tails",
        )
        confidence: Confidence = "high"
        why = "the client kept up and the server's own counter agrees"
        server = main.server
        if not self.valid:
            confidence, why = "low", f"the client fell behind: {self.invalid_reason}"
        elif s["errors"]:
            confidence, why = "medium", f"{s['error_rate']:.1%} of requests failed"
        elif server is None or server.get("client_over_server") is None:
            confidence, why = "medium", "the client kept up; no server-side counter to compare"
        elif abs(server["client_over_server"] - 1) > 0.05:
            confidence = "medium"
            why = f"client and server counts differ: ratio {server['client_over_server']}"
        checks = (
            f"hfdeploy bench {self.config.url} --api {self.api} --profile "
            f"{self.config.profile} --out DIR (per-request records and an HTML report)",
            f"compare with the server's own metrics: curl {self.config.url}/metrics",
        )
        return Envelope(result, confidence, why, factors, checks)

    def to_dict(self, *, records: bool = True) -> dict[str, Any]:
        c = self.config
        main = self.main
        return {
            "hfdeploy": "bench",
            "started": self.started,
            "valid": self.valid,
            "invalid_reason": self.invalid_reason,
            "config": {
                "url": c.url,
                "api": self.api,
                "model": self.model,
                "profile": c.profile,
                "duration_s": c.duration,
                "requests": c.requests,
                "dataset": c.dataset,
                "input_tokens": c.input_tokens,
                "output_tokens": c.output_tokens,
                "batch_size": c.batch_size,
                "slo": parse_slo(c.slo).to_dict(),
                "seed": c.seed,
                "max_concurrency": c.max_concurrency,
                "warmup": c.warmup,
            },
            "token_counts": self.token_sources,
            "formulas": FORMULAS,
            "preflight": self.preflight,
            "summary": main.summary if main else None,
            "summary_phase": main.phase.name if main else None,
            "sweep": self.sweep,
            "phases": [p.to_dict(records=records) for p in self.phases],
            "memory": self.memory,
            "envelope": self.envelope().to_dict(),
        }


# --- the run -----------------------------------------------------------------------------


class _Tokens:
    """Counts tokens with a local tokenizer (``tokenizer.json``) when one is given."""

    def __init__(self, path: str | None) -> None:
        self.tok: Any = None
        if path:
            try:
                from tokenizers import Tokenizer
            except ImportError as e:  # pragma: no cover - tokenizers comes with transformers
                raise InvalidSettingError(
                    "--tokenizer", path, "the tokenizers package is not installed"
                ) from e
            file = Path(path)
            file = file / "tokenizer.json" if file.is_dir() else file
            if not file.is_file():
                raise InvalidSettingError("--tokenizer", path, "no tokenizer.json there")
            self.tok = Tokenizer.from_file(str(file))

    def count(self, text: str) -> int | None:
        if self.tok is None:
            return None
        return len(self.tok.encode(text, add_special_tokens=False).ids)


@dataclass
class _Ctx:
    cfg: BenchConfig
    pool: Pool
    api: Api
    model: str | None
    items: list[Item]
    slo: Slo
    tokens: _Tokens
    progress: Progress | None
    headers: dict[str, str]
    sources: dict[str, Counter[str]] = field(
        default_factory=lambda: {"input": Counter(), "output": Counter()}
    )
    next_item: int = 0
    #: Requests answered so far (any status), for the memory sampler.
    answered: int = 0

    def item(self) -> Item:
        it = self.items[self.next_item % len(self.items)]
        self.next_item += 1
        return it


async def _one(ctx: _Ctx, record: Record) -> None:
    api = ctx.api
    item = ctx.item()
    body = api.encode(item, ctx.model)
    reply = Reply()
    sink = None
    if api.streaming:
        parser = api.new_parser()

        def sink(piece: bytes, at: float) -> None:
            api.feed(parser, reply, piece, at)

    try:
        result = await ctx.pool.request("POST", api.path, body, headers=ctx.headers, on_piece=sink)
    except TimeoutError:
        record.error = "timeout"
    except EndpointError:
        record.error = "connect"
    except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError):
        record.error = "connection"
    else:
        record.status = result.status
        record.sent = result.sent_at
        if not 200 <= result.status < 300:
            record.error = f"http_{result.status}"
        elif api.streaming:
            for _ in parser.close():
                pass
            if reply.error:
                record.error = reply.error
            elif not reply.content_times:
                record.error = "no_content"
        else:
            api.answer(result.body, reply)
            if reply.error:
                record.error = reply.error
    record.end = time.perf_counter()
    ctx.answered += 1
    if not record.sent:
        record.sent = record.end
    if record.error is None:
        record.first = reply.content_times[0] if reply.content_times else None
        record.chunk_times = reply.content_times
        _count_tokens(ctx, record, item, reply)


def _count_tokens(ctx: _Ctx, record: Record, item: Item, reply: Reply) -> None:
    if reply.input_tokens is not None:
        record.input_tokens, src = reply.input_tokens, "usage"
    elif (n := ctx.tokens.count("\n".join(item.texts))) is not None:
        record.input_tokens, src = n, "tokenizer"
    else:
        record.input_tokens, src = item.input_words, "words (estimate)"
    ctx.sources["input"][src] += 1
    if not ctx.api.generates:
        return
    if reply.output_tokens is not None:
        record.output_tokens, src = reply.output_tokens, "usage"
    elif (n := ctx.tokens.count("".join(reply.text))) is not None:
        record.output_tokens, src = n, "tokenizer"
    else:
        record.output_tokens = reply.token_events
        src = "token events" if ctx.api.name == "tgi-generate" else "chunks (estimate)"
    ctx.sources["output"][src] += 1


async def _closed(ctx: _Ctx, n: int, deadline: float | None, limit: int | None) -> list[Record]:
    records: list[Record] = []
    issued = 0

    async def worker() -> None:
        nonlocal issued
        while (limit is None or issued < limit) and (
            deadline is None or time.perf_counter() < deadline
        ):
            issued += 1
            r = Record(len(records), time.perf_counter())
            records.append(r)
            await _one(ctx, r)
            if ctx.progress:
                ctx.progress("request", 1, None)

    await asyncio.gather(*(worker() for _ in range(n)))
    return records


def _schedule(phase: Phase, duration: float | None, limit: int | None, seed: int) -> list[float]:
    """Offsets (s) of the intended sends: even spacing, or exponential gaps for Poisson."""
    rate = phase.rate or 1.0
    rng = random.Random(seed)
    out: list[float] = []
    t = 0.0
    while (limit is None or len(out) < limit) and (duration is None or t < duration):
        out.append(t)
        t += rng.expovariate(rate) if phase.kind == "poisson" else 1.0 / rate
    return out


async def _open(
    ctx: _Ctx, phase: Phase, duration: float | None, limit: int | None
) -> tuple[list[Record], list[float]]:
    offsets = _schedule(phase, duration, limit, ctx.cfg.seed)
    records: list[Record] = []
    lags: list[float] = []
    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter() + 0.005
    loop = asyncio.get_running_loop()

    def done(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if ctx.progress:
            ctx.progress("request", 1, None)

    i = 0
    while i < len(offsets):
        now = time.perf_counter()
        due = start + offsets[i]
        if due > now:
            # Event-loop timers have about 1 ms resolution: a shorter sleep returns at once
            # and the loop would spin a whole core. Sleeping 1 ms at least makes a send at
            # most ~1 ms late, which the dispatch lag records and the latency includes.
            await asyncio.sleep(max(due - now, 0.001))
            continue
        while i < len(offsets) and start + offsets[i] <= now:
            intended = start + offsets[i]
            lags.append(now - intended)
            r = Record(len(records), intended)
            records.append(r)
            task = loop.create_task(_one(ctx, r))
            tasks.add(task)
            task.add_done_callback(done)
            i += 1
        await asyncio.sleep(0)
    if tasks:
        await asyncio.gather(*list(tasks))
    return records, lags


async def _phase(ctx: _Ctx, phase: Phase) -> PhaseResult:
    cfg = ctx.cfg
    before = await _server_count(ctx)
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    lags: list[float] = []
    if phase.kind == "closed":
        deadline = wall0 + cfg.duration if cfg.duration is not None else None
        records = await _closed(ctx, phase.concurrency or 1, deadline, cfg.requests)
    else:
        records, lags = await _open(ctx, phase, cfg.duration, cfg.requests)
    wall = time.perf_counter() - wall0
    cpu = (time.thread_time() - cpu0) / wall if wall > 0 else 0.0
    after = await _server_count(ctx)
    summary = summarize(records, streaming=ctx.api.streaming, slo=ctx.slo, offered_rate=phase.rate)
    t0 = min((r.intended for r in records), default=wall0)
    client: dict[str, Any] = {"cpu_share_of_one_core": round(cpu, 3)}
    if phase.kind != "closed" and records:
        span = max(records[-1].intended - t0, 1e-9)
        sent_rate = (len(records) - 1) / span if len(records) > 1 else None
        client |= {
            "dispatch_lag_ms": percentiles(lags),
            "offered_rate": phase.rate,
            "dispatched_rate": None if sent_rate is None else round(sent_rate, 2),
        }
    server = None
    if before is not None and after is not None:
        delta = after[1] - before[1]
        rate = delta / summary["duration_s"] if summary["duration_s"] else 0.0
        server = {
            "counter": after[0],
            "requests": delta,
            "request_throughput": round(rate, 3),
            "client_over_server": round(summary["request_throughput"] / rate, 4) if rate else None,
        }
    result = PhaseResult(phase, summary, records, t0, client, server)
    if not cfg.no_client_check:
        _check_kept_up(result)
    return result


def _check_kept_up(result: PhaseResult) -> None:
    client = result.client
    if client["cpu_share_of_one_core"] > CPU_LIMIT:
        raise _PhaseBottleneck(
            result,
            ClientBottleneckError(
                f"phase {result.phase.name}: the client used "
                f"{client['cpu_share_of_one_core']:.0%} of a core (limit {CPU_LIMIT:.0%})",
                offered=result.phase.rate,
                achieved=result.summary["request_throughput"],
            ),
        )
    lag = client.get("dispatch_lag_ms")
    offered = result.phase.rate
    dispatched = client.get("dispatched_rate")
    behind = lag is not None and lag["p99"] > LAG_LIMIT_S * 1000
    slow = offered and dispatched is not None and dispatched < RATE_SHARE * offered
    if behind or slow:
        raise _PhaseBottleneck(
            result,
            ClientBottleneckError(
                f"phase {result.phase.name}: offered {offered:g} req/s, dispatched "
                f"{dispatched} req/s; dispatch lag p99 {lag['p99'] if lag else 0:.1f} ms "
                f"(limits: {RATE_SHARE:.0%} of the rate, {LAG_LIMIT_S * 1000:.0f} ms)",
                offered=offered,
                achieved=dispatched,
            ),
        )


class _PhaseBottleneck(Exception):
    def __init__(self, result: PhaseResult, error: ClientBottleneckError) -> None:
        super().__init__(error.message)
        self.result = result
        self.error = error


# --- server-side counters ----------------------------------------------------------------

#: Counters of completed requests, per engine (name, label filter).
_SERVER_COUNTERS = (
    "hfdeploy_requests_total",
    "vllm:request_success_total",
    "tgi_request_success",
    "te_request_success",
)


_PROBE_ROUTES = {"/metrics", "/health", "/ready", "/v2/health/live", "/v2/health/ready"}


def parse_request_counter(text: str, route: str | None) -> tuple[str, float] | None:
    """The server's own count of answered requests from Prometheus text, if it has one.

    hfdeploy: ``hfdeploy_requests_total`` with a 2xx status for ``route`` (None: every route
    but metrics and probes); vLLM, TGI and TEI: their success counters, summed over labels.
    """
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name not in _SERVER_COUNTERS:
                    continue
                if s.name == "hfdeploy_requests_total":
                    r = s.labels.get("route", "")
                    wrong = r in _PROBE_ROUTES if route is None else r != route
                    if wrong or not s.labels.get("status", "").startswith("2"):
                        continue
                totals[s.name] = totals.get(s.name, 0.0) + float(s.value)
    except ValueError:
        return None
    for name in _SERVER_COUNTERS:
        if name in totals:
            return name, totals[name]
    return None


async def _server_count(ctx: _Ctx) -> tuple[str, float] | None:
    try:
        res = await ctx.pool.request("GET", "/metrics", headers=ctx.headers)
    except (OSError, TimeoutError, EndpointError, asyncio.IncompleteReadError):
        return None
    if res.status != 200:
        return None
    return parse_request_counter(res.body.decode("utf-8", "replace"), ctx.api.path)


# --- set-up: API detection, warm-up --------------------------------------------------------


async def _get_json(pool: Pool, path: str, headers: dict[str, str]) -> Any:
    try:
        res = await pool.request("GET", path, headers=headers)
    except EndpointError:
        raise
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return None
    if res.status != 200:
        return None
    try:
        return json.loads(res.body)
    except ValueError:
        return None


async def detect_api(pool: Pool, headers: dict[str, str]) -> str:
    """Guess the API from ``/info`` (TEI, TGI, hfdeploy) and ``/v1/models`` (OpenAI)."""
    info = await _get_json(pool, "/info", headers)
    if isinstance(info, dict):
        mt = info.get("model_type")
        if isinstance(mt, dict):
            if "reranker" in mt:
                return "tei-rerank"
            if "embedding" in mt:
                return "tei-embed"
            if "classifier" in mt:
                return "tei-predict"
            if "text-generation" in mt:
                return "openai-chat"
            raise EndpointError(
                pool.endpoint.url,
                f"its /info names a model type hfdeploy bench has no API for: {sorted(mt)}",
                hint="Pass --api if the server speaks one of: " + ", ".join(API_NAMES[1:]),
            )
        if "max_total_tokens" in info or "max_best_of" in info:
            return "tgi-generate"
    models = await _get_json(pool, "/v1/models", headers)
    if isinstance(models, dict) and models.get("data"):
        return "openai-chat"
    raise EndpointError(
        pool.endpoint.url,
        "could not tell its API: no TEI/TGI /info and no OpenAI /v1/models",
        hint="Pass --api: one of " + ", ".join(API_NAMES[1:]) + ".",
    )


async def _model_name(pool: Pool, headers: dict[str, str]) -> str | None:
    models = await _get_json(pool, "/v1/models", headers)
    if isinstance(models, dict):
        data = models.get("data") or []
        if data and isinstance(data[0], dict):
            return str(data[0].get("id") or "") or None
    return None


def _items(cfg: BenchConfig, api: Api, n: int) -> list[Item]:
    out_dist: Dist = parse_dist(cfg.output_tokens, "--output-tokens")
    if cfg.dataset == "synthetic":
        in_dist = parse_dist(cfg.input_tokens, "--input-tokens")
        batch = max(cfg.batch_size, 2) if api.name == "tei-rerank" else cfg.batch_size
        return synthetic_items(
            n, input_tokens=in_dist, output_tokens=out_dist, batch=batch, seed=cfg.seed
        )
    return load_jsonl(Path(cfg.dataset), output_tokens=out_dist, seed=cfg.seed)


async def _bench(cfg: BenchConfig, progress: Progress | None) -> BenchResult:
    cfg.validate()
    slo = parse_slo(cfg.slo)
    shape = parse_profile(cfg.profile, cfg.max_concurrency)
    tokens = _Tokens(cfg.tokenizer)
    endpoint = Endpoint.parse(cfg.url)
    headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
    if cfg.api_key:
        headers["Authorization"] = f"Bearer {cfg.api_key}"
    pool = Pool(endpoint, cfg.max_concurrency, timeout=cfg.timeout)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        await _get_json(pool, "/health", headers)  # surfaces a refused connection first
        api_name = cfg.api if cfg.api != "auto" else await detect_api(pool, headers)
        api = api_by_name(api_name)
        model = cfg.model
        if model is None and api_name.startswith("openai"):
            model = await _model_name(pool, headers)
        n_items = cfg.requests or 1000
        ctx = _Ctx(cfg, pool, api, model, _items(cfg, api, max(n_items, 1)), slo, tokens,
                   progress, headers)  # fmt: skip
        result = BenchResult(cfg, api_name, model, [], {}, started=started)
        result.preflight = await _warmup(ctx, shape)
        sampler = None
        if cfg.memory_pid is not None:
            from hfdeploy.bench.memory import MemorySampler

            sampler = MemorySampler(
                cfg.memory_pid, cfg.memory_interval, lambda: float(ctx.answered)
            ).start()
        try:
            if shape == "sweep":
                result.sweep = await _sweep(ctx, result)
            else:
                assert isinstance(shape, list)
                for phase in shape:
                    if progress:
                        progress("phase", 0, _expected(cfg, phase))
                    result.phases.append(await _phase(ctx, phase))
        except _PhaseBottleneck as b:
            result.phases.append(b.result)
            result.valid = False
            result.invalid_reason = b.error.reason
        finally:
            if sampler is not None:
                from hfdeploy.bench.memory import memory_report

                samples = sampler.stop()
                result.memory = {"pid": cfg.memory_pid,
                                 **memory_report(samples, exited=sampler.exited)}  # fmt: skip
        result.token_sources = {
            k: (c.most_common(1)[0][0] if c else "none") for k, c in ctx.sources.items()
        }
        return result
    finally:
        await pool.close()


def _expected(cfg: BenchConfig, phase: Phase) -> int | None:
    if cfg.requests is not None:
        return cfg.requests
    if phase.rate and cfg.duration:
        return int(phase.rate * cfg.duration)
    return None


async def _warmup(ctx: _Ctx, shape: list[Phase] | str) -> dict[str, Any]:
    """Warm the server and measure the client's CPU per request; refuse rates it cannot send."""
    n = ctx.cfg.warmup
    if n == 0:
        return {"warmup_requests": 0}
    conc = min(8, n)
    saved = ctx.progress
    ctx.progress = None
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    records = await _closed(ctx, conc, None, n)
    cpu = time.thread_time() - cpu0
    ctx.progress = saved
    failed = [r for r in records if not r.ok]
    if len(failed) == len(records):
        kinds = Counter(r.error for r in failed).most_common()
        raise EndpointError(
            ctx.pool.endpoint.url,
            f"every warm-up request to {ctx.api.path} failed ({kinds})",
            hint="Check the API (--api), the model name (--model), the API key and /ready.",
        )
    per_request = cpu / len(records)
    capacity = 1.0 / per_request if per_request > 0 else math.inf
    out = {
        "warmup_requests": len(records),
        "warmup_errors": len(failed),
        "warmup_s": round(time.perf_counter() - wall0, 3),
        "client_cpu_ms_per_request": round(per_request * 1000, 4),
        "client_capacity_rps_estimate": None if math.isinf(capacity) else round(capacity, 1),
    }
    if isinstance(shape, list) and not ctx.cfg.no_client_check:
        for phase in shape:
            if phase.rate and phase.rate > CPU_LIMIT * capacity:
                raise ClientBottleneckError(
                    f"pre-flight: at {per_request * 1000:.3f} ms of client CPU per request this "
                    f"client can send about {capacity:,.0f} req/s; {phase.name} offers "
                    f"{phase.rate:g}",
                    offered=phase.rate,
                    achieved=round(capacity, 1),
                )
    return out


async def _sweep(ctx: _Ctx, result: BenchResult) -> dict[str, Any]:
    cfg = ctx.cfg
    steps = [Phase("synchronous", "closed", concurrency=1),
             Phase("throughput", "closed", concurrency=cfg.max_concurrency)]  # fmt: skip
    for phase in steps:
        if ctx.progress:
            ctx.progress("phase", 0, _expected(cfg, phase))
        result.phases.append(await _phase(ctx, phase))
    low = result.phases[0].summary["request_throughput"]
    high = result.phases[1].summary["request_throughput"]
    k = cfg.sweep_size - 2
    rates = [low + (high - low) * (i + 1) / (k + 1) for i in range(k)]
    for rate in rates:
        if rate <= 0:
            continue
        phase = Phase(f"constant:{rate:.3g}", "constant", rate=round(rate, 3))
        if ctx.progress:
            ctx.progress("phase", 0, _expected(cfg, phase))
        result.phases.append(await _phase(ctx, phase))
    return sweep_verdict(result.phases, ctx.slo)


def sweep_verdict(phases: list[PhaseResult], slo: Slo) -> dict[str, Any]:
    """The saturation knee and the highest rate meeting the SLOs, from a sweep's phases.

    Knee: the highest constant rate served at >= 95% of the offered rate with p50 E2E at most
    twice the synchronous p50. SLO rate: the highest constant rate with no errors and the p99
    of every SLO metric within its limit.
    """
    sync = phases[0].summary
    base = (sync["e2e_ms"] or {}).get("p50")
    rated = sorted((p for p in phases if p.phase.rate), key=lambda p: p.phase.rate or 0.0)
    knee = None
    best = None
    for p in rated:
        s = p.summary
        rate = p.phase.rate or 0.0
        p50 = (s["e2e_ms"] or {}).get("p50")
        if (
            s["request_throughput"] >= RATE_SHARE * rate
            and base is not None
            and p50 is not None
            and p50 <= 2 * base
        ):
            knee = rate
        ok = s["errors"] == 0 and not slo.empty
        for key, limit in (("ttft_ms", slo.ttft), ("tpot_ms", slo.tpot), ("e2e_ms", slo.e2e)):
            if limit is not None:
                p99 = (s.get(key) or {}).get("p99")
                ok = ok and p99 is not None and p99 <= limit * 1000
        if ok:
            best = rate
    return {
        "synchronous_throughput": sync["request_throughput"],
        "max_throughput": phases[1].summary["request_throughput"] if len(phases) > 1 else None,
        "knee_rate": knee,
        "max_rate_meeting_slo": best,
        "rule": "knee: highest rate served at >= 95% of offered with p50 E2E <= 2x the "
        "synchronous p50; SLO rate: highest rate with no errors and each SLO's p99 within it",
    }


def run_bench(cfg: BenchConfig, progress: Progress | None = None) -> BenchResult:
    """Run a benchmark to completion (blocking); see :class:`BenchConfig`.

    Returns a result even when the client fell behind (``valid`` False, with the reason);
    raises only when nothing could be measured.

    Raises:
        InvalidSettingError: a bad flag. EndpointError: the endpoint cannot be used.
        ClientBottleneckError: the pre-flight found the offered rate beyond the client.
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(_bench(cfg, progress))
    return uvloop.run(_bench(cfg, progress))
