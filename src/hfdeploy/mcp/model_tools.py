"""The tools that read a model or a catalog: inspect, size, plan, and the GPU and engine lists.

None of them downloads weights: a model is read from its config and safetensors headers
(on the Hub by HTTP range requests).
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp_types import CallToolResult
from pydantic import Field

from hfdeploy.catalog.engines import engine_catalog, engines_envelope, sizing_engines
from hfdeploy.catalog.gpus import gpu_catalog
from hfdeploy.mcp.schemas import EngineList, GpuList, InspectOutput, PlanOutput, SizeOutput
from hfdeploy.mcp.toolkit import (
    READ_ONLY,
    Model,
    Prefer,
    Registry,
    Repo,
    ScaleOutArg,
    StorageClass,
    answer,
    call,
    tool,
)
from hfdeploy.mcp.toolkit import scale_out as _scale_out
from hfdeploy.model.resolve import inspect_model as _inspect_model
from hfdeploy.sizing.report import size_model
from hfdeploy.sizing.settings import DTYPES, KV_DTYPES, QUANTIZATIONS

__all__ = ["estimate_memory", "inspect_model", "list_engines", "list_gpus", "plan_deployment"]


@tool(READ_ONLY)
async def inspect_model(model: Model) -> Annotated[CallToolResult, InspectOutput]:
    """What a model is: architecture, task, parameters per dtype, formats, context.

    Reads config.json and safetensors headers only (by HTTP range requests on the
    Hub), never the weights. The result is `hfdeploy inspect MODEL --json`.
    """
    profile = await call(lambda: _inspect_model(model))
    return answer(profile.to_dict(), profile.envelope())


@tool(READ_ONLY)
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
        Field(description="Serving engine: " + ", ".join(sizing_engines()) + "; default by task."),
    ] = None,
    dtype: Annotated[str, Field(description="Serving dtype: " + ", ".join(DTYPES) + ".")] = "auto",
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
    pp: Annotated[int, Field(description="Pipeline-parallel stages (nodes of tp GPUs).", gt=0)] = 1,
    gpu_memory_utilization: Annotated[
        float | None,
        Field(description="Engine memory fraction (vLLM default 0.9).", gt=0, le=1),
    ] = None,
    max_batched_tokens: Annotated[
        int | None,
        Field(description="Batched-token budget (default: the engine's on the GPU).", gt=0),
    ] = None,
    max_seqs: Annotated[
        int | None,
        Field(description="Sequences the engine runs at once (vLLM's --max-num-seqs).", gt=0),
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
            max_batched_tokens=max_batched_tokens, quantization=quantization, max_seqs=max_seqs,
        )  # fmt: skip

    report = await call(run)
    return answer(report.to_dict(), report.envelope())


@tool(READ_ONLY)
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
    context: Annotated[int | None, Field(description="Tokens per request to hold.", gt=0)] = None,
    concurrency: Annotated[int | None, Field(description="Requests held at once.", gt=0)] = None,
    traffic: Annotated[float | None, Field(description="Target requests per second.", gt=0)] = None,
    registry: Registry = None,
    repo: Repo = None,
    storage_class: StorageClass = None,
    prefer: Prefer = "cost",
    scale_out: ScaleOutArg = None,
) -> Annotated[CallToolResult, PlanOutput]:
    """The engine with reasons and rejected alternatives, GPU type and count, TP, engine
    flags, decode roofline, replicas, cold start and cost. The result is
    `hfdeploy plan MODEL --json` (plan.json).
    """
    from hfdeploy.plan.planner import plan_deployment as plan

    result = await call(lambda: plan(
        _inspect_model(model), gpu=gpu, engine=engine, context=context,
        concurrency=concurrency, traffic_rps=traffic, registry=registry, repo=repo,
        storage_class=storage_class, prefer=prefer, scale_out=_scale_out(scale_out),
    ))  # fmt: skip
    return answer(result.to_dict(), result.envelope)


@tool(READ_ONLY)
async def list_gpus() -> Annotated[CallToolResult, GpuList]:
    """The GPU catalog: memory, bandwidth, peak throughput, aliases, indicative prices."""
    catalog = gpu_catalog()
    return answer(catalog.to_dict(), catalog.envelope())


@tool(READ_ONLY)
async def list_engines() -> Annotated[CallToolResult, EngineList]:
    """The serving engines hfdeploy sizes for, with how each spends GPU memory."""
    data = {"engines": [e.to_dict() for e in engine_catalog().values()]}
    return answer(data, engines_envelope())
