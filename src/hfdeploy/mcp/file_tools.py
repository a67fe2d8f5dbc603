"""The tools that write or read files by path, confined to the server's allowed root:
generate a deployment, audit files, fetch a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from hfdeploy.envelope import Envelope
from hfdeploy.mcp.schemas import AuditOutput, GenerateOutput, LockOutput
from hfdeploy.mcp.toolkit import (
    READ_ONLY,
    Ctx,
    Model,
    Prefer,
    Registry,
    Repo,
    ScaleOutArg,
    StorageClass,
    answer,
    call,
    limits,
    tool,
)
from hfdeploy.mcp.toolkit import scale_out as _scale_out
from hfdeploy.model.lock import ModelLock
from hfdeploy.model.resolve import inspect_model as _inspect_model

__all__ = ["audit_deployment", "fetch_model", "generate_deployment"]

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
    registry: Registry = None,
    repo: Repo = None,
    storage_class: StorageClass = None,
    prefer: Prefer = "cost",
    scale_out: ScaleOutArg = None,
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
                 concurrency=concurrency, targets=targets, registry=registry, repo=repo,
                 storage_class=storage_class, prefer=prefer,
                 scale_out=_scale_out(scale_out))  # fmt: skip
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
    launch scripts, Python entrypoints, Inference Endpoints' hf-endpoint.json, Triton
    repositories. Findings with rule id, severity, file:line, impact and fix. The result is
    `hfdeploy audit PATH --format json` (with `files`, a Dockerfile's COPY sources are not
    checked: there is no folder). Files the audited ones name (an .env, a script a Dockerfile
    runs, a model folder for the fit check) are read only under the allowed root; no Hugging
    Face cache is read, so a model named by Hub id is not sized (the finding says so).
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
        return audit_paths(resolved, config, roots=[allowed.root])

    try:
        report = await call(run)
    except FileNotFoundError as e:
        raise ToolError(f"error: no such file or folder: {e}\nnext: check the path") from e
    return answer(report.to_dict(), report.envelope())


@tool(WRITES_FILES)
async def fetch_model(
    model: Annotated[
        str, Field(description="A Hub id, 'owner/name@revision' (a branch, tag or commit).")
    ],
    to: Annotated[
        str, Field(description="Folder to download into, under the server's allowed root.")
    ],
    include: Annotated[
        list[str] | None,
        Field(description="Also fetch files matching these patterns, e.g. '*Q4_K_M.gguf'."),
    ] = None,
    allow_pickle: Annotated[
        bool, Field(description="Fetch pickle weights (they can run code when loaded).")
    ] = False,
    *,
    ctx: Ctx,
) -> Annotated[CallToolResult, LockOutput]:
    """Download a model pinned to one commit, safetensors only (pickle refused unless
    allowed), into a folder under the allowed root, with model.lock.json: the sha256 of
    every file, checked against the Hub's. The result is
    `hfdeploy fetch MODEL@REV --to DIR --json` (the lock).
    """
    from hfdeploy.model.fetch import fetch_model as fetch

    folder = limits(ctx).inside(to)
    lock, plan = await call(
        lambda: fetch(model, folder, allow_pickle=allow_pickle, include=include or ())
    )
    return answer(lock.to_dict(), _lock_envelope(lock, plan.skipped, folder))


def _lock_envelope(lock: ModelLock, skipped: tuple[tuple[str, str], ...], folder: Path) -> Envelope:
    result = (
        f"fetched {lock.repo_id}@{lock.revision} = commit {lock.commit_sha}: "
        f"{len(lock.files)} files, {lock.total_bytes / 2**30:.2f} GiB into {folder}"
    )
    why = "every file was downloaded at that commit and hashed; LFS files match the Hub's sha256"
    factors = tuple(f"skipped {name}: {reason}" for name, reason in skipped)
    return Envelope(result, "high", why, factors, (f"hfdeploy fetch --verify {folder}",))
