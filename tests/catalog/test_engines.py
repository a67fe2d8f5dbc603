"""One engine catalog, read by sizing, plan, render, the audit and the MCP server."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfdeploy import inspect_model, size_model
from hfdeploy.audit import audit_texts
from hfdeploy.audit.invocation import detect_invocation
from hfdeploy.catalog.engines import engine_catalog, find_engine, sizing_engines
from hfdeploy.errors import InvalidSettingError
from hfdeploy.plan.planner import plan_deployment
from tests._synthetic import LLAMA3_8B, config_folder


@pytest.fixture(scope="module")
def llama8b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return config_folder(tmp_path_factory.mktemp("cat") / "l8", LLAMA3_8B)


def test_every_entry_says_what_each_stage_needs() -> None:
    cat = engine_catalog()
    # Before: sizing knew transformers but not triton, plan knew triton but not transformers.
    assert {"vllm", "sglang", "tgi", "tei", "llama.cpp", "triton", "hfdeploy"} <= {
        n for n, e in cat.items() if e.deploy is not None
    }
    assert {"transformers", "triton"} <= set(sizing_engines())
    for name, e in cat.items():
        assert e.detect.images or e.detect.commands or e.deploy is None, name
        if e.deploy is not None:
            assert e.sizing is not None, f"{name} is deployed but not sized"
            # Request servers name the queue their autoscaler watches; session-bound
            # (full-duplex) servers name the WebSocket route a conversation holds instead.
            assert e.deploy.routes.queue_metric or e.deploy.routes.session, name


def test_triton_sizes_as_the_vllm_it_runs(llama8b: Path) -> None:
    profile = inspect_model(str(llama8b))
    triton = size_model(profile, engine="triton", gpu="h100")
    vllm = size_model(profile, engine="vllm", gpu="h100")
    assert triton.estimate.total_bytes == vllm.estimate.total_bytes
    assert triton.estimate.settings.engine == "vllm"
    assert "triton runs vllm" in triton.estimate.settings.sources["engine"]


def test_an_engine_hfdeploy_only_sizes_is_not_planned(llama8b: Path) -> None:
    with pytest.raises(InvalidSettingError, match="does not deploy it"):
        plan_deployment(inspect_model(str(llama8b)), engine="transformers")
    with pytest.raises(InvalidSettingError, match="not in the engine catalog"):
        find_engine("nonesuch")


def test_the_audit_recognises_engines_from_the_catalog() -> None:
    assert detect_invocation(["tritonserver", "--model-repository=/models"], 1).engine == (
        "triton"
    )  # fmt: skip
    inv = detect_invocation(
        ["--model-id", "x"], 1, image="ghcr.io/huggingface/text-generation-inference:3"
    )
    assert inv is not None and inv.engine == "tgi"
    assert detect_invocation(["serve", "m"], 1, image="kserve/huggingfaceserver:v0.15").engine == (
        "kserve"
    )  # fmt: skip
    # A Triton container takes its TP from model.json, not its flags: no GPU-count finding.
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: t}\nspec:\n  containers:\n"
        "  - name: s\n    image: nvcr.io/nvidia/tritonserver:26.06-vllm-python-py3\n"
        "    args: [tritonserver, --model-repository=/models]\n"
        "    resources: {limits: {nvidia.com/gpu: 2}}\n"
    )
    assert "HFD011" not in {f.rule_id for f in audit_texts({"t.yaml": text}).findings}


def test_the_engines_page_says_what_the_catalog_says() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs/engines.md").read_text()
    for name, e in engine_catalog().items():
        if e.deploy is None:
            continue
        r = e.deploy.routes
        row = next(line for line in page.splitlines() if line.startswith(f"| {name} | {r.port} |"))
        if r.session:  # no health route: TCP probes; one conversation per WebSocket
            assert "TCP" in row and f"`{r.session}`" in row, row
        else:
            assert f"`{r.ready}` / `{r.live}`" in row and f"`{r.queue_metric}`" in row, row
        assert f"`{e.deploy.cache_dir}`" in row, row
