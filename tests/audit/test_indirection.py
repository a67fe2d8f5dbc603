"""Faults a deployment hides behind indirection, each class with a realistic file in which the
fault shows only through it and the fixed twin that stays clean (the files are the
indirection corpus's, ``tests/audit/corpus/``), then each resolver's edge cases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hfdeploy.audit import audit_paths, audit_texts
from hfdeploy.audit.findings import AuditReport, Finding
from tests.audit._corpus import CORPUS, HUB_CACHE
from tests.audit._files import SHA

#: (class, faulty case, fixed twin, file, rule tag, text on the finding's line, in the message)
PAIRS = [
    ("kubernetes $(VAR)", "k8s-vars/vllm-revision-from-env", "k8s-vars/vllm-revision-from-env-pinned", "deployment.yaml", "unpinned-revision", "name: MODEL_REVISION", "`$(MODEL_REVISION)`, env on line 40"),
    ("kubernetes $(VAR)", "k8s-vars/vllm-tp-from-env", "k8s-vars/vllm-tp-from-env-shm", "deployment.yaml", "missing-shm-for-tp", "--tensor-parallel-size", "`$(NUM_GPUS)`, env on line 30"),
    ("kubernetes $(VAR)", "k8s-vars/tgi-revision-unset", "k8s-vars/tgi-revision-set", "deployment.yaml", "unpinned-revision", "--revision=$(MODEL_REVISION)", "nothing in the files sets MODEL_REVISION"),
    ("kubernetes $(VAR)", "k8s-vars/tei-configmap-keyref", "k8s-vars/tei-configmap-keyref-pinned", "embeddings.yaml", "unpinned-revision", "revision: refs/pr/5", "ConfigMap embedding-config key revision on line 31 (set on line 7)"),
    ("kubernetes $(VAR)", "k8s-vars/tgi-envfrom-configmap", "k8s-vars/tgi-envfrom-configmap-fixed", "deployment.yaml", "missing-shm-for-tp", "configMapRef", "configmap.yaml:8"),
    ("kubernetes $(VAR)", "k8s-vars/vllm-sh-c-script", "k8s-vars/vllm-sh-c-script-fixed", "statefulset.yaml", "gpu-memory-utilization-high", "name: GPU_MEM_UTIL", "`$(GPU_MEM_UTIL)`"),
    ("compose interpolation", "compose-vars/tgi-dotenv", "compose-vars/tgi-dotenv-pinned", "compose.yaml", "unpinned-revision", "command:", "`${REVISION}`, .env in .env:3"),
    ("compose interpolation", "compose-vars/vllm-defaults", "compose-vars/vllm-defaults-fixed", "docker-compose.yml", "missing-shm-for-tp", "--tensor-parallel-size", "the default in `${TP:-2}`"),
    ("compose interpolation", "compose-vars/tei-env-file", "compose-vars/tei-env-file-pinned", "compose.yaml", "unpinned-revision", "./tei.env", "tei.env:2"),
    ("compose interpolation", "compose-vars/vllm-bash-c", "compose-vars/vllm-bash-c-pinned", "compose.yaml", "unpinned-revision", "REVISION: main", "`$REVISION`, environment on line 9"),
    ("shell variables", "shell-vars/tgi-quicktour", "shell-vars/tgi-quicktour-pinned", "run.sh", "unpinned-revision", "docker run", "`$model`, an assignment on line 5"),
    ("shell variables", "shell-vars/vllm-serve-defaults", "shell-vars/vllm-serve-defaults-pinned", "serve.sh", "unpinned-revision", "exec vllm serve", "${MODEL:-mistralai/Mistral-Small-24B-Instruct-2501}"),
    ("shell variables", "shell-vars/tei-docker-run-env", "shell-vars/tei-docker-run-env-pinned", "run-reranker.sh", "unpinned-revision", "REVISION=refs/pr/4", "(set on line 3)"),
    ("shell variables", "shell-vars/sglang-launch", "shell-vars/sglang-launch-fixed", "launch.sh", "unpinned-revision", "python3 -m sglang.launch_server", "`$MODEL_PATH`"),
    ("engine environment", "engine-env/tgi-num-shard-mismatch", "engine-env/tgi-num-shard-match", "deployment.yaml", "gpu-limit-mismatch", "nvidia.com/gpu: 2", "`NUM_SHARD`, env on line 23"),
    ("engine environment", "engine-env/tgi-compose-sharded", "engine-env/tgi-compose-sharded-fixed", "compose.yaml", "missing-shm-for-tp", "NUM_SHARD=2", "`NUM_SHARD`"),
    ("engine environment", "engine-env/tgi-implicit-shards", "engine-env/tgi-implicit-shards-shm", "pod.yaml", "missing-shm-for-tp", "nvidia.com/gpu: 4", "shards over the 4 GPUs"),
    ("engine environment", "engine-env/tei-env-model", "engine-env/tei-env-model-fixed", "deployment.yaml", "unpinned-revision", "name: REVISION", "`REVISION`, env on line 20"),
    ("revisions", "revisions/python-getenv", "revisions/python-getenv-default", "serve.py", "unpinned-revision", "from_pretrained", "when MODEL_REVISION is unset it loads no revision"),
    ("revisions", "revisions/short-sha-env", "k8s-vars/vllm-revision-from-env-pinned", "deployment.yaml", "unpinned-revision", 'value: "3f6c0b1"', "a short sha"),
    ("dockerfile build", "dockerfile/run-python-script", "dockerfile/no-download-script", "Dockerfile", "weights-baked-into-image", "RUN python3 download_model.py", "calls snapshot_download('mistralai/Mistral-7B-Instruct-v0.3')"),
    ("dockerfile build", "dockerfile/env-token-script", "dockerfile/secret-mount", "Dockerfile", "token-in-plaintext", "ARG HF_TOKEN", "kept in the image's history"),
    ("dockerfile build", "dockerfile/run-sh-script", "dockerfile/no-download-script", "Dockerfile", "weights-baked-into-image", "./download.sh", "runs `git lfs`"),
    ("python", "python/allow-patterns-constant", "python/allow-patterns-safetensors", "fetch_whisper.py", "pickle-weights", "snapshot_download(", "'pytorch_model*.bin' admits"),
    ("python", "python/fstring-repo", "python/fstring-repo-pinned", "download.py", "unpinned-revision", "hf_hub_download(", "'meta-llama/Llama-3.2-1B-Instruct'"),
    ("gpu labels", "gpu-labels/gke-l4-70b", "gpu-labels/gke-h100-70b", "deployment.yaml", "model-does-not-fit", "gke-accelerator: nvidia-l4", "L4 has 22.5 GiB"),
    ("gpu labels", "gpu-labels/karpenter-t4-8b", "gpu-labels/karpenter-l40s-8b", "deployment.yaml", "model-does-not-fit", "instance-gpu-name: t4", "T4 has 15.0 GiB"),
    ("gpu labels", "gpu-labels/eks-g5-long-context", "gpu-labels/eks-g6e-long-context", "deployment.yaml", "model-does-not-fit", "instance-type: g5.2xlarge", "A10G"),
    ("gpu labels", "gpu-labels/aks-t4-affinity", "gpu-labels/karpenter-l40s-8b", "deployment.yaml", "model-does-not-fit", "Standard_NC4as_T4_v3", "T4"),
]  # fmt: skip


def _audit(case: str) -> AuditReport:
    return audit_paths([CORPUS / case], environ={"HF_HUB_CACHE": str(HUB_CACHE)})


def _in(report: AuditReport, case: str, file: str) -> list[Finding]:
    return [f for f in report.findings if os.path.relpath(f.file, CORPUS / case) == file]


@pytest.mark.parametrize(
    ("kind", "faulty", "fixed", "file", "tag", "on_line", "says"),
    PAIRS, ids=[f"{p[0]}: {p[1].split('/')[1]}" for p in PAIRS],
)  # fmt: skip
def test_the_fault_is_found_through_the_indirection_and_its_twin_is_clean(
    kind: str, faulty: str, fixed: str, file: str, tag: str, on_line: str, says: str
) -> None:
    found = [f for f in _in(_audit(faulty), faulty, file) if f.tag == tag]
    assert found, f"{kind}: {tag} not found in {faulty}/{file}"
    lines = (CORPUS / faulty / file).read_text().splitlines()
    assert any(on_line in lines[f.line - 1] for f in found), [(f.line, f.message) for f in found]
    assert any(says in f.message for f in found), [f.message for f in found]
    twin = _audit(fixed)
    assert [f"{f.file}:{f.line} {f.tag}: {f.message}" for f in twin.findings
            if f.severity != "info"] == []  # fmt: skip


def _k8s(container: str, *, volumes: str = "") -> str:
    return (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
        + container
        + volumes
    )


def test_kubernetes_escape_and_order() -> None:
    # `$$(MODEL)` is the text `$(MODEL)`; a variable is expanded only from those before it.
    text = _k8s(
        "    - name: vllm\n      image: vllm/vllm-openai:v0.10.1\n"
        '      args: ["$(MODEL)", "--served-model-name", "$$(MODEL)", "--download-dir", "$(DIR)"]\n'
        "      env:\n        - {name: DIR, value: $(BASE)/hub}\n        - {name: BASE, value: /cache}\n"
        "        - {name: MODEL, value: org/model}\n"
    )
    (w,) = (
        __import__("hfdeploy.audit.extract", fromlist=["extract"])
        .extract("p.yaml", text, "kubernetes")
        .workloads
    )
    assert w.invocation is not None
    assert w.invocation.argv == ("org/model", "--served-model-name", "$(MODEL)",
                                 "--download-dir", "$(BASE)/hub")  # fmt: skip


def test_an_unresolved_model_is_said_so_not_dropped() -> None:
    text = _k8s(
        "    - name: tgi\n      image: ghcr.io/huggingface/text-generation-inference:3.3.5\n"
        '      args: ["--model-id", "$(MODEL)"]\n'
        "      env:\n        - name: MODEL\n          valueFrom:\n"
        "            secretKeyRef: {name: llm, key: model}\n"
    )
    (f,) = [f for f in audit_texts({"p.yaml": text}).findings if f.tag == "unpinned-revision"]
    assert f.severity == "info"
    assert "the model id from `$(MODEL)`, Secret llm key model on line 10, unresolved" in f.message
    assert f.line == 8  # where it is given: `--model-id $(MODEL)`


def test_compose_does_not_interpolate_from_environment() -> None:
    # `environment:` sets the container's variables; compose interpolates from .env and its
    # shell only, so `${REVISION}` here is not the service's REVISION.
    compose = (
        "services:\n  tgi:\n    image: ghcr.io/huggingface/text-generation-inference:3.3.5\n"
        "    command: --model-id org/model --revision ${REVISION}\n"
        "    environment:\n      REVISION: main\n    shm_size: 1g\n"
        "    volumes: [./data:/data]\n"
    )
    (f,) = [f for f in audit_texts({"compose.yaml": compose}).findings
            if f.tag == "unpinned-revision"]  # fmt: skip
    assert f.severity == "info" and "`${REVISION}`, unresolved" in f.message
    with_env = audit_texts({"compose.yaml": compose, ".env": f"REVISION={SHA}\n"})
    assert not [f for f in with_env.findings if f.tag == "unpinned-revision"]


def test_docker_run_environment_reaches_the_container_shell_not_the_host() -> None:
    script = (
        "MODEL=org/host-model\n"
        "docker run --gpus 2 --shm-size 8g -v hf:/root/.cache/huggingface \\\n"
        "  -e MODEL=org/container-model -e TP=2 --entrypoint /bin/sh \\\n"
        "  vllm/vllm-openai:v0.10.1 -c 'vllm serve $MODEL --tensor-parallel-size $TP'\n"
    )
    (f,) = [f for f in audit_texts({"run.sh": script}).findings if f.tag == "unpinned-revision"]
    assert f.message.startswith("org/container-model")


def test_a_script_reads_its_env_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MODEL_ID=org/model\nREVISION=main\n")
    (tmp_path / "serve.sh").write_text(
        "set -a\nsource .env\nset +a\ntext-generation-launcher --port 8080\n"
    )
    (f,) = [f for f in audit_paths([tmp_path / "serve.sh"]).findings
            if f.tag == "unpinned-revision"]  # fmt: skip
    assert "revision 'main'" in f.message and ".env:2" in f.message


def test_files_beside_are_read_only_within_reach(tmp_path: Path) -> None:
    compose = (
        "services:\n  tgi:\n    image: ghcr.io/huggingface/text-generation-inference:3.3.5\n"
        "    command: --model-id ${MODEL_ID} --revision ${REVISION}\n    shm_size: 1g\n"
        "    volumes: [./data:/data]\n"
    )
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "compose.yaml").write_text(compose)
    (tmp_path / "app" / ".env").write_text("MODEL_ID=org/model\nREVISION=main\n")
    read = audit_paths([tmp_path / "app" / "compose.yaml"])
    assert [f.severity for f in read.findings if f.tag == "unpinned-revision"] == ["warning"]
    elsewhere = audit_paths([tmp_path / "app" / "compose.yaml"], roots=[tmp_path / "other"])
    assert [f.severity for f in elsewhere.findings if f.tag == "unpinned-revision"] == ["info"]


def test_dockerfile_tokens_persist_unless_a_build_secret() -> None:
    base = "FROM python:3.11.9-slim\n"
    assert {f.line for f in audit_texts({"Dockerfile": base + "ARG HF_TOKEN\n"}).findings
            if f.tag == "token-in-plaintext"} == {2}  # fmt: skip
    env = base + "ARG HUGGING_FACE_HUB_TOKEN\nENV HF_TOKEN=$HUGGING_FACE_HUB_TOKEN\n"
    messages = [f.message for f in audit_texts({"Dockerfile": env}).findings]
    assert any("ENV HF_TOKEN is set from $HUGGING_FACE_HUB_TOKEN" in m for m in messages)
    secret = base + "RUN --mount=type=secret,id=hf,env=HF_TOKEN hf download org/m --local-dir /m\n"
    assert {f.tag for f in audit_texts({"Dockerfile": secret}).findings} == {
        "weights-baked-into-image"
    }


def test_python_environment_reads() -> None:
    head = "import os\nfrom huggingface_hub import snapshot_download\n"
    cases = {
        f'snapshot_download("org/m", revision=os.getenv("REV", "{SHA}"))\n': [],
        'snapshot_download("org/m", revision=os.getenv("REV"))\n': ["warning"],
        'snapshot_download("org/m", revision=os.environ["REV"])\n': ["info"],
        'snapshot_download(os.environ["MODEL"])\n': ["info"],
        'snapshot_download("org/m", revision=os.environ.get("REV") or "main")\n': ["warning"],
    }
    for call, severities in cases.items():
        found = audit_texts({"fetch.py": head + call}).findings
        assert [f.severity for f in found if f.tag == "unpinned-revision"] == severities, call


def test_the_fit_check_says_when_it_could_not_look(tmp_path: Path) -> None:
    deployment = (CORPUS / "gpu-labels/gke-l4-70b/deployment.yaml").read_text()
    (tmp_path / "deployment.yaml").write_text(deployment)
    no_cache = audit_paths([tmp_path])
    (f,) = [f for f in no_cache.findings if f.tag == "model-does-not-fit"]
    assert f.severity == "info"
    assert "could not check" in f.message and "reads no Hugging Face cache" in f.message
    empty = audit_paths([tmp_path], environ={"HF_HUB_CACHE": str(tmp_path / "empty")})
    (f,) = [f for f in empty.findings if f.tag == "model-does-not-fit"]
    assert f.severity == "info" and "is not in the local Hugging Face cache" in f.message
    mig = (CORPUS / "gpu-labels/gfd-mig-slice/deployment.yaml").read_text()
    (f,) = [f for f in audit_texts({"d.yaml": mig}).findings if f.tag == "model-does-not-fit"]
    assert f.severity == "info" and "MIG" in f.message
