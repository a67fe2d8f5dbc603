"""Kubernetes manifests → one ``Workload`` per container of a pod template.

Kinds: Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, LeaderWorkerSet
(leader and worker templates) and KServe's InferenceService (its predictor's containers, or
its ``model`` shorthand). The objects around them (autoscalers, disruption budgets, claims,
ConfigMaps) are read by ``formats/k8s_objects.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hfdeploy.audit.invocation import detect_invocation, shell_script
from hfdeploy.audit.model import (
    Argv,
    EnvVar,
    Mount,
    MountKind,
    Probe,
    Rollout,
    Workload,
)
from hfdeploy.audit.objects import ConfigMapData
from hfdeploy.audit.variables import Binding, Ref, Scope, expand_kubernetes
from hfdeploy.audit.yamlsrc import Doc

__all__ = ["k8s_workloads"]

_GPU_LABELS = (
    "nvidia.com/gpu.product",  # NVIDIA GPU feature discovery (any cluster, AKS's GPU nodes)
    "cloud.google.com/gke-accelerator",
    "karpenter.k8s.aws/instance-gpu-name",
    "node.kubernetes.io/instance-type",
    "beta.kubernetes.io/instance-type",
    "karpenter.k8s.aws/instance-family",
)
#: Resource names that ask for GPUs: whole ones, and MIG slices (``nvidia.com/mig-3g.20gb``).
_GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")
_SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh"})
_REPLICATED = ("Deployment", "StatefulSet", "ReplicaSet")

Path = tuple[str | int, ...]


def _pod_spec(doc: Doc) -> list[tuple[Path, dict[str, Any], str]]:
    """(path, pod spec, kind) for every pod template in a document."""
    data = doc.data
    if not isinstance(data, dict):
        return []
    kind = str(data.get("kind", ""))
    spec = data.get("spec") or {}
    if not isinstance(spec, dict):
        return []
    out: list[tuple[Path, dict[str, Any], str]] = []
    if kind == "Pod":
        out.append((("spec",), spec, kind))
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        tpl = (spec.get("template") or {}).get("spec")
        if isinstance(tpl, dict):
            out.append((("spec", "template", "spec"), tpl, kind))
    elif kind == "CronJob":
        tpl = (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get(
            "spec"
        )
        if isinstance(tpl, dict):
            out.append((("spec", "jobTemplate", "spec", "template", "spec"), tpl, kind))
    elif kind == "LeaderWorkerSet":
        lw = spec.get("leaderWorkerTemplate") or {}
        for part in ("leaderTemplate", "workerTemplate"):
            tpl = (lw.get(part) or {}).get("spec")
            if isinstance(tpl, dict):
                out.append((("spec", "leaderWorkerTemplate", part, "spec"), tpl, kind))
    elif kind == "RayService":  # KubeRay: the head's and each worker group's pod template
        cluster = spec.get("rayClusterConfig") or {}
        groups = [(("headGroupSpec",), cluster.get("headGroupSpec"))] + [
            (("workerGroupSpecs", i), g)
            for i, g in enumerate(cluster.get("workerGroupSpecs") or [])
        ]
        for where, group in groups:
            tpl = (
                ((group or {}).get("template") or {}).get("spec")
                if isinstance(group, dict)
                else None
            )
            if isinstance(tpl, dict):
                out.append((("spec", "rayClusterConfig", *where, "template", "spec"), tpl, kind))
    elif kind == "InferenceService":
        predictor = spec.get("predictor") or {}
        if isinstance(predictor, dict):
            out.append((("spec", "predictor"), predictor, kind))
    return out


def k8s_workloads(
    path: str, doc: Doc, config_maps: Mapping[str, ConfigMapData] | None = None
) -> list[Workload]:
    """The workloads of one YAML document (none when it holds no pod template).

    ``config_maps``: the ConfigMaps of the run by name, for ``configMapKeyRef`` and
    ``envFrom`` (the file's own first, then the nearest folder's).
    """
    workloads = []
    for base, pod, kind in _pod_spec(doc):
        containers = pod.get("containers") or []
        if kind == "InferenceService" and not containers:
            model = pod.get("model") if isinstance(pod.get("model"), dict) else None
            containers = [model] if model else []
            base = (*base, "model")
        for i, c in enumerate(containers):
            if not isinstance(c, dict):
                continue
            cp = (
                (*base, "containers", i)
                if kind != "InferenceService" or "containers" in pod
                else base
            )
            w = Workload(path, doc.line(*cp), "kubernetes", name=str(c.get("name", "")), kind=kind)
            _owner(w, doc, base, kind)
            scope = _environment(w, doc, cp, c, config_maps or {})
            _container(w, doc, cp, c, scope)
            _pod(w, doc, base, cp, pod, c)
            workloads.append(w)
    return workloads


def _owner(w: Workload, doc: Doc, base: Path, kind: str) -> None:
    """The object around the pod: name, namespace, replicas, pod labels, update strategy."""
    data = doc.data
    meta = data.get("metadata") or {}
    spec = data.get("spec") or {}
    meta = meta if isinstance(meta, dict) else {}
    w.object_name = str(meta.get("name", ""))
    w.namespace = str(meta["namespace"]) if meta.get("namespace") is not None else None
    if kind == "LeaderWorkerSet":
        size = (spec.get("leaderWorkerTemplate") or {}).get("size")
        w.group_size = size if isinstance(size, int) and size > 0 else 1
    if kind in _REPLICATED:
        replicas = spec.get("replicas", 1)
        w.replicas = replicas if isinstance(replicas, int) else None
    tpl_meta = (spec.get("template") or {}).get("metadata") if kind in _REPLICATED else None
    labels = (tpl_meta or {}).get("labels") if isinstance(tpl_meta, dict) else None
    if kind == "Pod":
        labels = meta.get("labels")
    w.pod_labels = {str(k): str(v) for k, v in (labels or {}).items()}
    if kind == "Deployment":
        w.rollout = _rollout(doc, ("spec", "strategy"), spec.get("strategy"))
    elif kind == "InferenceService" and isinstance(spec.get("predictor"), dict):
        strategy = spec["predictor"].get("deploymentStrategy")
        if isinstance(strategy, dict):  # KServe's raw deployments: only when written
            w.rollout = _rollout(doc, (*base, "deploymentStrategy"), strategy)


def _rollout(doc: Doc, at: Path, strategy: Any) -> Rollout:
    """The strategy with Kubernetes' defaults: RollingUpdate, 25% surge, 25% unavailable."""
    s = _dict(strategy)
    rolling = _dict(s.get("rollingUpdate"))
    surge, unavailable = rolling.get("maxSurge"), rolling.get("maxUnavailable")
    return Rollout(
        str(s.get("type", "RollingUpdate")),
        "25%" if surge is None else surge,
        "25%" if unavailable is None else unavailable,
        doc.line(*at, "rollingUpdate", "maxSurge") if surge is not None else doc.line(*at),
    )


def _environment(
    w: Workload, doc: Doc, cp: Path, c: dict[str, Any], config_maps: Mapping[str, ConfigMapData]
) -> Scope:
    """The container's variables (``envFrom``, then ``env`` in order, each value expanded
    from those before it), as ``w.env`` and as the scope its command is expanded in."""
    scope = Scope(None)
    if w.kind == "LeaderWorkerSet":
        scope.opaque.append("the variables LeaderWorkerSet sets")
    for j, src in enumerate(c.get("envFrom") or []):
        src, line = _dict(src), doc.line(*cp, "envFrom", j)
        prefix = str(src.get("prefix") or "")
        if name := _dict(src.get("configMapRef")).get("name"):
            cm = _config_map(config_maps, str(name), w.namespace)
            if cm is None:
                scope.opaque.append(f"ConfigMap {name}")
                continue
            for key, value, at in cm.values:
                ref = Ref(key, key, "set", Binding(key, value, at, f"ConfigMap {name}",
                                                   file=cm.file))  # fmt: skip
                scope.bind(Binding(prefix + key, value, line, f"ConfigMap {name}",
                                   file=w.file, refs=(ref,)))  # fmt: skip
        if name := _dict(src.get("secretRef")).get("name"):
            scope.opaque.append(f"Secret {name}")
    for j, e in enumerate(c.get("env") or []):
        if isinstance(e, dict) and "name" in e:
            scope.bind(_env_binding(w, e, doc.line(*cp, "env", j), scope, config_maps))
    w.env = [EnvVar(b.name, b.value, b.line, b.origin.startswith("Secret"), b.refs,
                    "" if b.origin == "env" else b.origin)
             for b in scope.bindings.values()]  # fmt: skip
    return scope


def _env_binding(w: Workload, e: dict[str, Any], line: int, scope: Scope,
                 config_maps: Mapping[str, ConfigMapData]) -> Binding:  # fmt: skip
    """One ``env`` entry: a value (expanded from the variables before it) or a reference."""
    name = str(e["name"])
    vf = _dict(e.get("valueFrom"))
    if not vf:
        if e.get("value") is None:
            return Binding(name, None, line, "env", file=w.file)
        found = expand_kubernetes(str(e["value"]), scope)
        unknown = any(r.state == "unknown" for r in found.refs)  # unset ones stay as written
        return Binding(name, None if unknown else found.text, line, "env", file=w.file,
                       refs=found.refs)  # fmt: skip
    if key_ref := _dict(vf.get("configMapKeyRef")):
        cm_name, key = str(key_ref.get("name", "")), str(key_ref.get("key", ""))
        cm = _config_map(config_maps, cm_name, w.namespace)
        entry = next(((v, at) for k, v, at in cm.values if k == key), None) if cm else None
        origin = f"ConfigMap {cm_name} key {key}"
        if cm is None or entry is None:
            return Binding(name, None, line, f"{origin}, not among the files read", file=w.file)
        ref = Ref(key, key, "set", Binding(key, entry[0], entry[1], origin, file=cm.file))
        return Binding(name, entry[0], line, origin, file=w.file, refs=(ref,))
    if key_ref := _dict(vf.get("secretKeyRef")):
        origin = f"Secret {key_ref.get('name', '')} key {key_ref.get('key', '')}"
        return Binding(name, None, line, origin, file=w.file)
    field = _dict(vf.get("fieldRef")).get("fieldPath") or "resource field"
    return Binding(name, None, line, f"the pod's {field}", file=w.file)


def _config_map(
    config_maps: Mapping[str, ConfigMapData], name: str, namespace: str | None
) -> ConfigMapData | None:
    cm = config_maps.get(name)
    if cm is None or (cm.namespace and namespace and cm.namespace != namespace):
        return None
    return cm


def _container(w: Workload, doc: Doc, cp: Path, c: dict[str, Any], scope: Scope) -> None:
    """What one container runs: image, command line (its ``$(VAR)`` expanded), ports,
    probes, GPUs, capabilities."""
    w.image = c.get("image")
    w.image_line = doc.line(*cp, "image")
    command = c.get("command") or []
    args = c.get("args") or []
    expanded = [expand_kubernetes(str(x), scope) for x in [*command, *args]]
    argv = [e.text for e in expanded]
    arg_lines = [doc.line(*cp, "command", k) for k in range(len(command))] + [
        doc.line(*cp, "args", k) for k in range(len(args))
    ]
    w.invocation = detect_invocation(
        argv,
        doc.line(*cp, "args") if args else doc.line(*cp, "command"),
        w.image,
        arg_lines=arg_lines,
        expanded=expanded,
        scope=scope.child("the image's environment"),
    )
    w.script = shell_script(argv, arg_lines, w.invocation.line if w.invocation else w.line)
    names = [a.rsplit("/", 1)[-1] for a in argv[:3]]
    if len(names) >= 2 and names[0] in _SHELLS and "-c" in names[1:3]:
        # `sh -c SCRIPT`: the script is shell text, not arguments given as they are
        at = names.index("-c") + 1
        argv, arg_lines = argv[:at] + argv[at + 1 :], arg_lines[:at] + arg_lines[at + 1 :]
    w.exec = Argv(tuple(argv), tuple(arg_lines), own_entrypoint=bool(command))
    for j, p in enumerate(c.get("ports") or []):
        if isinstance(p, dict) and isinstance(p.get("containerPort"), int):
            w.ports.append((p["containerPort"], doc.line(*cp, "ports", j, "containerPort")))
    for probe in ("liveness", "readiness", "startup"):
        p = c.get(f"{probe}Probe")
        if isinstance(p, dict):
            get = _dict(p.get("httpGet"))
            w.probes.append(
                Probe(
                    probe,
                    doc.line(*cp, f"{probe}Probe"),
                    float(_set(p, "initialDelaySeconds", 0)),
                    float(_set(p, "periodSeconds", 10)),
                    int(_set(p, "failureThreshold", 3)),
                    str(get["path"]) if get.get("path") is not None else None,
                    float(_set(p, "timeoutSeconds", 1)),
                    tuple(str(x) for x in _dict(p.get("exec")).get("command") or []),
                )
            )
    limits = _dict(_dict(c.get("resources")).get("limits"))
    for key, count in limits.items():
        if key in _GPU_RESOURCES or str(key).startswith("nvidia.com/mig-"):
            w.gpus = int(str(count)) if str(count).isdigit() else -1
            w.gpus_line = doc.line(*cp, "resources", "limits", key)
    ctx = c.get("securityContext")
    caps = ctx.get("capabilities") if isinstance(ctx, dict) else None
    if isinstance(caps, dict):
        w.caps_drop = frozenset(str(x).upper() for x in caps.get("drop") or [])
        w.caps_add = frozenset(str(x).upper() for x in caps.get("add") or [])
        w.caps_line = doc.line(*cp, "securityContext", "capabilities")


def _pod(
    w: Workload, doc: Doc, base: Path, cp: Path, pod: dict[str, Any], c: dict[str, Any]
) -> None:
    """What the pod gives the container: volumes, host IPC, user, node."""
    volumes = {v.get("name"): v for v in pod.get("volumes") or [] if isinstance(v, dict)}
    if w.kind == "StatefulSet":  # a claim per pod from each template, mounted by its name
        for tpl in _dict(doc.data.get("spec")).get("volumeClaimTemplates") or []:
            name = _dict(_dict(tpl).get("metadata")).get("name")
            volumes.setdefault(name, {"persistentVolumeClaim": {"claimName": name}})
    for j, m in enumerate(c.get("volumeMounts") or []):
        if not isinstance(m, dict):
            continue
        vol = volumes.get(m.get("name")) or {}
        kind, source = _volume(vol)
        sub = m.get("subPath") or m.get("subPathExpr")
        w.mounts.append(
            Mount(
                str(m.get("mountPath", "")),
                kind,
                doc.line(*cp, "volumeMounts", j),
                bool(m.get("readOnly")),
                source,
                str(sub) if sub else None,
            )
        )
    w.shm = any(m.path == "/dev/shm" and m.kind == "memory" for m in w.mounts)
    w.host_ipc = bool(pod.get("hostIPC"))
    w.host_ipc_line = doc.line(*base, "hostIPC")
    ctx = c.get("securityContext")
    w.user = _k8s_user(ctx) or _k8s_user(pod.get("securityContext"))
    w.uid = _uid(ctx) if _uid(ctx) is not None else _uid(pod.get("securityContext"))
    for sysctl in _dict(pod.get("securityContext")).get("sysctls") or []:
        if isinstance(sysctl, dict) and sysctl.get("name") == "net.ipv4.ip_unprivileged_port_start":
            value = str(sysctl.get("value", ""))
            w.unprivileged_port_start = int(value) if value.isdigit() else None
    w.node_gpus = _node_gpus(doc, base, pod)
    selector = pod.get("nodeSelector") or {}
    w.node_gpu = next((str(selector[k]) for k in _GPU_LABELS if k in selector), None)
    if w.node_gpu is None and len({v for v, _ in w.node_gpus}) == 1:
        w.node_gpu = w.node_gpus[0][0]


def _node_gpus(doc: Doc, base: Path, pod: dict[str, Any]) -> list[tuple[str, int]]:
    """The GPU types a pod may run on, with their lines: its node selector's GPU label, else
    every value a required node affinity allows for one (terms are alternatives)."""
    selector = _dict(pod.get("nodeSelector"))
    for key in _GPU_LABELS:
        if key in selector:
            return [(str(selector[key]), doc.line(*base, "nodeSelector", key))]
    required = _dict(_dict(_dict(pod.get("affinity")).get("nodeAffinity")).get(
        "requiredDuringSchedulingIgnoredDuringExecution"))  # fmt: skip
    at: Path = (*base, "affinity", "nodeAffinity",
                "requiredDuringSchedulingIgnoredDuringExecution")  # fmt: skip
    out: list[tuple[str, int]] = []
    for t, term in enumerate(required.get("nodeSelectorTerms") or []):
        for e, expr in enumerate(_dict(term).get("matchExpressions") or []):
            expr = _dict(expr)
            if expr.get("key") in _GPU_LABELS and expr.get("operator") == "In":
                path = (*at, "nodeSelectorTerms", t, "matchExpressions", e, "values")
                out += [(str(v), doc.line(*path, k))
                        for k, v in enumerate(expr.get("values") or [])]  # fmt: skip
    return out


def _k8s_user(ctx: Any) -> str | None:
    if not isinstance(ctx, dict):
        return None
    if ctx.get("runAsUser") == 0:
        return "root"
    if ctx.get("runAsNonRoot") or isinstance(ctx.get("runAsUser"), int):
        return "nonroot"
    return None


def _uid(ctx: Any) -> int | None:
    uid = ctx.get("runAsUser") if isinstance(ctx, dict) else None
    return uid if isinstance(uid, int) else None


#: Volumes the kubelet writes through hidden ``..data`` / ``..<timestamp>`` entries.
_ATOMIC = ("configMap", "secret", "projected", "downwardAPI")


def _volume(vol: dict[str, Any]) -> tuple[MountKind, str]:
    """The kind of a pod volume and its source's name (claim, ConfigMap)."""
    if "persistentVolumeClaim" in vol:
        return "pvc", str((vol["persistentVolumeClaim"] or {}).get("claimName", ""))
    if "emptyDir" in vol:
        ed = vol.get("emptyDir") or {}
        medium = isinstance(ed, dict) and ed.get("medium") == "Memory"
        return ("memory" if medium else "emptyDir"), ""
    if "hostPath" in vol:
        return "hostPath", ""
    if "csi" in vol or "nfs" in vol:
        return "pvc", ""
    for key in _ATOMIC:
        if key in vol:
            src = vol.get(key) or {}
            name = src.get("name", src.get("secretName", "")) if isinstance(src, dict) else ""
            return "configMap", str(name) if key == "configMap" else ""
    return "other", ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _set(fields: dict[str, Any], key: str, default: float) -> Any:
    """A field's value, or Kubernetes' default when it is absent or null (null is unset)."""
    value = fields.get(key)
    return default if value is None else value
