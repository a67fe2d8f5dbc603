"""``hfdeploy bench URL``: load-test an inference endpoint with stated metric formulas."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from hfdeploy.cli._output import Output, fail, handle_errors
from hfdeploy.errors import ClientBottleneckError, InvalidSettingError

__all__ = ["bench_command", "print_bench", "print_duplex"]


_Api = Annotated[
    str,
    typer.Option(
        help="auto, openai-chat, openai-completions, openai-embeddings, tei-embed, tei-rerank, "
        "tei-predict, tgi-generate, or duplex (a full-duplex speech WebSocket: Moshi, "
        "PersonaPlex; never auto-detected)."
    ),
]
_Profile = Annotated[
    str,
    typer.Option(
        help="synchronous | concurrent:N[,N...] | constant:RPS | poisson:RPS | throughput "
        "| sweep. Duplex: synchronous or concurrent:N[,N...] sessions held open."
    ),
]
_Duration = Annotated[
    float | None,
    typer.Option(help="Seconds per phase (default 10 unless --requests); duplex: per session."),
]
_InputTokens = Annotated[
    str, typer.Option(help="Synthetic input length: N, uniform:MIN:MAX or normal:MEAN:STD.")
]
_OutputTokens = Annotated[
    str, typer.Option(help="Output length asked for: N, uniform:MIN:MAX or normal:MEAN:STD.")
]
_BatchSize = Annotated[
    int, typer.Option(help="Inputs per request for embeddings; documents per rerank.")
]
_Slo = Annotated[
    str | None, typer.Option(help="SLOs for goodput, e.g. ttft=500ms,tpot=50ms,e2e=3s.")
]
_Model = Annotated[
    str | None, typer.Option(help="Model name for OpenAI APIs (default: /v1/models' first).")
]
_Tokenizer = Annotated[
    str | None,
    typer.Option(help="tokenizer.json (or its folder) to count tokens when usage is missing."),
]
_MemoryPid = Annotated[
    int | None,
    typer.Option(help="Sample this process tree's memory during the run: leak verdict."),
]
_Audio = Annotated[
    Path | None,
    typer.Option(help="Duplex: a 16-bit PCM WAV file to send, looped (made 24 kHz mono). "
                 "Default: a 440 Hz tone."),
]  # fmt: skip
_Codec = Annotated[
    str | None,
    typer.Option(help="Duplex: auto (Ogg-Opus when sphn is installed, else raw PCM), opus or pcm."),
]
_TextPrompt = Annotated[
    str | None, typer.Option(help="Duplex: the text_prompt query parameter (the role).")
]
_VoicePrompt = Annotated[
    str | None,
    typer.Option(help="Duplex: the voice_prompt query parameter (a file in the server's voices)."),
]
_HandshakeTimeout = Annotated[
    float | None, typer.Option(help="Duplex: seconds a session waits for the handshake (30).")
]
_QueueAfter = Annotated[
    float | None,
    typer.Option(help="Duplex: a handshake this many seconds after the phase's fastest, while "
                 "another session is served, counts as queued (1)."),
]  # fmt: skip


def bench_command(
    url: Annotated[str, typer.Argument(help="Base URL of the server, e.g. http://127.0.0.1:8080")],
    api: _Api = "auto",
    profile: _Profile = "synchronous",
    duration: _Duration = None,
    requests: Annotated[int | None, typer.Option(help="Requests per phase.")] = None,
    dataset: Annotated[
        str, typer.Option(help="'synthetic' or a JSONL file (prompt/messages/text/texts).")
    ] = "synthetic",
    input_tokens: _InputTokens = "128",
    output_tokens: _OutputTokens = "128",
    batch_size: _BatchSize = 1,
    slo: _Slo = None,
    seed: Annotated[int, typer.Option(help="Seed of the dataset and Poisson arrivals.")] = 0,
    model: _Model = None,
    max_concurrency: Annotated[
        int, typer.Option(help="Connections at most; open-loop sends beyond it queue (counted).")
    ] = 256,
    timeout: Annotated[
        float, typer.Option(help="Seconds before a request counts as failed.")
    ] = 600,
    warmup: Annotated[int, typer.Option(help="Warm-up requests, not counted.")] = 10,
    sweep_size: Annotated[int, typer.Option(help="Phases in a sweep, 3 or more.")] = 6,
    tokenizer: _Tokenizer = None,
    no_client_check: Annotated[
        bool,
        typer.Option("--no-client-check", help="Do not fail when the client falls behind."),
    ] = False,
    memory_pid: _MemoryPid = None,
    memory_interval: Annotated[float, typer.Option(help="Seconds between memory samples.")] = 0.5,
    audio: _Audio = None,
    codec: _Codec = None,
    text_prompt: _TextPrompt = None,
    voice_prompt: _VoicePrompt = None,
    handshake_timeout: _HandshakeTimeout = None,
    queue_after: _QueueAfter = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for bench.json, requests.csv, report.md and report.html "
            "(duplex: bench.json, sessions.csv, report.md)."
        ),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Measure latency (TTFT, TPOT, ITL, E2E), throughput and goodput of an endpoint; with
    --api duplex, how many full-duplex speech sessions stay real time.

    The API key, if any, comes from HFDEPLOY_API_KEY (sent as a bearer token).
    """
    from hfdeploy.bench import BenchConfig, run_bench
    from hfdeploy.bench.report import write_reports

    output = Output(json_mode=json_)
    duplex = {"--audio": audio, "--codec": codec, "--text-prompt": text_prompt,
              "--voice-prompt": voice_prompt, "--handshake-timeout": handshake_timeout,
              "--queue-after": queue_after}  # fmt: skip
    if api == "duplex":
        http_only = {"--requests": requests, "--dataset": dataset != "synthetic" or None,
                     "--input-tokens": input_tokens != "128" or None,
                     "--output-tokens": output_tokens != "128" or None,
                     "--batch-size": batch_size != 1 or None, "--slo": slo, "--model": model,
                     "--timeout": timeout != 600 or None, "--warmup": warmup != 10 or None,
                     "--sweep-size": sweep_size != 6 or None, "--tokenizer": tokenizer,
                     "--memory-pid": memory_pid}  # fmt: skip
        _duplex(output, url, profile, duration, max_concurrency, no_client_check, out, duplex,
                http_only)  # fmt: skip
        return
    with handle_errors(json_mode=json_):
        _refuse_given(duplex, "only used with --api duplex", "Drop {flags}, or pass --api duplex.")
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
        _run_and_report(output, cfg, run_bench, write_reports, print_bench, out,
                        "bench.json, requests.csv, report.md, report.html")  # fmt: skip


def _refuse_given(flags: dict[str, Any], reason: str, hint: str) -> None:
    """An error naming the first flag given (not None) of ``flags``, and all of them."""
    given = [name for name, value in flags.items() if value is not None]
    if given:
        raise InvalidSettingError(given[0], flags[given[0]], reason,
                                  hint=hint.format(flags=", ".join(given)))  # fmt: skip


def _duplex(
    output: Output,
    url: str,
    profile: str,
    duration: float | None,
    max_sessions: int,
    no_client_check: bool,
    out: Path | None,
    flags: dict[str, Any],
    http_only: dict[str, Any],
) -> None:
    from hfdeploy.bench.duplex import run_duplex_bench
    from hfdeploy.bench.duplex_config import DuplexConfig
    from hfdeploy.bench.duplex_report import write_duplex_reports

    json_ = output.json_mode
    with handle_errors(json_mode=json_):
        _refuse_given(
            http_only,
            "not used with --api duplex",
            "Drop {flags}: a duplex session streams audio, it sends no requests.",
        )
        audio = flags["--audio"]
        cfg = DuplexConfig(
            url=url, profile=profile, duration=10.0 if duration is None else duration,
            handshake_timeout=flags["--handshake-timeout"] or 30.0,
            queue_after=1.0 if flags["--queue-after"] is None else flags["--queue-after"],
            audio=None if audio is None else str(audio), codec=flags["--codec"] or "auto",
            text_prompt=flags["--text-prompt"], voice_prompt=flags["--voice-prompt"],
            max_sessions=max_sessions, no_client_check=no_client_check,
        )  # fmt: skip
        _run_and_report(output, cfg, run_duplex_bench, write_duplex_reports, print_duplex, out,
                        "bench.json, sessions.csv, report.md")  # fmt: skip


def _run_and_report(
    output: Output, cfg: Any, run: Any, write: Any, show: Any, out: Path | None, files: str
) -> None:
    """Validate, run with progress, write the reports, print; a client that could not keep
    up fails the command after its figures are shown."""
    cfg.validate()
    result = _run_with_progress(cfg, run, quiet=output.json_mode)
    data = result.to_dict()
    if out is not None:
        write(data, out)
    if output.json_mode:
        output.data(result.to_dict(records=False))
    else:
        show(output, data)
        if out is not None:
            output.print(f"reports: {out}/{files}")
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
        output.print(line + (f"; {rss['note']}" if rss.get("note") else ""))
    if data.get("sweep"):
        sw = data["sweep"]
        output.print(
            f"sweep: knee {sw['knee_rate']} req/s; highest rate meeting the SLOs "
            f"{sw['max_rate_meeting_slo']} req/s"
        )
    output.print("formulas:")
    for k, v in data["formulas"].items():
        output.print(f"  {k}: {v}")


def print_duplex(output: Output, data: dict[str, Any]) -> None:
    """The console report of a duplex run: phases, sessions, the real-time verdict, formulas."""
    from rich.markup import escape
    from rich.table import Table

    from hfdeploy.bench.duplex_report import (
        PHASE_HEADERS,
        SESSION_HEADERS,
        phase_rows,
        session_rows,
    )

    c = data["config"]
    lines = [
        f"{c['ws_url']}  api duplex  profile {c['profile']}  {c['duration_s']:g} s per session",
        f"audio sent: {c['audio']['source']} ({c['audio']['note']}), {c['codec_note']}",
    ]
    output.print(escape("\n".join(lines)))
    # One sessions table per phase, without the phase column: it fits 120 columns.
    tables = [("Phases (times in ms)", PHASE_HEADERS, phase_rows(data))]
    sessions = session_rows(data)
    for p in data["phases"]:
        rows = [row[1:] for row in sessions if row[0] == p["name"]]
        tables.append((f"Sessions of {p['name']} (times in ms)", SESSION_HEADERS[1:], rows))
    for title, headers, rows in tables:
        t = Table(title=title, title_justify="left")
        for i, h in enumerate(headers):
            t.add_column(
                h,
                justify="left" if i == 0 or h == "outcome" else "right",
                no_wrap=i == 0,
                min_width=max(len(word) for word in h.split()),
            )
        for row in rows:
            t.add_row(*(escape(cell) for cell in row))
        output.print(t)
    lines = []
    for p in data["phases"]:
        s = p["summary"]
        lines += [f"server error ({p['name']}): {msg}" for msg in s["error_messages"]]
        if s["refused_by_kind"]:
            lines.append(f"refused ({p['name']}): {s['refused_by_kind']}")
    n = data["largest_realtime_sessions"]
    lines += [
        f"largest session count that stayed real time: {n if n is not None else 'none'}",
        f"rule: {data['realtime_rule']['rule']}",
        "formulas:",
        *(f"  {k}: {v}" for k, v in data["formulas"].items()),
    ]
    output.print(escape("\n".join(lines)))
