"""A duplex bench result as table rows, CSV (one row per session) and Markdown; pure, from
``DuplexResult.to_dict()``. ``write_duplex_reports`` writes them (``hfdeploy bench --out``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from hfdeploy.bench.report import md_table, to_json

__all__ = [
    "PHASE_HEADERS", "SESSION_HEADERS", "phase_rows", "session_rows", "to_csv", "to_markdown",
    "write_duplex_reports",
]  # fmt: skip

#: Times in the tables are in ms (the tables' titles say so).
PHASE_HEADERS = [
    "phase", "real time", "queued", "refused", "handshake p50", "1st audio p50", "jitter p95",
    "slow frames", "drift max", "errors",
]  # fmt: skip
SESSION_HEADERS = [
    "phase", "#", "outcome", "real time", "handshake", "1st audio", "jitter p95", "slow frames",
    "drift", "backlog growth", "text tokens", "errors",
]  # fmt: skip
_CSV_FIELDS = (
    "phase", "index", "outcome", "realtime", "connect_ms", "handshake_ms", "first_audio_ms",
    "audio_format", "audio_messages", "audio_received_s", "audio_sent_s",
    "inter_arrival_p50_ms", "inter_arrival_p95_ms", "inter_arrival_p99_ms",
    "inter_arrival_max_ms", "jitter_p50_ms", "jitter_p95_ms", "jitter_p99_ms", "jitter_max_ms",
    "slow_frame_episodes", "longest_gap_ms", "drift_ms", "backlog_growth_ms",
    "send_lag_p99_ms", "text_tokens", "errors", "closed_by_server", "close_code",
    "connect_error",
)  # fmt: skip


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        text = f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}"
        return "0.0" if text == "-0.0" else text
    return f"{x:,}" if isinstance(x, int) else str(x)


def _p(stats: dict[str, float] | None, key: str) -> float | None:
    return None if stats is None else stats.get(key)


def phase_rows(result: dict[str, Any]) -> list[list[str]]:
    """One row per phase, in ``PHASE_HEADERS`` order."""
    rows = []
    for p in result["phases"]:
        s = p["summary"]
        rows.append([
            p["name"], f"{s['realtime_sessions']}/{s['sessions']}",
            _fmt(s["queued"]), _fmt(s["refused"]), _fmt(_p(s["handshake_ms"], "p50")),
            _fmt(_p(s["first_audio_ms"], "p50")), _fmt(_p(s["jitter_ms"], "p95")),
            _fmt(s["slow_frame_episodes"]),
            _fmt(_p(s["drift_ms"], "max")), _fmt(s["errors"]),
        ])  # fmt: skip
    return rows


def session_rows(result: dict[str, Any]) -> list[list[str]]:
    """One row per session of every phase, in ``SESSION_HEADERS`` order."""
    rows = []
    for p in result["phases"]:
        for r in p["sessions"]:
            ended = r["connect_error"] or (
                f"closed {r['close_code']}" if r["closed_by_server"] else ""
            )
            rows.append([
                p["name"], str(r["index"]), r["outcome"], _fmt(r["realtime"]),
                _fmt(r["handshake_ms"]), _fmt(r["first_audio_ms"]),
                _fmt(_p(r["jitter_ms"], "p95")), _fmt(r["slow_frame_episodes"]),
                _fmt(r["drift_ms"]), _fmt(r["backlog_growth_ms"]),
                _fmt(r["text_tokens"]), f"{r['errors']}{f' ({ended})' if ended else ''}",
            ])  # fmt: skip
    return rows


def to_csv(result: dict[str, Any]) -> str:
    """One row per session, every phase."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_CSV_FIELDS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for p in result["phases"]:
        for r in p["sessions"]:
            row = {"phase": p["name"], **r, "send_lag_p99_ms": _p(r["send_lag_ms"], "p99")}
            for key in ("inter_arrival", "jitter"):
                for q in ("p50", "p95", "p99", "max"):
                    row[f"{key}_{q}_ms"] = _p(r[f"{key}_ms"], q)
            w.writerow(row)
    return buf.getvalue()


def to_markdown(result: dict[str, Any]) -> str:
    c = result["config"]
    n = result["largest_realtime_sessions"]
    lines = [
        f"# hfdeploy bench (duplex): {c['ws_url']}",
        "",
        f"Profile `{c['profile']}`, {c['duration_s']:g} s per session, started "
        f"{result['started']}. Audio sent: {c['audio']['source']} ({c['audio']['note']}), "
        f"{c['codec_note']}.",
        "",
    ]
    if not result["valid"]:
        lines += [f"**INVALID RUN**: {result['invalid_reason']}", ""]
    lines += [
        f"**Largest session count that stayed real time: {n if n is not None else 'none'}.**",
        "",
        f"Rule: {result['realtime_rule']['rule']}.",
        "",
        "## Phases (times in ms)",
        "",
        md_table(PHASE_HEADERS, phase_rows(result)),
        "",
        "## Sessions (times in ms)",
        "",
        md_table(SESSION_HEADERS, session_rows(result)),
        "",
        "## Formulas",
        "",
    ]
    lines += [f"- `{k}`: {v}" for k, v in result["formulas"].items()]
    return "\n".join(lines) + "\n"


def write_duplex_reports(result: dict[str, Any], folder: Path) -> list[str]:
    """Write bench.json, sessions.csv and report.md into ``folder`` (created when missing).

    Args:
        result: ``DuplexResult.to_dict()``, with each session's audio arrivals.

    Returns:
        The names of the files written.
    """
    files = {
        "bench.json": to_json(result),
        "sessions.csv": to_csv(result),
        "report.md": to_markdown(result),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return list(files)
