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
import time
from collections import Counter
from pathlib import Path
from typing import Any

from hfdeploy.bench.apis import API_NAMES, Api, api_by_name
from hfdeploy.bench.config import BenchConfig, Phase, parse_profile
from hfdeploy.bench.dataset import Dist, Item, load_jsonl, parse_dist, synthetic_items
from hfdeploy.bench.drivers import Progress, RunContext, Tokens, closed_loop
from hfdeploy.bench.http import Endpoint, Pool
from hfdeploy.bench.metrics import parse_slo
from hfdeploy.bench.phases import (
    CPU_LIMIT,
    PhaseBottleneck,
    expected_requests,
    run_phase,
    run_sweep,
)
from hfdeploy.bench.result import BenchResult
from hfdeploy.errors import ClientBottleneckError, EndpointError

__all__ = ["detect_api", "run_bench"]


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
    tokens = Tokens(cfg.tokenizer)
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
        items = _items(cfg, api, max(n_items, 1))
        ctx = RunContext(cfg, pool, api, model, items, slo, tokens, progress, headers)
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
                result.sweep = await run_sweep(ctx, result)
            else:
                assert isinstance(shape, list)
                for phase in shape:
                    if progress:
                        progress("phase", 0, expected_requests(cfg, phase))
                    result.phases.append(await run_phase(ctx, phase))
        except PhaseBottleneck as b:
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


async def _warmup(ctx: RunContext, shape: list[Phase] | str) -> dict[str, Any]:
    """Warm the server and measure the client's CPU per request; refuse rates it cannot send."""
    n = ctx.cfg.warmup
    if n == 0:
        return {"warmup_requests": 0}
    conc = min(8, n)
    saved = ctx.progress
    ctx.progress = None
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    records = await closed_loop(ctx, conc, None, n)
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
