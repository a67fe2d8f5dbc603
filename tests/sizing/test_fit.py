"""Fit over the GPU catalog on a 70B-shaped checkpoint (real headers, sparse data)."""

from __future__ import annotations

import pytest

from hfdeploy import inspect_model, size_model
from hfdeploy.catalog.gpus import find_gpu, gpu_catalog
from hfdeploy.model.profile import ModelProfile
from tests._synthetic import LLAMA3_70B, llama_shaped_checkpoint


@pytest.fixture(scope="module")
def llama70b(tmp_path_factory: pytest.TempPathFactory) -> ModelProfile:
    folder = tmp_path_factory.mktemp("llama70b")
    llama_shaped_checkpoint(folder, LLAMA3_70B, shards=30)
    return inspect_model(str(folder))


def test_70b_parameters_from_sharded_headers(llama70b: ModelProfile) -> None:
    assert llama70b.parameters == 70_553_706_496
    assert llama70b.weights.bytes == 2 * 70_553_706_496
    assert llama70b.bytes_read < 1_000_000


def test_70b_does_not_fit_one_h100_but_fits_with_tensor_parallelism(llama70b: ModelProfile) -> None:
    r = size_model(llama70b, gpu="H100-SXM", context=8192, concurrency=16)
    row = r.fits[0]
    assert not row.fits
    assert row.min_tp in (2, 4)
    at_min = size_model(llama70b, gpu="H100-SXM", context=8192, concurrency=16, tp=row.min_tp)
    assert at_min.fits[0].fits
    if row.min_tp == 4:
        assert (
            not size_model(llama70b, gpu="H100-SXM", context=8192, concurrency=16, tp=2)
            .fits[0]
            .fits
        )


def test_int4_what_if_fits_one_h100(llama70b: ModelProfile) -> None:
    r = size_model(llama70b, gpu="H100-SXM", context=8192, quantization="int4")
    assert r.fits[0].fits
    assert r.estimate.weights_total_bytes < 0.3 * llama70b.weights.bytes


def test_max_concurrency_and_context_agree_with_the_budget(llama70b: ModelProfile) -> None:
    r = size_model(llama70b, gpu="H200", context=8192, concurrency=1, tp=2)
    e, row = r.estimate, r.fits[0]
    gpu = find_gpu("H200")
    budget = int(gpu.memory_bytes * 0.9)
    free_for_kv = budget - (e.total_bytes - e.cuda_context.bytes - e.kv_cache.bytes)
    assert row.max_concurrency == free_for_kv // e.kv_bytes_per_sequence_per_rank
    assert row.max_context is not None and row.max_context >= 8192
    # at the reported maximum context the same settings still fit
    at_max = size_model(llama70b, gpu="H200", context=row.max_context, concurrency=1, tp=2)
    assert at_max.fits[0].fits


def test_every_catalog_gpu_is_listed(llama70b: ModelProfile) -> None:
    r = size_model(llama70b, context=4096)
    assert [row.gpu for row in r.fits] == gpu_catalog().names()


def test_catalog_has_required_fields() -> None:
    names = set(gpu_catalog().names())
    assert {"T4", "L4", "A10G", "L40S", "A100-40GB", "A100-80GB", "H100-SXM", "H100-PCIe",
            "H200", "B200", "MI300X"} <= names  # fmt: skip
    for gpu in gpu_catalog().gpus:
        assert gpu.memory_bytes > 10 * 2**30
        assert gpu.bandwidth_gbps > 0
        assert gpu.price_per_hour and gpu.price_per_hour > 0
        assert gpu.compute_capability
    assert find_gpu("h100").name == "H100-SXM"
    assert gpu_catalog().price_date


def test_a_memory_fraction_of_one_is_the_whole_gpu(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """TGI's default CUDA_MEMORY_FRACTION is 1.0: an 8B model must fit an 80 GB GPU.

    Before the fix every TGI estimate failed with "the CUDA context needs 0.50 GiB
    outside the 1.00 fraction", whatever the model.
    """
    import json

    from hfdeploy import inspect_model, size_model
    from tests._synthetic import LLAMA3_8B

    config = LLAMA3_8B
    (tmp_path / "config.json").write_text(json.dumps(config))
    report = size_model(inspect_model(str(tmp_path)), gpu="A100-80GB", engine="tgi")
    assert report.estimate.settings.gpu_memory_utilization == 1.0
    assert report.fits[0].fits, report.fits[0].reason
    assert report.fits[0].budget_bytes == report.fits[0].memory_bytes
