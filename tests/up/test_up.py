"""``hfdeploy up`` end to end: the bundled model through every step, and the skips."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from hfdeploy.cli.main import app
from tests._synthetic import LLAMA3_8B, config_folder
from tests.serve._fixtures import free_port

runner = CliRunner()
STEPS = ["inspect", "size and plan", "generate", "lock", "audit", "serve", "bench", "stop",
         "report"]  # fmt: skip


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_up_on_the_bundled_model(minilm_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    port = free_port()
    res = runner.invoke(
        app, ["up", str(minilm_dir), "--out", str(out), "--port", str(port),
              "--bench-duration", "2", "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["ok"] is True
    assert [s["name"] for s in data["steps"]] == STEPS
    assert all(s["status"] == "ok" for s in data["steps"])
    # The deployment files, the lock and the reports.
    for name in ("compose.yaml", "k8s/deployment.yaml", "model.lock.json", "plan.json",
                 "report.md", "report.html", "report.json", "serve.log"):  # fmt: skip
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["plan"]["envelope"]["result"]
    assert report["audit"]["findings"] == []
    summary = report["bench"]["summary"]
    assert summary["completed"] > 0
    assert summary["errors"] == 0
    assert report["bench"]["phases"][0]["server"]["client_over_server"] == pytest.approx(
        1, abs=0.01
    )
    assert report["envelope"]["result"].startswith("tei on CPU")
    page = (out / "report.html").read_text()
    assert page.count("<svg") >= 4  # memory chart, latency CDF, throughput, over time
    assert "<script" not in page and "Memory on CPU (estimate)" in page
    md = (out / "report.md").read_text()
    assert "**Result:**" in md and "## Measured here" in md
    # The server is stopped: nothing listens, the process is gone.
    assert not _listening(port)
    assert not psutil.pid_exists(report["serve"]["pid"])
    assert report["serve"]["exit_code"] == 0


def test_up_skips_serving_what_this_machine_cannot_run(tmp_path: Path) -> None:
    model = config_folder(tmp_path / "l8", LLAMA3_8B)
    out = tmp_path / "deploy"
    res = runner.invoke(app, ["up", str(model), "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    steps = {s["name"]: s for s in report["steps"]}
    assert steps["serve"]["status"] == "skipped"
    assert "docker compose -f" in steps["serve"]["detail"]
    assert "no safetensors weights" in report["serve"]["skipped"]
    assert "not served here" in report["envelope"]["result"]
    assert "## Not served here" in (out / "report.md").read_text()


def test_up_no_serve(minilm_dir: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["up", str(minilm_dir), "--out", str(tmp_path), "--no-serve"])
    assert res.exit_code == 0, res.output
    assert "skipped" in res.output
    assert json.loads((tmp_path / "report.json").read_text())["serve"]["skipped"] == "--no-serve"


def test_up_names_the_failing_step(tmp_path: Path) -> None:
    res = runner.invoke(app, ["up", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1
    assert "error: step inspect:" in res.output
    assert "next:" in res.output


def test_up_refuses_a_busy_port(minilm_dir: Path, tmp_path: Path) -> None:
    # Another server on the port would answer /ready and be measured instead.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = runner.invoke(app, ["up", str(minilm_dir), "--out", str(tmp_path),
                                  "--port", str(port)])  # fmt: skip
    assert res.exit_code == 1
    assert "step serve: something already listens" in res.output


@pytest.mark.parametrize(("sig", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupt_stops_the_server_and_exits_cleanly(
    minilm_dir: Path, tmp_path: Path, sig: str, code: int
) -> None:
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "deploy"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hfdeploy", "up", str(minilm_dir), "--out", str(out),
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # As from a terminal: a runner in the background may have SIGINT ignored, and a
        # Python started with SIGINT ignored never raises KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    server: list[psutil.Process] = []
    while not server and time.monotonic() < deadline:
        time.sleep(0.2)
        server = [p for p in psutil.process_iter(["cmdline"])
                  if f"--port {port}" in " ".join(p.info["cmdline"] or [])
                  and "serve" in (p.info["cmdline"] or []) and p.pid != proc.pid]  # fmt: skip
    assert server, "the server should be running"
    # Interrupt a running server, not the instant of its spawn: an interrupt landing inside
    # the fork has once ended `up` with -2 instead of its own code (see the issue note).
    log = out / "serve.log"
    while not (log.exists() and log.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "interrupted: the local server was stopped" in err
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in server)
    assert not _listening(port)


def test_up_on_a_tiny_moshi_holds_conversations_here(tmp_path: Path) -> None:
    """A full-duplex model: planned for a GPU, served here on CPU by hfdeploy's server (the
    tiny model holds real time), measured with the duplex bench over its WebSocket."""
    pytest.importorskip("transformers.models.moshi")
    from tests.serve._duplex import tiny_moshi_folder

    model = tiny_moshi_folder(tmp_path / "tiny-moshi")
    out = tmp_path / "deploy"
    port = free_port()
    res = runner.invoke(
        app, ["up", str(model), "--out", str(out), "--port", str(port),
              "--bench-duration", "4", "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [s["name"] for s in data["steps"]] == STEPS
    assert all(s["status"] == "ok" for s in data["steps"]), data["steps"]
    report = json.loads((out / "report.json").read_text())
    assert report["plan"]["engine"] == "hfdeploy"
    assert "--max-sessions" in report["plan"]["command"]["args"]
    duplex = report["duplex_bench"]
    assert [p["concurrency"] for p in duplex["phases"]] == [1, 2]
    assert duplex["largest_realtime_sessions"] == 2
    assert all(p["summary"]["served"] == p["concurrency"] for p in duplex["phases"])
    assert "conversation(s) held in real time" in report["envelope"]["result"]
    assert any("not the planned" in f for f in report["envelope"]["uncertainty_factors"])
    md = (out / "report.md").read_text()
    assert "Conversations held in real time: 2" in md
    assert report["serve"]["exit_code"] == 0 and not _listening(port)
