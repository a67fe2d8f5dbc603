"""``hfdeploy bench URL``: load-test an inference endpoint with stated metric formulas."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from hfdeploy.cli._output import Output, fail, handle_errors
from hfdeploy.errors import ClientBottleneckError

__all__ = ["bench_command", "print_bench"]


def bench_command(
    url: Annotated[str, typer.Argument(help="Base URL of the server, e.g. http://127.0.0.1:8080")],
    api: Annotated[
        str,
        typer.Option(
            help="auto, openai-chat, openai-completions, openai-embeddings, tei-embed, "
            "tei-rerank, tei-predict or tgi-generate."
        ),
    ] = "auto",
    profile: Annotated[
        str,
        typer.Option(
            help="synchronous | concurrent:N[,N...] | constant:RPS | poisson:RPS | throughput "
            "| sweep."
        ),
    ] = "synchronous",
    duration: Annotated[
        float | None, typer.Option(help="Seconds per phase (default 10 unless --requests).")
    ] = None,
    requests: Annotated[int | None, typer.Option(help="Requests per phase.")] = None,
    dataset: Annotated[
        str, typer.Option(help="'synthetic' or a JSONL file (prompt/messages/text/texts).")
    ] = "synthetic",
    input_tokens: Annotated[
        str, typer.Option(help="Synthetic input length: N, uniform:MIN:MAX or normal:MEAN:STD.")
    ] = "128",
    output_tokens: Annotated[
        str, typer.Option(help="Output length asked for: N, uniform:MIN:MAX or normal:MEAN:STD.")
    ] = "128",
    batch_size: Annotated[
        int, typer.Option(help="Inputs per request for embeddings; documents per rerank.")
    ] = 1,
    slo: Annotated[
        str | None, typer.Option(help="SLOs for goodput, e.g. ttft=500ms,tpot=50ms,e2e=3s.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the dataset and Poisson arrivals.")] = 0,
    model: Annotated[
        str | None, typer.Option(help="Model name for OpenAI APIs (default: /v1/models' first).")
    ] = None,
    max_concurrency: Annotated[
        int, typer.Option(help="Connections at most; open-loop sends beyond it queue (counted).")
    ] = 256,
    timeout: Annotated[
        float, typer.Option(help="Seconds before a request counts as failed.")
    ] = 600,
    warmup: Annotated[int, typer.Option(help="Warm-up requests, not counted.")] = 10,
    sweep_size: Annotated[int, typer.Option(help="Phases in a sweep, 3 or more.")] = 6,
    tokenizer: Annotated[
        str | None,
        typer.Option(help="tokenizer.json (or its folder) to count tokens when usage is missing."),
    ] = None,
    no_client_check: Annotated[
        bool,
        typer.Option("--no-client-check", help="Do not fail when the client falls behind."),
    ] = False,
    memory_pid: Annotated[
        int | None,
        typer.Option(help="Sample this process tree's memory during the run: leak verdict."),
    ] = None,
    memory_interval: Annotated[float, typer.Option(help="Seconds between memory samples.")] = 0.5,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for bench.json, requests.csv, report.md and report.html."),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Measure latency (TTFT, TPOT, ITL, E2E), throughput and goodput of an endpoint.

    The API key, if any, comes from HFDEPLOY_API_KEY (sent as a bearer token).
    """
    from hfdeploy.bench import BenchConfig, run_bench
    from hfdeploy.bench.report import write_reports

    output = Output(json_mode=json_)
    with handle_errors(json_mode=json_):
        cfg = BenchConfig(
            url=url, api=api, profile=profile,
            duration=duration if duration is not None or requests is not None else 10.0,
            requests=requests, dataset=dataset, input_tokens=input_tokens,
            output_tokens=output_tokens, batch_size=batch_size, slo=slo, seed=seed, model=model,
            max_concurrency=max_concurrency, timeout=timeout, warmup=warmup,
            sweep_size=sweep_size, tokenizer=tokenizer, api_key=os.environ.get("HFDEPLOY_API_KEY"),
            no_client_check=no_client_check, memory_pid=memory_pid,
            memory_interval=memory_interval,
        )  # fmt: skip
        cfg.validate()
        result = _run_with_progress(cfg, run_bench, quiet=json_)
        data = result.to_dict()
        if out is not None:
            write_reports(data, out)
    if json_:
        output.data(result.to_dict(records=False))
    else:
        print_bench(output, data)
        if out is not None:
            output.print(f"reports: {out}/bench.json, requests.csv, report.md, report.html")
    if not result.valid:
        fail(ClientBottleneckError(result.invalid_reason or "", offered=None, achieved=None))


def _run_with_progress(cfg: Any, run: Any, *, quiet: bool) -> Any:
    if quiet:
        return run(cfg)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("warm-up", total=None)
        phases = 0

        def progress(kind: str, n: int, total: int | None) -> None:
            nonlocal phases
            if kind == "phase":
                phases += 1
                bar.reset(task, total=total, description=f"phase {phases}")
            else:
                bar.advance(task, n)

        return run(cfg, progress)


def print_bench(output: Output, data: dict[str, Any]) -> None:
    """The console report: phases, the main phase's percentiles, the formulas."""
    from rich.table import Table

    from hfdeploy.bench.report import (
        PERCENTILE_HEADERS,
        percentile_rows,
        phase_headers,
        phase_rows,
    )

    c = data["config"]
    output.print(
        f"{c['url']}  api {c['api']}  model {c['model'] or '-'}  profile {c['profile']}  "
        f"tokens: input from {data['token_counts']['input']}, output from "
        f"{data['token_counts']['output']}"
    )
    t = Table(title="Phases", title_justify="left")
    for i, h in enumerate(phase_headers(data)):
        t.add_column(h, justify="left" if i < 2 else "right")
    for row in phase_rows(data):
        t.add_row(*row)
    output.print(t)
    s = data["summary"]
    if s:
        p = Table(title=f"Latency, phase {data['summary_phase']}", title_justify="left")
        for i, h in enumerate(PERCENTILE_HEADERS):
            p.add_column(h, justify="left" if i == 0 else "right")
        for row in percentile_rows(s):
            p.add_row(*row)
        output.print(p)
        output.print(f"errors: {s['errors']} of {s['requests']} {s['errors_by_kind'] or ''}")
    for ph in data["phases"]:
        server = ph.get("server")
        if server and server.get("client_over_server") is not None:
            output.print(
                f"server counter {server['counter']} ({ph['name']}): {server['requests']:g} "
                f"requests; client/server = {server['client_over_server']}"
            )
    memory = data.get("memory")
    if memory:
        rss = memory["rss"]
        line = f"memory of pid {memory.get('pid', '')}: {rss['verdict']}"
        if "slope" in rss:
            line += (
                f" (slope {rss['slope']:,.1f} {rss['unit']}, 95% CI {rss['slope_ci95'][0]:,.1f}"
                f" to {rss['slope_ci95'][1]:,.1f}; RSS {memory['rss_first_bytes'] / 2**20:,.1f}"
                f" -> {memory['rss_last_bytes'] / 2**20:,.1f} MiB)"
            )
        output.print(line)
    if data.get("sweep"):
        sw = data["sweep"]
        output.print(
            f"sweep: knee {sw['knee_rate']} req/s; highest rate meeting the SLOs "
            f"{sw['max_rate_meeting_slo']} req/s"
        )
    output.print("formulas:")
    for k, v in data["formulas"].items():
        output.print(f"  {k}: {v}")
