"""The custom-resource schemas in tests/data/crds refuse what a strict API server refuses.

Without this, a schema that accepts everything would make the generate tests pass for any
InferenceService, LeaderWorkerSet, ScaledObject, TriggerAuthentication, InferencePool,
HTTPRoute or RayService.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from hfdeploy import inspect_model
from hfdeploy.plan.destination import ScaleOut
from hfdeploy.plan.planner import plan_deployment
from hfdeploy.render.generate import generate_deployment
from tests._k8s import CRDS, validate_manifest
from tests._synthetic import LLAMA3_8B, LLAMA_405B, config_folder


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    root = tmp_path_factory.mktemp("crd")
    model = config_folder(root / "l405", LLAMA_405B)
    # A shared (ReadWriteMany) volume: the stages of a multi-node group run on three nodes.
    big = plan_deployment(
        inspect_model(str(model)), gpu="h100", context=32768, concurrency=32, storage_class="nfs"
    )
    generate_deployment(big, root / "lws", lock=False)
    small = config_folder(root / "l8b", LLAMA3_8B)
    generate_deployment(
        plan_deployment(inspect_model(str(small)), gpu="h100"), root / "kserve", lock=False
    )
    scale = ("k8s", "keda", "inference-pool", "rayservice")
    out = plan_deployment(
        inspect_model(str(small)), gpu="h100", storage_class="nfs", targets=scale,
        scale_out=ScaleOut(prometheus_secret="prom"),
    )  # fmt: skip
    generate_deployment(out, root / "scale", targets=scale, lock=False)

    def one(rel: str) -> dict[str, Any]:
        return yaml.safe_load((root / "scale" / rel).read_text())

    return {
        "lws": yaml.safe_load((root / "lws/k8s/leaderworkerset.yaml").read_text()),
        "isvc": yaml.safe_load((root / "kserve/kserve.yaml").read_text()),
        "so": one("k8s/scaledobject.yaml"),
        "ta": one("k8s/keda-auth.yaml"),
        "pool": one("inference-pool/inferencepool.yaml"),
        "route": one("inference-pool/httproute.yaml"),
        "rs": one("ray/rayservice.yaml"),
    }


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return doc


_DELETE = object()
BROKEN = [
    ("isvc", "spec.predictor.replicas", 2),  # minReplicas/maxReplicas, not replicas
    ("isvc", "spec.predictor.containers.0.startupProbe.periodSecond", 10),  # core type, strict
    ("isvc", "spec.predictor.minReplicas", "1"),  # a string where an integer goes
    ("isvc", "spec.predictor", _DELETE),  # predictor is required
    ("isvc", "spec.predictor.model", {"runtime": "x"}),  # model needs modelFormat
    ("isvc", "status", {}),  # a manifest has no status
    ("lws", "spec.leaderWorkerTemplate.restartPolicy", "Always"),  # not one of its enum
    ("lws", "spec.leaderWorkerTemplate.workerTemplate", _DELETE),  # required
    ("lws", "spec.leaderWorkerTemplate.size", 0),  # at least the leader
    ("lws", "spec.leaderWorkerTemplate.workerTemplate.spec.containers.0.gpus", 8),
    ("lws", "spec.rolloutStrategy", {"rollingUpdateConfiguration": {"maxSurge": 1}}),  # no type
    ("lws", "spec.networkConfig", {"subdomainPolicy": "PerPod"}),
    ("lws", "spec.startupPolicy", "WorkersFirst"),
    ("so", "spec.scaleTargetRef", _DELETE),  # required
    ("so", "spec.triggers.0.metadata.threshold", 26),  # metadata values are strings
    ("so", "spec.minReplicas", 1),  # minReplicaCount, not the HPA's name
    ("so", "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.window", 60),
    ("ta", "spec.secretTargetRef.0.parameter", _DELETE),  # required
    ("pool", "spec.targetPorts.0.number", 70000),  # a port
    ("pool", "spec.selector", {"app": "l8b"}),  # pre-v1 shape: matchLabels only
    ("pool", "spec.extensionRef", {"name": "x"}),  # the v1alpha2 name of endpointPickerRef
    ("pool", "spec.endpointPickerRef.failureMode", "Open"),
    ("route", "spec.rules.0.timeouts.request", "10 minutes"),  # Gateway API duration
    ("route", "spec.rules.0.retry", {"attempts": 2}),  # experimental channel only
    ("rs", "spec.serveConfigV2", {"applications": []}),  # a string in the CRD
    ("rs", "spec.rayClusterConfig.workerGroupSpecs.0.groupName", _DELETE),  # required
    ("rs", "spec.rayClusterConfig.headGroupSpec.template.spec.containers.0.gpus", 1),
    ("rs", "spec.rayClusterConfig.workerGroupSpecs.0.maxReplicas", "8"),
]


def test_generated_custom_resources_are_valid(manifests: dict[str, dict[str, Any]]) -> None:
    for doc in manifests.values():
        validate_manifest(doc)


@pytest.mark.parametrize(("kind", "path", "value"), BROKEN, ids=[b[1] for b in BROKEN])
def test_a_broken_custom_resource_is_refused(
    manifests: dict[str, dict[str, Any]], kind: str, path: str, value: Any
) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate_manifest(_set(manifests[kind], path, value))


def test_fields_the_real_apis_have_are_accepted(manifests: dict[str, dict[str, Any]]) -> None:
    lws = _set(manifests["lws"], "spec.rolloutStrategy",
               {"type": "RollingUpdate", "rollingUpdateConfiguration": {"maxSurge": "10%"}})  # fmt: skip
    validate_manifest(_set(lws, "spec.networkConfig", {"subdomainPolicy": "UniquePerReplica"}))
    isvc = _set(manifests["isvc"], "spec.predictor.maxReplicas", 4)
    validate_manifest(_set(isvc, "spec.predictor.scaleMetric", "concurrency"))


def test_an_unknown_custom_kind_is_not_passed_silently() -> None:
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate_manifest({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {}})


def test_every_schema_is_listed_in_the_readme() -> None:
    readme = (CRDS / "README.md").read_text()
    for schema in sorted(CRDS.glob("*.json")):
        assert f"`{schema.name}`" in readme
