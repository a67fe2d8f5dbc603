"""Derive a strict JSON Schema for KServe's InferenceService from the kserve wheel on PyPI.

The KServe CRD YAML is not published to any package registry this project can reach, but
the kserve Python SDK is: its ``kserve/models/*.py`` are generated from the same OpenAPI
spec as the CRD, and each class lists its fields (``attribute_map``), their types
(``openapi_types``) and which ones must be set (the setters that refuse ``None``). This
script reads those files as text (``ast``; nothing of kserve is imported or installed) and
writes a JSON Schema 2020-12 document in which:

- every KServe object rejects fields it does not define, as the API server's pruning plus
  ``kubectl --validate=strict`` would;
- every Kubernetes type (``V1Container``, ``V1Volume``...) is a ``$ref`` into the
  ``_definitions.json`` that kubernetes-validate ships, so the test validates containers,
  probes and volumes against the real core schemas at the version the tests pin.

Usage::

    pip download --no-deps -d /tmp/kserve kserve==0.21.0
    python scripts/derive_kserve_schema.py /tmp/kserve/kserve-0.21.0-py3-none-any.whl \\
        tests/data/crds/inferenceservice-serving.kserve.io-v1beta1.json
"""

from __future__ import annotations

import ast
import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

ROOT = "V1beta1InferenceService"
K8S_REF = "https://kubernetes.io/api/_definitions.json#/$defs/"
# Kubernetes client class prefixes -> the definitions' API group paths, tried in order.
K8S_GROUPS = {
    "V1": [
        "io.k8s.api.core.v1.",
        "io.k8s.apimachinery.pkg.apis.meta.v1.",
        "io.k8s.api.apps.v1.",
        "io.k8s.api.autoscaling.v1.",
    ],
    "V2": ["io.k8s.api.autoscaling.v2."],
}
SCALARS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "object": {},
    "datetime": {"type": "string"},
    "date": {"type": "string"},
    "ResourceQuantity": {"$ref": K8S_REF + "io.k8s.apimachinery.pkg.api.resource.Quantity"},
    # Named in the SDK without a model of their own: a resource.Quantity in KServe's Go
    # types, and KEDA's trigger objects, which the SDK does not describe.
    "V1beta1MetricQuantity": {"$ref": K8S_REF + "io.k8s.apimachinery.pkg.api.resource.Quantity"},
    "GithubComKedacoreKedaV2ApisKedaV1alpha1ScaleTriggers": {"type": "object"},
}


def class_name(module: str) -> str:
    """v1beta1_predictor_spec -> V1beta1PredictorSpec (the SDK's own naming rule)."""
    return "".join(part[:1].upper() + part[1:] for part in module.split("_"))


def read_models(wheel: Path) -> dict[str, dict[str, Any]]:
    """Every generated model in the wheel: {ClassName: {fields, types, required}}."""
    models: dict[str, dict[str, Any]] = {}
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            m = re.fullmatch(r"kserve/models/(\w+)\.py", name)
            if not m or m.group(1) == "__init__":
                continue
            tree = ast.parse(zf.read(name).decode())
            cls = next(n for n in tree.body if isinstance(n, ast.ClassDef))
            found: dict[str, Any] = {"required": []}
            for node in ast.walk(cls):
                target = node.targets[0] if isinstance(node, ast.Assign) else None
                if isinstance(target, ast.Name) and target.id in ("openapi_types", "attribute_map"):
                    found[target.id] = ast.literal_eval(node.value)  # type: ignore[attr-defined]
                if isinstance(node, ast.FunctionDef) and "must not be `None`" in ast.unparse(node):
                    found["required"].append(node.name)
            models[cls.name] = found
    return models


def k8s_ref(name: str, definitions: set[str]) -> dict[str, Any]:
    m = re.fullmatch(r"(V1|V2)([A-Z]\w*)", name)
    if m:
        for group in K8S_GROUPS[m.group(1)]:
            if group + m.group(2) in definitions:
                return {"$ref": K8S_REF + group + m.group(2)}
    m = re.fullmatch(r"K8sIoApi([A-Z][a-z]+)(V\d\w*?)([A-Z]\w*)", name)
    if m:
        full = f"io.k8s.api.{m.group(1).lower()}.{m.group(2).lower()}.{m.group(3)}"
        if full in definitions:
            return {"$ref": K8S_REF + full}
    raise SystemExit(f"no Kubernetes definition for {name}")


def derive(models: dict[str, dict[str, Any]], definitions: set[str]) -> dict[str, Any]:
    defs: dict[str, Any] = {}

    def schema_for(type_str: str) -> dict[str, Any]:
        if type_str in SCALARS:
            return dict(SCALARS[type_str])
        if m := re.fullmatch(r"list\[(.+)\]", type_str):
            return {"type": "array", "items": schema_for(m.group(1))}
        if m := re.fullmatch(r"dict\(str, (.+)\)", type_str):
            return {"type": "object", "additionalProperties": schema_for(m.group(1))}
        if type_str in models:
            add(type_str)
            return {"$ref": f"#/$defs/{type_str}"}
        return k8s_ref(type_str, definitions)

    def add(name: str) -> None:
        if name in defs:
            return
        defs[name] = {}  # reserve first: models refer to each other
        model = models[name]
        props = {
            model["attribute_map"][attr]: schema_for(t)
            for attr, t in model["openapi_types"].items()
            # A manifest has no status: the controller writes it.
            if not (name == ROOT and attr == "status")
        }
        schema: dict[str, Any] = {
            "type": "object",
            "properties": dict(sorted(props.items())),
            "additionalProperties": False,
        }
        required = sorted(model["attribute_map"][a] for a in model["required"])
        if required:
            schema["required"] = required
        defs[name] = schema

    add(ROOT)
    root = defs.pop(ROOT)
    root["properties"]["apiVersion"] = {"const": "serving.kserve.io/v1beta1"}
    root["properties"]["kind"] = {"const": "InferenceService"}
    root["required"] = sorted({*root.get("required", []), "apiVersion", "kind", "spec"})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": "Generated by scripts/derive_kserve_schema.py; do not edit.",
        **root,
        "$defs": dict(sorted(defs.items())),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    wheel, out = Path(argv[0]), Path(argv[1])
    import kubernetes_validate  # the definitions the tests validate against

    defs_file = (
        Path(kubernetes_validate.__file__).parent
        / "kubernetes-json-schema/v1.37.0-local-strict/_definitions.json"
    )
    definitions = set(json.loads(defs_file.read_text())["$defs"])
    schema = derive(read_models(wheel), definitions)
    schema["$comment"] += f" Source: {wheel.name} (PyPI), kserve/models/*.py."
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(schema, indent=1, sort_keys=False) + "\n")
    print(f"wrote {out}: {len(schema['$defs'])} KServe definitions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
