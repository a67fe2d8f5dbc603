"""``hfdeploy inspect MODEL``: what a model is, from its configs and headers."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from hfdeploy.cli._output import Output, gib, handle_errors
from hfdeploy.model.profile import ModelProfile
from hfdeploy.model.resolve import inspect_model

__all__ = ["inspect_command", "render_profile"]

ModelArg = Annotated[
    str,
    typer.Argument(
        help="A local folder, a .gguf file, a Hub id ('owner/name'), optionally '@revision'.",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def render_profile(out: Output, p: ModelProfile) -> None:
    """The human view of a profile."""
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold")
    t.add_row("model", p.repo_id or p.location)
    if p.source != "local" or p.commit_sha:
        t.add_row("source", f"{p.source} @ {p.commit_sha or p.revision or '-'}")
    t.add_row("architecture", ", ".join(p.architectures) or "-")
    t.add_row("model type", str(p.model_type or "-"))
    t.add_row("task", f"{p.task.task} ({p.task.kind}; from {p.task.source})")
    t.add_row("parameters", f"{p.parameters:,} ({p.weights.source})")
    for dtype, s in sorted(p.weights.by_dtype.items(), key=lambda kv: -kv[1].bytes):
        extra = "" if s.parameters else " (buffers / quantization aux, not parameters)"
        t.add_row(
            f"  {dtype}", f"{s.parameters:,} params, {s.tensors} tensors, {gib(s.bytes)}{extra}"
        )
    if p.weights.expert_parameters:
        active = f", {p.arch.moe.active} of {p.arch.moe.num_experts} active" if p.arch.moe else ""
        t.add_row("  experts", f"{p.weights.expert_parameters:,} params{active}")
    t.add_row("weights", gib(p.weights.bytes))
    if p.duplex is not None:
        _duplex_rows(t, p)
    if p.arch.groups or p.arch.unknown_layers:
        kinds = [
            f"{g.count} {g.kind}" + (f" (window {g.window:,})" if g.window else "")
            for g in p.arch.groups
        ] + [f"[red]{n} {name}: unknown[/]" for name, n in p.arch.unknown_layers]
        source = f"; {p.arch.layer_types_source}" if p.arch.layer_types_source else ""
        t.add_row("layers", ", ".join(kinds) + source)
    f = p.formats
    formats = []
    if f.safetensors:
        formats.append(f"safetensors ({len(f.safetensors)})")
    if f.pickle:
        formats.append(f"[red]pickle ({len(f.pickle)}, unsafe)[/]")
    for g in f.gguf:
        formats.append(f"gguf {g.file} ({g.file_type or '?'}: {', '.join(g.tensor_types)})")
    formats.extend(f"gguf {name}" for name in f.gguf_unread)
    if f.onnx:
        formats.append(f"onnx ({len(f.onnx)})")
    t.add_row("formats", "; ".join(formats) or "none")
    t.add_row("quantization", p.quant_method or "none")
    if p.duplex is not None:
        d = p.duplex
        seconds = d.context_frames * d.frame_ms / 1000
        t.add_row("max context", f"{d.context_frames:,} frames of {d.frame_ms} ms ({seconds:g} s)")
    else:
        t.add_row("max context", f"{p.max_context:,}" if p.max_context else "-")
    t.add_row("tokenizer", "yes" if p.tokenizer else "no")
    t.add_row("size on disk", f"{gib(p.size_on_disk)} in {p.files} files")
    if p.hub:
        t.add_row("hub", f"license {p.hub.license or '-'}, gated {p.hub.gated}")
    t.add_row("read", f"{p.bytes_read:,} bytes (configs and headers only)")
    out.print(t)
    for note in p.notes:
        out.print(f"[yellow]note:[/] {note}")


def inspect_command(model: ModelArg, json_: JsonOpt = False) -> None:
    """Profile a model: architecture, task, parameters by dtype, formats, revision."""
    out = Output(json_mode=json_)
    with handle_errors(json_mode=json_):
        profile = inspect_model(model)
    if json_:
        out.data(profile.to_dict())
    else:
        render_profile(out, profile)


def _duplex_rows(t: Table, p: ModelProfile) -> None:
    """A full-duplex model's parts and shape."""
    d = p.duplex
    assert d is not None
    for c in (d.lm, d.codec):
        what = "language model" if c.role == "lm" else "Mimi codec"
        t.add_row(f"  {c.role}", f"{c.parameters:,} params, {gib(c.bytes)} {c.dtype} "
                  f"({what}: {', '.join(c.files)})")  # fmt: skip
    t.add_row(
        "duplex",
        f"{d.variant}: {d.layers} layers x {d.dim} ({d.heads} heads), {d.codebooks} audio "
        f"streams in, depformer {d.depformer_layers} x {d.depformer_dim} with {d.dep_q} steps "
        f"a frame; KV {d.kv_bytes_per_frame(2) // 1024:,} KiB a frame in bf16"
        + (f"; voices {d.voices}" if d.voices else ""),
    )
