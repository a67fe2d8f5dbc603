"""``hfdeploy mcp`` driven by the MCP SDK's own client, over stdio (and streamable HTTP)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession
from typer.testing import CliRunner

from hfdeploy.cli.main import app
from tests.mcp._client import HFDEPLOY, check
from tests.mcp._client import session as _session


def _cli_json(*args: str) -> Any:
    res = CliRunner().invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_tools_are_listed_with_described_inputs_and_output_schemas() -> None:
    async def body(s: ClientSession) -> Any:
        return (await s.list_tools()).tools

    tools = {t.name: t for t in _session(body)}
    assert set(tools) == {
        "inspect_model", "estimate_memory", "plan_deployment", "generate_deployment",
        "audit_deployment", "list_gpus", "list_engines", "benchmark_endpoint",
        "fetch_model", "profile_memory", "run_up",
    }  # fmt: skip
    for tool in tools.values():
        assert tool.description
        assert tool.output_schema and tool.output_schema["type"] == "object"
        for name, prop in tool.input_schema.get("properties", {}).items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"
    est = tools["estimate_memory"].input_schema["properties"]
    # Arguments mirror the CLI's long flags.
    assert {"model", "gpu", "engine", "dtype", "kv_dtype", "context", "concurrency", "tp", "pp",
            "gpu_memory_utilization", "max_batched_tokens", "max_seqs",
            "quantization"} == set(est)  # fmt: skip
    assert tools["estimate_memory"].annotations.read_only_hint is True


def test_each_tool_answers_the_cli_json_object(minilm_dir: Path) -> None:
    model = str(minilm_dir)

    async def body(s: ClientSession) -> Any:
        schemas = {t.name: t.output_schema for t in (await s.list_tools()).tools}
        size_args = {"model": model, "gpu": "l4", "concurrency": 4}
        return {
            "inspect": check(
                await s.call_tool("inspect_model", {"model": model}), schemas["inspect_model"]
            ),
            "size": check(
                await s.call_tool("estimate_memory", size_args), schemas["estimate_memory"]
            ),
            "gpus": check(await s.call_tool("list_gpus", {}), schemas["list_gpus"]),
            "engines": check(await s.call_tool("list_engines", {}), schemas["list_engines"]),
        }  # fmt: skip

    got = _session(body)
    assert got["inspect"] == _cli_json("inspect", model)
    assert got["size"] == _cli_json("size", model, "--gpu", "l4", "--concurrency", "4")
    assert got["size"]["fits"][0]["gpu"] == "L4"
    assert "H100-SXM" in [g["name"] for g in got["gpus"]["gpus"]]
    assert "vllm" in [e["name"] for e in got["engines"]["engines"]]


def test_errors_are_tool_errors_and_the_server_keeps_answering(
    tmp_path: Path, minilm_dir: Path
) -> None:
    async def body(s: ClientSession) -> Any:
        unknown_gpu = await s.call_tool(
            "estimate_memory", {"model": str(minilm_dir), "gpu": "tpu9"}
        )
        missing = await s.call_tool("inspect_model", {"model": str(tmp_path / "nope")})
        bad_type = await s.call_tool("estimate_memory", {"model": "x/y", "concurrency": "lots"})
        zero_tp = await s.call_tool("estimate_memory", {"model": "x/y", "tp": 0})
        after = await s.call_tool("list_gpus", {})
        return unknown_gpu, missing, bad_type, zero_tp, after

    unknown_gpu, missing, bad_type, zero_tp, after = _session(body)
    for res in (unknown_gpu, missing, bad_type, zero_tp):
        assert res.is_error
        assert res.structured_content is None
    # The same text the CLI prints: "error: <message>" and "next: <hint>".
    for res, argv in (
        (missing, ["inspect", str(tmp_path / "nope")]),
        (unknown_gpu, ["size", str(minilm_dir), "--gpu", "tpu9"]),
    ):
        cli = CliRunner().invoke(app, argv)
        assert cli.exit_code == 1
        assert " ".join(cli.stderr.split()) in " ".join(res.content[0].text.split())
    assert "concurrency" in bad_type.content[0].text
    assert "tp" in zero_tp.content[0].text
    assert not after.is_error


def test_resources_are_the_catalogs() -> None:
    async def body(s: ClientSession) -> Any:
        listed = [str(r.uri) for r in (await s.list_resources()).resources]
        gpus = await s.read_resource("hfdeploy://catalog/gpus")
        return listed, json.loads(gpus.contents[0].text)

    listed, gpus = _session(body)
    assert set(listed) == {
        "hfdeploy://catalog/gpus", "hfdeploy://catalog/engines", "hfdeploy://catalog/audit-rules",
    }  # fmt: skip
    assert gpus == _cli_json_free_gpus()


def _cli_json_free_gpus() -> Any:
    from hfdeploy.catalog.gpus import gpu_catalog

    return gpu_catalog().to_dict()


def test_streamable_http_on_loopback() -> None:
    from mcp.client.streamable_http import streamable_http_client

    from tests.serve._fixtures import free_port

    port = free_port()
    proc = subprocess.Popen(
        [HFDEPLOY, "mcp", "--http", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    async def main() -> list[str]:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await anyio.sleep(0.1)
        async with (
            streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write),
            ClientSession(read, write) as s,
        ):
            await s.initialize()
            return [t.name for t in (await s.list_tools()).tools]

    try:
        assert "estimate_memory" in anyio.run(main)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("args", [["mcp", "--help"]])
def test_cli_help(args: list[str]) -> None:
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0
    assert "--http" in res.output


def test_audit_tool_by_path_under_the_root_inline_and_refused_outside(tmp_path: Path) -> None:
    from tests.audit._files import K8S_VLLM

    root = tmp_path / "root"
    (root / "k8s").mkdir(parents=True)
    # a mutable tag, the model first (with --model, `latest` would also draw HFD018)
    bad = K8S_VLLM.replace("vllm/vllm-openai:v0.11.0", "vllm/vllm-openai:latest").replace(
        "            - --model\n", ""
    )
    (root / "k8s" / "deploy.yaml").write_text(bad)
    (tmp_path / "outside.yaml").write_text(bad)

    async def body(s: ClientSession) -> Any:
        schema = next(
            t for t in (await s.list_tools()).tools if t.name == "audit_deployment"
        ).output_schema
        by_path = await s.call_tool("audit_deployment", {"paths": ["k8s"]})
        inline = await s.call_tool("audit_deployment", {"files": {"deploy.yaml": bad}})
        outside = await s.call_tool("audit_deployment", {"paths": [str(tmp_path / "outside.yaml")]})
        escape = await s.call_tool("audit_deployment", {"paths": ["../outside.yaml"]})
        nothing = await s.call_tool("audit_deployment", {})
        return schema, by_path, inline, outside, escape, nothing

    schema, by_path, inline, outside, escape, nothing = _session(body, "--allowed-root", str(root))
    data = check(by_path, schema)
    assert [f["rule_id"] for f in data["findings"]] == ["HFD013"]
    import os

    cwd = Path.cwd()
    os.chdir(root)
    try:
        assert data == _cli_json("audit", str(root / "k8s"))
    finally:
        os.chdir(cwd)
    assert [f["rule_id"] for f in check(inline, schema)["findings"]] == ["HFD013"]
    for res in (outside, escape, nothing):
        assert res.is_error
    assert "outside the allowed root" in outside.content[0].text
    assert "outside the allowed root" in escape.content[0].text


def test_plan_and_generate_tools(tmp_path: Path, minilm_dir: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()

    async def body(s: ClientSession) -> Any:
        schemas = {t.name: t.output_schema for t in (await s.list_tools()).tools}
        plan = await s.call_tool("plan_deployment", {"model": str(minilm_dir), "gpu": "l4"})
        gen = await s.call_tool(
            "generate_deployment", {"model": str(minilm_dir), "out": "deploy", "gpu": "l4"}
        )
        outside = await s.call_tool(
            "generate_deployment", {"model": str(minilm_dir), "out": str(tmp_path / "elsewhere")}
        )
        keda = await s.call_tool(
            "generate_deployment",
            {
                "model": str(minilm_dir),
                "out": "keda",
                "gpu": "cpu",
                "target": "k8s,keda",
                "storage_class": "nfs",
                "scale_out": {"prometheus": "http://prom.mon.svc:9090"},
            },
        )
        typo = await s.call_tool(
            "plan_deployment",
            {"model": str(minilm_dir), "scale_out": {"autoscaler": "keda", "gpu_lable": "gke"}},
        )
        return schemas, plan, gen, outside, keda, typo

    schemas, plan, gen, outside, keda, typo = _session(body, "--allowed-root", str(root))
    # The scale-out options, as the CLI's flags: the same ScaledObject.
    assert "k8s/scaledobject.yaml" in check(keda, schemas["generate_deployment"])["files"]
    _cli_json("generate", str(minilm_dir), "--out", str(tmp_path / "cli"), "--gpu", "cpu",
              "--target", "k8s,keda", "--storage-class", "nfs",
              "--prometheus", "http://prom.mon.svc:9090")  # fmt: skip
    for rel in ("k8s/scaledobject.yaml", "k8s/deployment.yaml"):
        assert (root / "keda" / rel).read_text() == (tmp_path / "cli" / rel).read_text()
    assert typo.is_error and "gpu_lable" in typo.content[0].text
    data = check(plan, schemas["plan_deployment"])
    assert data == _cli_json("plan", str(minilm_dir), "--gpu", "l4")
    assert data["engine"] == "tei"
    written = check(gen, schemas["generate_deployment"])
    assert (root / "deploy" / "compose.yaml").is_file()
    assert "k8s/deployment.yaml" in written["files"]
    assert outside.is_error
    assert "outside the allowed root" in outside.content[0].text
    assert not (tmp_path / "elsewhere").exists()


def test_benchmark_tool_loads_loopback_only_and_bounded() -> None:
    from tests.bench.conftest import start_fake

    fake = start_fake("--ttft-ms", "20", "--tpot-ms", "1")
    far = "http://10.1.2.3:8080"
    try:

        async def body(s: ClientSession) -> Any:
            ok = await s.call_tool(
                "benchmark_endpoint",
                {"url": fake.url, "api": "openai-chat", "profile": "concurrent:2",
                 "requests": 20, "output_tokens": "8"},
            )  # fmt: skip
            refused = await s.call_tool("benchmark_endpoint", {"url": far})
            too_long = await s.call_tool(
                "benchmark_endpoint",
                {"url": fake.url, "profile": "concurrent:1,2,4", "duration": 60},
            )
            tools = (await s.list_tools()).tools
            return ok, refused, too_long, tools

        ok, refused, too_long, tools = _session(body)
    finally:
        fake.stop()
    schema = next(t for t in tools if t.name == "benchmark_endpoint").output_schema
    data = check(ok, schema)
    assert data["summary"]["completed"] == 20
    # The server's 20 ms before the first token are in the measured TTFT (asyncio may wake a
    # sleep up to a clock tick early: 5 ms once measured 4.76 ms, so the bound leaves room).
    assert data["summary"]["ttft_ms"]["p50"] >= 15
    assert "phases" in data and "records" not in data["phases"][0]
    assert refused.is_error and "neither loopback nor an allowed host" in refused.content[0].text
    assert too_long.is_error and "more than 120 s" in too_long.content[0].text


def test_benchmark_tool_runs_duplex_sessions(tmp_path: Path) -> None:
    from tests.bench.conftest import start_duplex

    fake = start_duplex("--handshake-ms", "30")
    try:

        async def body(s: ClientSession) -> Any:
            ok = await s.call_tool(
                "benchmark_endpoint",
                {"url": fake.url, "api": "duplex", "duration": 1, "codec": "pcm",
                 "text_prompt": "Hi."},
            )  # fmt: skip
            too_long = await s.call_tool(
                "benchmark_endpoint",
                {"url": fake.url, "api": "duplex", "profile": "concurrent:1,2,4",
                 "duration": 20},
            )  # fmt: skip
            outside = await s.call_tool(
                "benchmark_endpoint",
                {"url": fake.url, "api": "duplex", "audio": str(tmp_path / "x.wav")},
            )
            far = await s.call_tool(
                "benchmark_endpoint", {"url": "ws://10.1.2.3:8998", "api": "duplex"}
            )
            tools = (await s.list_tools()).tools
            return ok, too_long, outside, far, tools

        root = tmp_path / "root"
        root.mkdir()
        ok, too_long, outside, far, tools = _session(body, "--allowed-root", str(root))
    finally:
        fake.stop()
    schema = next(t for t in tools if t.name == "benchmark_endpoint").output_schema
    data = check(ok, schema)
    assert data["config"]["ws_url"] == fake.url + "/api/chat?text_prompt=Hi."
    assert (data["summary"]["sessions"], data["summary"]["served"]) == (1, 1)
    assert data["summary"]["handshake_ms"]["p50"] >= 25
    assert "largest_realtime_sessions" in data
    assert "arrivals_ms" not in data["phases"][0]
    assert too_long.is_error and "more than 120 s" in too_long.content[0].text
    assert outside.is_error and "outside the allowed root" in outside.content[0].text
    assert far.is_error and "neither loopback nor an allowed host" in far.content[0].text


def test_audit_tool_reads_models_only_under_its_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The model is in the Hugging Face cache this environment names: the CLI sizes it there,
    # as any Hugging Face tool would; the MCP server reads nothing outside its allowed root,
    # and its finding says it could not check.
    from tests.audit._corpus import CORPUS, HUB_CACHE

    root = tmp_path / "root"
    root.mkdir()
    deployment = (CORPUS / "gpu-labels/gke-l4-70b/deployment.yaml").read_text()
    (root / "deployment.yaml").write_text(deployment)
    monkeypatch.setenv("HF_HUB_CACHE", str(HUB_CACHE))

    async def body(s: ClientSession) -> Any:
        schema = next(
            t for t in (await s.list_tools()).tools if t.name == "audit_deployment"
        ).output_schema
        return check(await s.call_tool("audit_deployment", {"paths": ["."]}), schema)

    by_mcp = _session(body, "--allowed-root", str(root))
    (fit,) = [f for f in by_mcp["findings"] if f["tag"] == "model-does-not-fit"]
    assert fit["severity"] == "info" and "reads no Hugging Face cache" in fit["message"]
    res = CliRunner().invoke(app, ["audit", str(root), "--json"])
    (fit,) = [f for f in json.loads(res.stdout)["findings"] if f["tag"] == "model-does-not-fit"]
    assert fit["severity"] == "error" and "L4 has 22.5 GiB" in fit["message"]
