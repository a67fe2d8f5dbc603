"""``hfdeploy bench --api duplex`` through Typer's CliRunner: the --json contract, the text
report and its files, and clear errors for bad input before any connection."""

from __future__ import annotations

import csv
import io
import json
import wave
from array import array
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hfdeploy.cli.main import app
from tests.bench.conftest import Fake, start_duplex

runner = CliRunner()


@pytest.fixture
def fake() -> Iterator[Fake]:
    server = start_duplex("--handshake-ms", "50", "--text-every", "3")
    yield server
    server.stop()


def _wav(path: Path, *, rate: int, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(array("h", [100] * (rate // 4 * channels)).tobytes())
    return path


def test_json_contract(fake: Fake) -> None:
    r = runner.invoke(app, ["bench", fake.url.replace("ws://", "http://"), "--api", "duplex",
                            "--duration", "1", "--codec", "pcm", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["config"]["ws_url"] == fake.url + "/api/chat"
    assert d["config"]["codec"] == "pcm16"
    assert d["valid"] is True
    assert d["summary_phase"] == "synchronous"
    s = d["summary"]
    for key in ("handshake_ms", "first_audio_ms", "inter_arrival_ms", "jitter_ms"):
        assert set(s[key]) >= {"p50", "p95", "p99", "max"}, key
    assert (s["sessions"], s["served"], s["refused"], s["queued"]) == (1, 1, 0, 0)
    assert s["text_tokens"] >= 3
    assert set(d["realtime_rule"]) >= {"rule", "jitter_p95_ms_max", "drift_ms_max"}
    assert "largest_realtime_sessions" in d
    assert "drift_ms" in d["formulas"]
    assert d["envelope"]["confidence"] == "medium"  # raw PCM was sent
    assert "arrivals_ms" not in d["phases"][0]  # per-message times only in --out's bench.json


def test_text_report_and_files(fake: Fake, tmp_path: Path) -> None:
    wav = _wav(tmp_path / "in.wav", rate=16_000, channels=2)
    out = tmp_path / "report"
    r = runner.invoke(app, ["bench", fake.url, "--api", "duplex", "--profile", "concurrent:1,2",
                            "--duration", "1", "--audio", str(wav), "--text-prompt", "Hi.",
                            "--out", str(out)], env={"COLUMNS": "200"})  # fmt: skip
    assert r.exit_code == 0, r.output
    for text in ("Phases", "Sessions", "concurrent:2", "largest session count that stayed real",
                 "resampled from 16000 Hz", "drift_ms:", "reports: "):  # fmt: skip
        assert text in r.output, text
    data = json.loads((out / "bench.json").read_text())
    assert [len(a) > 5 for a in data["phases"][1]["arrivals_ms"]] == [True, True]
    rows = list(csv.DictReader(io.StringIO((out / "sessions.csv").read_text())))
    assert [(x["phase"], x["index"]) for x in rows] == [
        ("concurrent:1", "0"), ("concurrent:2", "0"), ("concurrent:2", "1"),
    ]  # fmt: skip
    assert "## Sessions (times in ms)" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ftp://h:1", "--api", "duplex"], "not a ws://, wss://, http:// or https:// URL"),
        (["ws://127.0.0.1:9", "--api", "duplex", "--audio", "missing.wav"], "cannot read it"),
        (["ws://127.0.0.1:9", "--api", "duplex", "--audio", "{low}"], "sample rate 4000 Hz"),
        (["ws://127.0.0.1:9", "--api", "duplex", "--profile", "poisson:2"], "sessions open"),
        (["ws://127.0.0.1:9", "--api", "duplex", "--requests", "5"], "not used with --api duplex"),
        (["http://127.0.0.1:9", "--audio", "x.wav"], "only used with --api duplex"),
        (["ws://127.0.0.1:9"], "a WebSocket URL; --api auto speaks HTTP"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path: Path, args: list[str], message: str) -> None:
    low = str(_wav(tmp_path / "low.wav", rate=4000))
    args = [a.replace("{low}", low) for a in args]
    r = runner.invoke(app, ["bench", *args], env={"COLUMNS": "300"})
    assert r.exit_code == 1, r.output
    assert message in " ".join(r.output.split()), r.output
