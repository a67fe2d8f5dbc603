"""The tools that measure: load a running endpoint.

They send real traffic, so each call is bounded: loopback and the hosts named with
``hfdeploy mcp --allowed-host`` only, two minutes at most.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from hfdeploy.mcp.schemas import BenchOutput
from hfdeploy.mcp.toolkit import Ctx, answer, call, limits, tool

__all__ = ["BENCH_MAX_REQUESTS", "BENCH_MAX_SECONDS", "benchmark_endpoint"]

#: Bounds on one benchmark call: seconds of load in all, requests per phase.
BENCH_MAX_SECONDS = 120.0
BENCH_MAX_REQUESTS = 20_000

#: Sends requests to a server; changes no file.
RUNS = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
)


@tool(RUNS)
async def benchmark_endpoint(
    url: Annotated[
        str,
        Field(
            description="Base URL of a running server: loopback, or a host the MCP "
            "server was started with --allowed-host for."
        ),
    ],
    api: Annotated[
        str,
        Field(
            description="auto, openai-chat, openai-completions, openai-embeddings, "
            "tei-embed, tei-rerank, tei-predict or tgi-generate."
        ),
    ] = "auto",
    profile: Annotated[
        str,
        Field(
            description="synchronous, concurrent:N[,N...], constant:RPS, poisson:RPS, "
            "throughput or sweep."
        ),
    ] = "synchronous",
    duration: Annotated[float, Field(description="Seconds per phase.", gt=0, le=60)] = 10.0,
    requests: Annotated[
        int | None,
        Field(
            description="Requests per phase instead of a duration.",
            gt=0,
            le=BENCH_MAX_REQUESTS,
        ),
    ] = None,
    input_tokens: Annotated[
        str, Field(description="Synthetic input length: N, uniform:A:B or normal:MEAN:STD.")
    ] = "128",
    output_tokens: Annotated[
        str, Field(description="Output tokens asked for (generation APIs).")
    ] = "128",
    slo: Annotated[
        str | None, Field(description="SLOs for goodput, e.g. ttft=500ms,tpot=50ms,e2e=3s.")
    ] = None,
    model: Annotated[
        str | None, Field(description="Model name for OpenAI APIs; default: /v1/models.")
    ] = None,
    *,
    ctx: Ctx,
) -> Annotated[CallToolResult, BenchOutput]:
    """Load-test a running inference server: TTFT, TPOT, ITL and E2E percentiles,
    throughput, goodput and errors, each with its formula; latency is measured from the
    intended send time. The result is `hfdeploy bench URL --json` with the same options.
    Sends real traffic: only to loopback or allowed hosts, at most 2 minutes per call.
    """
    from hfdeploy.bench import BenchConfig, parse_profile, run_bench
    from hfdeploy.bench.http import Endpoint

    def settings() -> BenchConfig:
        cfg = BenchConfig(
            url=url, api=api, profile=profile,
            duration=duration, requests=requests,
            input_tokens=input_tokens, output_tokens=output_tokens, slo=slo, model=model,
        )  # fmt: skip
        cfg.validate()
        return cfg

    cfg = await call(settings)
    limits(ctx).check_host(Endpoint.parse(url).host, next_step="benchmark a local server")
    phases = parse_profile(profile, cfg.max_concurrency)
    count = cfg.sweep_size if phases == "sweep" else len(phases)
    if count * duration > BENCH_MAX_SECONDS:
        raise ToolError(
            f"error: {count} phases x {duration:g} s is more than {BENCH_MAX_SECONDS:g} s\n"
            "next: lower duration, or use fewer phases"
        )
    result = await call(lambda: run_bench(cfg))
    return answer(result.to_dict(records=False), result.envelope())
