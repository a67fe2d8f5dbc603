"""Inference Endpoints instances: only what the service offers, and why when it differs."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from hfdeploy import inspect_model
from hfdeploy.catalog.gpus import find_gpu, gpu_catalog
from hfdeploy.plan.endpoints import _offers, endpoint_instance
from hfdeploy.plan.planner import plan_deployment
from hfdeploy.render.generate import generate_deployment
from tests._synthetic import LLAMA3_8B, config_folder

GIB = 2**30
#: The Hub repository the local test folder is published at: Endpoints loads it from there.
REPO = "acme/l8@" + "b" * 40


def test_every_offer_is_a_catalog_gpu() -> None:
    names = {g.name for g in gpu_catalog().gpus}
    for offer in _offers()["gpu"].values():
        assert offer["gpu"] in names
        assert offer["sizes"] == sorted(offer["sizes"])


@pytest.mark.parametrize(
    ("gpu", "tp", "instance", "size", "note"),
    [
        ("A10G", 1, "nvidia-a10g", "x1", ""),
        ("H200", 8, "nvidia-h200", "x8", ""),
        # The service has no x2 of these: the next size up, and the plan says so.
        ("L4", 2, "nvidia-l4", "x4", "uses 2 of its 4 GPUs"),
        ("L40S", 2, "nvidia-l40s", "x4", "uses 2 of its 4 GPUs"),
        # Retired or never offered: a GPU with at least the memory and bandwidth.
        ("H100-SXM", 2, "nvidia-h200", "x2", "deprecated nvidia-h100 on aws"),
        ("A100-40GB", 1, "nvidia-a100", "x1", "has no A100-40GB"),
        ("L4", 8, "nvidia-l40s", "x8", "offers nvidia-l4 up to x4"),
    ],
)
def test_instance_for_a_plan(gpu: str, tp: int, instance: str, size: str, note: str) -> None:
    choice = endpoint_instance(find_gpu(gpu), tp, 20 * GIB)
    assert (choice.vendor, choice.accelerator) == ("aws", "gpu")
    assert (choice.instance_type, choice.instance_size) == (instance, size)
    assert note in choice.note
    offered = find_gpu(_offers()["gpu"][instance]["gpu"])
    assert offered.memory_mib >= find_gpu(gpu).memory_mib
    assert offered.bandwidth_gbps >= find_gpu(gpu).bandwidth_gbps


@pytest.mark.parametrize(("gpu", "tp"), [("MI300X", 1), ("B200", 1), ("H200", 16)])
def test_no_instance_says_why(gpu: str, tp: int) -> None:
    choice = endpoint_instance(find_gpu(gpu), tp, 20 * GIB)
    assert choice.instance_type is None
    assert "hf-endpoint.json is not written" in choice.note


def test_cpu_sizes_follow_memory() -> None:
    assert endpoint_instance(None, 1, GIB // 2).instance_size == "x2"  # 2 vCPUs at least
    assert endpoint_instance(None, 1, 10 * GIB).instance_size == "x8"  # 16 GiB >= 15 GiB
    assert endpoint_instance(None, 1, 100 * GIB).instance_type is None


def test_generate_writes_the_instance_or_leaves_the_file_out(tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    model = config_folder(tmp_path / "l8", LLAMA3_8B)
    profile = inspect_model(str(model))
    h100 = plan_deployment(profile, gpu="h100", repo=REPO)
    generate_deployment(h100, tmp_path / "h100", lock=False)
    body = json.loads((tmp_path / "h100/hf-endpoint.json").read_text())
    assert (body["instance_type"], body["instance_size"]) == ("nvidia-h200", "x1")
    assert set(body) <= set(inspect.signature(HfApi.create_inference_endpoint).parameters)
    assert any("nvidia-h200" in n for n in h100.notes)
    mi300x = plan_deployment(profile, gpu="mi300x", repo=REPO)
    generate_deployment(mi300x, tmp_path / "mi300x", lock=False)
    assert not (tmp_path / "mi300x/hf-endpoint.json").exists()
    readme = (tmp_path / "mi300x/README.md").read_text()
    assert "hf-endpoint.json is not written" in readme
    assert mi300x.to_dict()["endpoint"]["instance_type"] is None


def test_rare_traffic_scales_the_endpoint_to_zero(tmp_path: Path) -> None:
    model = config_folder(tmp_path / "l8", LLAMA3_8B)
    profile = inspect_model(str(model))
    rare = plan_deployment(
        profile, gpu="h200", traffic_rps=1 / 3600, active_hours_per_day=24, repo=REPO
    )
    assert rare.cost.cheaper == "scale-to-zero"
    assert rare.endpoint is not None and rare.endpoint.scale_to_zero_minutes == 60
    assert any("scales to zero after 60 min idle" in n for n in rare.notes)
    generate_deployment(rare, tmp_path / "rare", lock=False)
    body = json.loads((tmp_path / "rare/hf-endpoint.json").read_text())
    assert (body["min_replica"], body["scale_to_zero_timeout"]) == (0, 60)
    # Busy traffic, or no traffic given: the endpoint keeps its replicas.
    for plan in (
        plan_deployment(profile, gpu="h200", traffic_rps=5.0, active_hours_per_day=24, repo=REPO),
        plan_deployment(profile, gpu="h200", repo=REPO),
    ):
        generate_deployment(plan, tmp_path / "kept", lock=False)
        body = json.loads((tmp_path / "kept/hf-endpoint.json").read_text())
        assert body["min_replica"] == plan.scaling.replicas >= 1
        assert "scale_to_zero_timeout" not in body
