"""``hfdeploy plan`` over a matrix of models: engine, GPUs, TP, flags, envelope."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hfdeploy import inspect_model, size_model
from hfdeploy.catalog.engines import engine_catalog
from hfdeploy.cli.main import app
from hfdeploy.errors import DoesNotFitError, InvalidSettingError, UnknownGPUError
from hfdeploy.plan.flags import knobs_from_args
from hfdeploy.plan.planner import plan_deployment
from tests._synthetic import (
    LLAMA3_8B,
    LLAMA3_70B,
    config_folder,
    llama_shaped_checkpoint,
    write_gguf,
)


@pytest.fixture(scope="module")
def llama70b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("m") / "llama70b"
    llama_shaped_checkpoint(folder, LLAMA3_70B, shards=2)
    return folder


@pytest.fixture(scope="module")
def llama8b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return config_folder(tmp_path_factory.mktemp("m") / "llama8b", LLAMA3_8B)  # config only


def _plan_contract(d: dict) -> None:
    assert isinstance(d["engine"], str)
    assert isinstance(d["image"], str)
    assert ":" in d["image"]
    assert set(d["gpu"]) >= {"name", "count"}
    assert isinstance(d["tensor_parallel"], int)
    assert set(d["envelope"]) >= {"result", "confidence", "uncertainty_factors", "verification"}
    json.dumps(d)


def test_70b_on_80gb_gpus_gets_a_tp_whose_kv_budget_holds(llama70b: Path) -> None:
    profile = inspect_model(str(llama70b))
    plan = plan_deployment(profile, gpu="h100", context=8192, concurrency=16)
    assert plan.engine.name == "vllm"
    assert plan.gpu is not None
    assert plan.gpu.name == "H100-SXM"
    assert plan.tp in (2, 4, 8)
    # The KV budget holds at that TP, with the settings its flags give: check with the sizing
    # model itself.
    knobs: dict[str, Any] = knobs_from_args(plan.engine, plan.command.args)
    knobs.pop("tp")
    check = size_model(profile, gpu="H100-SXM", engine="vllm", tp=plan.tp, concurrency=16, **knobs)
    assert check.fits[0].fits
    assert check.fits[0].max_concurrency >= 16
    smaller = size_model(
        profile, gpu="H100-SXM", engine="vllm", tp=plan.tp // 2, concurrency=16, **knobs
    )
    assert not smaller.fits[0].fits  # and the next TP down does not
    args = list(plan.command.args)
    assert args[args.index("--tensor-parallel-size") + 1] == str(plan.tp)
    assert args[args.index("--max-model-len") + 1] == "8192"
    assert int(args[args.index("--max-num-seqs") + 1]) >= 16
    # `vllm serve MODEL`: the image's entrypoint takes the model first, not as --model
    # (deprecated with `vllm serve` and due to be removed).
    assert args[0] == "/repository" and "--model" not in args
    assert "--host" in args
    assert any(
        f"{plan.tp} x H100-SXM" in r and "KV cache at 8,192 tokens" in r for r in plan.reasons
    )
    _plan_contract(plan.to_dict())
    assert plan.roofline.regime == "memory-bound"
    assert plan.cold_start.startup_probe_budget_s >= plan.cold_start.total_s


def test_catalog_gpu_choice_is_the_cheapest_that_fits(llama8b: Path) -> None:
    from hfdeploy.catalog.gpus import gpu_catalog

    profile = inspect_model(str(llama8b))
    plan = plan_deployment(profile, context=8192, concurrency=8)
    costs = {}
    for g in gpu_catalog().gpus:
        if g.vendor.lower() != "nvidia" or not g.price_per_hour:
            continue
        for tp in (1, 2, 4, 8):
            r = size_model(profile, gpu=g.name, engine="vllm", tp=tp, context=8192, concurrency=8)
            if r.fits[0].fits:
                costs[(g.name, tp)] = g.price_per_hour * tp
                break
    assert plan.gpu is not None and plan.gpu.price_per_hour
    # No configuration at the engine's defaults is cheaper: the plan's is, or is one of them.
    assert plan.gpu.price_per_hour * plan.tp <= min(costs.values())
    # ... and it fits with the settings its own flags give.
    knobs: dict[str, Any] = knobs_from_args(plan.engine, plan.command.args)
    again = size_model(profile, gpu=plan.gpu.name, engine="vllm", concurrency=8, **knobs)
    assert again.fits[0].fits
    assert all(why for _, why in plan.rejected)
    assert {"sglang", "tgi"} <= {n for n, _ in plan.rejected}


def test_traffic_gives_replicas_and_slo_check(llama8b: Path) -> None:
    profile = inspect_model(str(llama8b))
    one = plan_deployment(profile, gpu="l40s", context=4096, concurrency=8)
    busy = plan_deployment(
        profile, gpu="l40s", context=4096, concurrency=8, traffic_rps=50, slo_p95_ms=1
    )
    assert busy.scaling.replicas > one.scaling.replicas
    assert busy.scaling.slo.met_by_estimate is False
    assert busy.cost.dedicated_per_month > one.cost.dedicated_per_month


def test_replicas_come_from_the_batch_the_engine_runs(llama8b: Path) -> None:
    profile = inspect_model(str(llama8b))
    plan = plan_deployment(profile, gpu="h200", context=8192, traffic_rps=20)
    roof, sc = plan.roofline, plan.scaling
    # The engine batches up to its max-num-seqs; capacity is planned at that batch, not at
    # the requested concurrency (1), which once gave 43 replicas for 20 req/s on an H200.
    max_seqs = int(plan.command.args[plan.command.args.index("--max-num-seqs") + 1])
    assert roof.max_batch == max_seqs == sc.capacity.batch_per_replica > 1
    top = roof.batch_curve[-1]
    assert sc.capacity.rps_per_replica == round(top.expected_tokens_per_s / 256, 2)
    assert sc.replicas == math.ceil(20 / (top.expected_tokens_per_s / 256 * 0.7))
    assert sc.replicas <= 3
    # Expected speed is the ceiling at the measured efficiency, never above it.
    assert roof.expected_decode_tokens_per_s_per_replica == pytest.approx(
        roof.decode_tokens_per_s_per_replica * roof.efficiency, rel=1e-3
    )
    assert 0 < roof.efficiency < 1


def test_an_slo_caps_the_batch(llama8b: Path) -> None:
    profile = inspect_model(str(llama8b))
    free = plan_deployment(profile, gpu="h200", context=8192, traffic_rps=20)
    curve = free.roofline.batch_curve
    # An SLO between two points of the curve: the larger batch misses it.
    lo, hi = curve[3], curve[4]
    slo = (lo.expected_step_ms + hi.expected_step_ms) / 2 * 256
    capped = plan_deployment(profile, gpu="h200", context=8192, traffic_rps=20, slo_p95_ms=slo)
    assert capped.scaling.capacity.batch_per_replica == lo.batch
    assert capped.scaling.capacity.e2e_ms_estimate <= slo
    assert capped.scaling.slo.met_by_estimate is True
    assert capped.scaling.replicas > free.scaling.replicas
    # No batch meets it: plan for throughput and give the latency floor.
    hopeless = plan_deployment(profile, gpu="h200", context=8192, traffic_rps=20, slo_p95_ms=1)
    assert hopeless.scaling.slo.met_by_estimate is False
    assert hopeless.scaling.capacity.batch_per_replica == curve[-1].batch
    assert "one sequence alone takes" in hopeless.scaling.basis


@pytest.mark.parametrize(
    ("family", "engine"),
    [("bert", "tei"), ("whisper", "hfdeploy"), ("mixtral", "vllm"), ("deepseek_v2", "vllm")],
)
def test_engine_by_task(tiny_models: dict[str, Path], family: str, engine: str) -> None:
    plan = plan_deployment(inspect_model(str(tiny_models[family])), gpu="l4")
    assert plan.engine.name == engine
    _plan_contract(plan.to_dict())


def test_embedder_gets_tei_with_the_gpu_architecture_tag(minilm_dir: Path) -> None:
    profile = inspect_model(str(minilm_dir))
    assert plan_deployment(profile, gpu="l4").image.endswith(":89-1.9")
    assert plan_deployment(profile, gpu="h100").image.endswith(":hopper-1.9")
    assert plan_deployment(profile, gpu="cpu").image.endswith(":cpu-1.9")


def test_cpu_plan_memory_has_no_cuda_terms(minilm_dir: Path) -> None:
    # A CPU deployment holds no CUDA context, non-torch pools or graphs: 0.88 GiB was 0.72
    # GiB of GPU priors on top of 0.16 GiB of weights and activations.
    profile = inspect_model(str(minilm_dir))
    cpu = plan_deployment(profile, gpu="cpu")
    est = cpu.size.estimate
    assert cpu.memory_bytes == est.weights.bytes + est.kv_cache.bytes + est.activations.bytes
    assert cpu.memory_text.endswith("GiB on CPU")
    assert cpu.to_dict()["memory"]["total_bytes_per_gpu"] is None
    assert not any(f.startswith("cuda context") for f in cpu.envelope.uncertainty_factors)
    gpu = plan_deployment(profile, gpu="l4")
    assert gpu.memory_bytes == gpu.size.estimate.total_bytes
    assert gpu.memory_text.endswith("GiB per GPU")


def test_gguf_goes_to_llama_cpp(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    write_gguf(path)
    plan = plan_deployment(inspect_model(str(path)))
    assert plan.engine.name == "llama.cpp"
    assert plan.command.args[:2] == ("-m", "/repository/tiny.gguf")
    # llama-server gives each of its --parallel slots --ctx-size / --parallel tokens: the
    # plan asks for the whole context per slot (it once gave each slot context/concurrency).
    four = plan_deployment(inspect_model(str(path)), context=2048, concurrency=4)
    args = list(four.command.args)
    assert args[args.index("--parallel") + 1] == "4"
    assert args[args.index("--ctx-size") + 1] == str(2048 * 4)
    assert "-ngl" not in args  # CPU
    on_gpu = list(plan_deployment(inspect_model(str(path)), gpu="l4").command.args)
    assert on_gpu[on_gpu.index("-ngl") + 1] == "999"


def test_tgi_only_when_asked(llama8b: Path) -> None:
    profile = inspect_model(str(llama8b))
    assert plan_deployment(profile, gpu="a100-80gb").engine.name == "vllm"
    tgi = plan_deployment(profile, gpu="a100-80gb", engine="tgi")
    assert tgi.engine.name == "tgi"
    assert "--model-id" in tgi.command.args


def test_errors_name_the_way_out(llama70b: Path, tiny_models: dict[str, Path]) -> None:
    profile = inspect_model(str(llama70b))
    with pytest.raises(DoesNotFitError) as err:
        plan_deployment(profile, gpu="t4")  # the weights alone outgrow 8 x 16 GB
    assert "int4" in err.value.hint
    with pytest.raises(DoesNotFitError) as err:
        plan_deployment(profile, gpu="l40s", context=131072, concurrency=64)
    assert "a context of" in err.value.hint  # the KV cache is what does not fit
    with pytest.raises(UnknownGPUError) as gerr:
        plan_deployment(profile, gpu="tpu9")
    assert "H100-SXM" in gerr.value.hint
    with pytest.raises(InvalidSettingError):
        plan_deployment(inspect_model(str(tiny_models["bert"])), engine="vllm")


def test_cli_plan_json(llama8b: Path) -> None:
    res = CliRunner().invoke(
        app, ["plan", str(llama8b), "--gpu", "L4", "--context", "4096", "--json"]
    )
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    _plan_contract(d)
    assert d["gpu"]["name"] == "L4"
    human = CliRunner().invoke(
        app, ["plan", str(llama8b), "--gpu", "l4", "--context", "4096", "--slo", "p95=2s"]
    )
    assert human.exit_code == 0
    assert "Result:" in human.stdout
    bad = CliRunner().invoke(app, ["plan", str(llama8b), "--slo", "fast"])
    assert bad.exit_code == 1
    assert "p95=" in bad.stderr


def test_catalog_facts() -> None:
    cat = engine_catalog()
    assert cat["tgi"].maintenance is True
    assert cat["tei"].tensor_parallel is False
    assert cat["hfdeploy"].deploy is not None
    assert cat["hfdeploy"].deploy.routes.ready == "/ready"
    deployable = [e.deploy for e in cat.values() if e.deploy is not None]
    assert len(deployable) == 9  # with the full-duplex servers, moshi and personaplex
    for d in deployable:
        assert d.routes.port > 0
        assert d.tag and d.tag != "latest"


def test_sglang_tensor_parallel_flag_is_one_its_parser_defines(llama70b: Path) -> None:
    # SGLang defines --tp-size (alias --tensor-parallel-size); the catalog once wrote
    # --tp, which only worked as an argparse abbreviation (scripts/check_engine_flags.py).
    plan = plan_deployment(inspect_model(str(llama70b)), gpu="h100", engine="sglang")
    assert plan.tp > 1
    assert plan.command.args[plan.command.args.index("--tp-size") + 1] == str(plan.tp)
    assert "--tp" not in plan.command.args


def test_an_image_that_needs_a_driver_says_so(llama8b: Path) -> None:
    plan = plan_deployment(inspect_model(str(llama8b)), gpu="h100")
    assert plan.engine.name == "vllm"
    assert any("driver 580" in f for f in plan.envelope.uncertainty_factors)


def test_engine_flag_check_finds_a_flag_the_release_lacks(tmp_path: Path) -> None:
    import zipfile

    from scripts.check_engine_flags import defined_flags

    wheel = tmp_path / "sglang-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        field = 'class P:\n    tp_size: A[int, Arg(aliases=["--tensor-parallel-size"])] = 1\n'
        zf.writestr("sglang/srt/arg_groups/fields/parallel.py", field)
        zf.writestr("sglang/srt/server_args.py", 'parser.add_argument("--config")\n')
    flags = defined_flags("sglang", wheel)
    assert {"--tp-size", "--tensor-parallel-size", "--config"} <= flags
    assert "--tp" not in flags


def test_decode_efficiency_follows_the_measured_widths(llama8b: Path, llama70b: Path) -> None:
    from hfdeploy.plan.roofline import decode_efficiency

    # benchmarks/results/gpu_roofline.json: 8B (hidden 4096) and 70B-shaped (8192) layers.
    assert decode_efficiency("memory-bound", 4096) == 0.59
    assert decode_efficiency("memory-bound", 8192) == 0.77
    assert decode_efficiency("memory-bound", 5793) == 0.68  # halfway in log2
    assert decode_efficiency("memory-bound", 1024) == 0.59  # held at the ends
    assert decode_efficiency("compute-bound", 16384) == 0.62
    small = plan_deployment(inspect_model(str(llama8b)), gpu="h100")
    big = plan_deployment(inspect_model(str(llama70b)), gpu="h100")
    assert small.roofline.efficiency < big.roofline.efficiency
