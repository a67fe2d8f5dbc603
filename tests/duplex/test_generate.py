"""Generated files for full-duplex servers: valid, audited clean, and shaped for sessions
(TCP probes, an Ingress with hour-long WebSocket timeouts, TLS outside the container, every
file from the volume, no autoscaler on utilisation)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from hfdeploy import inspect_model
from hfdeploy.audit import audit_paths
from hfdeploy.plan.planner import plan_deployment
from hfdeploy.render.generate import generate_deployment
from tests._k8s import check_generated
from tests._synthetic import kyutai_checkpoint


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("duplex-gen")
    out = {}
    # The reference servers (asked: hfdeploy's own is the default for both).
    for variant, dest in (("personaplex", {"registry": "registry.example.com/team",
                                            "storage_class": "efs-sc", "engine": "personaplex"}),
                          ("moshiko", {"engine": "moshi"})):  # fmt: skip
        model = kyutai_checkpoint(root / variant, variant, voices=variant == "personaplex")
        plan = plan_deployment(inspect_model(str(model)), gpu="h100", concurrency=3, **dest)
        generate_deployment(plan, root / f"{variant}-deploy", lock=False)
        out[variant] = root / f"{variant}-deploy"
    return out


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_files_validate_and_lint(generated: dict[str, Path]) -> None:
    pp = generated["personaplex"]
    names = {p.relative_to(pp).as_posix() for p in pp.rglob("*") if p.is_file()}
    want = {"Dockerfile", ".dockerignore", "compose.yaml", "kserve.yaml", "k8s/ingress.yaml",
            "k8s/deployment.yaml", "k8s/service.yaml", "plan.json", "README.md"}  # fmt: skip
    assert want <= names
    assert "k8s/hpa.yaml" not in names and "hf-endpoint.json" not in names
    assert not any(n.startswith("dist/") for n in names)  # the image installs no hfdeploy wheel
    for folder in generated.values():
        check_generated(folder)


def test_hfdeploy_audit_finds_nothing_above_info(generated: dict[str, Path]) -> None:
    for folder in generated.values():
        report = audit_paths([folder])
        bad = [f for f in report.findings if f.severity in {"error", "warning"}]
        assert not bad, [f"{f.rule_id} {f.file}: {f.message}" for f in bad]


def test_probes_never_open_the_session(generated: dict[str, Path]) -> None:
    dep = _docs(generated["personaplex"] / "k8s/deployment.yaml")[0]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["tcpSocket"] == {"port": "http"}, probe
    assert "--ssl" not in c["args"]
    assert {v["name"]: v["value"] for v in c["env"]}["HF_HUB_OFFLINE"] == "1"
    assert not any("TOKEN" in v["name"] for v in c["env"])
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/repository"]["readOnly"] is True
    compose = yaml.safe_load((generated["personaplex"] / "compose.yaml").read_text())
    (svc,) = compose["services"].values()
    assert "socket.create_connection" in " ".join(svc["healthcheck"]["test"])


def test_ingress_keeps_a_conversation(generated: dict[str, Path]) -> None:
    (ing,) = _docs(generated["personaplex"] / "k8s/ingress.yaml")
    notes = ing["metadata"]["annotations"]
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(notes["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    (path,) = ing["spec"]["rules"][0]["http"]["paths"]
    assert path["path"] == "/api/chat" and ing["spec"]["tls"]


def test_kserve_one_conversation_per_pod_no_cpu_autoscaler(generated: dict[str, Path]) -> None:
    (isvc,) = _docs(generated["personaplex"] / "kserve.yaml")
    pred = isvc["spec"]["predictor"]
    assert pred["containerConcurrency"] == 1
    assert pred["minReplicas"] == pred["maxReplicas"] == 3
    assert isvc["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "none"


def test_readme_says_conversations_and_how_to_measure(generated: dict[str, Path]) -> None:
    text = (generated["personaplex"] / "README.md").read_text()
    assert "1 per replica" in text and "3 replica(s) for 3" in text
    assert "--api duplex" in text
    plan = json.loads((generated["moshiko"] / "plan.json").read_text())
    assert plan["realtime"]["ok"] and plan["scaling"]["sessions"] == 3
    moshi_args = plan["command"]["args"]
    assert "--config-path" in moshi_args and "--static" in moshi_args
