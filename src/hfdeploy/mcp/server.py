"""The MCP server: one tool per capability that exists, the catalogs as resources.

No logic lives here beyond mapping arguments to the library calls the CLI makes and
presenting the answer: structured content is the CLI's ``--json`` object, the text is
the answer's envelope (Result, Confidence, Uncertainty Factors, Verification). An
hfdeploy error becomes a tool error with the CLI's two lines; the server goes on.

``benchmark_endpoint`` sends load only to loopback and to the hosts named with
``hfdeploy mcp --allowed-host``, for at most two minutes per call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from hfdeploy._version import __version__
from hfdeploy.catalog.engines import engine_catalog, engines_envelope, sizing_engines
from hfdeploy.catalog.gpus import gpu_catalog
from hfdeploy.envelope import Envelope
from hfdeploy.errors import HfDeployError
from hfdeploy.mcp.schemas import (
    AuditOutput,
    BenchOutput,
    EngineList,
    GenerateOutput,
    GpuList,
    InspectOutput,
    PlanOutput,
    SizeOutput,
)
from hfdeploy.model.resolve import inspect_model as _inspect_model
from hfdeploy.sizing.report import size_model
from hfdeploy.sizing.settings import DTYPES, KV_DTYPES, QUANTIZATIONS

__all__ = ["TOOLS", "build_server"]

T = TypeVar("T")

#: The tools this server offers today, by name.
TOOLS = (
    "inspect_model",
    "estimate_memory",
    "plan_deployment",
    "generate_deployment",
    "audit_deployment",
    "list_gpus",
    "list_engines",
    "benchmark_endpoint",
)

#: Hosts a benchmark may always target; others need ``--allowed-host``.
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
#: Bounds on one benchmark call: seconds of load in all, requests per phase.
BENCH_MAX_SECONDS = 120.0
BENCH_MAX_REQUESTS = 20_000

_READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True)

Model = Annotated[
    str,
    Field(
        description="A local folder, a .gguf file, or a Hub id ('owner/name'), "
        "optionally '@revision' (a branch, tag or 40-hex commit)."
    ),
]


def _answer(data: dict[str, Any], envelope: Envelope) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=envelope.to_text())],
        structured_content=data,
    )


async def _call(fn: Callable[[], T]) -> T:
    """Run a library call off the event loop; hfdeploy errors become tool errors."""
    try:
        return await anyio.to_thread.run_sync(fn)
    except HfDeployError as e:
        # The same two lines the CLI prints.
        raise ToolError(f"error: {e.message}\nnext: {e.hint}") from e


def _inside(root: Path, raw: str) -> Path:
    """``raw`` resolved against ``root``; a tool error when it leaves the root."""
    path = (root / raw).resolve()
    if path != root and root not in path.parents:
        raise ToolError(
            f"error: {raw} is outside the allowed root {root}\n"
            "next: pass a path under it, or restart `hfdeploy mcp --allowed-root DIR`"
        )
    return path


def build_server(
    *, allowed_root: Path | None = None, allowed_hosts: tuple[str, ...] = ()
) -> MCPServer:
    """The hfdeploy MCP server with its tools and resources (not yet running).

    Args:
        allowed_root: the only folder whose files tools may read by path (audit);
            default: the current directory.
        allowed_hosts: hosts besides loopback that ``benchmark_endpoint`` may load.
    """
    root = (allowed_root or Path.cwd()).resolve()
    bench_hosts = LOOPBACK | {h.lower() for h in allowed_hosts}
    server: MCPServer = MCPServer(
        name="hfdeploy",
        version=__version__,
        instructions=(
            "hfdeploy sizes and inspects Hugging Face models for deployment without "
            "downloading weights. Use inspect_model to learn what a model is, "
            "estimate_memory to know how much GPU memory it needs and which GPUs fit, "
            "audit_deployment to find what is wrong in deployment files (paths under the "
            "allowed root, or file contents inline), benchmark_endpoint to measure a running "
            "server's latency and throughput, list_gpus and list_engines for the names "
            "those tools accept."
        ),
    )

    @server.tool(annotations=_READ_ONLY)
    async def inspect_model(model: Model) -> Annotated[CallToolResult, InspectOutput]:
        """What a model is: architecture, task, parameters per dtype, formats, context.

        Reads config.json and safetensors headers only (by HTTP range requests on the
        Hub), never the weights. The result is `hfdeploy inspect MODEL --json`.
        """
        profile = await _call(lambda: _inspect_model(model))
        return _answer(profile.to_dict(), profile.envelope())

    @server.tool(annotations=_READ_ONLY)
    async def estimate_memory(
        model: Model,
        gpu: Annotated[
            str | None,
            Field(
                description="Fit against one GPU, by name or alias (see list_gpus); "
                "default: every GPU in the catalog."
            ),
        ] = None,
        engine: Annotated[
            str | None,
            Field(
                description="Serving engine: " + ", ".join(sizing_engines()) + "; default by task."
            ),
        ] = None,
        dtype: Annotated[
            str, Field(description="Serving dtype: " + ", ".join(DTYPES) + ".")
        ] = "auto",
        kv_dtype: Annotated[
            str, Field(description="KV cache dtype: " + ", ".join(KV_DTYPES) + ".")
        ] = "auto",
        context: Annotated[
            int | None,
            Field(
                description="Tokens per request; default: the model's maximum, capped at 8192.",
                gt=0,
            ),
        ] = None,
        concurrency: Annotated[
            int, Field(description="Requests held at once (vLLM --max-num-seqs).", gt=0)
        ] = 1,
        tp: Annotated[int, Field(description="Tensor-parallel degree.", gt=0)] = 1,
        pp: Annotated[
            int, Field(description="Pipeline-parallel stages (nodes of tp GPUs).", gt=0)
        ] = 1,
        gpu_memory_utilization: Annotated[
            float | None,
            Field(description="Engine memory fraction (vLLM default 0.9).", gt=0, le=1),
        ] = None,
        max_batched_tokens: Annotated[
            int | None, Field(description="Batched-token budget (activation peak).", gt=0)
        ] = None,
        quantization: Annotated[
            str | None,
            Field(description="What-if quantization: " + ", ".join(QUANTIZATIONS) + "."),
        ] = None,
    ) -> Annotated[CallToolResult, SizeOutput]:
        """GPU memory needed per GPU rank (weights, KV cache, activations, overheads),
        each with its confidence, and which GPUs fit at which concurrency and context.

        The result is `hfdeploy size MODEL --json` with the same options.
        """

        def run() -> Any:
            profile = _inspect_model(model)
            return size_model(
                profile, gpu=gpu, engine=engine, dtype=dtype, kv_dtype=kv_dtype,
                context=context, concurrency=concurrency, tp=tp, pp=pp,
                gpu_memory_utilization=gpu_memory_utilization,
                max_batched_tokens=max_batched_tokens, quantization=quantization,
            )  # fmt: skip

        report = await _call(run)
        return _answer(report.to_dict(), report.envelope())

    @server.tool(annotations=_READ_ONLY)
    async def plan_deployment(
        model: Model,
        gpu: Annotated[
            str | None,
            Field(
                description="GPU name or alias (see list_gpus), or 'cpu'; default: the "
                "cheapest catalog GPU that fits."
            ),
        ] = None,
        engine: Annotated[
            str | None, Field(description="Force an engine (see list_engines); default: chosen.")
        ] = None,
        context: Annotated[
            int | None, Field(description="Tokens per request to hold.", gt=0)
        ] = None,
        concurrency: Annotated[
            int | None, Field(description="Requests held at once.", gt=0)
        ] = None,
        traffic: Annotated[
            float | None, Field(description="Target requests per second.", gt=0)
        ] = None,
    ) -> Annotated[CallToolResult, PlanOutput]:
        """The engine with reasons and rejected alternatives, GPU type and count, TP, engine
        flags, decode roofline, replicas, cold start and cost. The result is
        `hfdeploy plan MODEL --json` (plan.json).
        """
        from hfdeploy.plan.planner import plan_deployment as plan

        result = await _call(lambda: plan(
            _inspect_model(model), gpu=gpu, engine=engine, context=context,
            concurrency=concurrency, traffic_rps=traffic,
        ))  # fmt: skip
        return _answer(result.to_dict(), result.envelope)

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False))
    async def generate_deployment(
        model: Model,
        out: Annotated[
            str, Field(description="Folder to write into, under the server's allowed root.")
        ],
        target: Annotated[
            str, Field(description="Comma-separated: docker,compose,k8s,kserve,hf-endpoint.")
        ] = "docker,compose,k8s,kserve,hf-endpoint",
        gpu: Annotated[str | None, Field(description="GPU name or alias, or 'cpu'.")] = None,
        engine: Annotated[str | None, Field(description="Force an engine.")] = None,
        context: Annotated[int | None, Field(description="Tokens per request.", gt=0)] = None,
        concurrency: Annotated[
            int | None, Field(description="Requests held at once.", gt=0)
        ] = None,
    ) -> Annotated[CallToolResult, GenerateOutput]:
        """Write the deployment files (Dockerfile, compose, Kubernetes, KServe, Inference
        Endpoints, plan.json, README) for MODEL under the allowed root. The result is
        `hfdeploy generate MODEL --out DIR --json`.
        """
        from hfdeploy.plan.planner import plan_deployment as plan
        from hfdeploy.render.generate import generate_deployment as generate

        folder = _inside(root, out)
        targets = tuple(t.strip() for t in target.split(",") if t.strip())

        def run() -> Any:
            p = plan(_inspect_model(model), gpu=gpu, engine=engine, context=context,
                     concurrency=concurrency, targets=targets)  # fmt: skip
            written = generate(p, folder, targets=targets)
            return p, [str(w.relative_to(folder)) for w in written]

        p, files = await _call(run)
        data = {"out": str(folder), "files": files, "plan": p.to_dict()}
        return _answer(data, p.envelope)

    @server.tool(annotations=_READ_ONLY)
    async def audit_deployment(
        paths: Annotated[
            list[str] | None,
            Field(
                description="Files or folders under the server's allowed root "
                "(relative to it, or absolute inside it)."
            ),
        ] = None,
        files: Annotated[
            dict[str, str] | None,
            Field(
                description="Inline files: name (its extension or name picks the parser: "
                "Dockerfile, compose.yaml, *.yaml, *.sh, *.py) to content."
            ),
        ] = None,
    ) -> Annotated[CallToolResult, AuditOutput]:
        """What is wrong in model deployment files: Kubernetes, compose, Dockerfiles,
        launch scripts, Python entrypoints. Findings with rule id, severity, file:line,
        impact and fix. The result is `hfdeploy audit PATH --format json`.
        """
        if not paths and not files:
            raise ToolError("error: give paths or files\nnext: pass at least one of them")
        resolved = [_inside(root, p) for p in paths or []]

        def run() -> Any:
            from hfdeploy.audit import audit_paths, audit_texts, load_config

            config = load_config(root)
            if files:
                return audit_texts(dict(files), config)
            return audit_paths(resolved, config)

        try:
            report = await _call(run)
        except FileNotFoundError as e:
            raise ToolError(f"error: no such file or folder: {e}\nnext: check the path") from e
        return _answer(report.to_dict(), report.envelope())

    @server.tool(
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False,
            open_world_hint=True,
        )
    )  # fmt: skip
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

        cfg = await _call(settings)
        host = Endpoint.parse(url).host.lower()
        if host not in bench_hosts:
            raise ToolError(
                f"error: {host} is neither loopback nor an allowed host\n"
                "next: benchmark a local server, or restart `hfdeploy mcp --allowed-host HOST`"
            )
        phases = parse_profile(profile, cfg.max_concurrency)
        count = cfg.sweep_size if phases == "sweep" else len(phases)
        if count * duration > BENCH_MAX_SECONDS:
            raise ToolError(
                f"error: {count} phases x {duration:g} s is more than {BENCH_MAX_SECONDS:g} s\n"
                "next: lower duration, or use fewer phases"
            )
        result = await _call(lambda: run_bench(cfg))
        return _answer(result.to_dict(records=False), result.envelope())

    @server.tool(annotations=_READ_ONLY)
    async def list_gpus() -> Annotated[CallToolResult, GpuList]:
        """The GPU catalog: memory, bandwidth, peak throughput, aliases, indicative prices."""
        catalog = gpu_catalog()
        return _answer(catalog.to_dict(), catalog.envelope())

    @server.tool(annotations=_READ_ONLY)
    async def list_engines() -> Annotated[CallToolResult, EngineList]:
        """The serving engines hfdeploy sizes for, with how each spends GPU memory."""
        data = {"engines": [e.to_dict() for e in engine_catalog().values()]}
        return _answer(data, engines_envelope())

    @server.resource(
        "hfdeploy://catalog/gpus", name="gpu-catalog", mime_type="application/json",
        description="The GPU catalog (the list_gpus object).",
    )  # fmt: skip
    def gpus_resource() -> str:
        return json.dumps(gpu_catalog().to_dict(), indent=2)

    @server.resource(
        "hfdeploy://catalog/engines", name="engine-catalog", mime_type="application/json",
        description="The engine catalog (the list_engines object).",
    )  # fmt: skip
    def engines_resource() -> str:
        return json.dumps({"engines": [e.to_dict() for e in engine_catalog().values()]}, indent=2)

    @server.resource(
        "hfdeploy://catalog/audit-rules", name="audit-rules", mime_type="application/json",
        description="The audit rule catalog: id, tag, severity, title, what each detects.",
    )  # fmt: skip
    def audit_rules_resource() -> str:
        from hfdeploy.audit.rules import PARSE_ERROR, RULES

        rules = [
            {"id": r.id, "tag": r.tag, "severity": r.severity, "title": r.title,
             "detects": r.detects, "impact": r.impact, "recommendation": r.recommendation}
            for r in (*RULES, PARSE_ERROR)
        ]  # fmt: skip
        return json.dumps({"rules": rules}, indent=2)

    return server
