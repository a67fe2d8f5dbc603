"""Full-duplex models through the MCP tools: the same answers as the CLI's JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mcp import ClientSession
from typer.testing import CliRunner

from hfdeploy.cli.main import app
from tests._synthetic import kyutai_checkpoint
from tests.mcp._client import check
from tests.mcp._client import session as _session


def _cli_json(*args: str) -> Any:
    res = CliRunner().invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_inspect_size_plan_generate_a_personaplex_folder(tmp_path: Path) -> None:
    model = str(kyutai_checkpoint(tmp_path / "pp", "personaplex", voices=True))
    root = tmp_path / "root"
    root.mkdir()

    async def body(s: ClientSession) -> Any:
        schemas = {t.name: t.output_schema for t in (await s.list_tools()).tools}
        calls = {
            "inspect_model": {"model": model},
            "estimate_memory": {"model": model, "concurrency": 2},
            "plan_deployment": {"model": model, "gpu": "h100", "concurrency": 3},
            "generate_deployment": {
                "model": model,
                "out": "deploy",
                "gpu": "h100",
                "target": "docker,compose,k8s",
                "registry": "registry.example.com/voice",
            },
        }
        return {name: check(await s.call_tool(name, args), schemas[name])
                for name, args in calls.items()}  # fmt: skip

    got = _session(body, "--allowed-root", str(root))
    assert got["inspect_model"] == _cli_json("inspect", model)
    assert got["inspect_model"]["kind"] == "full-duplex-speech"
    assert got["estimate_memory"] == _cli_json("size", model, "--concurrency", "2")
    plan = got["plan_deployment"]
    assert plan == _cli_json("plan", model, "--gpu", "h100", "--concurrency", "3")
    assert plan["engine"] == "hfdeploy"  # several conversations a GPU, prompts too
    assert plan["realtime"]["ok"] is True
    assert plan["scaling"]["replicas"] * plan["scaling"]["sessions_per_replica"] >= 3
    files = got["generate_deployment"]["files"]
    assert "Dockerfile" in files and "k8s/ingress.yaml" in files
    assert "--ssl" not in (root / "deploy" / "k8s" / "deployment.yaml").read_text()


def test_a_gpu_too_slow_is_a_tool_error_with_its_reason(tmp_path: Path) -> None:
    model = str(kyutai_checkpoint(tmp_path / "mk", "moshiko"))

    async def body(s: ClientSession) -> Any:
        return await s.call_tool("plan_deployment", {"model": model, "gpu": "l4"})

    res = _session(body)
    assert res.is_error
    assert "real time" in res.content[0].text


def test_generate_says_which_files_it_did_not_write(tmp_path: Path) -> None:
    model = str(kyutai_checkpoint(tmp_path / "pp", "personaplex"))
    res = CliRunner().invoke(app, ["generate", model, "--gpu", "h100", "--out",
                                   str(tmp_path / "out"), "--target", "docker,k8s"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "not written: k8s:" in res.output and "--registry" in res.output
    assert not (tmp_path / "out" / "k8s").exists()
