"""Scale-out targets: KEDA, the Inference Extension's InferencePool, KubeRay's RayService,
and GPU placement; thresholds that follow the plan and a measurement."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from hfdeploy import inspect_model
from hfdeploy.audit import audit_paths
from hfdeploy.audit.gpus import gpu_from_label
from hfdeploy.catalog.gpus import gpu_catalog
from hfdeploy.errors import InvalidSettingError
from hfdeploy.plan.destination import ScaleOut
from hfdeploy.plan.planner import plan_deployment
from hfdeploy.plan.scale_out import measured_rps, thresholds
from hfdeploy.render.generate import generate_deployment
from hfdeploy.render.keda import plan_thresholds
from hfdeploy.render.rayservice import flags_to_kwargs
from tests._k8s import validate_manifest
from tests._synthetic import LLAMA3_8B, config_folder
from tests.render.test_generate import HADOLINT

ALL = ("k8s", "keda", "inference-pool", "rayservice")


def _docs(folder: Path) -> dict[str, list[dict[str, Any]]]:
    return {str(p.relative_to(folder)): list(yaml.safe_load_all(p.read_text()))
            for p in sorted(folder.rglob("*.yaml"))}  # fmt: skip


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("scale-out")
    llama = config_folder(root / "l8b", LLAMA3_8B)
    cases = {
        "vllm": (llama, {"gpu": "h100", "traffic_rps": 20}, ALL,
                 ScaleOut(prometheus_secret="prom-token", priority_class="inference")),
        "sglang": (llama, {"gpu": "l40s", "engine": "sglang"}, ("k8s", "inference-pool"),
                   ScaleOut(autoscaler="keda", gpu_label="gke")),
        "hfdeploy": (minilm_dir, {"gpu": "cpu", "engine": "hfdeploy", "registry": "ghcr.io/acme"},
                     ("k8s", "keda", "rayservice"), ScaleOut()),
    }  # fmt: skip
    out = {}
    for name, (model, knobs, targets, opts) in cases.items():
        for copy in ("a", "b"):
            plan = plan_deployment(inspect_model(str(model)), storage_class="nfs",
                                   targets=targets, scale_out=opts, **knobs)  # fmt: skip
            generate_deployment(plan, root / f"{name}-{copy}", targets=targets, lock=False)
        out[name] = root / f"{name}-a"
    return out


def test_every_manifest_is_valid_deterministic_and_audits_clean(
    generated: dict[str, Path],
) -> None:
    for name, folder in generated.items():
        for rel, docs in _docs(folder).items():
            for doc in docs:
                validate_manifest(doc)  # custom kinds against tests/data/crds
            assert (folder / rel).read_bytes() == (
                folder.with_name(f"{name}-b") / rel
            ).read_bytes(), rel
        report = audit_paths([folder])
        assert [f"{f.rule_id} {f.file}: {f.message}" for f in report.findings
                if f.severity != "info"] == []  # fmt: skip
    res = subprocess.run([HADOLINT, "--failure-threshold", "info",
                          str(generated["hfdeploy"] / "ray.Dockerfile")],
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr


def test_keda_replaces_the_hpa_and_queries_the_engines_metrics(
    generated: dict[str, Path],
) -> None:
    vllm = _docs(generated["vllm"])
    assert "k8s/hpa.yaml" not in vllm
    (so,) = vllm["k8s/scaledobject.yaml"]
    assert so["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": "l8b"}  # fmt: skip
    queue, kv = so["spec"]["triggers"]
    assert "vllm:num_requests_waiting" in queue["metadata"]["query"]
    assert "vllm:kv_cache_usage_perc" in kv["metadata"]["query"]
    assert queue["metadata"]["authModes"] == "bearer"
    assert queue["authenticationRef"] == {"name": "l8b-prometheus"}
    (auth,) = vllm["k8s/keda-auth.yaml"]
    assert auth["spec"]["secretTargetRef"][0]["name"] == "prom-token"
    # Prometheus finds the pods by their annotations.
    (dep,) = vllm["k8s/deployment.yaml"]
    assert dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    # TEI-less hfdeploy: its own queue metric, no KV trigger.
    (so,) = _docs(generated["hfdeploy"])["k8s/scaledobject.yaml"]
    (only,) = so["spec"]["triggers"]
    assert "hfdeploy_queue_depth" in only["metadata"]["query"]


def test_gpu_placement(generated: dict[str, Path]) -> None:
    (dep,) = _docs(generated["vllm"])["k8s/deployment.yaml"]
    spec = dep["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    assert spec["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    assert spec["priorityClassName"] == "inference"
    (dep,) = _docs(generated["sglang"])["k8s/deployment.yaml"]
    # L40S has no GKE accelerator name: no selector on GKE, the toleration still.
    assert "nodeSelector" not in dep["spec"]["template"]["spec"]
    (cpu,) = _docs(generated["hfdeploy"])["k8s/deployment.yaml"]
    assert "nodeSelector" not in cpu["spec"]["template"]["spec"]
    assert "tolerations" not in cpu["spec"]["template"]["spec"]


def test_every_gpu_label_names_its_gpu_for_the_audit() -> None:
    # What render pins a pod to, the audit reads back as the same GPU (fit, real time).
    for gpu in gpu_catalog().gpus:
        for _, value in gpu.node_labels:
            found = gpu_from_label(value)
            assert found is not None and found.name == gpu.name, value


def test_inference_pool_selects_the_serving_pods(generated: dict[str, Path]) -> None:
    docs = _docs(generated["sglang"])
    (pool,) = docs["inference-pool/inferencepool.yaml"]
    (dep,) = docs["k8s/deployment.yaml"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert pool["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pod_labels["inference.networking.k8s.io/engine-type"] == "sglang"
    assert pool["spec"]["targetPorts"] == [{"number": 30000}]
    picker = {d["kind"]: d for d in docs["inference-pool/endpoint-picker.yaml"]}
    assert pool["spec"]["endpointPickerRef"]["name"] == picker["Service"]["metadata"]["name"]
    config = yaml.safe_load(picker["ConfigMap"]["data"]["default-plugins.yaml"])
    extractor = next(p for p in config["plugins"] if p["type"] == "core-metrics-extractor")
    assert extractor["parameters"] == {"defaultEngine": "sglang"}
    args = picker["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--pool-name") + 1] == pool["metadata"]["name"]
    (route,) = docs["inference-pool/httproute.yaml"]
    assert route["spec"]["rules"][0]["backendRefs"][0]["kind"] == "InferencePool"


def test_rayservice_runs_the_plan(generated: dict[str, Path]) -> None:
    (rs,) = _docs(generated["vllm"])["ray/rayservice.yaml"]
    config = yaml.safe_load(rs["spec"]["serveConfigV2"])
    (llm,) = config["applications"][0]["args"]["llm_configs"]
    assert llm["model_loading_config"] == {"model_id": "l8b", "model_source": "/repository"}
    assert "max_model_len" in llm["engine_kwargs"] and "port" not in llm["engine_kwargs"]
    (worker,) = rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    container = worker["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    auto = llm["deployment_config"]["autoscaling_config"]
    assert (worker["minReplicas"], worker["maxReplicas"]) == (auto["min_replicas"],
                                                             auto["max_replicas"])  # fmt: skip
    # Ray's workers are not the k8s target's serving pods: its Service never reaches them.
    (svc,) = _docs(generated["vllm"])["k8s/service.yaml"]
    worker_labels = worker["template"]["metadata"]["labels"]
    assert not svc["spec"]["selector"].items() <= worker_labels.items()
    spread = worker["template"]["spec"]["topologySpreadConstraints"][0]["labelSelector"]
    assert spread["matchLabels"].items() <= worker_labels.items()
    head = rs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert {"name": "serve", "containerPort": 8000} in head["ports"]  # KubeRay's serve Service


def test_flags_become_engine_arguments() -> None:
    args = ("/repository", "--served-model-name", "m", "--tensor-parallel-size", "2",
            "--gpu-memory-utilization", "0.9", "--enforce-eager", "--port", "8000")  # fmt: skip
    assert flags_to_kwargs(args) == {"tensor_parallel_size": 2, "gpu_memory_utilization": 0.9,
                                     "enforce_eager": True}  # fmt: skip


def test_hfdeploys_default_batch_is_the_servers() -> None:
    from hfdeploy.plan.scale_out import HFDEPLOY_BATCH
    from hfdeploy.serve.settings import ServeSettings

    assert ServeSettings(model="/m").max_batch_size == HFDEPLOY_BATCH


def test_queue_threshold_follows_the_batch_and_a_measurement(tmp_path: Path) -> None:
    llama = config_folder(tmp_path / "l8b", LLAMA3_8B)
    profile = inspect_model(str(llama))
    small = plan_deployment(profile, gpu="h100", storage_class="nfs", concurrency=16)
    big = plan_deployment(profile, gpu="h100", storage_class="nfs", concurrency=64)
    b_small = small.scaling.capacity.batch_per_replica  # type: ignore[union-attr]
    b_big = big.scaling.capacity.batch_per_replica  # type: ignore[union-attr]
    assert b_big > b_small
    t_small, t_big = plan_thresholds(small).queue, plan_thresholds(big).queue
    assert t_big / t_small == pytest.approx(b_big / b_small, rel=0.1)
    # A replica measured at half its estimated capacity scales out at half the queue.
    est = big.scaling.capacity.rps_per_replica  # type: ignore[union-attr]
    measured = replace(big, destination=replace(
        big.destination, scale_out=ScaleOut(measured_rps=est / 2)))  # fmt: skip
    assert plan_thresholds(measured).queue == pytest.approx(t_big / 2, abs=1)
    # Pure: a batch of 40 waits on 20; measured at twice the estimate, on 40.
    assert (
        thresholds("vllm", (), batch_estimate=40, rps_estimate=5.0, measured_rps=None).queue == 20
    )
    assert (
        thresholds("vllm", (), batch_estimate=40, rps_estimate=5.0, measured_rps=10.0).queue == 40
    )


def test_measured_rate_from_a_bench_sweep(tmp_path: Path) -> None:
    from hfdeploy.cli.scale_out import scale_out_options

    doc = {"sweep": {"knee_rate": 7.5, "max_throughput": 9.0}}
    assert measured_rps(doc) == 7.5
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(doc))
    assert scale_out_options(bench=path).measured_rps == 7.5
    with pytest.raises(InvalidSettingError, match="no sweep"):
        measured_rps({"phases": []})
    path.write_text("{not json")
    with pytest.raises(InvalidSettingError, match="bench"):
        scale_out_options(bench=path)
    # A sweep that never bent: its highest throughput stands in for the knee.
    assert measured_rps({"sweep": {"knee_rate": None, "max_throughput": 9.0}}) == 9.0
    with pytest.raises(InvalidSettingError, match="no saturation"):
        measured_rps({"sweep": {"knee_rate": None, "max_throughput": None}})


def test_what_cannot_scale_out_says_why(tmp_path: Path, minilm_dir: Path) -> None:
    profile = inspect_model(str(minilm_dir))
    tei = plan_deployment(profile, gpu="cpu", targets=ALL)
    assert "ReadWriteMany" in (tei.blocked_reason("keda") or "")
    assert "vLLM's and SGLang's" in (tei.blocked_reason("inference-pool") or "")
    assert "not tei" in (tei.blocked_reason("rayservice") or "")
    own = plan_deployment(profile, gpu="cpu", engine="hfdeploy", targets=("rayservice",))
    assert "--registry" in (own.blocked_reason("rayservice") or "")
    # The default targets never mention the scale-out ones.
    plain = plan_deployment(profile, gpu="cpu")
    assert not [n for n in plain.notes if n.startswith(("keda", "inference-pool", "rayservice"))]
    with pytest.raises(InvalidSettingError, match="autoscaler"):
        ScaleOut(autoscaler="vpa")  # type: ignore[arg-type]
    with pytest.raises(InvalidSettingError, match="prometheus"):
        ScaleOut(prometheus="prometheus:9090")


def test_keda_scales_a_multi_node_group_by_its_leader(tmp_path: Path) -> None:
    from tests._synthetic import LLAMA_405B

    model = config_folder(tmp_path / "l405", LLAMA_405B)
    plan = plan_deployment(inspect_model(str(model)), gpu="h100", context=32768, concurrency=32,
                           storage_class="nfs", targets=("k8s", "keda"))  # fmt: skip
    assert plan.pp > 1
    generate_deployment(plan, tmp_path / "out", targets=("k8s", "keda"), lock=False)
    docs = _docs(tmp_path / "out")
    assert "k8s/hpa.yaml" not in docs
    (so,) = docs["k8s/scaledobject.yaml"]
    validate_manifest(so)
    assert so["spec"]["scaleTargetRef"]["kind"] == "LeaderWorkerSet"
    # Only leaders serve and export the engine's metrics: NAME-GROUP, not NAME-GROUP-WORKER.
    assert 'pod=~"l405-[0-9]+"' in so["spec"]["triggers"][0]["metadata"]["query"]


def test_serving_selectors_leave_the_models_fetch_and_upload_pods_out(tmp_path: Path) -> None:
    # The fetch Job and the upload pod share the model's name; were they selected, the
    # Service would send requests to a pod that serves nothing while it runs.
    llama = config_folder(tmp_path / "l8b", LLAMA3_8B)
    targets = ("k8s", "inference-pool")
    for name, dest in (("fetch", {"registry": "ghcr.io/acme", "repo": "acme/l8b@" + "a" * 40}),
                       ("upload", {})):  # fmt: skip
        plan = plan_deployment(inspect_model(str(llama)), gpu="h100", storage_class="nfs",
                               targets=targets, traffic_rps=20, **dest)  # fmt: skip
        generate_deployment(plan, tmp_path / name, targets=targets, lock=False)
        docs = {d["kind"]: d for docs in _docs(tmp_path / name).values() for d in docs
                if d["kind"] in ("Deployment", "Service", "PodDisruptionBudget", "InferencePool",
                                 "Job", "Pod")}  # fmt: skip
        other = docs["Job"]["spec"]["template"] if name == "fetch" else docs["Pod"]
        others = other["metadata"]["labels"]
        pods = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
        for kind, selector in (
            ("Service", docs["Service"]["spec"]["selector"]),
            ("PodDisruptionBudget", docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]),
            ("InferencePool", docs["InferencePool"]["spec"]["selector"]["matchLabels"]),
        ):
            assert selector.items() <= pods.items(), kind
            assert not selector.items() <= others.items(), (kind, name)
