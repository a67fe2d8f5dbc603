"""Every rule fires on a realistic broken file and stays quiet on the fixed one."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfdeploy.audit import audit_paths, audit_texts
from hfdeploy.audit.findings import Finding
from hfdeploy.audit.rules import RULES
from tests.audit._files import (
    COMPOSE_TGI,
    DOCKERFILE,
    K8S_VLLM,
    PY_SERVER,
    SHA,
    SHELL_SGLANG,
    SHELL_TEI,
)

GOOD = {
    "k8s/deploy.yaml": K8S_VLLM,
    "compose.yaml": COMPOSE_TGI,
    "Dockerfile": DOCKERFILE,
    "run-tei.sh": SHELL_TEI,
    "sglang.sh": SHELL_SGLANG,
    "server.py": PY_SERVER,
}


def test_the_good_files_have_no_findings() -> None:
    report = audit_texts(GOOD)
    assert [f"{f.file}:{f.line} {f.rule_id} {f.message}" for f in report.findings] == []
    assert set(report.files) == set(GOOD)


def _ids(path: str, text: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for f in audit_texts({path: text}).findings:
        out.setdefault(f.rule_id, []).append(f.line)
    return out


# (rule, file, text that breaks it) — each is the good file with one thing changed.
BROKEN = [
    ("HFD001", "k8s/deploy.yaml", K8S_VLLM.replace("persistentVolumeClaim: {claimName: models}", "emptyDir: {}")),
    ("HFD001", "compose.yaml", COMPOSE_TGI.replace("      - hf-data:/data\n", "      - /tmp:/tmp\n")),
    ("HFD001", "run-tei.sh", SHELL_TEI.replace(' -v "$PWD/data:/data"', "")),
    ("HFD002", "Dockerfile", DOCKERFILE.replace("USER 1000", 'RUN python -c "from huggingface_hub import snapshot_download; snapshot_download(\'org/m\')"\nUSER 1000')),
    ("HFD003", "k8s/deploy.yaml", K8S_VLLM.replace(f"            - --revision\n            - {SHA}\n", "")),
    ("HFD003", "compose.yaml", COMPOSE_TGI.replace(f"--revision {SHA}", "--revision main")),
    ("HFD003", "server.py", PY_SERVER.replace(f', revision="{SHA}"', "")),
    ("HFD004", "k8s/deploy.yaml", K8S_VLLM.replace("valueFrom:\n                secretKeyRef: {name: hf, key: token}", "value: hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567")),
    ("HFD004", "compose.yaml", COMPOSE_TGI.replace("${HF_TOKEN}", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567")),
    ("HFD004", "Dockerfile", DOCKERFILE.replace("USER 1000", "RUN huggingface-cli login --token hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567\nUSER 1000")),
    ("HFD004", "server.py", PY_SERVER + '\nfrom huggingface_hub import login\nlogin(token="hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567")\n'),
    ("HFD005", "k8s/deploy.yaml", K8S_VLLM.replace('            - "8192"\n', '            - "8192"\n            - --trust-remote-code\n')),
    ("HFD005", "server.py", PY_SERVER.replace(f'revision="{SHA}"', "trust_remote_code=True")),
    ("HFD006", "k8s/deploy.yaml", K8S_VLLM.replace('            - "8192"\n', '            - "8192"\n            - --load-format\n            - pt\n')),
    ("HFD006", "server.py", PY_SERVER + '\nfrom huggingface_hub import snapshot_download\nsnapshot_download("org/m", revision="' + SHA + '", allow_patterns=["*.bin", "*.json"])\n'),
    ("HFD007", "server.py", PY_SERVER.replace('    model.encode(["warm up"])\n', "")),
    ("HFD008", "k8s/deploy.yaml", K8S_VLLM.replace("          startupProbe:\n            httpGet: {path: /health, port: 8000}\n            periodSeconds: 10\n            failureThreshold: 120\n", "")),
    ("HFD009", "k8s/deploy.yaml", K8S_VLLM.replace("        - name: shm\n          emptyDir: {medium: Memory, sizeLimit: 8Gi}\n", "        - name: shm\n          emptyDir: {}\n")),
    ("HFD009", "compose.yaml", COMPOSE_TGI.replace("    shm_size: 1g\n", "")),
    ("HFD010", "k8s/deploy.yaml", K8S_VLLM.replace("      securityContext:\n", "      hostIPC: true\n      securityContext:\n")),
    ("HFD010", "run-tei.sh", SHELL_TEI.replace("--rm", "--rm --ipc=host")),
    ("HFD011", "k8s/deploy.yaml", K8S_VLLM.replace("nvidia.com/gpu: 2", "nvidia.com/gpu: 1")),
    ("HFD011", "compose.yaml", COMPOSE_TGI.replace("count: 2", "count: 4")),
    ("HFD012", "k8s/deploy.yaml", K8S_VLLM.replace('"0.90"', '"0.98"')),
    ("HFD012", "sglang.sh", SHELL_SGLANG.replace("--port 30000", "--port 30000 --mem-fraction-static 0.96")),
    ("HFD004", "run-tei.sh", SHELL_TEI.replace("--gpus 1", "--gpus 1 -e HF_TOKEN=hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567")),
    ("HFD009", "run-tei.sh", SHELL_TEI.replace("docker run --rm --gpus 1", "docker run --rm --gpus 2").replace("text-embeddings-inference:1.8", "text-generation-inference:3.3.4").replace("--model-id BAAI/bge-small-en-v1.5", "--num-shard 2 --model-id BAAI/bge-small-en-v1.5")),
    ("HFD013", "k8s/deploy.yaml", K8S_VLLM.replace("vllm/vllm-openai:v0.11.0", "vllm/vllm-openai:latest")),
    ("HFD013", "run-tei.sh", SHELL_TEI.replace("text-embeddings-inference:1.8", "text-embeddings-inference")),
    ("HFD014", "k8s/deploy.yaml", K8S_VLLM.replace("meta-llama/Llama-3.1-8B-Instruct", "/models/llama")),
    ("HFD015", "k8s/deploy.yaml", K8S_VLLM.replace("              value: /models/hf\n", "              value: /cache\n").replace("            - name: shm\n              mountPath: /dev/shm\n", "            - name: shm\n              mountPath: /dev/shm\n            - name: cache\n              mountPath: /cache\n").replace("      volumes:\n", "      volumes:\n        - name: cache\n          emptyDir: {}\n")),
    ("HFD016", "k8s/deploy.yaml", K8S_VLLM.replace("/models/hf", "/root/.cache/huggingface")),
    ("HFD016", "Dockerfile", DOCKERFILE.replace("/home/app/.cache/huggingface", "/root/.cache/huggingface")),
    # --model to the vllm-openai image's `vllm serve`: warned about from vLLM 0.30 (v0.11 is fine)
    ("HFD018", "k8s/deploy.yaml", K8S_VLLM.replace("vllm/vllm-openai:v0.11.0", "vllm/vllm-openai:v0.30.0")),
    ("HFD018", "k8s/deploy.yaml", K8S_VLLM.replace("vllm/vllm-openai:v0.11.0", "vllm/vllm-openai:v0.31.0").replace("          args:\n", "          command: [python3, -m, vllm.entrypoints.openai.api_server]\n          args:\n")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rule_id", "path", "text"), BROKEN, ids=[f"{r}-{p}" for r, p, _ in BROKEN]
)
def test_rule_fires_on_the_broken_file(rule_id: str, path: str, text: str) -> None:
    assert rule_id not in _ids(path, GOOD[path])  # the negative case
    found = _ids(path, text)
    assert rule_id in found, found
    lines = text.splitlines()
    for line in found[rule_id]:
        assert 1 <= line <= len(lines)


def test_every_rule_has_a_case() -> None:
    from tests.audit.test_deploy_rules import BROKEN as DEPLOY_BROKEN
    from tests.audit.test_duplex_rules import BROKEN as DUPLEX_BROKEN

    # HFD017: test_memory_rule below; HFD033 reads a folder: test_deploy_rules.
    covered = ({r for r, _, _ in BROKEN} | {r for r, *_ in DEPLOY_BROKEN}
               | {r for r, *_ in DUPLEX_BROKEN} | {"HFD017", "HFD033"})  # fmt: skip
    assert covered == {r.id for r in RULES}


def test_findings_point_at_the_right_line() -> None:
    text = K8S_VLLM.replace("vllm/vllm-openai:v0.11.0", "vllm/vllm-openai:latest")
    (finding,) = [f for f in audit_texts({"d.yaml": text}).findings if f.rule_id == "HFD013"]
    assert "vllm/vllm-openai:latest" in text.splitlines()[finding.line - 1]


def test_trust_remote_code_is_an_error_unpinned_and_a_warning_pinned() -> None:
    pinned = K8S_VLLM.replace(
        '            - "8192"\n', '            - "8192"\n            - --trust-remote-code\n'
    )
    unpinned = pinned.replace(f"            - --revision\n            - {SHA}\n", "")
    sev = {name: [f.severity for f in audit_texts({"d.yaml": t}).findings if f.rule_id == "HFD005"]
           for name, t in (("pinned", pinned), ("unpinned", unpinned))}  # fmt: skip
    assert sev == {"pinned": ["warning"], "unpinned": ["error"]}


def test_token_placeholders_are_warnings_not_errors() -> None:
    text = COMPOSE_TGI.replace("${HF_TOKEN}", "<your-hf-token>")
    (f,) = [f for f in audit_texts({"compose.yaml": text}).findings if f.rule_id == "HFD004"]
    assert f.severity == "warning"
    assert "placeholder" in f.message


def test_memory_rule_uses_the_sizing(tmp_path: Path) -> None:
    from tests._synthetic import LLAMA3_70B, llama_shaped_checkpoint

    # The model's folder sits in the audited tree: the audit may read its headers there.
    folder = tmp_path / "llama70b"
    llama_shaped_checkpoint(folder, LLAMA3_70B, shards=2)
    base = K8S_VLLM.replace("meta-llama/Llama-3.1-8B-Instruct", str(folder)).replace(
        "      securityContext:\n", "      nodeSelector:\n        nvidia.com/gpu.product: NVIDIA-L4\n      securityContext:\n"
    ).replace("            - name: HF_HOME\n", "            - name: HF_HUB_OFFLINE\n              value: \"1\"\n            - name: HF_HOME\n")  # fmt: skip

    def fit(text: str, *, audited: Path = tmp_path) -> list[Finding]:
        (audited / "d.yaml").write_text(text)
        return [f for f in audit_paths([audited / "d.yaml"]).findings if f.rule_id == "HFD017"]

    (found,) = fit(base)
    assert found.severity == "error"
    assert "L4" in found.message
    assert "GiB" in found.message
    assert "nvidia.com/gpu.product" in base.splitlines()[found.line - 1]  # the label's line
    on_h200 = (
        base.replace("NVIDIA-L4", "NVIDIA-H200")
        .replace('- "2"\n', '- "4"\n')
        .replace("nvidia.com/gpu: 2", "nvidia.com/gpu: 4")
    )
    assert fit(on_h200) == []
    # Audited from another folder, the model is out of reach: the check says it could not look.
    elsewhere = tmp_path / "manifests"
    elsewhere.mkdir()
    (could_not,) = fit(base, audited=elsewhere)
    assert could_not.severity == "info"
    assert "could not check" in could_not.message
    assert "a path in the container, not a folder the audit may read" in could_not.message
    # A text alone reads nothing: the same, never silence.
    (texts_only,) = [f for f in audit_texts({"d.yaml": base}).findings if f.rule_id == "HFD017"]
    assert texts_only.severity == "info" and "could not check" in texts_only.message


def test_powershell_docker_run_with_backtick_continuations() -> None:
    ps1 = (
        "docker run --gpus all `\n"
        "  -e HF_TOKEN=hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567 `\n"
        "  vllm/vllm-openai `\n"
        "  --model meta-llama/Llama-3.1-8B-Instruct\n"
    )
    found = _ids("serve.ps1", ps1)
    assert {"HFD001", "HFD003", "HFD004", "HFD013"} <= set(found)
    assert found["HFD004"] == [1]  # the logical command starts on line 1


def test_dockerfile_entrypoint_and_cmd_make_one_command() -> None:
    text = (
        "FROM vllm/vllm-openai:v0.11.0\n"
        'ENTRYPOINT ["python3", "-m", "vllm.entrypoints.openai.api_server"]\n'
        'CMD ["--model", "org/model", "--trust-remote-code"]\n'
    )
    found = _ids("Dockerfile", text)
    assert found["HFD005"] == [3]  # unpinned and trusting remote code: the flag's line (CMD)
    assert "HFD003" in found
    # An empty ENTRYPOINT (reset to run CMD alone) is no line of the command.
    reset = text.replace('["python3", "-m", "vllm.entrypoints.openai.api_server"]', "[]").replace(
        'CMD ["--model"', 'CMD ["vllm", "serve", "--model"'
    )
    assert _ids("Dockerfile", reset)["HFD005"] == [3]


def test_compose_command_as_a_list() -> None:
    text = COMPOSE_TGI.replace(
        f"    command: --model-id mistralai/Mistral-7B-Instruct-v0.3 --revision {SHA} --num-shard 2\n",
        '    command: ["--model-id", "mistralai/Mistral-7B-Instruct-v0.3", "--num-shard", "2"]\n',
    )
    assert "HFD003" in _ids("compose.yaml", text)


def _shell_form(text: str, script: str) -> str:
    """The good vLLM Deployment with its args replaced by ``sh -c SCRIPT``."""
    start = text.index("          args:\n")
    end = text.index("          env:\n")
    return (
        text[:start]
        + (f'          command: ["/bin/sh", "-c"]\n          args:\n            - {script!r}\n')
        + text[end:]
    )


def test_a_shell_script_is_read_command_by_command() -> None:
    # The engine after `&&` in `sh -c` is the one audited: TP 2 on 2 GPUs is right.
    served = _shell_form(
        K8S_VLLM,
        f"ray start --head && exec vllm serve meta-llama/Llama-3.1-8B-Instruct --revision {SHA} "
        "--tensor-parallel-size 2 --gpu-memory-utilization 0.90 --max-model-len 8192",
    )
    assert "HFD011" not in {f.rule_id for f in audit_texts({"d.yaml": served}).findings}
    # TP 4 on 2 GPUs, inside the script: found.
    wrong = served.replace("--tensor-parallel-size 2", "--tensor-parallel-size 4")
    assert "HFD011" in {f.rule_id for f in audit_texts({"d.yaml": wrong}).findings}
    # A Ray worker in the vLLM image starts no engine: no vLLM findings for it.
    worker = _shell_form(K8S_VLLM, "exec ray start --address=$(LEADER):6379 --block")
    rules = {f.rule_id for f in audit_texts({"d.yaml": worker}).findings}
    assert not rules & {"HFD011", "HFD008", "HFD012"}


def test_a_leader_worker_set_spreads_tp_x_pp_over_its_group() -> None:
    leader = {"containers": [{
        "name": "server", "image": "vllm/vllm-openai:v0.11.0",
        "command": ["/bin/sh", "-c"],
        "args": [f"ray start --head && exec vllm serve m --revision {SHA} "
                 "--tensor-parallel-size 8 --pipeline-parallel-size 2"],
        "resources": {"limits": {"nvidia.com/gpu": "GPUS"}},
    }]}  # fmt: skip
    import yaml

    def lws(gpus: int) -> str:
        doc = {
            "apiVersion": "leaderworkerset.x-k8s.io/v1",
            "kind": "LeaderWorkerSet",
            "metadata": {"name": "x"},
            "spec": {"leaderWorkerTemplate": {"size": 2, "leaderTemplate": {"spec": leader}}},
        }
        return yaml.safe_dump(doc).replace("GPUS", str(gpus))  # fmt: skip

    def gpu_findings(text: str) -> list[str]:
        return [f.message for f in audit_texts({"lws.yaml": text}).findings
                if f.rule_id == "HFD011"]  # fmt: skip

    assert gpu_findings(lws(8)) == []  # 8 x 2 over 2 pods: 8 each
    assert gpu_findings(lws(16)) == ["16 GPU(s) requested but TP x PP = 8 per pod of a group of 2"]


def test_a_null_probe_field_is_its_kubernetes_default() -> None:
    # Regression: `initialDelaySeconds: null` (Kubernetes reads it as unset) crashed the audit
    # with a TypeError. A startup probe of 10 s x null failures keeps the default 3: too short.
    text = K8S_VLLM.replace(
        "            periodSeconds: 10\n            failureThreshold: 120",
        "            initialDelaySeconds: null\n            periodSeconds: 10\n"
        "            failureThreshold: null",
    )
    assert text != K8S_VLLM
    (finding,) = [f for f in audit_texts({"d.yaml": text}).findings if f.rule_id == "HFD008"]
    assert "30s" in finding.message
