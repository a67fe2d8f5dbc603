"""The rules for deployment faults (HFD019-HFD033): each fires on a broken file and stays
quiet on the fixed one, audited with the files around it (folder checks match an autoscaler
or a budget to the Deployment in another file)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from hfdeploy.audit import audit_paths, audit_texts
from hfdeploy.audit.report import render
from tests.audit._checks import assert_fires, findings_text
from tests.audit._files import (
    COMPOSE_VLLM,
    ENDPOINT_VLLM,
    K8S_FETCH_JOB,
    K8S_HPA,
    K8S_LLAMA_CPP,
    K8S_PDB,
    K8S_PVC,
    K8S_SGLANG,
    K8S_TGI,
    K8S_TRITON,
    K8S_TRITON_CONFIG,
    K8S_VLLM,
    SHA,
)

GOOD = {
    "k8s/deploy.yaml": K8S_VLLM,
    "k8s/hpa.yaml": K8S_HPA,
    "k8s/pdb.yaml": K8S_PDB,
    "k8s/pvc.yaml": K8S_PVC,
    "k8s/fetch-job.yaml": K8S_FETCH_JOB,
    "sglang/deploy.yaml": K8S_SGLANG,
    "tgi/pod.yaml": K8S_TGI,
    "gguf/pod.yaml": K8S_LLAMA_CPP,
    "triton/deploy.yaml": K8S_TRITON,
    "triton/config.yaml": K8S_TRITON_CONFIG,
    "compose.yaml": COMPOSE_VLLM,
    "hf-endpoint.json": ENDPOINT_VLLM,
}


def test_the_good_files_have_no_findings() -> None:
    assert findings_text(GOOD) == []
    assert set(audit_texts(GOOD).files) == set(GOOD)


def _endpoint(**changes: object) -> str:
    body = json.loads(ENDPOINT_VLLM)
    body.update(changes)
    return json.dumps(body, indent=2)


_NO_SUBPATH = K8S_TRITON.replace(
    "            - {name: repo, mountPath: /models/llama/config.pbtxt, subPath: config.pbtxt}\n"
    "            - {name: repo, mountPath: /models/llama/1/model.json, subPath: model.json}\n",
    "            - {name: repo, mountPath: /models}\n",
)

# (rule, file, text that breaks it, a fragment of the message) — each one of GOOD's files
# with one thing changed, audited with the others.
BROKEN = [
    ("HFD019", "triton/deploy.yaml", _NO_SUBPATH, "holding config.pbtxt, model.json"),
    ("HFD020", "hf-endpoint.json", _endpoint(container_args=["vllm", "serve", "/repository"]), "`vllm serve vllm serve ...`"),
    ("HFD020", "compose.yaml", COMPOSE_VLLM.replace("[/repository,", "[serve, /repository,"), "`vllm serve serve ...`"),
    ("HFD020", "k8s/deploy.yaml", K8S_VLLM.replace("          args:\n", "          args:\n            - python3\n            - -m\n            - vllm.entrypoints.openai.api_server\n"), "python3 -m vllm.entrypoints"),
    ("HFD021", "hf-endpoint.json", _endpoint(repository="OWNER/NAME"), "placeholder OWNER/NAME"),
    ("HFD021", "hf-endpoint.json", _endpoint(revision=None), "revision is null"),
    ("HFD021", "hf-endpoint.json", _endpoint(custom_image={"url": "hfdeploy-server:0.1.0", "port": 8080, "healthRoute": "/ready"}), "local tag"),
    ("HFD022", "k8s/fetch-job.yaml", K8S_FETCH_JOB.replace(f"acme/llama@{SHA}", "'REPO_ID@COMMIT_SHA  # set before applying'"), "shell comment"),
    ("HFD022", "hf-endpoint.json", _endpoint(container_args=["--model", "<model>"]), "<model>"),
    ("HFD022", "compose.yaml", COMPOSE_VLLM.replace("[/repository,", "[OWNER/NAME,"), "OWNER/NAME"),
    ("HFD023", "k8s/hpa.yaml", K8S_HPA.replace("vllm:num_requests_waiting", "llamacpp:requests_deferred"), "a metric of llama.cpp"),
    ("HFD023", "k8s/hpa.yaml", K8S_HPA.replace("vllm:num_requests_waiting", "requests_waiting"), "never scales"),
    ("HFD024", "sglang/deploy.yaml", K8S_SGLANG.replace("httpGet: {path: /ready, port: 30000}\n            timeoutSeconds: 5", "httpGet: {path: /health, port: 30000}"), "/health"),
    ("HFD025", "tgi/pod.yaml", K8S_TGI.replace(', --port, "8080"', ""), "port 80"),
    ("HFD026", "k8s/pvc.yaml", K8S_PVC.replace("  storageClassName: efs-sc\n", ""), "ReadWriteMany"),
    ("HFD027", "k8s/deploy.yaml", K8S_VLLM.replace("      securityContext:\n        runAsNonRoot: true\n        runAsUser: 1000\n", ""), "uid 2000"),
    ("HFD028", "compose.yaml", COMPOSE_VLLM.replace("cache:/home/vllm/.cache", "cache:/cache").replace("/home/vllm/.cache", "/cache"), "owned by root"),
    ("HFD029", "compose.yaml", COMPOSE_VLLM.replace("cache:/home/vllm/.cache", "cache:/home/vllm/.cache/huggingface"), "rebuilt at every start"),
    ("HFD030", "k8s/deploy.yaml", K8S_VLLM.replace("{maxSurge: 0, maxUnavailable: 1}", "{maxSurge: 1, maxUnavailable: 0}"), "never finishes"),
    ("HFD030", "k8s/deploy.yaml", K8S_VLLM.replace("  strategy:  # one pod at a time: a rollout needs no spare GPUs\n    rollingUpdate: {maxSurge: 0, maxUnavailable: 1}\n", ""), "maxSurge 25%"),
    ("HFD031", "k8s/pdb.yaml", K8S_PDB.replace("maxUnavailable: 1", "maxUnavailable: 2"), "2 of the 2 pod(s)"),
    ("HFD031", "k8s/pdb.yaml", K8S_PDB.replace("maxUnavailable: 1", "minAvailable: 0"), "takes the service down"),
    ("HFD032", "gguf/pod.yaml", K8S_LLAMA_CPP.replace("model-q4_k_m.gguf", "model.safetensors"), "not a .gguf file"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rule_id", "path", "text", "says"), BROKEN, ids=[f"{r}-{p}" for r, p, _, _ in BROKEN]
)
def test_rule_fires_on_the_broken_file(rule_id: str, path: str, text: str, says: str) -> None:
    assert_fires(GOOD, rule_id, path, text, says)


def test_findings_point_at_the_value() -> None:
    text = K8S_HPA.replace("vllm:num_requests_waiting", "requests_waiting")
    (f,) = audit_texts({**GOOD, "k8s/hpa.yaml": text}).findings
    assert "requests_waiting" in text.splitlines()[f.line - 1]
    assert f.severity == "warning"  # no engine's prefix: a metrics adapter may rename one
    body = _endpoint(revision="main")
    (f,) = audit_texts({**GOOD, "hf-endpoint.json": body}).findings
    assert '"revision": "main"' in body.splitlines()[f.line - 1]
    assert (f.rule_id, f.severity) == ("HFD021", "warning")


def test_folder_checks_match_the_nearest_folder() -> None:
    # Two deployments audited together, each with a Deployment named llama: the HPA of the
    # second scales its own (llama.cpp), not the first's (vLLM).
    pod = yaml.safe_load(K8S_LLAMA_CPP)["spec"]
    gguf = yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "llama"},
        "spec": {"selector": {"matchLabels": {"app": "gguf"}},
                 "template": {"metadata": {"labels": {"app": "gguf"}}, "spec": pod}},
    })  # fmt: skip
    files = {"a/deploy.yaml": K8S_VLLM, "a/hpa.yaml": K8S_HPA, "b/deploy.yaml": gguf,
             "b/hpa.yaml": K8S_HPA.replace("vllm:num_requests_waiting", "llamacpp:requests_deferred")}  # fmt: skip
    assert not [f for f in audit_texts(files).findings if f.rule_id == "HFD023"]
    files["b/hpa.yaml"] = K8S_HPA
    (f,) = [f for f in audit_texts(files).findings if f.rule_id == "HFD023"]
    assert f.file == "b/hpa.yaml"
    # without the HPA (2 replicas at least), the budget of 1 lets the one replica go
    alone = {k: v for k, v in GOOD.items() if k != "k8s/hpa.yaml"}
    (f,) = [f for f in audit_texts(alone).findings if f.rule_id == "HFD031"]
    assert "1 of the 1 pod(s) of Deployment llama" in f.message


def test_an_autoscaler_on_a_workload_not_in_the_files_says_nothing() -> None:
    assert findings_text({"hpa.yaml": K8S_HPA.replace("vllm:", "llamacpp:")}) == []
    assert findings_text({"pdb.yaml": K8S_PDB}) == []


def test_triton_backend_metrics_are_vllm_s_too() -> None:
    hpa = K8S_HPA.replace("name: llama}", "name: triton}")
    assert "HFD023" not in {
        f.rule_id for f in audit_texts({**GOOD, "triton/hpa.yaml": hpa}).findings
    }


def test_copy_sources_are_checked_against_the_folder(tmp_path: Path) -> None:
    dockerfile = (
        "FROM python:3.11.9-slim AS build\n"
        "COPY constraints.txt dist/app-1.0-py3-none-any.whl /tmp/\n"
        "COPY --from=build /tmp /tmp\n"
        "COPY *.md /docs/\n"
        'COPY ["app.py", "/app/"]\n'
        "USER 1000\n"
    )
    (tmp_path / "dist").mkdir()
    for name in ("constraints.txt", "dist/app-1.0-py3-none-any.whl", "app.py"):
        (tmp_path / name).write_text("x")
    (tmp_path / "Dockerfile").write_text(dockerfile)
    assert not audit_paths([tmp_path]).findings
    (tmp_path / "dist/app-1.0-py3-none-any.whl").unlink()
    (tmp_path / "app.py").unlink()
    found = [(f.rule_id, f.line, f.message.split(" ")[0]) for f in audit_paths([tmp_path]).findings]
    assert found == [("HFD033", 2, "dist/app-1.0-py3-none-any.whl"), ("HFD033", 5, "app.py")]
    # Text alone has no folder: no verdict.
    assert not audit_texts({"Dockerfile": dockerfile}).findings


def test_suppressions_and_config_apply_to_the_new_rules(tmp_path: Path) -> None:
    pvc = K8S_PVC.replace("  storageClassName: efs-sc\n", "")
    ignored = pvc.replace(
        "  accessModes:", "  # hfdeploy: ignore[rwx-without-storage-class]\n  accessModes:"
    )
    report = audit_texts({"pvc.yaml": ignored})
    assert (report.findings, report.suppressed) == ((), 1)
    hpa = K8S_HPA.replace("vllm:num_requests_waiting", "requests_waiting")
    ignored = hpa.replace("requests_waiting", "requests_waiting  # hfdeploy: ignore[HFD023]")
    report = audit_texts({**GOOD, "k8s/hpa.yaml": ignored})
    assert (report.findings, report.suppressed) == ((), 1)
    from hfdeploy.audit.run import parse_config

    cfg = parse_config({"disable": ["HFD026"], "severity": {"HFD023": "info"}}, "test")
    report = audit_texts({**GOOD, "k8s/pvc.yaml": pvc, "k8s/hpa.yaml": hpa}, cfg)
    assert [(f.rule_id, f.severity) for f in report.findings] == [("HFD023", "info")]


def test_sarif_carries_the_new_rules() -> None:
    schema = json.loads((Path(__file__).parents[1] / "data/sarif-2.1.0.json").read_text())
    seen = set()
    for _, path, text, _ in BROKEN:
        doc = json.loads(render(audit_texts({**GOOD, path: text}), "sarif"))
        jsonschema.Draft7Validator(schema).validate(doc)
        rules = doc["runs"][0]["tool"]["driver"]["rules"]
        for r in doc["runs"][0]["results"]:
            assert rules[r["ruleIndex"]]["id"] == r["ruleId"]
            seen.add(r["ruleId"])
    assert seen >= {r for r, *_ in BROKEN}
