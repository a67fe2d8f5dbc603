"""``hfdeploy generate`` over a matrix of models x every target: valid, audited, stable."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hfdeploy import inspect_model
from hfdeploy.audit import audit_paths
from hfdeploy.cli.main import app
from hfdeploy.plan.planner import plan_deployment
from hfdeploy.render.generate import generate_deployment
from tests._k8s import validate_manifest
from tests._synthetic import (
    LLAMA3_8B,
    LLAMA3_70B,
    LLAMA_405B,
    config_folder,
    llama_shaped_checkpoint,
    write_gguf,
)
from tests.serve._fixtures import free_port, wait_ready

#: Where these deployments go: an image registry, the Hub repository each local test model is
#: published at (pinned), a ReadWriteMany storage class. With all three every file is written.
SHA = "a" * 40


def dest(name: str) -> dict[str, str]:
    return {"registry": "ghcr.io/acme", "repo": f"acme/{name}@{SHA}", "storage_class": "shared"}


HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))


@pytest.fixture(scope="module")
def matrix(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path], minilm_dir: Path
) -> dict[str, tuple[Path, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("gen-models")
    llama8b = config_folder(root / "llama8b", LLAMA3_8B)
    llama70b = root / "llama70b"
    llama_shaped_checkpoint(llama70b, LLAMA3_70B, shards=2)
    gguf = root / "tiny.gguf"
    write_gguf(gguf)
    cases = {
        "minilm-tei": (minilm_dir, {"gpu": "l4"}),
        "minilm-cpu": (minilm_dir, {"gpu": "cpu"}),
        "minilm-hfdeploy": (minilm_dir, {"engine": "hfdeploy"}),
        "llama8b": (llama8b, {"gpu": "h100", "context": 8192, "concurrency": 16}),
        "llama70b": (llama70b, {"gpu": "a100-80gb", "context": 8192, "concurrency": 8}),
        "moe": (tiny_models["mixtral"], {"gpu": "l4"}),
        "mla": (tiny_models["deepseek_v2"], {"gpu": "l4"}),
        "classifier": (tiny_models["bert"], {"gpu": "l4"}),
        "whisper": (tiny_models["whisper"], {}),
        "gguf": (gguf, {}),
    }
    return {case: (model, knobs | dest(case)) for case, (model, knobs) in cases.items()}


def _generate(model: Path, knobs: dict[str, Any], out: Path) -> Any:
    plan = plan_deployment(inspect_model(str(model)), **knobs)
    # The 70B checkpoint is 141 GB of sparse files: hashing it is not what is tested.
    generate_deployment(plan, out, lock="llama70b" not in str(model))
    return plan


CASES = [
    "minilm-tei",
    "minilm-cpu",
    "minilm-hfdeploy",
    "llama8b",
    "llama70b",
    "moe",
    "mla",
    "classifier",
    "whisper",
    "gguf",
]


@pytest.mark.parametrize("case", CASES)
def test_every_target_is_valid_audited_and_stable(
    case: str, matrix: dict[str, Any], tmp_path: Path
) -> None:
    model, knobs = matrix[case]
    plan = _generate(model, knobs, tmp_path / "a")
    out = tmp_path / "a"
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    expected = {
        "compose.yaml",
        "kserve.yaml",
        "hf-endpoint.json",
        "plan.json",
        "README.md",
        "model.lock.json",
        "fetch.Dockerfile",
        "constraints.txt",
        *(f"k8s/{n}.yaml" for n in ("deployment", "service", "hpa", "pvc", "fetch-job")),
    }
    if plan.scaling.replicas > 1:  # a PDB only where one pod may go without an outage
        expected.add("k8s/pdb.yaml")
    # The images install the wheel generate writes beside their Dockerfiles.
    expected |= {"dist/hfdeploy-0.1.0-py3-none-any.whl", ".dockerignore"}
    if plan.engine.name == "hfdeploy":
        expected.add("Dockerfile")
    if case == "llama70b":
        expected.remove("model.lock.json")
    assert files == expected

    for dockerfile in sorted({"Dockerfile", "fetch.Dockerfile"} & files):
        res = subprocess.run(
            [HADOLINT, "--failure-threshold", "info", str(out / dockerfile)],
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0, dockerfile + ": " + res.stdout + res.stderr

    for manifest in sorted((out / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(manifest.read_text()):
            validate_manifest(doc)
    for manifest in sorted(out.rglob("*.yaml")):
        # Plain YAML: a reader (or a diff) never meets an &id001 anchor or *id001 alias.
        events = list(yaml.parse(manifest.read_text()))
        assert not [e for e in events if getattr(e, "anchor", None)], manifest
    isvc = yaml.safe_load((out / "kserve.yaml").read_text())
    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    validate_manifest(isvc)  # against the InferenceService schema in tests/data/crds
    compose = yaml.safe_load((out / "compose.yaml").read_text())
    (svc,) = compose["services"].values()
    assert "./model:/repository:ro" in svc["volumes"]
    endpoint = json.loads((out / "hf-endpoint.json").read_text())
    assert endpoint["custom_image"]["healthRoute"] == plan.routes.ready
    # The file is the keyword arguments of the official client's create call: every key is
    # one of its parameters and every required one is there.
    import inspect

    from huggingface_hub import HfApi

    inspect.signature(HfApi.create_inference_endpoint).bind(None, **endpoint)

    report = audit_paths([out])
    assert [
        f"{f.file}:{f.line} {f.rule_id} {f.message}"
        for f in report.findings
        if f.severity != "info"
    ] == []

    _generate(model, knobs, tmp_path / "b")
    for rel in files:
        assert (tmp_path / "b" / rel).read_bytes() == (out / rel).read_bytes(), rel


def test_tp_gets_shm_and_gpus_equal_tp(matrix: dict[str, Any], tmp_path: Path) -> None:
    model, knobs = matrix["llama70b"]
    plan = _generate(model, knobs, tmp_path)
    assert plan.tp > 1
    dep = yaml.safe_load((tmp_path / "k8s/deployment.yaml").read_text())
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == str(plan.tp)
    shm = next(v for v in pod["volumes"] if v["name"] == "shm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "shm", "mountPath": "/dev/shm"} in c["volumeMounts"]
    start = c["startupProbe"]
    assert (
        start["periodSeconds"] * start["failureThreshold"] >= plan.cold_start.startup_probe_budget_s
    )
    assert c["livenessProbe"]["httpGet"]["path"] == plan.routes.live
    compose = yaml.safe_load((tmp_path / "compose.yaml").read_text())
    (svc,) = compose["services"].values()
    assert svc["shm_size"]
    assert svc["deploy"]["resources"]["reservations"]["devices"][0]["count"] == plan.tp


def test_the_hfdeploy_entrypoint_reaches_ready_outside_a_container(
    matrix: dict[str, Any], tmp_path: Path
) -> None:
    model, knobs = matrix["minilm-hfdeploy"]
    _generate(model, knobs, tmp_path)
    lines = (tmp_path / "Dockerfile").read_text().splitlines()
    # The process the image runs: ENTRYPOINT, then CMD (what compose and Kubernetes override).
    (entry,) = [
        json.loads(x.removeprefix("ENTRYPOINT ")) for x in lines if x.startswith("ENTRYPOINT")
    ]
    (cmd,) = [json.loads(x.removeprefix("CMD ")) for x in lines if x.startswith("CMD ")]
    argv = [*entry, *cmd]
    port = free_port()
    # /repository is a local folder here; the port a free one.
    argv = [str(model) if a == "/repository" else a for a in argv]
    argv[argv.index("--port") + 1] = str(port)
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[0] = str(Path(sys.executable).with_name("hfdeploy"))
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_generate(matrix: dict[str, Any], tmp_path: Path) -> None:
    model, _ = matrix["llama8b"]
    res = CliRunner().invoke(app, ["generate", str(model), "--out", str(tmp_path), "--gpu", "l40s",
                                   "--target", "compose,k8s", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert "compose.yaml" in data["files"]
    assert "kserve.yaml" not in data["files"]
    assert data["plan"]["gpu"]["name"] == "L40S"
    bad = CliRunner().invoke(
        app, ["generate", str(model), "--out", str(tmp_path / "x"), "--target", "helm"]
    )
    assert bad.exit_code == 1
    assert "helm" in bad.stderr


def test_a_gguf_file_locks_that_file_only(matrix: dict[str, Any], tmp_path: Path) -> None:
    """Regression: the lock of a .gguf file hashed its whole folder (141 GB beside it here)."""
    model, knobs = matrix["gguf"]
    _generate(model, knobs, tmp_path)
    lock = json.loads((tmp_path / "model.lock.json").read_text())
    assert [f["path"] for f in lock["files"]] == ["tiny.gguf"]


def test_a_model_one_node_cannot_hold_gets_a_leader_worker_set(tmp_path: Path) -> None:
    model = config_folder(tmp_path / "l405", LLAMA_405B)
    # 32k tokens x 32 requests: 8 x H100 cannot hold weights and KV cache, even at fp8.
    plan = plan_deployment(inspect_model(str(model)), gpu="h100", context=32768, concurrency=32,
                           **dest("l405"))  # fmt: skip
    assert (plan.tp, plan.pp, plan.gpu_count) == (8, 3, 24)
    assert "pipeline parallel across 3 nodes" in plan.reasons[-1]
    assert plan.command.args[-4:] == (
        "--pipeline-parallel-size", "3", "--distributed-executor-backend", "ray",
    )  # fmt: skip
    assert plan.to_dict()["nodes"] == 3
    out = tmp_path / "out"
    generate_deployment(plan, out, lock=False)
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert "k8s/leaderworkerset.yaml" in files
    assert not {"compose.yaml", "kserve.yaml", "hf-endpoint.json", "k8s/deployment.yaml"} & files
    lws = yaml.safe_load((out / "k8s/leaderworkerset.yaml").read_text())
    group = lws["spec"]["leaderWorkerTemplate"]
    assert group["size"] == 3
    leader, worker = group["leaderTemplate"], group["workerTemplate"]
    assert "--pipeline-parallel-size 3" in leader["spec"]["containers"][0]["args"][0]
    assert "LWS_LEADER_ADDRESS" in worker["spec"]["containers"][0]["args"][0]
    for tpl in (leader, worker):
        assert tpl["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    for manifest in sorted((out / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(manifest.read_text()):
            validate_manifest(doc)  # the LeaderWorkerSet against tests/data/crds
    hpa = yaml.safe_load((out / "k8s/hpa.yaml").read_text())
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "LeaderWorkerSet"
    service = yaml.safe_load((out / "k8s/service.yaml").read_text())
    assert service["spec"]["selector"]["role"] == "leader"
    report = audit_paths([out])
    assert [f.rule_id for f in report.findings if f.severity != "info"] == []


def test_plan_for_targets(tmp_path: Path) -> None:
    from hfdeploy.errors import DoesNotFitError, InvalidSettingError

    model = config_folder(tmp_path / "l405", LLAMA_405B)
    profile = inspect_model(str(model))
    knobs: dict[str, Any] = {"gpu": "h100", "context": 32768, "concurrency": 32}
    # compose runs on one host: a plan that needs 3 nodes cannot be made for it.
    with pytest.raises(DoesNotFitError) as err:
        plan_deployment(profile, targets=("compose",), **knobs)
    assert err.value.options[0].startswith("--target k8s: a LeaderWorkerSet of 3 nodes")
    plan = plan_deployment(profile, targets=("k8s",), **knobs)
    assert plan.nodes == 3
    assert plan.to_dict()["targets"] == ["k8s"]
    with pytest.raises(InvalidSettingError, match="unknown"):
        plan_deployment(profile, targets=("helm",), **knobs)
    res = CliRunner().invoke(app, ["plan", str(model), "--gpu", "h100", "--context", "32768",
                                   "--concurrency", "32", "--target", "docker,compose"])  # fmt: skip
    assert res.exit_code == 1
    assert "--target k8s" in res.output


def test_triton_gets_its_model_repository(tmp_path: Path) -> None:
    model = config_folder(tmp_path / "l8", LLAMA3_8B)
    plan = plan_deployment(inspect_model(str(model)), gpu="h100", engine="triton", context=8192,
                           **dest("l8"))  # fmt: skip
    out = tmp_path / "out"
    generate_deployment(plan, out, lock=False)
    # Before: `command: []` and no model repository, so the container served nothing.
    assert list(plan.command.args) == ["tritonserver", "--model-repository=/models"]
    name = plan.served_name
    engine_args = json.loads((out / f"triton/{name}/1/model.json").read_text())
    max_seqs = plan.size.fits[0].max_concurrency
    assert engine_args == {
        "model": "/repository", "tensor_parallel_size": 1, "max_model_len": 8192,
        "gpu_memory_utilization": 0.9, "max_num_seqs": min(max_seqs, 1024),
        "max_num_batched_tokens": 8192, "disable_log_stats": False,
    }  # fmt: skip
    config = (out / f"triton/{name}/config.pbtxt").read_text()
    for line in (f'name: "{name}"', 'backend: "vllm"', "decoupled: true", "kind: KIND_MODEL"):
        assert line in config
    compose = yaml.safe_load((out / "compose.yaml").read_text())
    (svc,) = compose["services"].values()
    assert "./triton:/models:ro" in svc["volumes"]
    assert svc["command"] == ["tritonserver", "--model-repository=/models"]
    # Kubernetes: the same two files from a ConfigMap, at the paths Triton reads.
    cm = yaml.safe_load((out / "k8s/triton-config.yaml").read_text())
    assert cm["data"]["model.json"] == (out / f"triton/{name}/1/model.json").read_text()
    pod = yaml.safe_load((out / "k8s/deployment.yaml").read_text())["spec"]["template"]["spec"]
    (vol,) = [v for v in pod["volumes"] if v["name"] == "triton"]
    assert vol["configMap"] == {"name": f"{name}-triton"}
    # File by file: a ConfigMap volume mounted as the repository folder also holds hidden
    # ..data and ..<timestamp> entries, which Triton takes for models and fails to load
    # (before, the whole volume was mounted at /models).
    mounts = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "triton"]
    assert [(m["mountPath"], m["subPath"]) for m in mounts] == [
        (f"/models/{name}/config.pbtxt", "config.pbtxt"),
        (f"/models/{name}/1/model.json", "model.json"),
    ]
    assert {"name": "metrics", "containerPort": 8002} in pod["containers"][0]["ports"]
    for manifest in sorted((out / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(manifest.read_text()):
            validate_manifest(doc)
    for doc in yaml.safe_load_all((out / "kserve.yaml").read_text()):
        validate_manifest(doc)  # the ConfigMap travels with the InferenceService
    hpa = yaml.safe_load((out / "k8s/hpa.yaml").read_text())
    assert (
        hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "nv_inference_pending_request_count"
    )
    assert not (out / "hf-endpoint.json").exists()
    assert "hf-endpoint.json is not written" in (out / "README.md").read_text()
    report = audit_paths([out])
    assert [f.rule_id for f in report.findings if f.severity != "info"] == []


def test_sglang_runs_its_launcher(tmp_path: Path) -> None:
    # lmsysorg/sglang has no ENTRYPOINT that starts the server (SGLang's own compose sets
    # `entrypoint: python3 -m sglang.launch_server`): flags alone would be run as a program.
    model = config_folder(tmp_path / "l8", LLAMA3_8B)
    plan = plan_deployment(inspect_model(str(model)), gpu="h100", engine="sglang", **dest("l8"))
    out = tmp_path / "out"
    generate_deployment(plan, out, lock=False)
    launcher = ["python3", "-m", "sglang.launch_server"]
    (svc,) = yaml.safe_load((out / "compose.yaml").read_text())["services"].values()
    assert svc["entrypoint"] == launcher
    assert svc["command"][:2] == ["--model-path", "/repository"]
    container = yaml.safe_load((out / "k8s/deployment.yaml").read_text())["spec"]["template"][
        "spec"
    ]["containers"][0]
    assert container["command"] == launcher
    assert container["args"] == list(plan.command.args)
    isvc = yaml.safe_load((out / "kserve.yaml").read_text())
    assert isvc["spec"]["predictor"]["containers"][0]["command"] == launcher
    endpoint = json.loads((out / "hf-endpoint.json").read_text())
    assert endpoint["container_command"] == launcher
    # and the vLLM image, whose ENTRYPOINT is `vllm serve`, gets arguments only
    vllm = plan_deployment(inspect_model(str(model)), gpu="h100", **dest("l8"))
    generate_deployment(vllm, tmp_path / "vllm", lock=False)
    (svc,) = yaml.safe_load((tmp_path / "vllm/compose.yaml").read_text())["services"].values()
    assert "entrypoint" not in svc
    # Info only: the GPU node selector asks for a fit check, which a model on a volume
    # (/repository in the pod) cannot have from the files alone.
    assert [f.rule_id for f in audit_paths([out]).findings if f.severity != "info"] == []
