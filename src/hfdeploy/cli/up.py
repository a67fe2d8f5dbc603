"""``hfdeploy up MODEL``: inspect, plan, generate, audit, serve, bench and report, in one go."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer

from hfdeploy.cli._output import Output, handle_errors

__all__ = ["up_command"]


def up_command(
    model: Annotated[str, typer.Argument(help="A local folder, a .gguf file or owner/name[@rev].")],
    out: Annotated[
        Path, typer.Option(help="Folder for the deployment files and the report.")
    ] = Path("deploy"),
    engine: Annotated[str, typer.Option(help="Engine for the plan, or auto.")] = "auto",
    gpu: Annotated[
        str | None, typer.Option(help="GPU for the plan (default: the cheapest that fits).")
    ] = None,
    port: Annotated[int, typer.Option(help="Port for the local server.")] = 8080,
    bench_duration: Annotated[
        float, typer.Option(help="Seconds of benchmark in all (two phases).", min=1)
    ] = 10.0,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Stop after the report of the generated files.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print report.json at the end.")] = False,
) -> None:
    """The whole flow on one machine; ends with a measured endpoint and a report.

    Writes the deployment files plus report.md, report.html and report.json into --out. The
    local server is stopped at the end, and on Ctrl-C or SIGTERM (exit 130 or 143). Exit
    code 0 when every step passed.
    """
    from hfdeploy.up import Step, run_up

    output = Output(json_mode=json_)

    def on_step(step: Step) -> None:
        if json_:
            return
        mark = {"ok": "[green]ok[/]", "skipped": "[yellow]skipped[/]", "failed": "[red]failed[/]"}
        output.err.print(
            f"{mark[step.status]:>18} {step.name:<14} {step.seconds:7.2f}s  {step.detail}",
            markup=True, highlight=False,
        )  # fmt: skip

    received = [signal.SIGINT]

    def interrupt(signum: int, _frame: object) -> None:
        # SIGTERM (kill, docker stop) must stop the server too: it runs in its own session
        # and would outlive this process. KeyboardInterrupt unwinds through the finally.
        received[0] = signal.Signals(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        with handle_errors(json_mode=json_):
            result = run_up(
                model, out, engine=None if engine == "auto" else engine, gpu=gpu, port=port,
                bench_duration=bench_duration, serve=not no_serve, on_step=on_step,
            )  # fmt: skip
    except KeyboardInterrupt:
        output.err.print("interrupted: the local server was stopped")
        raise typer.Exit(128 + received[0]) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if json_:
        output.data(result.to_dict())
        return
    env = result.envelope
    if env is not None:
        output.print(env.to_text())
    output.print(f"report: {out / 'report.html'} (and report.md, report.json)")
