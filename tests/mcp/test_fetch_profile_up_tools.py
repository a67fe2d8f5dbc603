"""The ``fetch_model``, ``profile_memory`` and ``run_up`` tools, over the MCP SDK's client:
each answers the CLI's ``--json`` object and stays inside the allowed root."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession
from typer.testing import CliRunner

from hfdeploy.cli.main import app
from tests.fetch._hub import FakeHub, serve_hub
from tests.mcp._client import check, session
from tests.serve._fixtures import free_port

SHA = "c" * 40
FILES = {
    "config.json": b'{"model_type": "bert", "architectures": ["BertModel"]}',
    "model.safetensors": bytes(range(256)) * 40,
    "pytorch_model.bin": b"pickle" * 100,
    "tokenizer.json": b'{"version": "1.0"}',
}
IDLE = "import time\nwhile True:\n    time.sleep(0.05)\n"


async def _schemas(s: ClientSession) -> dict[str, Any]:
    return {t.name: t.output_schema for t in (await s.list_tools()).tools}


def _asked(hub: FakeHub) -> int:
    return sum("org/tiny" in r for r in hub.requests)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    import huggingface_hub.constants

    # The autouse fixture makes every test offline; this one talks to a loopback Hub (the
    # MCP server inherits the environment).
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    fake = FakeHub("org/tiny", dict(FILES), sha=SHA)
    with serve_hub(fake) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        yield fake


def test_fetch_model_locks_under_the_root_and_refuses_outside(hub: FakeHub, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()

    async def body(s: ClientSession) -> Any:
        schemas = await _schemas(s)
        ok = await s.call_tool("fetch_model", {"model": "org/tiny@main", "to": "models/tiny"})
        before = _asked(hub)
        outside = await s.call_tool(
            "fetch_model", {"model": "org/tiny@main", "to": str(tmp_path / "elsewhere")}
        )
        escape = await s.call_tool("fetch_model", {"model": "org/tiny@main", "to": "../up"})
        refused_asked = _asked(hub) - before
        unknown = await s.call_tool("fetch_model", {"model": "org/tiny@nope", "to": "m2"})
        return schemas["fetch_model"], ok, refused_asked, outside, escape, unknown

    schema, ok, refused_asked, outside, escape, unknown = session(body, "--allowed-root", str(root))
    data = check(ok, schema)
    folder = root / "models" / "tiny"
    assert data == json.loads((folder / "model.lock.json").read_text())
    assert data["commit_sha"] == SHA
    assert not (folder / "pytorch_model.bin").exists()
    assert "skipped pytorch_model.bin: pickle (unsafe)" in ok.content[0].text
    cli = CliRunner().invoke(app, ["fetch", "org/tiny@main", "--to", str(tmp_path / "c"), "--json"])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout) == data
    for res in (outside, escape):
        assert res.is_error
        assert "outside the allowed root" in res.content[0].text
    # Refused before anything was asked of the Hub or written.
    assert refused_asked == 0
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "up").exists()
    # A Hub error is the CLI's two lines.
    assert unknown.is_error
    cli = CliRunner().invoke(app, ["fetch", "org/tiny@nope", "--to", str(tmp_path / "n")])
    assert cli.exit_code == 1
    assert " ".join(cli.stderr.split()) in " ".join(unknown.content[0].text.split())


@pytest.fixture
def idle_process() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", IDLE])
    yield proc
    proc.kill()
    proc.wait()


def test_profile_memory_watches_a_pid_and_writes_only_under_the_root(
    tmp_path: Path, idle_process: subprocess.Popen[bytes]
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    pid = idle_process.pid
    args = {"pid": pid, "duration": 1.5, "interval": 0.05}

    async def body(s: ClientSession) -> Any:
        schemas = await _schemas(s)
        ok = await s.call_tool("profile_memory", {**args, "out": "mem/profile.json"})
        outside = await s.call_tool("profile_memory", {**args, "out": str(tmp_path / "p.json")})
        command = await s.call_tool("profile_memory", {"command": [sys.executable, "-c", IDLE]})
        far = await s.call_tool("profile_memory", {**args, "metrics_url": "http://10.1.2.3:80"})
        neither = await s.call_tool("profile_memory", {"duration": 1})
        return schemas["profile_memory"], ok, outside, command, far, neither

    schema, ok, outside, command, far, neither = session(body, "--allowed-root", str(root))
    data = check(ok, schema)
    assert data["pid"] == pid
    assert data["rss"]["verdict"] == "stable", data["rss"]
    assert len(data["samples"]) > 10
    assert json.loads((root / "mem" / "profile.json").read_text()) == data
    cli = CliRunner().invoke(
        app, ["profile", "memory", "--pid", str(pid), "--duration", "0.5", "--interval", "0.05",
              "--json"],
    )  # fmt: skip
    assert cli.exit_code == 0, cli.output
    assert set(json.loads(cli.stdout)) == set(data)
    assert outside.is_error and "outside the allowed root" in outside.content[0].text
    assert not (tmp_path / "p.json").exists()
    assert command.is_error and "--allow-command" in command.content[0].text
    assert far.is_error and "neither loopback nor an allowed host" in far.content[0].text
    assert neither.is_error and "give exactly one" in neither.content[0].text


def test_profile_memory_starts_a_command_only_when_allowed(tmp_path: Path) -> None:
    async def body(s: ClientSession) -> Any:
        schemas = await _schemas(s)
        res = await s.call_tool(
            "profile_memory",
            {"command": [sys.executable, "-c", IDLE], "duration": 1.0, "interval": 0.05},
        )
        after = await s.call_tool("list_gpus", {})
        return schemas["profile_memory"], res, after

    schema, res, after = session(body, "--allowed-root", str(tmp_path), "--allow-command")
    data = check(res, schema)
    assert data["samples"] and not data["process_exited"]
    assert not after.is_error


STEPS = ["inspect", "size and plan", "generate", "lock", "audit", "serve", "bench", "stop",
         "report"]  # fmt: skip


def test_run_up_serves_measures_and_reports_under_the_root(
    minilm_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    up = {"model": str(minilm_dir), "out": "deploy", "port": free_port(), "bench_duration": 1}

    async def body(s: ClientSession) -> Any:
        schemas = await _schemas(s)
        ok = await s.call_tool("run_up", up)
        outside = await s.call_tool(
            "run_up", {"model": str(minilm_dir), "out": str(tmp_path / "o"), "no_serve": True}
        )
        missing = await s.call_tool("run_up", {"model": str(tmp_path / "none"), "out": "x"})
        return schemas["run_up"], ok, outside, missing

    schema, ok, outside, missing = session(body, "--allowed-root", str(root))
    data = check(ok, schema)
    out = root / "deploy"
    report = json.loads((out / "report.json").read_text())
    # report.json is written in the report step, before that step's own entry.
    assert data == report | {"steps": data["steps"]}
    assert data["steps"][:-1] == report["steps"]
    assert data["ok"] is True
    assert [s["name"] for s in data["steps"]] == STEPS
    assert all(s["status"] == "ok" for s in data["steps"])
    assert data["bench"]["summary"]["completed"] > 0
    for name in ("compose.yaml", "model.lock.json", "report.md", "report.html", "serve.log"):
        assert (out / name).is_file(), name
    assert outside.is_error and "outside the allowed root" in outside.content[0].text
    assert not (tmp_path / "o").exists()
    assert missing.is_error and "error: step inspect:" in missing.content[0].text


def test_run_up_without_serving_is_the_cli_json(minilm_dir: Path, tmp_path: Path) -> None:
    async def body(s: ClientSession) -> Any:
        schemas = await _schemas(s)
        res = await s.call_tool("run_up", {"model": str(minilm_dir), "no_serve": True})
        return schemas["run_up"], res

    schema, res = session(body, "--allowed-root", str(tmp_path))
    data = check(res, schema)
    cli = CliRunner().invoke(
        app, ["up", str(minilm_dir), "--out", str(tmp_path / "deploy"), "--no-serve", "--json"]
    )
    assert cli.exit_code == 0, cli.output

    def timeless(d: dict[str, Any]) -> dict[str, Any]:
        return d | {"steps": [s | {"seconds": 0} for s in d["steps"]]}

    assert timeless(data) == timeless(json.loads(cli.stdout))
    assert data["serve"]["skipped"] == "--no-serve"


def test_the_cli_offers_allow_command() -> None:
    res = CliRunner().invoke(app, ["mcp", "--help"])
    assert res.exit_code == 0
    assert "--allow-command" in res.output
