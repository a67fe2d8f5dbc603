"""``hfdeploy bench`` against hfdeploy's own server (the bundled MiniLM, real weights)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hfdeploy.cli.main import app
from hfdeploy.serve.app import create_app
from hfdeploy.serve.settings import ServeSettings
from tests.bench.conftest import Fake
from tests.serve._fixtures import running

runner = CliRunner()


@pytest.fixture(scope="module")
def minilm_server(minilm_dir: Path) -> Iterator[str]:
    settings = ServeSettings(model=str(minilm_dir), served_model_name="minilm")
    with running(create_app(settings)) as url:
        yield url


@pytest.mark.parametrize("api", ["tei-embed", "openai-embeddings"])
def test_throughput_agrees_with_the_servers_counters(minilm_server: str, api: str) -> None:
    from hfdeploy.bench import BenchConfig, run_bench

    r = run_bench(
        BenchConfig(
            minilm_server,
            api=api,
            profile="concurrent:4",
            duration=2.0,
            input_tokens="uniform:4:30",
        )
    ).to_dict(records=False)
    phase = r["phases"][0]
    assert phase["summary"]["errors"] == 0
    server = phase["server"]
    assert server["counter"] == "hfdeploy_requests_total"
    assert server["requests"] == phase["summary"]["completed"]
    assert server["client_over_server"] == pytest.approx(1.0, abs=0.05)
    if api == "openai-embeddings":
        # The server's usage gives the input tokens; the report says so.
        assert r["token_counts"]["input"] == "usage"
        assert r["config"]["model"] == "minilm"


def test_cli_json_contract_and_report_files(minilm_server: str, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    res = runner.invoke(
        app, ["bench", minilm_server, "--requests", "12", "--profile", "concurrent:1,3",
              "--json", "--out", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    s = data["summary"]
    for key in ("e2e_ms", "ttft_ms", "tpot_ms"):
        assert key in s
    assert s["ttft_ms"] is None and s["tpot_ms"] is None  # /embed does not stream
    assert set(s["e2e_ms"]) >= {"p50", "p90", "p99", "mean"}
    assert s["completed"] == 12 and s["errors"] == 0
    assert s["request_throughput"] > 0
    assert "output_token_throughput" in s
    assert data["config"]["api"] == "tei-embed"
    assert data["formulas"]["tpot_ms"].startswith("TPOT = (E2E - TTFT) / (n_out - 1)")
    saved = json.loads((out / "bench.json").read_text())
    assert len(saved["phases"]) == 2
    assert len(saved["phases"][1]["records"]) == 12
    rows = list(csv.DictReader(io.StringIO((out / "requests.csv").read_text())))
    assert len(rows) == 24 and {r["phase"] for r in rows} == {"concurrent:1", "concurrent:3"}
    page = (out / "report.html").read_text()
    assert page.count("<svg") >= 3 and "<script" not in page
    assert "| concurrent:3 |" in (out / "report.md").read_text()


def test_cli_fails_loudly_when_the_client_falls_behind(
    fake_server: Callable[..., Fake], tmp_path: Path
) -> None:
    fake = fake_server()
    res = runner.invoke(
        app, ["bench", fake.url, "--api", "tei-embed", "--profile", "constant:50000",
              "--duration", "0.3", "--warmup", "0", "--out", str(tmp_path)],
    )  # fmt: skip
    assert res.exit_code == 1
    assert "could not keep up" in res.output
    assert json.loads((tmp_path / "bench.json").read_text())["valid"] is False


def test_cli_unreachable_endpoint(tmp_path: Path) -> None:
    from tests.serve._fixtures import free_port

    res = runner.invoke(app, ["bench", f"http://127.0.0.1:{free_port()}", "--requests", "1"])
    assert res.exit_code == 1
    assert "cannot connect" in res.output
