"""Validate Kubernetes manifests the way a strict API server would, custom resources included.

Core kinds go to kubernetes-validate's strict schemas. The custom kinds hfdeploy writes
(InferenceService, LeaderWorkerSet, ScaledObject, TriggerAuthentication, InferencePool,
HTTPRoute, RayService) go to the schemas under tests/data/crds (see its README for where
each comes from), whose
Kubernetes types are ``$ref``s into the same definitions kubernetes-validate uses. Any other
custom kind raises kubernetes-validate's SchemaNotFoundError, never a silent pass.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource

K8S_VERSION = "1.37.0"
CRDS = Path(__file__).parent / "data" / "crds"
CUSTOM = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice-serving.kserve.io-v1beta1",
    (
        "leaderworkerset.x-k8s.io/v1",
        "LeaderWorkerSet",
    ): "leaderworkerset-leaderworkerset.x-k8s.io-v1",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject-keda.sh-v1alpha1",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "triggerauthentication-keda.sh-v1alpha1",
    (
        "inference.networking.k8s.io/v1",
        "InferencePool",
    ): "inferencepool-inference.networking.k8s.io-v1",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproute-gateway.networking.k8s.io-v1",
    ("ray.io/v1", "RayService"): "rayservice-ray.io-v1",
}


@cache
def _validator(stem: str) -> jsonschema.Draft202012Validator:
    defs_file = (
        Path(kubernetes_validate.__file__).parent
        / f"kubernetes-json-schema/v{K8S_VERSION}-local-strict/_definitions.json"
    )
    definitions = Resource.from_contents(json.loads(defs_file.read_text()))
    schema = json.loads((CRDS / f"{stem}.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, registry=definitions @ Registry())


def validate_manifest(doc: dict[str, Any]) -> None:
    """Raise on the first thing a strict API server would refuse in ``doc``."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in CUSTOM:
        _validator(CUSTOM[key]).validate(doc)  # type: ignore[index]
    else:
        # Raises SchemaNotFoundError for any other custom kind.
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def check_generated(folder: Path) -> None:
    """What every generated folder must pass: hadolint on its Dockerfiles (info and up) and
    every Kubernetes manifest valid for a strict API server."""
    import shutil
    import subprocess
    import sys

    import yaml

    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    for dockerfile in sorted(folder.glob("*Dockerfile")):
        res = subprocess.run([hadolint, "--failure-threshold", "info", str(dockerfile)],
                             capture_output=True, text=True)  # fmt: skip
        assert res.returncode == 0, f"{dockerfile.name}: {res.stdout}{res.stderr}"
    for manifest in sorted((folder / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(manifest.read_text()):
            if doc:
                validate_manifest(doc)
