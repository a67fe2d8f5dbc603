"""Formats, suppressions, configuration, exit codes, parse errors, resource kinds."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from hfdeploy.audit import audit_texts
from hfdeploy.audit.docs import index_page, rule_page
from hfdeploy.audit.report import render
from hfdeploy.audit.rules import PARSE_ERROR, RULES
from hfdeploy.audit.yamlsrc import load_docs
from hfdeploy.cli.main import app
from hfdeploy.errors import YamlParseError
from tests.audit._files import (
    COMPOSE_TGI,
    DOCKERFILE,
    ENDPOINT_VLLM,
    K8S_VLLM,
    PY_SERVER,
    SHELL_TEI,
)

ROOT = Path(__file__).resolve().parents[2]
# A mutable tag and a high memory fraction; the model goes first, as `vllm serve` wants it
# from vLLM 0.30 (`latest` is past that: with --model, HFD018 would join in).
BAD_K8S = (
    K8S_VLLM.replace("vllm/vllm-openai:v0.11.0", "vllm/vllm-openai:latest")
    .replace('"0.90"', '"0.97"')
    .replace("            - --model\n", "")
)


def _run(*args: str, cwd: Path | None = None) -> tuple[int, str]:
    import os

    old = Path.cwd()
    if cwd:
        os.chdir(cwd)
    try:
        res = CliRunner().invoke(app, ["audit", *args])
    finally:
        os.chdir(old)
    return res.exit_code, res.stdout + res.stderr


def _write(tmp: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)
    return tmp


def test_json_contract(tmp_path: Path) -> None:
    _write(tmp_path, {"deploy.yaml": BAD_K8S})
    code, out = _run(str(tmp_path), "--format", "json")
    assert code == 0  # warnings only, and --fail-on defaults to error
    data = json.loads(out)
    assert set(data) >= {"findings", "files", "summary"}
    for f in data["findings"]:
        assert set(f) >= {
            "rule_id",
            "tag",
            "severity",
            "file",
            "line",
            "message",
            "impact",
            "recommendation",
        }
    assert {f["rule_id"] for f in data["findings"]} == {"HFD012", "HFD013"}
    assert data["summary"]["by_severity"]["warning"] == 2


def test_sarif_validates_against_the_2_1_0_schema() -> None:
    schema = json.loads((ROOT / "tests/data/sarif-2.1.0.json").read_text())
    report = audit_texts(
        {"deploy.yaml": BAD_K8S, "broken.yaml": "apiVersion: v1\nkind: Pod\nspec: [\n"}
    )
    doc = json.loads(render(report, "sarif"))
    jsonschema.Draft7Validator(schema).validate(doc)
    results = doc["runs"][0]["results"]
    assert len(results) == len(report.findings)
    rules = doc["runs"][0]["tool"]["driver"]["rules"]
    for r in results:
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"]


def test_markdown_sections() -> None:
    md = render(audit_texts({"deploy.yaml": BAD_K8S}), "markdown")
    assert md.startswith("# hfdeploy audit\n\n## Summary\n")
    assert "### [WARNING] Mutable image tag" in md
    for part in (
        "- **Location:** `deploy.yaml:",
        "- **Issue:**",
        "- **Impact:**",
        "- **Recommendation:**",
    ):
        assert part in md
    assert "## Recommendations" in md


def test_text_is_grouped_by_file(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {"a/deploy.yaml": BAD_K8S, "b/Dockerfile": DOCKERFILE.replace("3.11.9-slim", "latest")},
    )
    code, out = _run(str(tmp_path), "--fail-on", "warning")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].endswith("a/deploy.yaml")
    assert any(line.endswith("b/Dockerfile") for line in lines)
    assert lines[-1].startswith("3 finding(s) in 2 file(s)")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deploy.yaml", BAD_K8S.replace("- --gpu-memory-utilization\n", "- --gpu-memory-utilization  # hfdeploy: ignore[HFD012]\n")),
        ("deploy.yaml", BAD_K8S.replace("            - --gpu-memory-utilization\n", "            # hfdeploy: ignore[gpu-memory-utilization-high]\n            - --gpu-memory-utilization\n")),
        ("Dockerfile", "# hfdeploy: ignore[HFD013]\n" + DOCKERFILE.replace("3.11.9-slim", "latest")),
        ("run.sh", SHELL_TEI.replace("docker run", "# hfdeploy: ignore[HFD013]\ndocker run").replace(":1.8", "")),
        ("server.py", PY_SERVER.replace('    model.encode(["warm up"])\n', "").replace("app = FastAPI", "# hfdeploy: ignore[HFD007]\napp = FastAPI", 1)),
    ],
)  # fmt: skip
def test_inline_suppression(name: str, text: str) -> None:
    report = audit_texts({name: text})
    suppressed = {"HFD012", "HFD013", "HFD007"}
    if name == "deploy.yaml":
        assert {f.rule_id for f in report.findings} == {"HFD013"}
    else:
        assert not {f.rule_id for f in report.findings} & suppressed
    assert report.suppressed >= 1


def test_suppression_only_hides_the_named_rule() -> None:
    text = BAD_K8S.replace(
        "- --gpu-memory-utilization\n", "- --gpu-memory-utilization  # hfdeploy: ignore[HFD013]\n"
    )
    assert "HFD012" in {f.rule_id for f in audit_texts({"d.yaml": text}).findings}


def test_config_file_disables_and_changes_severity(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "deploy.yaml": BAD_K8S,
            ".hfdeploy.toml": '[audit]\ndisable = ["HFD012"]\nseverity = { mutable-image-tag = "error" }\n',
        },
    )
    code, out = _run("deploy.yaml", "--json", cwd=tmp_path)
    data = json.loads(out)
    assert [(f["rule_id"], f["severity"]) for f in data["findings"]] == [("HFD013", "error")]
    assert code == 1
    (tmp_path / ".hfdeploy.toml").unlink()
    _write(
        tmp_path,
        {"pyproject.toml": '[tool.hfdeploy.audit]\ndisable = ["mutable-image-tag", "HFD012"]\n'},
    )
    assert _run("deploy.yaml", "--json", cwd=tmp_path)[0] == 0
    _write(tmp_path, {"pyproject.toml": '[tool.hfdeploy.audit]\ndisable = ["HFD999"]\n'})
    code, out = _run("deploy.yaml", cwd=tmp_path)
    assert code == 2
    assert "HFD999" in out


def test_exit_codes(tmp_path: Path) -> None:
    _write(tmp_path, {"good/deploy.yaml": K8S_VLLM, "bad/deploy.yaml": BAD_K8S})
    assert _run(str(tmp_path / "good"), "--fail-on", "info")[0] == 0
    assert _run(str(tmp_path / "bad"))[0] == 0
    assert _run(str(tmp_path / "bad"), "--fail-on", "warning")[0] == 1
    assert _run(str(tmp_path / "missing"))[0] == 2
    assert _run(str(tmp_path), "--format", "xml")[0] == 2
    assert _run(str(tmp_path), "--fail-on", "fatal")[0] == 2


def test_a_file_that_does_not_parse_is_a_finding_and_the_rest_is_audited(tmp_path: Path) -> None:
    _write(tmp_path, {"broken.yaml": "apiVersion: v1\nkind: Pod\nspec:\n  containers: [\n", "deploy.yaml": BAD_K8S,
                      "server.py": "def (:\n", "compose.yaml": COMPOSE_TGI})  # fmt: skip
    code, out = _run(str(tmp_path), "--json")
    data = json.loads(out)
    parse = [f for f in data["findings"] if f["rule_id"] == "HFD000"]
    assert {Path(f["file"]).name for f in parse} == {"broken.yaml", "server.py"}
    assert all(f["line"] >= 1 for f in parse)
    assert {"HFD012", "HFD013"} <= {f["rule_id"] for f in data["findings"]}
    assert code == 1


def test_a_yaml_parse_error_is_a_finding_at_the_line_the_parser_names() -> None:
    text = "apiVersion: v1\nkind: Pod\nspec:\n  containers: [\n"
    with pytest.raises(YamlParseError) as e:
        list(load_docs(text, file="pod.yaml"))
    assert (e.value.file, e.value.line) == ("pod.yaml", 5)
    [f] = audit_texts({"pod.yaml": text}).findings
    assert (f.rule_id, f.line) == ("HFD000", 5)
    assert f.message == f"kubernetes file does not parse: {e.value.reason}"


def test_kinds_beyond_deployments() -> None:
    isvc = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: llm}
spec:
  predictor:
    model:
      modelFormat: {name: huggingface}
      image: kserve/huggingfaceserver:latest
      args: ["--model_id", "org/model", "--trust_remote_code"]
"""
    lws = K8S_VLLM.replace("kind: Deployment", "kind: LeaderWorkerSet").replace(
        "  template:\n    metadata:\n      labels: {app: llama}\n    spec:\n",
        "  leaderWorkerTemplate:\n    leaderTemplate:\n      spec:\n",
    )
    found = {f.rule_id for f in audit_texts({"isvc.yaml": isvc}).findings}
    assert {"HFD003", "HFD005", "HFD013"} <= found
    multi = K8S_VLLM + "---\n" + K8S_VLLM.replace("v0.11.0", "latest")
    # the second document only: a mutable tag, and `latest` (past 0.30) given --model
    second = K8S_VLLM.count("\n") + 1
    found = [(f.rule_id, f.line > second) for f in audit_texts({"m.yaml": multi}).findings]
    assert found == [("HFD013", True), ("HFD018", True)]
    assert audit_texts({"lws.yaml": lws}).files == ("lws.yaml",)


def test_list_rules_and_rule_pages_are_current() -> None:
    code, out = _run("--list-rules")
    assert code == 0
    for r in (*RULES, PARSE_ERROR):
        assert r.id in out
        page = ROOT / "docs" / "rules" / f"{r.id}.md"
        assert page.read_text() == rule_page(r), (
            f"regenerate: python -m hfdeploy.audit.docs docs/rules ({r.id})"
        )
    assert (ROOT / "docs/rules/README.md").read_text() == index_page()


def test_generated_kinds_are_read_and_the_rest_skipped() -> None:
    files = {
        "hf-endpoint.json": ENDPOINT_VLLM,
        "endpoint-prod.json": ENDPOINT_VLLM,
        "triton/llama/config.pbtxt": 'backend: "vllm"\n',
        "triton/llama/1/model.json": '{"model": "/repository"}\n',
        "plan.json": json.dumps({"engine": "vllm", "endpoint": {"instance_type": "nvidia-l4"}}),
        "model.lock.json": json.dumps({"repo_id": "acme/llama", "files": []}),
        "README.md": "# deploy\n",
        "constraints.txt": "torch==2.8.0\n",
    }
    report = audit_texts(files)
    assert set(report.files) == {"hf-endpoint.json", "endpoint-prod.json",
                                 "triton/llama/config.pbtxt", "triton/llama/1/model.json"}  # fmt: skip
    assert report.findings == ()
    # The endpoint's server is read like any other: its image, command line, environment.
    latest = ENDPOINT_VLLM.replace("vllm-openai:v0.30.0", "vllm-openai:latest")
    (f,) = audit_texts({"hf-endpoint.json": latest}).findings
    assert (f.rule_id, f.line) == ("HFD013", 12)
    broken = audit_texts({"hf-endpoint.json": '{\n  "name": \n', "triton/l/1/model.json": "{"})
    assert [(f.rule_id, f.file) for f in broken.findings] == [
        ("HFD000", "hf-endpoint.json"), ("HFD000", "triton/l/1/model.json")]  # fmt: skip
