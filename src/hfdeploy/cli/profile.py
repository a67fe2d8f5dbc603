"""``hfdeploy profile coldstart`` and ``hfdeploy profile memory``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from hfdeploy.cli._output import Output, gib, handle_errors

__all__ = ["profile_app"]

profile_app = typer.Typer(
    help="Time a server's cold start by phase; watch its memory for leaks.",
    no_args_is_help=True,
)


def _write(out: Path | None, data: dict[str, Any]) -> None:
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


@profile_app.command("coldstart")
def coldstart_command(
    command: Annotated[list[str], typer.Argument(help="The server command, after --.")],
    url: Annotated[
        str, typer.Option(help="Where the server will listen.")
    ] = "http://127.0.0.1:8080",
    runs: Annotated[int, typer.Option(help="Starts to time; medians are reported.")] = 3,
    api: Annotated[
        str, typer.Option(help="API of the first request (tei-embed, openai-chat, ...).")
    ] = "tei-embed",
    ready_path: Annotated[
        str | None, typer.Option(help="Readiness route (default: /ready, else /health).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each start.")] = 600,
    out: Annotated[Path | None, typer.Option(help="Write the JSON result here too.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Start COMMAND --runs times; time listening socket, ready and first request."""
    from hfdeploy.bench.coldstart import profile_coldstart

    output = Output(json_mode=json_)
    with handle_errors(json_mode=json_):
        data = profile_coldstart(
            command, url=url, runs=runs, api=api, ready_path=ready_path, timeout=timeout
        )
        _write(out, data)
    if json_:
        output.data(data)
        return
    from rich.table import Table

    t = Table(title=f"cold start: {' '.join(command)}", title_justify="left")
    for h in ("run", "listening s", "ready s", "first request s", "server phases s"):
        t.add_column(h, justify="right")

    def phases(p: dict[str, float] | None) -> str:
        return ", ".join(f"{k} {v:.3f}" for k, v in (p or {}).items()) or "-"

    def s(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    for r in data["runs"]:
        t.add_row(str(r["run"]), s(r["listening_s"]), s(r["ready_s"]),
                  s(r["first_request_s"]), phases(r.get("server_phases")))  # fmt: skip
    m = data["median"]
    t.add_row("median", s(m["listening_s"]), s(m["ready_s"]), s(m["first_request_s"]),
              phases(m.get("server_phases")))  # fmt: skip
    output.print(t)
    for note in data["notes"]:
        output.print(f"note: {note}")


@profile_app.command("memory")
def memory_command(
    command: Annotated[
        list[str] | None, typer.Argument(help="A command to start and watch, after --.")
    ] = None,
    pid: Annotated[
        int | None, typer.Option(help="Watch this running process (and children).")
    ] = None,
    duration: Annotated[float, typer.Option(help="Seconds to sample.")] = 60,
    interval: Annotated[float, typer.Option(help="Seconds between samples.")] = 1.0,
    warmup: Annotated[
        float | None,
        typer.Option(help="Seconds of start-up to leave out of the fit [the first 20%].", min=0),
    ] = None,
    metrics_url: Annotated[
        str | None,
        typer.Option(help="Server URL whose /metrics counts requests (fit per request)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the JSON result here too.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Sample RSS (and GPU memory via NVML) of a process tree; verdict stable/growing/leak."""
    from hfdeploy.bench.memory_profile import profile_memory

    output = Output(json_mode=json_)
    with handle_errors(json_mode=json_):
        result = profile_memory(
            command, pid=pid, duration=duration, interval=interval, warmup=warmup,
            metrics_url=metrics_url, out=out,
        )  # fmt: skip
        data = result.to_dict()
    if json_:
        output.data(data)
        return
    rss = data["rss"]
    output.print(
        f"pid {result.pid}: {len(result.samples)} samples; "
        f"RSS {gib(data.get('rss_first_bytes'))} -> "
        f"{gib(data.get('rss_last_bytes'))} (peak {gib(data.get('rss_peak_bytes'))})"
    )
    output.print(f"verdict (host RSS): {rss['verdict']}")
    if "slope" in rss:
        output.print(
            f"  slope {rss['slope']:,.1f} {rss['unit']} (95% CI {rss['slope_ci95'][0]:,.1f} to "
            f"{rss['slope_ci95'][1]:,.1f}), against {rss['against']}"
        )
    if rss.get("note"):
        output.print(f"  {rss['note']}")
    output.print(f"  rule: {rss['rule']}")
    if data["gpu"]:
        gpu = data["gpu"]
        output.print(
            f"verdict (GPU memory, {data['gpu_scope'].split(':')[0]}): {gpu['verdict']}"
            + (f"; slope {gpu['slope']:,.1f} {gpu['unit']}" if "slope" in gpu else "")
            + f"; last {gib(data['gpu_last_bytes'])}"
            + (f"; {gpu['note']}" if gpu.get("note") else "")
        )
    if data["process_exited"]:
        output.print("note: the process exited during sampling")
