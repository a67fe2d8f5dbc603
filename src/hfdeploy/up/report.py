"""The ``hfdeploy up`` report: ``report.md``, ``report.html`` (self-contained, inline SVG)
and ``report.json``, written into the deployment folder."""

from __future__ import annotations

import html
import json
from typing import Any

from hfdeploy.bench.duplex_report import PHASE_HEADERS as DUPLEX_HEADERS
from hfdeploy.bench.duplex_report import phase_rows as duplex_rows
from hfdeploy.bench.report import (
    PERCENTILE_HEADERS,
    html_table,
    md_table,
    percentile_rows,
    phase_headers,
    phase_rows,
    plots,
)
from hfdeploy.up.steps import UpResult

__all__ = ["memory_terms", "svg_bars", "up_html", "up_markdown", "write_up_reports"]

_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def memory_terms(size: dict[str, Any], *, gpu: bool = True) -> list[tuple[str, int]]:
    """(label, bytes) of each memory term per GPU rank, from ``hfdeploy size --json``;
    without the CUDA terms when the plan runs on CPU (``gpu`` False)."""
    overhead = size.get("overhead") or {}
    terms = {
        "weights": (size.get("weights") or {}).get("bytes_per_rank"),
        "KV cache": (size.get("kv_cache") or {}).get("bytes"),
        "activations": (size.get("activations") or {}).get("bytes"),
        "CUDA context": (overhead.get("cuda_context") or {}).get("bytes"),
        "non-torch": (overhead.get("non_torch") or {}).get("bytes"),
        "CUDA graphs": (overhead.get("cuda_graphs") or {}).get("bytes"),
    }
    cuda = {"CUDA context", "non-torch", "CUDA graphs"}
    return [
        (k, int(v))
        for k, v in terms.items()
        if isinstance(v, int | float) and (gpu or k not in cuda)
    ]


def svg_bars(title: str, items: list[tuple[str, int]]) -> str:
    """A horizontal bar chart in GiB as inline SVG."""
    if not items:
        return f"<p>{html.escape(title)}: no data</p>"
    w, row, left = 560, 26, 120
    h = 40 + row * len(items)
    top = max(v for _, v in items) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img">'
        f"<title>{html.escape(title)}</title>"
        f'<text x="{w / 2}" y="18" text-anchor="middle" font-weight="bold">'
        f"{html.escape(title)}</text>"
    ]
    for i, (label, value) in enumerate(items):
        y = 30 + i * row
        width = max(1.0, (w - left - 110) * value / top)
        parts.append(
            f'<text x="{left - 6}" y="{y + 15}" text-anchor="end" font-size="12">'
            f"{html.escape(label)}</text>"
            f'<rect x="{left}" y="{y + 3}" width="{width:.1f}" height="{row - 8}" '
            f'fill="{_COLORS[i % len(_COLORS)]}"/>'
            f'<text x="{left + width + 6:.1f}" y="{y + 15}" font-size="12">'
            f"{value / 2**30:.3f} GiB</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _envelope_md(env: dict[str, Any]) -> list[str]:
    return [
        f"**Result:** {env['result']}",
        "",
        f"**Confidence:** {env['confidence']} ({env['confidence_why']})",
        "",
        "**Uncertainty Factors:**",
        *(f"- {f}" for f in env["uncertainty_factors"] or ["none identified"]),
        "",
        "**Verification:**",
        *(f"- `{v}`" for v in env["verification"]),
    ]


def _step_rows(data: dict[str, Any]) -> list[list[str]]:
    return [[s["name"], s["status"], f"{s['seconds']:.2f}", s["detail"]] for s in data["steps"]]


def up_markdown(data: dict[str, Any]) -> str:
    plan = data["plan"]
    lines = [f"# hfdeploy up: {data['model']}", ""]
    lines += [*_envelope_md(data["envelope"]), "", "## Steps", ""]
    lines.append(md_table(["step", "status", "seconds", "detail"], _step_rows(data)))
    lines += ["", "## Plan", "",
              f"- engine: {plan['engine']} (`{plan['image']}`)",
              f"- GPU: {plan['gpu']['count']} x {plan['gpu']['name']}" if plan["gpu"]["count"]
              else "- GPU: none (CPU)",
              f"- command: `{' '.join(plan['command']['args'])}`", "",
              "## Memory (estimate, per GPU rank; CUDA terms only on GPU)", ""]  # fmt: skip
    terms = memory_terms(data["size"], gpu=bool(plan["gpu"]["count"]))
    lines.append(md_table(["term", "GiB"], [[k, f"{v / 2**30:.3f}"] for k, v in terms]))
    audit = data.get("audit") or {}
    lines += ["", "## Audit of the generated files", "",
              f"{len(audit.get('findings', []))} findings over {len(audit.get('files', []))} "
              "files."]  # fmt: skip
    lines += [f"- {f['severity']} {f['rule_id']} {f['file']}:{f['line']}: {f['message']}"
              for f in audit.get("findings", [])]  # fmt: skip
    bench, duplex = data.get("bench"), data.get("duplex_bench")
    if duplex:
        n = duplex["largest_realtime_sessions"]
        lines += ["", "## Measured here (hfdeploy serve, this machine)", "",
                  f"Conversations held in real time: {n if n is not None else 'none'} "
                  f"({duplex['config']['codec']}, {duplex['config']['duration_s']:g} s each).",
                  "", md_table(DUPLEX_HEADERS, duplex_rows(duplex))]  # fmt: skip
    elif bench:
        lines += ["", "## Measured here (hfdeploy serve, this machine)", ""]
        lines.append(md_table(phase_headers(bench), phase_rows(bench)))
        if bench["summary"]:
            lines += ["", f"Latency at {bench['summary_phase']}:", ""]
            lines.append(md_table(PERCENTILE_HEADERS, percentile_rows(bench["summary"])))
        memory = bench.get("memory")
        if memory:
            lines += ["", f"Server memory during the bench: {memory['rss']['verdict']} "
                      f"(RSS {memory['rss_first_bytes'] / 2**20:,.1f} -> "
                      f"{memory['rss_last_bytes'] / 2**20:,.1f} MiB)."]  # fmt: skip
            if memory["rss"].get("note"):
                lines[-1] += f" {memory['rss']['note'][0].upper()}{memory['rss']['note'][1:]}."
    elif data.get("serve", {}).get("skipped"):
        lines += ["", "## Not served here", "", data["serve"]["skipped"] + ".",
                  f"Run: `{data['serve']['command']}`"]  # fmt: skip
    lines += ["", "## Files", "", *(f"- `{f}`" for f in data.get("files", []))]
    return "\n".join(lines) + "\n"


def up_html(data: dict[str, Any]) -> str:
    """One self-contained page: no scripts, no external assets."""
    esc = html.escape
    env = data["envelope"]
    plan = data["plan"]

    conf_color = {"high": "#2ca02c", "medium": "#ff7f0e", "low": "#d62728"}[env["confidence"]]
    on_gpu = bool(plan["gpu"]["count"])
    where = f"{plan['gpu']['count']} x {plan['gpu']['name']}" if on_gpu else "CPU"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>hfdeploy up: {esc(data['model'])}</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1180px;color:#222}"
        "table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:left;font-size:14px}th{background:#f3f3f3}"
        ".env{border-left:6px solid " + conf_color + ";background:#fafafa;padding:.6em 1em}"
        ".ok{color:#2ca02c}.skipped{color:#888}.failed{color:#d62728}"
        "code{background:#f3f3f3;padding:0 3px}.figs{display:flex;flex-wrap:wrap}"
        ".figs svg{margin:6px}</style></head><body>",
        f"<h1>hfdeploy up: {esc(data['model'])}</h1>",
        "<div class='env'>",
        f"<p><b>Result:</b> {esc(env['result'])}</p>",
        f"<p><b>Confidence:</b> {esc(env['confidence'])} ({esc(env['confidence_why'])})</p>",
        "<p><b>Uncertainty Factors:</b></p><ul>",
        *(f"<li>{esc(f)}</li>" for f in env["uncertainty_factors"] or ["none identified"]),
        "</ul><p><b>Verification:</b></p><ul>",
        *(f"<li><code>{esc(v)}</code></li>" for v in env["verification"]),
        "</ul></div><h2>Steps</h2><table><thead><tr><th>step</th><th>status</th>"
        "<th>seconds</th><th>detail</th></tr></thead><tbody>",
        *(
            f"<tr><td>{esc(s['name'])}</td><td class='{esc(s['status'])}'>{esc(s['status'])}"
            f"</td><td>{s['seconds']:.2f}</td><td>{esc(s['detail'])}</td></tr>"
            for s in data["steps"]
        ),
        "</tbody></table>",
        "<h2>Plan</h2>",
        f"<p>{esc(plan['engine'])} <code>{esc(plan['image'])}</code> on {esc(where)}: "
        f"<code>{esc(' '.join(plan['command']['args']))}</code></p>",
        "<div class='figs'>",
        svg_bars(
            "Memory per GPU rank (estimate)" if on_gpu else "Memory on CPU (estimate)",
            memory_terms(data["size"], gpu=on_gpu),
        ),
        "</div>",
    ]
    audit = data.get("audit") or {}
    parts.append(
        f"<h2>Audit</h2><p>{len(audit.get('findings', []))} findings over "
        f"{len(audit.get('files', []))} generated files.</p>"
    )
    if audit.get("findings"):
        parts.append(html_table(["severity", "rule", "where", "message"], [
            [f["severity"], f["rule_id"], f"{f['file']}:{f['line']}", f["message"]]
            for f in audit["findings"]
        ]))  # fmt: skip
    bench, duplex = data.get("bench"), data.get("duplex_bench")
    if duplex:
        n = duplex["largest_realtime_sessions"]
        parts += ["<h2>Measured here: hfdeploy serve on this machine</h2>",
                  f"<p>Conversations held in real time: <b>{n if n is not None else 'none'}</b> "
                  f"({esc(duplex['config']['codec'])}).</p>",
                  html_table(DUPLEX_HEADERS, duplex_rows(duplex))]  # fmt: skip
    elif bench:
        parts += ["<h2>Measured here: hfdeploy serve on this machine</h2>",
                  html_table(phase_headers(bench), phase_rows(bench))]  # fmt: skip
        if bench["summary"]:
            parts.append(html_table(PERCENTILE_HEADERS, percentile_rows(bench["summary"])))
        parts += ["<div class='figs'>", *plots(bench), "</div>"]
        memory = bench.get("memory")
        if memory:
            parts.append(
                f"<p>Server memory during the bench: <b>{esc(memory['rss']['verdict'])}</b> "
                f"(RSS {memory['rss_first_bytes'] / 2**20:,.1f} → "
                f"{memory['rss_last_bytes'] / 2**20:,.1f} MiB)."
                + (f" {esc(memory['rss']['note'])}." if memory["rss"].get("note") else "")
                + "</p>"
            )
    elif data.get("serve", {}).get("skipped"):
        parts.append(
            f"<h2>Not served here</h2><p>{esc(data['serve']['skipped'])}. Run: "
            f"<code>{esc(data['serve']['command'])}</code></p>"
        )
    files = [f"<li><code>{esc(f)}</code></li>" for f in data.get("files", [])]
    parts += ["<h2>Files</h2><ul>", *files, "</ul></body></html>\n"]
    return "".join(parts)


def write_up_reports(result: UpResult) -> list[str]:
    """Write report.json, report.md and report.html into the result's folder."""
    data = result.to_dict()
    bench = data.get("bench")
    if bench:
        # The per-request records stay in the bench's own numbers; the report keeps summaries
        # and the main phase's records for its plots.
        main = bench["summary_phase"]
        for p in bench["phases"]:
            if p["name"] != main:
                p.pop("records", None)
    files = {
        "report.json": json.dumps(data, indent=2, default=str) + "\n",
        "report.md": up_markdown(data),
        "report.html": up_html(data),
    }
    for name, text in files.items():
        (result.out / name).write_text(text, encoding="utf-8")
    return list(files)
