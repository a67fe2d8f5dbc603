"""The GPU a node label names: product labels, GKE accelerators, instance types."""

from __future__ import annotations

import pytest

from hfdeploy.audit.gpus import INSTANCE_FAMILIES, gpu_from_label
from hfdeploy.catalog.gpus import find_gpu


@pytest.mark.parametrize(
    ("label", "gpu"),
    [
        ("NVIDIA-L4", "L4"),  # nvidia.com/gpu.product
        ("NVIDIA-H100-80GB-HBM3", "H100-SXM"),
        ("NVIDIA-A100-SXM4-80GB", "A100-80GB"),
        ("nvidia-tesla-t4", "T4"),  # cloud.google.com/gke-accelerator
        ("nvidia-a100-80gb", "A100-80GB"),  # the longest name matched wins, not the first
        ("nvidia-l4", "L4"),
        ("l40s", "L40S"),  # karpenter.k8s.aws/instance-gpu-name
        ("a10g", "A10G"),
        ("g6.xlarge", "L4"),  # node.kubernetes.io/instance-type
        ("g6e.2xlarge", "L40S"),
        ("g4dn", "T4"),  # karpenter.k8s.aws/instance-family
        ("a2-ultragpu-1g", "A100-80GB"),
    ],
)
def test_labels_name_catalog_gpus(label: str, gpu: str) -> None:
    found = gpu_from_label(label)
    assert found is not None and found.name == gpu


def test_unknown_labels_name_nothing() -> None:
    assert gpu_from_label("m5.xlarge") is None
    assert gpu_from_label("NVIDIA-GB10") is None


def test_every_family_names_a_catalog_gpu() -> None:
    for _, name in INSTANCE_FAMILIES:
        find_gpu(name)
