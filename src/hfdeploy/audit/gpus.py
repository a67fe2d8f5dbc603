"""The GPU a pod runs on, from the node label a deployment selects it by.

Label values name a GPU (``NVIDIA-L4`` from NVIDIA's GPU feature discovery,
``nvidia-tesla-t4`` from GKE, ``l4`` from Karpenter) or an instance type whose family has one
GPU model (``g6.xlarge`` on EKS, ``g2-standard-8`` on GKE, ``Standard_NC4as_T4_v3`` on AKS).
The families below are the clouds' GPU instance families with a single GPU model each; any
other value is matched to the GPU catalog's names and aliases. A MIG slice
(``NVIDIA-A100-SXM4-40GB-MIG-3g.20gb``) or a variant the catalog lacks (H100 NVL, 94 GB) is
no catalog GPU: None, so that the fit check says it could not check rather than size the
whole card. Pure.
"""

from __future__ import annotations

import re

from hfdeploy.catalog.gpus import GPU, find_gpu, gpu_catalog

__all__ = ["AZURE_SIZES", "INSTANCE_FAMILIES", "gpu_from_label"]

#: Instance families (AWS EC2 ``<family>.<size>``, Google Cloud ``<family>-<shape>``) ->
#: the catalog GPU every type of the family carries.
INSTANCE_FAMILIES: tuple[tuple[str, str], ...] = (
    ("g4dn", "T4"),  # AWS: NVIDIA T4
    ("g5", "A10G"),  # AWS: NVIDIA A10G (g5g is T4G: not listed)
    ("g6e", "L40S"),  # AWS: NVIDIA L40S
    ("g6", "L4"),  # AWS: NVIDIA L4
    ("gr6", "L4"),  # AWS: NVIDIA L4, more memory per vCPU
    ("p4de", "A100-80GB"),
    ("p4d", "A100-40GB"),
    ("p5en", "H200"),
    ("p5e", "H200"),
    ("p5", "H100-SXM"),
    ("g2", "L4"),  # Google Cloud: NVIDIA L4
    ("a2-highgpu", "A100-40GB"),
    ("a2-megagpu", "A100-40GB"),
    ("a2-ultragpu", "A100-80GB"),
    ("a3-highgpu", "H100-SXM"),
    ("a3-megagpu", "H100-SXM"),
    ("a3-edgegpu", "H100-SXM"),
    ("a3-ultragpu", "H200"),
)
_FAMILY = re.compile(r"^([a-z0-9]+(?:-[a-z]+gpu)?)(?:[.-]|$)")
#: Azure VM sizes (``Standard_<family><vCPUs><features>_<accelerator>_v<N>``, AKS's
#: ``node.kubernetes.io/instance-type``) -> the catalog GPU of the series.
AZURE_SIZES: tuple[tuple[str, str], ...] = (
    (r"standard_nc\d+as_t4_v3", "T4"),  # NCasT4_v3: NVIDIA T4
    (r"standard_nc\d+ads_a100_v4", "A100-80GB"),  # NC A100 v4: A100 80GB PCIe
    (r"standard_nd96asr_v4", "A100-40GB"),  # ND A100 v4
    (r"standard_nd96amsr_a100_v4", "A100-80GB"),  # NDm A100 v4
    (r"standard_nd96isr_h100_v5", "H100-SXM"),  # ND H100 v5
    (r"standard_nd96isr_h200_v5", "H200"),  # ND H200 v5
)
#: Values that name a part of a GPU, or a variant with other memory than the catalog's card.
_NOT_A_CATALOG_CARD = re.compile(r"-mig-|\bmig-\d|nvl|standard_n", re.I)


def _instance_gpu(value: str) -> GPU | None:
    """The GPU of an instance type or family (``g6.xlarge``, ``g6``, ``a2-ultragpu-1g``)."""
    m = _FAMILY.match(value.lower())
    family = m.group(1) if m else ""
    name = next((gpu for fam, gpu in INSTANCE_FAMILIES if fam == family), None)
    return find_gpu(name) if name else None


def gpu_from_label(label: str) -> GPU | None:
    """A catalog GPU from a node label value (``NVIDIA-H100-80GB-HBM3``, ``nvidia-l4``,
    ``g6.xlarge``); None when the value names no GPU the catalog has."""
    found = _instance_gpu(label)
    if found is not None:
        return found
    azure = next((gpu for size, gpu in AZURE_SIZES if re.fullmatch(size, label.lower())), None)
    if azure is not None:
        return find_gpu(azure)
    if _NOT_A_CATALOG_CARD.search(label):
        return None
    low = label.lower().replace("_", "-")
    best: GPU | None = None
    longest = 0  # the longest name found wins: a100-80gb over a100
    for gpu in gpu_catalog().gpus:
        for name in (gpu.name, *gpu.aliases):
            n = name.lower()
            if n in low and len(n) > longest:
                best, longest = gpu, len(n)
    return best
