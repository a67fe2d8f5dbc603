"""``hfdeploy size MODEL``: GPU memory breakdown and fit over the GPU catalog."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from hfdeploy.catalog.engines import sizing_engines
from hfdeploy.cli._output import Output, gib, handle_errors
from hfdeploy.cli.inspect import JsonOpt, ModelArg
from hfdeploy.model.resolve import inspect_model
from hfdeploy.sizing.report import SizeReport, size_model
from hfdeploy.sizing.settings import DTYPES, KV_DTYPES, QUANTIZATIONS

__all__ = ["render_size", "size_command"]


GpuOpt = Annotated[str | None, typer.Option(help="Fit against one GPU (default: the catalog).")]
EngineOpt = Annotated[
    str | None, typer.Option(help="Serving engine: " + ", ".join(sizing_engines()) + ".")
]
DtypeOpt = Annotated[str, typer.Option(help="Serving dtype: " + ", ".join(DTYPES) + ".")]
KvDtypeOpt = Annotated[str, typer.Option(help="KV cache dtype: " + ", ".join(KV_DTYPES) + ".")]
ContextOpt = Annotated[
    int | None, typer.Option(help="Tokens per request (default: model max, capped at 8192).")
]
ConcurrencyOpt = Annotated[int, typer.Option(help="Requests held at once (vLLM --max-num-seqs).")]
TpOpt = Annotated[int, typer.Option(help="Tensor-parallel degree.")]
PpOpt = Annotated[
    int, typer.Option(help="Pipeline-parallel stages (nodes of --tp GPUs; vLLM, SGLang).")
]
UtilOpt = Annotated[float | None, typer.Option(help="Engine memory fraction (vLLM default 0.9).")]
BatchedOpt = Annotated[
    int | None,
    typer.Option(help="Batched-token budget (activation peak; default: the engine's on the GPU)."),
]
MaxSeqsOpt = Annotated[
    int | None,
    typer.Option(help="Sequences the engine runs at once (vLLM's --max-num-seqs; its default)."),
]
QuantOpt = Annotated[
    str | None, typer.Option(help="What-if quantization: " + ", ".join(QUANTIZATIONS) + ".")
]


def render_size(out: Output, r: SizeReport) -> None:
    """The human view: settings, breakdown, fit table, notes."""
    e, s, p = r.estimate, r.estimate.settings, r.profile
    duplex = p.duplex is not None
    out.print(
        f"[bold]{p.repo_id or p.location}[/]  {p.task.task}, {p.parameters:,} parameters\n"
        + (
            f"engine [bold]{s.engine}[/]  dtype {s.dtype}  kv {s.kv_dtype}  context "
            f"{s.context:,} frames  sessions {s.concurrency}"
            if duplex
            else f"engine [bold]{s.engine}[/]  dtype {s.dtype}  kv {s.kv_dtype}  context "
            f"{s.context:,}  concurrency {s.concurrency}  tp {s.tp}"
            + (f"  pp {s.pp}" if s.pp > 1 else "")
            + f"  batched tokens {s.batched_tokens:,}"
            + (f"  quantization {s.quantization}" if s.quantization else "")
        )
    )
    t = Table(title="GPU memory per rank", title_justify="left")
    t.add_column("term")
    t.add_column("size", justify="right")
    t.add_column("conf.")
    t.add_column("driven by")
    w = e.weights.drivers
    about = f"{w.get('source')}, {s.dtype}" + (f", TP {s.tp}" if s.tp > 1 else "")
    t.add_row("weights", gib(e.weights.bytes), e.weights.confidence,
              e.weights.basis if duplex else about)  # fmt: skip
    if duplex:
        t.add_row(
            "kv cache", gib(e.kv_cache.bytes), e.kv_cache.confidence,
            f"{s.concurrency} session(s) x {gib(e.kv_bytes_per_sequence)}: a ring buffer of "
            f"{s.context:,} frames x {e.kv_bytes_per_token:,} B, held whole per session",
        )  # fmt: skip
    elif e.kv_bytes_per_token or e.kv_cache.bytes:
        kinds = ", ".join(
            f"{g['layers']} {g['kind']}"
            + (f" ({g['tokens_held']:,} tokens held)" if g["window"] else "")
            for g in e.kv_groups
        )
        t.add_row(
            "kv cache", gib(e.kv_cache.bytes), e.kv_cache.confidence,
            f"{s.concurrency} x {gib(e.kv_bytes_per_sequence_per_rank)} per request at "
            f"{s.context:,} tokens; {e.kv_bytes_per_token:,} B/token; layers: {kinds}",
        )  # fmt: skip
    else:
        t.add_row("kv cache", gib(0), e.kv_cache.confidence, e.kv_cache.basis)
    t.add_row("activations", gib(e.activations.bytes), e.activations.confidence,
              f"one frame of {s.concurrency} session(s) a step" if duplex
              else f"{s.batched_tokens:,} batched tokens")  # fmt: skip
    t.add_row("cuda context", gib(e.cuda_context.bytes), e.cuda_context.confidence, "prior")
    t.add_row("non-torch", gib(e.non_torch.bytes), e.non_torch.confidence, f"prior at TP {s.tp}")
    t.add_row(
        "cuda graphs",
        gib(e.cuda_graphs.bytes),
        e.cuda_graphs.confidence,
        e.cuda_graphs.basis.split(";")[0],
    )
    t.add_row(
        "[bold]total[/]",
        f"[bold]{gib(e.total_bytes)}[/]",
        "",
        f"per GPU rank; x{s.tp * s.pp} GPUs" if s.tp * s.pp > 1 else "one GPU",
    )
    out.print(t)
    fit = Table(title=f"Fit (at TP {s.tp}; budget = memory x {s.gpu_memory_utilization or 1.0:g})",
                title_justify="left")  # fmt: skip
    for col, justify in (("gpu", "left"), ("fits", "left"), ("headroom", "right"),
                         ("max conc. @ ctx", "right"), ("max ctx @ conc.", "right"),
                         ("min GPUs (TP)", "right")):  # fmt: skip
        fit.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in r.fits:
        fit.add_row(
            row.gpu,
            "[green]yes[/]" if row.fits else f"[red]no[/] ({row.reason})",
            gib(row.headroom_bytes),
            "-" if row.max_concurrency is None else f"{row.max_concurrency:,}",
            "-" if row.max_context is None else f"{row.max_context:,}",
            "-" if row.min_count is None else str(row.min_count),
        )
    out.print(fit)
    for note in (*e.notes, *p.notes):
        out.print(f"[yellow]note:[/] {note}")


def size_command(
    model: ModelArg,
    gpu: GpuOpt = None,
    engine: EngineOpt = None,
    dtype: DtypeOpt = "auto",
    kv_dtype: KvDtypeOpt = "auto",
    context: ContextOpt = None,
    concurrency: ConcurrencyOpt = 1,
    tp: TpOpt = 1,
    pp: PpOpt = 1,
    gpu_memory_utilization: UtilOpt = None,
    max_batched_tokens: BatchedOpt = None,
    max_seqs: MaxSeqsOpt = None,
    quantization: QuantOpt = None,
    json_: JsonOpt = False,
) -> None:
    """GPU memory needed (weights, KV cache, activations, overhead) and which GPUs fit."""
    out = Output(json_mode=json_)
    with handle_errors(json_mode=json_):
        profile = inspect_model(model)
        report = size_model(
            profile, gpu=gpu, engine=engine, dtype=dtype, kv_dtype=kv_dtype, context=context,
            concurrency=concurrency, tp=tp, pp=pp, max_batched_tokens=max_batched_tokens,
            gpu_memory_utilization=gpu_memory_utilization, quantization=quantization,
            max_seqs=max_seqs,
        )  # fmt: skip
    if json_:
        out.data(report.to_dict())
    else:
        render_size(out, report)
