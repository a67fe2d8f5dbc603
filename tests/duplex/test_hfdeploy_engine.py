"""hfdeploy's own server as the engine for Moshi (Transformers' layout or Kyutai's): chosen
by default (the reference server holds one conversation per process), several per GPU
from the frame step, ``--max-sessions`` in the command, and files shaped for a server that
has health routes and steps its conversations together."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from hfdeploy import inspect_model
from hfdeploy.audit import audit_paths
from hfdeploy.catalog.engines import engine_catalog
from hfdeploy.errors import InvalidSettingError
from hfdeploy.model.profile import ModelProfile
from hfdeploy.plan.planner import plan_deployment
from hfdeploy.render.generate import generate_deployment
from tests._k8s import check_generated
from tests._synthetic import kyutai_checkpoint, transformers_moshi_checkpoint

pytest.importorskip("transformers.models.moshi")


@pytest.fixture(scope="module")
def moshi(tmp_path_factory: pytest.TempPathFactory) -> ModelProfile:
    return inspect_model(str(transformers_moshi_checkpoint(tmp_path_factory.mktemp("hf") / "m")))


@pytest.fixture(scope="module")
def generated(moshi: ModelProfile, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "deploy"
    dest = {"registry": "registry.example.com/team", "storage_class": "efs-sc"}
    plan = plan_deployment(moshi, gpu="h100", concurrency=20, **dest)
    generate_deployment(plan, out, lock=False)
    return out


def test_transformers_layout_gets_hfdeploy_with_several_sessions(moshi: ModelProfile) -> None:
    plan = plan_deployment(moshi, gpu="h100", concurrency=20)
    d = plan.to_dict()
    n = d["scaling"]["sessions_per_replica"]
    assert d["engine"] == "hfdeploy" and n >= 8  # the goal on an H100, predicted
    assert d["scaling"]["replicas"] == math.ceil(20 / n)
    args = d["command"]["args"]
    assert args[args.index("--max-sessions") + 1] == str(n)
    assert "--device" in args and args[args.index("--device") + 1] == "cuda"
    assert d["realtime"]["ok"] and d["realtime"]["batch"] == n
    assert d["realtime"]["mode"] == "eager"  # hfdeploy serve captures no CUDA graph
    assert d["cost"]["per_session_hour"] == pytest.approx(
        d["cost"]["price_per_gpu_hour"] / n, rel=0.02
    )
    # One more conversation would miss the frame or the memory: the ladder stopped for a reason.
    looked = {a.placement: a for a in plan.alternatives}
    assert looked["1 x H100-SXM"].chosen
    rejected = dict(plan.rejected)
    assert "Kyutai's layout" in rejected["moshi"]


def test_each_server_loads_what_it_can(moshi: ModelProfile, tmp_path: Path) -> None:
    """hfdeploy's server loads Moshi in either layout and is preferred; Kyutai's reference
    server loads Kyutai's files only; PersonaPlex runs on its own."""
    with pytest.raises(InvalidSettingError, match="moshi's server loads Kyutai's layout"):
        plan_deployment(moshi, engine="moshi", gpu="h100")
    kyutai = inspect_model(str(kyutai_checkpoint(tmp_path / "k", "moshiko")))
    plan = plan_deployment(kyutai, gpu="h100", concurrency=20)
    assert plan.engine.name == "hfdeploy" and plan.to_dict()["scaling"]["sessions_per_replica"] >= 8
    assert "one conversation per process" in dict(plan.rejected)["moshi"]
    assert plan_deployment(kyutai, engine="moshi", gpu="h100").engine.name == "moshi"
    persona = inspect_model(str(kyutai_checkpoint(tmp_path / "p", "personaplex")))
    with pytest.raises(InvalidSettingError, match="runs on hfdeploy or personaplex"):
        plan_deployment(persona, engine="moshi", gpu="h100")
    plan = plan_deployment(persona, gpu="h100", concurrency=20)
    assert plan.engine.name == "hfdeploy" and plan.to_dict()["scaling"]["sessions_per_replica"] >= 8
    assert plan_deployment(persona, engine="personaplex", gpu="h100").engine.name == "personaplex"


def test_the_plans_session_route_is_the_servers(moshi: ModelProfile) -> None:
    from hfdeploy.serve.routes.duplex import CHAT_PATH

    plan = plan_deployment(moshi, gpu="h100")
    assert plan.routes.session == CHAT_PATH
    assert engine_catalog()["hfdeploy"].deploy.routes.session == ""  # other tasks: none


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_files_validate_lint_and_audit_clean(generated: Path) -> None:
    names = {p.relative_to(generated).as_posix() for p in generated.rglob("*") if p.is_file()}
    assert {"Dockerfile", "compose.yaml", "kserve.yaml", "k8s/deployment.yaml",
            "k8s/ingress.yaml", "k8s/service.yaml"} <= names  # fmt: skip
    check_generated(generated)
    report = audit_paths([generated])
    bad = [f for f in report.findings if f.severity in {"error", "warning"}]
    assert not bad, [f"{f.rule_id} {f.file}: {f.message}" for f in bad]


def test_probes_use_the_health_routes_and_the_image_speaks_opus(generated: Path) -> None:
    dep = _docs(generated / "k8s/deployment.yaml")[0]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["startupProbe"]["httpGet"]["path"] == "/ready"
    assert "[serve,duplex]" in (generated / "Dockerfile").read_text()
    compose = yaml.safe_load((generated / "compose.yaml").read_text())
    (svc,) = compose["services"].values()
    assert "/ready" in " ".join(svc["healthcheck"]["test"])
    (ing,) = _docs(generated / "k8s/ingress.yaml")
    assert ing["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/api/chat"


def test_kserve_and_readme_state_the_sessions(generated: Path) -> None:
    plan = json.loads((generated / "plan.json").read_text())
    n = plan["scaling"]["sessions_per_replica"]
    (isvc,) = _docs(generated / "kserve.yaml")
    assert isvc["spec"]["predictor"]["containerConcurrency"] == n > 1
    text = (generated / "README.md").read_text()
    assert f"{n} per replica" in text and "Retry-After" in text
    assert "TCP" not in text  # it has health routes
    assert "hfdeploy_duplex_sessions_active" in text


def test_the_gpu_is_the_cheapest_for_the_conversations_asked(moshi: ModelProfile) -> None:
    few = plan_deployment(moshi, concurrency=1)
    many = plan_deployment(moshi, concurrency=40)
    assert few.cost.dedicated_per_month <= many.cost.dedicated_per_month / 5  # type: ignore[union-attr]
    # Every GPU that holds a replica in real time costs at least as much for 40 conversations.
    for alt in many.alternatives:
        if alt.fits and not alt.chosen:
            n = int(alt.why.split(" for ")[1].split(" session")[0])
            assert math.ceil(40 / n) * alt.per_month >= many.cost.dedicated_per_month - 1  # type: ignore[union-attr]


def test_personaplex_on_hfdeploy_gets_its_voices_prepared(tmp_path: Path) -> None:
    """The persona prompts read the voices unpacked under model/.hfdeploy: the README says
    how a folder copied by hand gets them; the files audit clean."""
    folder = kyutai_checkpoint(tmp_path / "pp", "personaplex", voices=True)
    plan = plan_deployment(inspect_model(str(folder)), gpu="h100", concurrency=4)
    assert plan.engine.name == "hfdeploy"
    out = tmp_path / "deploy"
    generate_deployment(plan, out, lock=False)
    assert "hfdeploy fetch --prepare ./model" in (out / "README.md").read_text()
    bad = [f for f in audit_paths([out]).findings if f.severity in {"error", "warning"}]
    assert not bad, [f"{f.rule_id} {f.file}: {f.message}" for f in bad]
