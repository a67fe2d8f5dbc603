"""``hfdeploy profile coldstart`` and ``hfdeploy profile memory``, on real processes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hfdeploy.bench.coldstart import parse_startup_phases, profile_coldstart
from hfdeploy.cli.main import app
from hfdeploy.errors import BenchError, InvalidSettingError
from tests.bench.conftest import FAKE
from tests.serve._fixtures import free_port

runner = CliRunner()


def test_coldstart_times_listening_ready_and_first_request() -> None:
    port = free_port()
    cmd = [sys.executable, str(FAKE), "--port", str(port), "--start-delay", "0.5",
           "--ready-after", "0.7"]  # fmt: skip
    data = profile_coldstart(cmd, url=f"http://127.0.0.1:{port}", runs=2)
    assert len(data["runs"]) == 2
    for run in data["runs"]:
        assert 0.5 <= run["listening_s"] < 3.0
        # /ready turns 200 0.7 s after listening; the first request follows it.
        assert run["ready_s"] >= run["listening_s"] + 0.65
        assert run["first_request_s"] >= run["ready_s"]
        assert run["ready_path"] == "/ready"
    m = data["median"]
    assert m["listening_s"] <= m["ready_s"] <= m["first_request_s"]


def test_coldstart_falls_back_to_health_when_there_is_no_ready_route() -> None:
    port = free_port()
    cmd = [sys.executable, str(FAKE), "--port", str(port)]
    data = profile_coldstart(cmd, url=f"http://127.0.0.1:{port}", runs=1)
    assert data["runs"][0]["ready_path"] == "/health"


def test_coldstart_reports_a_server_that_exits() -> None:
    port = free_port()
    with pytest.raises(BenchError, match="crashing on purpose"):
        profile_coldstart([sys.executable, str(FAKE), "--port", str(port), "--crash"],
                          url=f"http://127.0.0.1:{port}", runs=1)  # fmt: skip


def test_coldstart_of_hfdeploy_serve_reads_its_phases(minilm_dir: Path) -> None:
    port = free_port()
    hfdeploy = Path(sys.executable).with_name("hfdeploy")
    res = runner.invoke(
        app, ["profile", "coldstart", "--runs", "1", "--url", f"http://127.0.0.1:{port}",
              "--json", "--", str(hfdeploy), "serve", str(minilm_dir), "--port", str(port)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    run = json.loads(res.stdout)["runs"][0]
    phases = run["server_phases"]
    assert set(phases) == {"imports", "preflight", "torch_setup", "model_load", "warmup"}
    assert run["ready_path"] == "/ready"
    # The server's own phases fit inside what the outside saw.
    assert phases["imports"] + phases["model_load"] + phases["warmup"] <= run["ready_s"] + 0.05
    assert phases["imports"] <= run["listening_s"]


def test_parse_startup_phases() -> None:
    text = (
        "# TYPE hfdeploy_startup_phase_seconds gauge\n"
        'hfdeploy_startup_phase_seconds{phase="warmup"} 1.5\n'
        "other_metric 3\n"
    )
    assert parse_startup_phases(text) == {"warmup": 1.5}
    assert parse_startup_phases("not prometheus {{{") == {}


def test_coldstart_refuses_a_busy_port_and_no_command() -> None:
    import socket

    with pytest.raises(InvalidSettingError):
        profile_coldstart([], url="http://127.0.0.1:1")
    # Something already on the port would be timed instead of the new server.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(BenchError, match="already listens"):
            profile_coldstart([sys.executable, "-c", "pass"], url=f"http://127.0.0.1:{port}")


LEAKY = (
    "import time\nkeep = []\nwhile True:\n    keep.append(bytearray(2_000_000)); time.sleep(0.05)\n"
)
IDLE = "import time\nwhile True:\n    time.sleep(0.05)\n"


@pytest.mark.parametrize(("code", "verdict"), [(LEAKY, "leak-suspected"), (IDLE, "stable")])
def test_profile_memory_of_a_command(code: str, verdict: str) -> None:
    res = runner.invoke(
        app, ["profile", "memory", "--duration", "2.5", "--interval", "0.05", "--json", "--",
              sys.executable, "-c", code],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["rss"]["verdict"] == verdict, data["rss"]
    assert data["rss"]["against"] == "time"
    assert len(data["samples"]) > 20


def test_profile_memory_needs_exactly_one_target() -> None:
    res = runner.invoke(app, ["profile", "memory", "--duration", "1"])
    assert res.exit_code == 1
    assert "give exactly one" in res.output
