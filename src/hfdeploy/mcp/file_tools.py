"""The tools that write or read files by path, confined to the server's allowed root:
generate a deployment, audit files."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from hfdeploy.mcp.schemas import AuditOutput, GenerateOutput
from hfdeploy.mcp.toolkit import READ_ONLY, Ctx, Model, answer, call, limits, tool
from hfdeploy.model.resolve import inspect_model as _inspect_model

__all__ = ["audit_deployment", "generate_deployment"]

#: Writes files under the allowed root; never deletes any.
WRITES_FILES = ToolAnnotations(read_only_hint=False, destructive_hint=False)


@tool(WRITES_FILES)
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
    concurrency: Annotated[int | None, Field(description="Requests held at once.", gt=0)] = None,
    *,
    ctx: Ctx,
) -> Annotated[CallToolResult, GenerateOutput]:
    """Write the deployment files (Dockerfile, compose, Kubernetes, KServe, Inference
    Endpoints, plan.json, README) for MODEL under the allowed root. The result is
    `hfdeploy generate MODEL --out DIR --json`.
    """
    from hfdeploy.plan.planner import plan_deployment as plan
    from hfdeploy.render.generate import generate_deployment as generate

    folder = limits(ctx).inside(out)
    targets = tuple(t.strip() for t in target.split(",") if t.strip())

    def run() -> Any:
        p = plan(_inspect_model(model), gpu=gpu, engine=engine, context=context,
                 concurrency=concurrency, targets=targets)  # fmt: skip
        written = generate(p, folder, targets=targets)
        return p, [str(w.relative_to(folder)) for w in written]

    p, files = await call(run)
    data = {"out": str(folder), "files": files, "plan": p.to_dict()}
    return answer(data, p.envelope)


@tool(READ_ONLY)
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
    *,
    ctx: Ctx,
) -> Annotated[CallToolResult, AuditOutput]:
    """What is wrong in model deployment files: Kubernetes, compose, Dockerfiles,
    launch scripts, Python entrypoints. Findings with rule id, severity, file:line,
    impact and fix. The result is `hfdeploy audit PATH --format json`.
    """
    if not paths and not files:
        raise ToolError("error: give paths or files\nnext: pass at least one of them")
    allowed = limits(ctx)
    resolved = [allowed.inside(p) for p in paths or []]

    def run() -> Any:
        from hfdeploy.audit import audit_paths, audit_texts, load_config

        config = load_config(allowed.root)
        if files:
            return audit_texts(dict(files), config)
        return audit_paths(resolved, config)

    try:
        report = await call(run)
    except FileNotFoundError as e:
        raise ToolError(f"error: no such file or folder: {e}\nnext: check the path") from e
    return answer(report.to_dict(), report.envelope())
