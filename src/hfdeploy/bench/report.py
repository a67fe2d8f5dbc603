"""A bench result as Markdown, CSV, JSON or one self-contained HTML page (inline SVG plots).

Strings from the result's dict (``BenchResult.to_dict()``), pure; ``write_reports`` writes
them into a folder (``hfdeploy bench --out``).
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from pathlib import Path
from typing import Any

__all__ = [
    "PERCENTILE_HEADERS", "html_table", "md_table", "to_csv", "to_html", "to_json",
    "to_markdown", "write_reports",
]  # fmt: skip

_METRICS = (
    ("ttft_ms", "TTFT ms"),
    ("tpot_ms", "TPOT ms"),
    ("itl_ms", "ITL ms"),
    ("e2e_ms", "E2E ms"),
    ("send_lag_ms", "send lag ms"),
)
_PCTS = ("p50", "p90", "p95", "p99", "p99.9", "mean")
PERCENTILE_HEADERS = ["metric", *_PCTS]
_CSV_FIELDS = (
    "phase", "index", "intended_ms", "send_lag_ms", "ttft_ms", "tpot_ms", "e2e_ms", "status",
    "error", "input_tokens", "output_tokens", "chunks",
)  # fmt: skip


def to_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2) + "\n"


def to_csv(result: dict[str, Any]) -> str:
    """One row per request, every phase, times in ms from the phase start."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for phase in result["phases"]:
        for row in phase.get("records", ()):
            w.writerow({"phase": phase["name"], **row})
    return buf.getvalue()


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.3f}" if abs(x) < 10 else f"{x:,.1f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def _keep(result: dict[str, Any]) -> list[bool]:
    """Which columns this result fills: streaming ones only when a phase streamed, goodput
    only when SLOs were given."""
    streams = any(p["summary"].get("ttft_ms") is not None for p in result["phases"])
    slo = any(p["summary"].get("goodput") is not None for p in result["phases"])
    return [(h not in _STREAM_ONLY or streams) and (h != "goodput/s" or slo) for h in PHASE_HEADERS]


def phase_headers(result: dict[str, Any]) -> list[str]:
    return [h for h, k in zip(PHASE_HEADERS, _keep(result), strict=True) if k]


def phase_rows(result: dict[str, Any]) -> list[list[str]]:
    """One row per phase: load, completed, errors, throughput, and the main percentiles."""
    keep = _keep(result)
    rows = []
    for p in result["phases"]:
        s = p["summary"]
        load = f"{p['rate']:g} req/s" if p["rate"] else f"{p['concurrency']} in flight"
        ttft = (s["ttft_ms"] or {}).get("p50")
        tpot = (s["tpot_ms"] or {}).get("p50")
        e2e = s["e2e_ms"] or {}
        row = [
            p["name"], load, _fmt(s["completed"]), _fmt(s["errors"]),
            _fmt(s["request_throughput"]), _fmt(s.get("goodput")),
            _fmt(s["output_token_throughput"]), _fmt(ttft), _fmt(tpot), _fmt(e2e.get("p50")),
            _fmt(e2e.get("p99")),
        ]  # fmt: skip
        rows.append([c for c, k in zip(row, keep, strict=True) if k])
    return rows


PHASE_HEADERS = [
    "phase", "load", "completed", "errors", "req/s", "goodput/s", "out tok/s", "TTFT p50",
    "TPOT p50", "E2E p50", "E2E p99",
]  # fmt: skip
_STREAM_ONLY = {"out tok/s", "TTFT p50", "TPOT p50"}


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def percentile_rows(summary: dict[str, Any]) -> list[list[str]]:
    rows = []
    for key, label in _METRICS:
        stats = summary.get(key)
        if stats:
            rows.append([label, *(_fmt(stats.get(p)) for p in _PCTS)])
    return rows


def to_markdown(result: dict[str, Any]) -> str:
    c = result["config"]
    s = result["summary"] or {}
    lines = [
        f"# hfdeploy bench: {c['url']}",
        "",
        f"API `{c['api']}`, model `{c['model'] or '-'}`, profile `{c['profile']}`, "
        f"started {result['started']}.",
        f"Token counts: input from {result['token_counts']['input']}, output from "
        f"{result['token_counts']['output']}.",
        "",
    ]
    if not result["valid"]:
        lines += [f"**INVALID RUN**: {result['invalid_reason']}", ""]
    lines += ["## Phases", "", md_table(phase_headers(result), phase_rows(result)), ""]
    if s:
        lines += [
            f"## Latency of phase {result['summary_phase']}",
            "",
            md_table(PERCENTILE_HEADERS, percentile_rows(s)),
            "",
            f"Errors: {s['errors']} of {s['requests']} ({s['errors_by_kind'] or 'none'}).",
            "",
        ]
    if result.get("sweep"):
        sw = result["sweep"]
        lines += [
            "## Sweep",
            "",
            f"- synchronous: {_fmt(sw['synchronous_throughput'])} req/s; maximum: "
            f"{_fmt(sw['max_throughput'])} req/s",
            f"- saturation knee: {_fmt(sw['knee_rate'])} req/s",
            f"- highest rate meeting the SLOs: {_fmt(sw['max_rate_meeting_slo'])} req/s",
            f"- rule: {sw['rule']}",
            "",
        ]
    lines += ["## Formulas", ""]
    lines += [f"- `{k}`: {v}" for k, v in result["formulas"].items()]
    return "\n".join(lines) + "\n"


# --- HTML -----------------------------------------------------------------------------------

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    start = math.floor(lo / step) * step
    return [start + i * step for i in range(n + 2) if start + i * step <= hi + step * 1e-9]


def svg_plot(
    title: str,
    series: list[tuple[str, list[float], list[float], str]],
    xlabel: str,
    ylabel: str,
) -> str:
    """A small line/point plot as inline SVG. ``series``: (label, xs, ys, "line"|"points")."""
    w, h, left, right, top, bottom = 560, 300, 60, 15, 30, 45
    xs = [x for _, sx, _, _ in series for x in sx]
    ys = [y for _, _, sy, _ in series for y in sy]
    if not xs:
        return f"<p>{html.escape(title)}: no data</p>"
    x0, x1 = min(0.0, min(xs)), max(xs) or 1.0
    y0, y1 = min(0.0, min(ys)), max(ys) or 1.0
    xt, yt = _ticks(x0, x1), _ticks(y0, y1)
    x1, y1 = max(x1, xt[-1]), max(y1, yt[-1])

    def px(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1) * (w - left - right)

    def py(y: float) -> float:
        return h - bottom - (y - y0) / ((y1 - y0) or 1) * (h - top - bottom)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img"><title>{html.escape(title)}</title>',
        f'<text x="{w / 2}" y="18" text-anchor="middle" font-weight="bold">'
        f"{html.escape(title)}</text>",
        f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="#444"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="#444"/>',
    ]
    for t in xt:
        out.append(
            f'<text x="{px(t):.1f}" y="{h - bottom + 15}" text-anchor="middle" '
            f'font-size="11">{t:g}</text>'
        )
    for t in yt:
        out.append(
            f'<text x="{left - 5}" y="{py(t) + 4:.1f}" text-anchor="end" font-size="11">'
            f"{t:g}</text>"
            f'<line x1="{left}" y1="{py(t):.1f}" x2="{w - right}" y2="{py(t):.1f}" '
            'stroke="#ddd"/>'
        )
    out.append(
        f'<text x="{(left + w - right) / 2}" y="{h - 8}" text-anchor="middle" '
        f'font-size="12">{html.escape(xlabel)}</text>'
        f'<text x="14" y="{(top + h - bottom) / 2}" text-anchor="middle" font-size="12" '
        f'transform="rotate(-90 14 {(top + h - bottom) / 2})">{html.escape(ylabel)}</text>'
    )
    for i, (label, sx, sy, kind) in enumerate(series):
        color = _COLORS[i % len(_COLORS)]
        pts = list(zip(sx, sy, strict=True))
        if kind == "line":
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        else:
            out += [
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.2" fill="{color}" '
                'fill-opacity="0.6"/>'
                for x, y in pts[:5000]
            ]
        out.append(
            f'<rect x="{left + 10}" y="{top + 4 + 16 * i}" width="10" height="10" '
            f'fill="{color}"/><text x="{left + 25}" y="{top + 13 + 16 * i}" '
            f'font-size="11">{html.escape(label)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _cdf(values: list[float]) -> tuple[list[float], list[float]]:
    xs = sorted(values)
    n = len(xs)
    step = max(1, n // 400)
    idx = list(range(0, n, step))
    if idx and idx[-1] != n - 1:
        idx.append(n - 1)
    return [xs[i] for i in idx], [(i + 1) / n for i in idx]


def plots(result: dict[str, Any]) -> list[str]:
    """The report's figures: latency CDF, throughput vs offered load, latency over time."""
    figs = []
    main = next((p for p in result["phases"] if p["name"] == result["summary_phase"]), None)
    records = [r for r in (main or {}).get("records", []) if r["error"] is None]
    series = []
    for key, label in (("e2e_ms", "E2E"), ("ttft_ms", "TTFT")):
        vals = [r[key] for r in records if r[key] is not None]
        if vals:
            series.append((label, *_cdf(vals), "line"))
    figs.append(svg_plot(f"Latency CDF ({result['summary_phase']})", series, "ms", "fraction"))
    phases = result["phases"]
    if len(phases) > 1:
        closed = all(not p["rate"] for p in phases)
        # Closed-loop phases have no offered rate: plot them against requests in flight.
        # In a sweep, closed-loop steps sit at the rate they achieved.
        xs = [
            float(p["concurrency"] if closed else p["rate"] or p["summary"]["request_throughput"])
            for p in phases
        ]
        achieved = [p["summary"]["request_throughput"] for p in phases]
        p50 = [(p["summary"]["e2e_ms"] or {}).get("p50") or 0.0 for p in phases]
        order = sorted(range(len(phases)), key=lambda i: xs[i])
        xlabel = "requests in flight" if closed else "offered req/s (closed loop: achieved)"
        lines = [("achieved req/s", [xs[i] for i in order], [achieved[i] for i in order], "line")]
        if not closed:
            lines.append(("offered", [xs[i] for i in order], [xs[i] for i in order], "line"))
        title = "Throughput vs " + ("concurrency" if closed else "offered load")
        figs.append(svg_plot(title, lines, xlabel, "req/s"))
        figs.append(
            svg_plot(
                "E2E p50 vs " + ("concurrency" if closed else "offered load"),
                [("E2E p50 ms", [xs[i] for i in order], [p50[i] for i in order], "line")],
                xlabel,
                "ms",
            )
        )
    over_time: list[tuple[str, list[float], list[float], str]] = []
    for key, label in (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("e2e_ms", "E2E")):
        pts = [(r["intended_ms"] / 1000, r[key]) for r in records if r[key] is not None]
        if pts and (key != "e2e_ms" or not over_time):
            over_time.append((label, [p[0] for p in pts], [p[1] for p in pts], "points"))
    figs.append(svg_plot("Latency over time", over_time, "seconds into the phase", "ms"))
    return figs


def html_table(headers: list[str], rows: list[list[str]]) -> str:
    """An HTML table, every cell escaped."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(result: dict[str, Any]) -> str:
    """One self-contained page: no scripts, no external assets."""
    md_rows = phase_rows(result)
    s = result["summary"] or {}

    c = result["config"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>hfdeploy bench: {html.escape(c['url'])}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}"
        ".bad{background:#fee;border:1px solid #c00;padding:8px}.figs svg{margin:8px}"
        "code{background:#f3f3f3}</style></head><body>",
        f"<h1>hfdeploy bench: {html.escape(c['url'])}</h1>",
        f"<p>API <code>{html.escape(c['api'])}</code>, model "
        f"<code>{html.escape(str(c['model'] or '-'))}</code>, profile "
        f"<code>{html.escape(c['profile'])}</code>, started {html.escape(result['started'])}. "
        f"Token counts: input from {html.escape(result['token_counts']['input'])}, output from "
        f"{html.escape(result['token_counts']['output'])}.</p>",
    ]
    if not result["valid"]:
        parts.append(f"<p class='bad'>INVALID RUN: {html.escape(result['invalid_reason'])}</p>")
    parts += ["<h2>Phases</h2>", html_table(phase_headers(result), md_rows)]
    if s:
        parts += [
            f"<h2>Latency of phase {html.escape(result['summary_phase'])}</h2>",
            html_table(PERCENTILE_HEADERS, percentile_rows(s)),
            f"<p>Errors: {s['errors']} of {s['requests']} "
            f"({html.escape(str(s['errors_by_kind'] or 'none'))}).</p>",
        ]
    if result.get("sweep"):
        sw = result["sweep"]
        parts.append(
            f"<h2>Sweep</h2><p>Saturation knee: {_fmt(sw['knee_rate'])} req/s; highest rate "
            f"meeting the SLOs: {_fmt(sw['max_rate_meeting_slo'])} req/s. "
            f"({html.escape(sw['rule'])})</p>"
        )
    parts += ["<h2>Plots</h2><div class='figs'>", *plots(result), "</div>", "<h2>Formulas</h2><ul>"]
    parts += [
        f"<li><code>{html.escape(k)}</code>: {html.escape(v)}</li>"
        for k, v in result["formulas"].items()
    ]
    parts.append("</ul></body></html>\n")
    return "".join(parts)


def write_reports(result: dict[str, Any], folder: Path) -> list[str]:
    """Write bench.json, requests.csv, report.md and report.html into ``folder`` (``--out``).

    Args:
        result: ``BenchResult.to_dict()``, with the per-request records.
        folder: created when missing.

    Returns:
        The names of the files written.
    """
    files = {
        "bench.json": to_json(result),
        "requests.csv": to_csv(result),
        "report.md": to_markdown(result),
        "report.html": to_html(result),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return list(files)
