"""Generated files that would fail at start, each fixed (each test failed before its fix)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from hfdeploy import inspect_model
from hfdeploy.errors import DoesNotFitError, InvalidSettingError
from hfdeploy.plan.planner import plan_deployment
from hfdeploy.render.generate import generate_deployment
from tests._synthetic import LLAMA3_8B, LLAMA3_70B, config_folder, write_gguf

SHA = "d" * 40
REPO = f"acme/model@{SHA}"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("start")
    gguf = root / "tiny.gguf"
    write_gguf(gguf)
    return {
        "8b": config_folder(root / "l8", LLAMA3_8B),
        "70b": config_folder(root / "l70", LLAMA3_70B),
        "gguf": gguf,
    }


def _gen(model: Path, out: Path, **knobs: Any) -> Any:
    plan = plan_deployment(inspect_model(str(model)), **knobs)
    generate_deployment(plan, out, lock=False)
    return plan


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _container(folder: Path) -> dict[str, Any]:
    pod = _yaml(folder / "k8s/deployment.yaml")["spec"]["template"]["spec"]
    return dict(pod["containers"][0])


def test_llama_cpp_is_not_planned_for_safetensors(models: dict[str, Path]) -> None:
    # Before: `-m /repository/model.gguf`, a file a safetensors model does not have.
    with pytest.raises(InvalidSettingError, match="loads gguf files only"):
        plan_deployment(inspect_model(str(models["8b"])), engine="llama.cpp", gpu="l4")


def test_no_fp8_for_an_engine_that_cannot_quantize(models: dict[str, Path]) -> None:
    # Before: hfdeploy serve was planned with fp8 for a 70B on one H100; it has no
    # quantization, so bf16 weights (131 GiB) would have met 80 GB.
    profile = inspect_model(str(models["70b"]))
    with pytest.raises(DoesNotFitError):
        plan_deployment(profile, engine="hfdeploy", gpu="h100")
    assert plan_deployment(profile, gpu="h100").quantization is None  # vLLM: TP, not fp8
    fp8 = plan_deployment(profile, gpu="h100", concurrency=1, context=2048, engine="vllm")
    assert fp8.quantization in (None, "fp8")


def test_hfdeploy_on_endpoints_needs_a_registry_and_appends_serve_args(
    tmp_path: Path, minilm_dir: Path
) -> None:
    bare = _gen(minilm_dir, tmp_path / "bare", engine="hfdeploy", gpu="l4", repo=REPO)
    # Before: the local tag hfdeploy-server:0.1.0, which no one can pull.
    assert not (tmp_path / "bare/hf-endpoint.json").exists()
    assert "pass --registry" in (bare.blocked_reason("hf-endpoint") or "")
    plan = _gen(minilm_dir, tmp_path / "pushed", engine="hfdeploy", gpu="l4", repo=REPO,
                registry="ghcr.io/acme")  # fmt: skip
    body = json.loads((tmp_path / "pushed/hf-endpoint.json").read_text())
    assert body["custom_image"]["url"] == "ghcr.io/acme/hfdeploy-server:0.1.0" == plan.image
    # Endpoints appends container_args to the image's ENTRYPOINT ["hfdeploy"]: before, they
    # began with "hfdeploy serve" again ("unexpected extra arguments").
    assert body["container_args"][:2] == ["serve", "/repository"]
    assert "hfdeploy" not in body["container_args"]
    assert (body["repository"], body["revision"]) == ("acme/model", SHA)


def test_a_local_model_is_never_an_unpinned_placeholder(tmp_path: Path, minilm_dir: Path) -> None:
    plan = _gen(minilm_dir, tmp_path / "local", gpu="l4")
    # The files that run (the README and plan.json say in prose what to pass instead).
    texts = {p: p.read_text() for p in (tmp_path / "local").rglob("*")
             if p.is_file() and p.suffix in (".yaml", ".json") and p.name != "plan.json"}  # fmt: skip
    # Before: repository "OWNER/NAME" with a null revision in hf-endpoint.json, and
    # 'REPO_ID@COMMIT_SHA  # ...' as one argument of the fetch Job.
    assert not [p for p, t in texts.items() if "OWNER/NAME" in t or "REPO_ID" in t]
    assert not (tmp_path / "local/hf-endpoint.json").exists()
    assert "--repo OWNER/NAME@COMMIT" in (plan.blocked_reason("hf-endpoint") or "")
    assert not (tmp_path / "local/k8s/fetch-job.yaml").exists()
    pod = _yaml(tmp_path / "local/k8s/model-upload-pod.yaml")
    assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "model-model"
    readme = (tmp_path / "local/README.md").read_text()
    assert "tar -C model -cf - . | kubectl exec -i model-model-upload" in readme


def test_a_pinned_model_with_a_registry_gets_a_fetch_job(tmp_path: Path, minilm_dir: Path) -> None:
    _gen(minilm_dir, tmp_path / "f", gpu="l4", repo=REPO, registry="ghcr.io/acme")
    job = _yaml(tmp_path / "f/k8s/fetch-job.yaml")
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "ghcr.io/acme/hfdeploy-fetch:0.1.0"
    assert c["args"] == [REPO, "--to", "/repository"]
    assert not (tmp_path / "f/k8s/model-upload-pod.yaml").exists()


def test_llama_cpp_scales_on_a_metric_llama_server_exports(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    _gen(models["gguf"], tmp_path / "g", storage_class="shared")
    hpa = _yaml(tmp_path / "g/k8s/hpa.yaml")
    # Before: requests_waiting, which llama-server does not export: it never scaled.
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "llamacpp:requests_deferred"


def test_every_file_a_dockerfile_copies_is_in_the_folder(tmp_path: Path, minilm_dir: Path) -> None:
    out = tmp_path / "d"
    _gen(minilm_dir, out, engine="hfdeploy", gpu="cpu", registry="ghcr.io/acme", repo=REPO)
    for dockerfile in ("Dockerfile", "fetch.Dockerfile"):
        for line in (out / dockerfile).read_text().splitlines():
            if line.startswith("COPY "):
                # Before: dist/hfdeploy-0.1.0-py3-none-any.whl, which no step wrote.
                assert all((out / src).is_file() for src in line.split()[1:-1]), line
    # The build context is the folder, which also holds ./model: it stays out of the build.
    ignore = (out / ".dockerignore").read_text().splitlines()
    assert "*" in ignore and "!dist/" in ignore and "!constraints.txt" in ignore
    wheel = out / "dist/hfdeploy-0.1.0-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    assert "hfdeploy/catalog/engines.json" in names  # package data travels with it
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], check=True)  # fmt: skip
    assert (target / "hfdeploy/cli/main.py").is_file()
    entry = next(target.glob("hfdeploy-0.1.0.dist-info")) / "entry_points.txt"
    assert "hfdeploy = hfdeploy.cli.main:main" in entry.read_text()
    # Same plan, same bytes: the wheel too.
    _gen(minilm_dir, tmp_path / "e", engine="hfdeploy", gpu="cpu", registry="ghcr.io/acme",
         repo=REPO)  # fmt: skip
    assert (tmp_path / "e/dist" / wheel.name).read_bytes() == wheel.read_bytes()


def test_sglang_probes_answer_within_their_timeout(tmp_path: Path, models: dict[str, Path]) -> None:
    _gen(models["8b"], tmp_path / "s", engine="sglang", gpu="h100")
    c = _container(tmp_path / "s")
    # Before: /health, which runs a generation after a 1 s sleep, against the default 1 s.
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/ping"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["timeoutSeconds"] >= 5


@pytest.mark.parametrize("engine", ["tgi", "tei"])
def test_no_engine_binds_a_privileged_port(
    engine: str, tmp_path: Path, models: dict[str, Path], minilm_dir: Path
) -> None:
    model = models["8b"] if engine == "tgi" else minilm_dir
    _gen(model, tmp_path / engine, engine=engine, gpu="l4")
    c = _container(tmp_path / engine)
    # Before: port 80 as root with every capability dropped, refused on CRI-O and
    # containerd 1.x; and TGI/TEI bound the container's HOSTNAME, not 127.0.0.1.
    assert c["ports"][0]["containerPort"] == 8080
    assert c["args"][c["args"].index("--port") + 1] == "8080"
    assert c["args"][c["args"].index("--hostname") + 1] == "0.0.0.0"


def test_the_model_volume_is_one_the_cluster_offers(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    plan = _gen(models["8b"], tmp_path / "one", gpu="h100")
    pvc = _yaml(tmp_path / "one/k8s/pvc.yaml")
    # Before: ReadWriteMany, which default storage classes do not offer.
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert not (tmp_path / "one/k8s/hpa.yaml").exists()  # one pod can mount it: no scale-out
    assert any("ReadWriteOnce" in n for n in plan.notes)
    _gen(models["8b"], tmp_path / "many", gpu="h100", storage_class="efs-sc")
    spec = _yaml(tmp_path / "many/k8s/pvc.yaml")["spec"]
    assert (spec["accessModes"], spec["storageClassName"]) == (["ReadWriteMany"], "efs-sc")
    busy = _gen(models["8b"], tmp_path / "busy", gpu="l4", traffic_rps=50)
    assert busy.scaling.replicas > 1
    assert not (tmp_path / "busy/k8s").exists()
    assert "--storage-class" in (busy.blocked_reason("k8s") or "")


def test_gpu_rollouts_need_no_spare_gpus_and_pdbs_allow_no_outage(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    _gen(models["8b"], tmp_path / "one", gpu="h100")
    dep = _yaml(tmp_path / "one/k8s/deployment.yaml")
    # Before: maxSurge 1 (a spare set of GPUs to roll out) and a PDB of maxUnavailable 1 on
    # one replica (a full outage).
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 0}
    assert not (tmp_path / "one/k8s/pdb.yaml").exists()
    plan = _gen(models["8b"], tmp_path / "two", gpu="l4", traffic_rps=50, storage_class="nfs")
    assert plan.scaling.replicas > 1
    assert _yaml(tmp_path / "two/k8s/pdb.yaml")["spec"]["maxUnavailable"] == 1


def test_kserve_keeps_the_pod_security_context(tmp_path: Path, models: dict[str, Path]) -> None:
    _gen(models["8b"], tmp_path / "k", gpu="h100")
    predictor = _yaml(tmp_path / "k/kserve.yaml")["spec"]["predictor"]
    # Before: no securityContext, where the Deployment runs vLLM as uid 2000.
    assert predictor["securityContext"]["runAsUser"] == 2000
    assert predictor["maxReplicas"] == predictor["minReplicas"] == 1


def test_caches_land_in_a_volume_the_engine_user_can_write(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    _gen(models["8b"], tmp_path / "v", gpu="h100")
    (svc,) = _yaml(tmp_path / "v/compose.yaml")["services"].values()
    # Before: a named volume at /cache, which the vLLM image lacks, so Docker created it
    # root-owned and uid 2000 could not write it; compile caches went to ~/.cache.
    assert svc["user"] == "2000"
    assert "cache:/home/vllm/.cache" in svc["volumes"]
    env = svc["environment"]
    for var in ("HF_HOME", "XDG_CACHE_HOME", "TRITON_CACHE_DIR"):
        assert env[var].startswith("/home/vllm/.cache"), var
    mounts = {m["name"]: m["mountPath"] for m in _container(tmp_path / "v")["volumeMounts"]}
    assert mounts["cache"] == "/home/vllm/.cache"


@pytest.mark.parametrize(
    "engine", ["vllm", "sglang", "tgi", "tei", "triton", "llama.cpp", "hfdeploy"]
)
def test_the_readme_runs_with_what_the_folder_holds(
    engine: str, tmp_path: Path, models: dict[str, Path], minilm_dir: Path
) -> None:
    model = {"hfdeploy": minilm_dir, "tei": minilm_dir, "llama.cpp": models["gguf"]}.get(
        engine, models["8b"]
    )
    out = tmp_path / engine
    _gen(model, out, engine=engine, gpu="h100", registry="ghcr.io/acme")
    readme = (out / "README.md").read_text()
    run = readme.split("## Run it", 1)[1].split("## Check it", 1)[0]
    files = re.findall(r"-f (\S+?)[`\s]", run)
    assert files, run
    # Before: `kubectl apply -f k8s/fetch-job.yaml` for a Job that could not run, and a
    # Dockerfile copying a wheel no step wrote.
    assert [f for f in files if not (out / f).is_file()] == []
    if (out / "Dockerfile").exists():
        assert "docker build -t ghcr.io/acme/hfdeploy-server:0.1.0 ." in run


def test_llama_cpp_on_cpu_gets_the_cpu_image(tmp_path: Path, models: dict[str, Path]) -> None:
    # Before: the server-cuda image for a CPU plan (and an Endpoints CPU instance).
    cpu = _gen(models["gguf"], tmp_path / "cpu")
    assert cpu.gpu is None and cpu.image == "ghcr.io/ggml-org/llama.cpp:server-b10257"
    gpu = plan_deployment(inspect_model(str(models["gguf"])), gpu="l4")
    assert gpu.image == "ghcr.io/ggml-org/llama.cpp:server-cuda-b10257"
