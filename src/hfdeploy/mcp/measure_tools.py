"""The tools that measure: load a running endpoint, watch a process's memory, and ``up``
(serve a model here and measure it).

They send real traffic and start processes, so each call is bounded: requests go to loopback
and the hosts named with ``hfdeploy mcp --allowed-host`` only, files are written under the
allowed root, a command is started only when the server allows it (``--allow-command``),
and each call lasts minutes at most.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit

from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from hfdeploy.mcp.schemas import BenchOutput, MemoryOutput, UpOutput
from hfdeploy.mcp.toolkit import Ctx, Model, answer, call, limits, tool

if TYPE_CHECKING:
    from hfdeploy.bench.duplex_config import DuplexConfig

__all__ = [
    "BENCH_MAX_REQUESTS", "BENCH_MAX_SECONDS", "PROFILE_MAX_SECONDS", "benchmark_endpoint",
    "profile_memory", "run_up",
]  # fmt: skip

#: Bounds on one benchmark call: seconds of load in all, requests per phase.
BENCH_MAX_SECONDS = 120.0
BENCH_MAX_REQUESTS = 20_000
#: Bound on one memory profile: seconds of sampling.
PROFILE_MAX_SECONDS = 600.0

#: Duplex arguments (``api="duplex"``); ignored by the other APIs.
Audio = Annotated[
    str | None,
    Field(description="Duplex: a 16-bit PCM WAV file to send (looped), under the allowed root; "
          "default: a 440 Hz tone."),
]  # fmt: skip
Codec = Annotated[
    Literal["auto", "opus", "pcm"],
    Field(description="Duplex: auto (Ogg-Opus when sphn is installed, else raw PCM), opus or pcm."),
]
TextPrompt = Annotated[str | None, Field(description="Duplex: the text_prompt (the role).")]
VoicePrompt = Annotated[
    str | None, Field(description="Duplex: the voice_prompt (a file in the server's voices).")
]
HandshakeTimeout = Annotated[
    float, Field(description="Duplex: seconds a session waits for the handshake.", gt=0, le=60)
]

#: Sends requests, starts processes, writes files; never deletes any.
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
            "tei-embed, tei-rerank, tei-predict, tgi-generate, or duplex (a full-duplex speech "
            "WebSocket such as Moshi or PersonaPlex; never auto-detected)."
        ),
    ] = "auto",
    profile: Annotated[
        str,
        Field(
            description="synchronous, concurrent:N[,N...], constant:RPS, poisson:RPS, "
            "throughput or sweep; duplex: synchronous or concurrent:N[,N...] sessions."
        ),
    ] = "synchronous",
    duration: Annotated[
        float, Field(description="Seconds per phase (duplex: per session).", gt=0, le=60)
    ] = 10.0,
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
    audio: Audio = None,
    codec: Codec = "auto",
    text_prompt: TextPrompt = None,
    voice_prompt: VoicePrompt = None,
    handshake_timeout: HandshakeTimeout = 30.0,
    *,
    ctx: Ctx,
) -> Annotated[CallToolResult, BenchOutput]:
    """Load-test a running inference server: TTFT, TPOT, ITL and E2E percentiles,
    throughput, goodput and errors, each with its formula; latency is measured from the
    intended send time. With api "duplex": hold N full-duplex speech sessions open and
    report handshake and first-audio times, jitter, slow frames, drift, refused and queued
    sessions, and the largest session count that stayed real time. The result is
    `hfdeploy bench URL --json` with the same options. Sends real traffic: only to loopback
    or allowed hosts, at most 2 minutes per call.
    """
    from hfdeploy.bench import BenchConfig, parse_profile, run_bench
    from hfdeploy.bench.http import Endpoint

    if api == "duplex":
        from hfdeploy.bench.duplex_config import DuplexConfig

        duplex = DuplexConfig(
            url, profile=profile, duration=duration, handshake_timeout=handshake_timeout,
            audio=None if audio is None else str(limits(ctx).inside(audio)), codec=codec,
            text_prompt=text_prompt, voice_prompt=voice_prompt,
        )  # fmt: skip
        return await _duplex(duplex, ctx)

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


async def _duplex(cfg: DuplexConfig, ctx: Ctx) -> CallToolResult:
    """``benchmark_endpoint`` with ``api="duplex"``: the library call ``hfdeploy bench --api
    duplex`` makes, within the same bounds."""
    from hfdeploy.bench.duplex import run_duplex_bench

    await call(cfg.validate)
    limits(ctx).check_host(
        urlsplit(cfg.ws_url).hostname or "", next_step="benchmark a local server"
    )
    phases = await call(cfg.phases)
    seconds = len(phases) * (cfg.duration + cfg.handshake_timeout)
    if seconds > BENCH_MAX_SECONDS:
        raise ToolError(
            f"error: {len(phases)} phases x ({cfg.duration:g} s + a {cfg.handshake_timeout:g} s "
            f"handshake wait) is more than {BENCH_MAX_SECONDS:g} s\n"
            "next: lower duration or handshake_timeout, or use fewer phases"
        )
    result = await call(lambda: run_duplex_bench(cfg))
    return answer(result.to_dict(records=False), result.envelope())


@tool(RUNS)
async def profile_memory(
    command: Annotated[
        list[str] | None,
        Field(
            description="A command to start and watch (program, then arguments), stopped "
            "at the end; only on a server started with --allow-command. Give this or pid."
        ),
    ] = None,
    pid: Annotated[
        int | None, Field(description="Watch this running process (and children).", gt=0)
    ] = None,
    duration: Annotated[
        float, Field(description="Seconds to sample.", gt=0, le=PROFILE_MAX_SECONDS)
    ] = 60.0,
    interval: Annotated[float, Field(description="Seconds between samples.", gt=0)] = 1.0,
    warmup: Annotated[
        float | None,
        Field(description="Seconds of start-up to leave out of the fit [the first 20%].", ge=0),
    ] = None,
    metrics_url: Annotated[
        str | None,
        Field(
            description="Server URL whose /metrics counts requests (fit per request): "
            "loopback, or a host the MCP server was started with --allowed-host for."
        ),
    ] = None,
    out: Annotated[
        str | None,
        Field(description="Also write the JSON result to this file, under the allowed root."),
    ] = None,
    *,
    ctx: Ctx,
) -> Annotated[CallToolResult, MemoryOutput]:
    """Sample the memory of a process tree (RSS, and GPU memory through NVML) and give a
    leak verdict: stable, growing or leak-suspected, with the fitted slope per request or
    per hour and its 95% interval. The result is `hfdeploy profile memory --json` with the
    same options. At most 10 minutes per call.
    """
    from hfdeploy.bench import MemoryProfile
    from hfdeploy.bench import profile_memory as profile
    from hfdeploy.bench.http import Endpoint

    allowed = limits(ctx)
    if command and not allowed.allow_command:
        raise ToolError(
            "error: this server does not start commands\n"
            "next: give pid, or restart `hfdeploy mcp --allow-command`"
        )
    if metrics_url is not None:
        host = (await call(lambda: Endpoint.parse(metrics_url))).host
        allowed.check_host(host, next_step="watch a local server")
    path = None if out is None else allowed.inside(out)

    def run() -> MemoryProfile:
        return profile(
            command, pid=pid, duration=duration, interval=interval, warmup=warmup,
            metrics_url=metrics_url, out=path,
        )  # fmt: skip

    result = await call(run)
    return answer(result.to_dict(), result.envelope())


@tool(RUNS)
async def run_up(
    model: Model,
    out: Annotated[
        str,
        Field(
            description="Folder for the deployment files and the report, under the server's "
            "allowed root."
        ),
    ] = "deploy",
    engine: Annotated[str, Field(description="Engine for the plan, or auto.")] = "auto",
    gpu: Annotated[
        str | None, Field(description="GPU for the plan (default: the cheapest that fits).")
    ] = None,
    port: Annotated[
        int, Field(description="Loopback port for the local server.", ge=1, le=65535)
    ] = 8080,
    bench_duration: Annotated[
        float,
        Field(description="Seconds of benchmark in all (two phases).", ge=1, le=BENCH_MAX_SECONDS),
    ] = 10.0,
    no_serve: Annotated[
        bool, Field(description="Stop after the report of the generated files.")
    ] = False,
    *,
    ctx: Ctx,
) -> Annotated[CallToolResult, UpOutput]:
    """The whole flow on this machine: inspect, size and plan, generate the deployment
    files with the lock, audit them, serve the model with hfdeploy's own server on a
    loopback port, bench it with its memory sampled, stop it, and write report.md,
    report.html and report.json beside the files (under the allowed root). Serving is
    skipped, with the command to run instead, when this machine cannot serve the model.
    The result is `hfdeploy up MODEL --out DIR --json` (report.json).
    """
    from hfdeploy.up import UpResult
    from hfdeploy.up import run_up as up

    folder = limits(ctx).inside(out)

    def run() -> UpResult:
        return up(
            model, folder, engine=None if engine == "auto" else engine, gpu=gpu, port=port,
            bench_duration=bench_duration, serve=not no_serve,
        )  # fmt: skip

    result = await call(run)
    assert result.envelope is not None, "run_up's report step sets it"
    return answer(result.to_dict(), result.envelope)
