"""The planner finds the cheapest configuration that meets the request, with the engines' own
defaults on each GPU, before it adds GPUs; and its flags reproduce the estimate."""

from __future__ import annotations

from typing import Any

import pytest

from hfdeploy import inspect_model, size_model
from hfdeploy.catalog.gpus import find_gpu
from hfdeploy.model.profile import ModelProfile
from hfdeploy.plan.flags import knobs_from_args
from hfdeploy.plan.planner import plan_deployment
from hfdeploy.plan.result import Plan
from tests._synthetic import LLAMA3_8B, LLAMA3_70B, config_folder

GIB = 2**30


@pytest.fixture(scope="module")
def profiles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelProfile]:
    root = tmp_path_factory.mktemp("search")
    qwen7b = LLAMA3_8B | {  # a Qwen2-7B shape: 28 layers, 4 KV heads, a larger vocabulary
        "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": 3584,
        "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
        "num_key_value_heads": 4, "head_dim": 128, "vocab_size": 152064,
        "max_position_embeddings": 32768,
    }  # fmt: skip
    return {
        "llama8b": inspect_model(str(config_folder(root / "llama8b", LLAMA3_8B))),
        "qwen7b": inspect_model(str(config_folder(root / "qwen7b", qwen7b))),
        "llama70b": inspect_model(str(config_folder(root / "llama70b", LLAMA3_70B))),
    }


def _vllm_server_defaults(gpu: str) -> tuple[int, int]:
    """vLLM 0.30's OpenAI-server defaults (vllm/engine/arg_utils.py get_batch_defaults),
    written out here rather than read from the catalog: (batched tokens, max sequences)."""
    g = find_gpu(gpu)
    gib = g.memory_bytes / GIB
    if gib >= 160:
        return 16384, 1024
    if gib >= 70 and "a100" not in g.name.lower():
        return 8192, 1024
    return 2048, 256


@pytest.mark.parametrize("model", ["llama8b", "qwen7b"])
@pytest.mark.parametrize("gpu", ["l4", "a10g"])
def test_a_7_8b_model_on_a_24gb_gpu_is_one_gpu_at_vllms_own_budget(
    profiles: dict[str, ModelProfile], model: str, gpu: str
) -> None:
    # Before: 2 x L4 at TP 2, sized for 8,192 batched tokens that vLLM never uses there.
    plan = plan_deployment(profiles[model], gpu=gpu)
    s = plan.size.estimate.settings
    batched, _ = _vllm_server_defaults(gpu)
    assert (plan.engine.name, plan.tp, s.batched_tokens) == ("vllm", 1, batched)
    assert plan.reasons[-1].startswith(f"1 x {find_gpu(gpu).name} at vllm's defaults there")
    # The memory it needs fits vLLM's 0.9 of the card, the CUDA context outside it.
    e = plan.size.estimate
    assert e.total_bytes - e.cuda_context.bytes <= 0.9 * find_gpu(gpu).memory_bytes


def test_the_same_on_an_h100_keeps_8192(profiles: dict[str, ModelProfile]) -> None:
    plan = plan_deployment(profiles["llama8b"], gpu="h100")
    assert _vllm_server_defaults("h100") == (8192, 1024)
    assert (plan.tp, plan.size.estimate.settings.batched_tokens) == (1, 8192)
    args = list(plan.command.args)
    assert args[args.index("--max-num-batched-tokens") + 1] == "8192"


@pytest.mark.parametrize(
    ("gpu", "fp8_kv"), [("h100", True), ("l40s", True), ("a100-80gb", False), ("a10g", False)]
)
def test_fp8_kv_only_where_the_gpu_computes_in_fp8(
    profiles: dict[str, ModelProfile], gpu: str, fp8_kv: bool
) -> None:
    # A KV cache that one GPU holds only in fp8: 16 x 32k on 80 GB cards, 16 x 16k on 48 GB.
    big = find_gpu(gpu).memory_bytes > 60 * GIB
    context, concurrency = (32768, 16) if big else (16384, 16)
    profile = profiles["llama8b"]
    bf16 = size_model(profile, gpu=gpu, context=context, concurrency=concurrency)
    if not (find_gpu(gpu).memory_bytes < 30 * GIB):
        assert not bf16.fits[0].fits  # the defaults do not hold it on one GPU
    plan = plan_deployment(profile, gpu=gpu, context=context, concurrency=concurrency)
    kv = plan.size.estimate.settings.kv_dtype
    if fp8_kv:  # Hopper and Ada: one GPU with an fp8 KV cache
        assert (plan.tp, kv) == (1, "fp8")
        args = list(plan.command.args)
        assert args[args.index("--kv-cache-dtype") + 1] == "fp8"
        assert "fp8 KV cache" in plan.reasons[-1] and "instead of" in plan.reasons[-1]
    else:  # Ampere: no fp8 KV, more GPUs
        assert kv != "fp8" and plan.tp >= 2
        assert "--kv-cache-dtype" not in plan.command.args


def test_a_70b_at_32k_x_32_on_h100_still_scales_out(profiles: dict[str, ModelProfile]) -> None:
    plan = plan_deployment(profiles["llama70b"], gpu="h100", context=32768, concurrency=32)
    assert plan.gpu_count >= 8
    assert plan.quantization is None


def test_prefer_latency_pays_for_the_defaults(profiles: dict[str, ModelProfile]) -> None:
    cheap = plan_deployment(profiles["llama8b"], gpu="l4", context=8192, concurrency=8)
    fast = plan_deployment(
        profiles["llama8b"], gpu="l4", context=8192, concurrency=8, prefer="latency"
    )
    assert cheap.tp == 1 and cheap.size.estimate.settings.kv_dtype == "fp8"
    assert fast.tp == 2 and fast.size.estimate.settings.kv_dtype != "fp8"
    chosen = [a for a in cheap.alternatives if a.chosen]
    dearer = [a for a in cheap.alternatives if a.fits and not a.chosen]
    assert chosen and dearer and all(a.per_month > chosen[0].per_month for a in dearer)
    assert any("2 x L4 at the engine's defaults" in a.placement for a in cheap.alternatives)
    assert cheap.to_dict()["alternatives"][0]["per_month"] > 0


def _resized(plan: Plan, profile: ModelProfile) -> Any:
    knobs: dict[str, Any] = knobs_from_args(plan.engine, plan.command.args)
    s = plan.size.estimate.settings
    assert plan.gpu is not None
    return size_model(
        profile, gpu=plan.gpu.name, engine=plan.engine.name, concurrency=s.concurrency, **knobs
    )


@pytest.mark.parametrize(
    "case",
    [
        {"gpu": "l4"},
        {"gpu": "h100", "context": 8192, "concurrency": 16},
        {"gpu": "l4", "context": 8192, "concurrency": 8},
        {"gpu": "h100", "context": 32768, "concurrency": 16},
        {"gpu": "h100", "engine": "sglang"},
        {"gpu": "l40s", "engine": "sglang", "context": 8192, "concurrency": 8},
        {"gpu": "a10g", "engine": "tgi"},
    ],
)
def test_the_flags_reproduce_the_estimate(
    profiles: dict[str, ModelProfile], case: dict[str, Any]
) -> None:
    # Parse the command the deployment runs, re-size from it alone: the same memory.
    profile = profiles["llama8b"]
    plan = plan_deployment(profile, **case)
    again = _resized(plan, profile)
    assert again.estimate.total_bytes == plan.size.estimate.total_bytes
    assert again.estimate.settings.batched_tokens == plan.size.estimate.settings.batched_tokens
    assert again.fits[0].fits


def test_tgi_defaults_to_its_compute_optimal_prefill(profiles: dict[str, ModelProfile]) -> None:
    # TGI's launcher: the card's f16 FLOP/s over the model's FLOPs per token, computed here.
    profile = profiles["llama8b"]
    h, layers, heads, kv, hd, inter = 4096, 32, 32, 8, 128, 14336
    flop = layers * (2 * hd * h * (3 * heads + 2 * kv) + 6 * h * inter)
    expected = int(121e12 / flop)  # TGI's table: L4 121 TFLOP/s
    s = size_model(profile, gpu="l4", engine="tgi").estimate.settings
    assert s.batched_tokens == expected
    assert 7000 < expected < 9000


def test_sglang_static_fraction_is_its_own(profiles: dict[str, ModelProfile]) -> None:
    # SGLang on an 80 GB H100: 8,192-token chunks, 256 graph batches, at least 10 GiB back.
    s = size_model(profiles["llama8b"], gpu="h100", engine="sglang").estimate.settings
    mib = find_gpu("h100").memory_bytes / 2**20
    reserved = max(512 + 1.5 * 8192 + 1024 / 8 + 2 * 256, 10240)
    assert s.batched_tokens == 8192
    assert s.gpu_memory_utilization == round((mib - reserved) / mib, 3)
