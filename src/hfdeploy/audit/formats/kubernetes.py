"""Kubernetes manifests → one ``Workload`` per container of a pod template.

Kinds: Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, LeaderWorkerSet
(leader and worker templates) and KServe's InferenceService (its predictor's containers, or
its ``model`` shorthand).
"""

from __future__ import annotations

from typing import Any

from hfdeploy.audit.model import EnvVar, Mount, Probe, Workload, detect_invocation
from hfdeploy.audit.yamlsrc import Doc

__all__ = ["k8s_workloads"]

_GPU_LABELS = (
    "nvidia.com/gpu.product",
    "cloud.google.com/gke-accelerator",
    "node.kubernetes.io/instance-type",
    "karpenter.k8s.aws/instance-gpu-name",
)


def _pod_spec(doc: Doc) -> list[tuple[tuple[str | int, ...], dict[str, Any], str]]:
    """(path, pod spec, kind) for every pod template in a document."""
    data = doc.data
    if not isinstance(data, dict):
        return []
    kind = str(data.get("kind", ""))
    spec = data.get("spec") or {}
    if not isinstance(spec, dict):
        return []
    out: list[tuple[tuple[str | int, ...], dict[str, Any], str]] = []
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
    elif kind == "InferenceService":
        predictor = spec.get("predictor") or {}
        if isinstance(predictor, dict):
            out.append((("spec", "predictor"), predictor, kind))
    return out


def k8s_workloads(path: str, doc: Doc) -> list[Workload]:
    """The workloads of one YAML document (none when it holds no pod template)."""
    workloads = []
    for base, pod, kind in _pod_spec(doc):
        volumes = {v.get("name"): v for v in pod.get("volumes") or [] if isinstance(v, dict)}
        selector = pod.get("nodeSelector") or {}
        node_gpu = next((str(selector[k]) for k in _GPU_LABELS if k in selector), None)
        pod_user = _k8s_user(pod.get("securityContext"))
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
            if kind == "LeaderWorkerSet":
                size = ((doc.data.get("spec") or {}).get("leaderWorkerTemplate") or {}).get("size")
                w.group_size = size if isinstance(size, int) and size > 0 else 1
            w.image = c.get("image")
            w.image_line = doc.line(*cp, "image")
            command = c.get("command") or []
            args = c.get("args") or []
            argv = [str(x) for x in [*command, *args]]
            arg_lines = [doc.line(*cp, "command", k) for k in range(len(command))] + [
                doc.line(*cp, "args", k) for k in range(len(args))
            ]
            w.invocation = detect_invocation(
                argv,
                doc.line(*cp, "args") if args else doc.line(*cp, "command"),
                w.image,
                arg_lines=arg_lines,
            )
            for j, e in enumerate(c.get("env") or []):
                if isinstance(e, dict) and "name" in e:
                    vf = e.get("valueFrom")
                    w.env.append(
                        EnvVar(
                            str(e["name"]),
                            None if vf or e.get("value") is None else str(e["value"]),
                            doc.line(*cp, "env", j),
                            from_secret=bool(vf),
                        )
                    )
            for j, m in enumerate(c.get("volumeMounts") or []):
                if not isinstance(m, dict):
                    continue
                vol = volumes.get(m.get("name")) or {}
                w.mounts.append(
                    Mount(
                        str(m.get("mountPath", "")),
                        _volume_kind(vol),
                        doc.line(*cp, "volumeMounts", j),
                        bool(m.get("readOnly")),
                    )
                )
            for probe in ("liveness", "readiness", "startup"):
                p = c.get(f"{probe}Probe")
                if isinstance(p, dict):
                    w.probes.append(
                        Probe(
                            probe,
                            doc.line(*cp, f"{probe}Probe"),
                            float(_set(p, "initialDelaySeconds", 0)),
                            float(_set(p, "periodSeconds", 10)),
                            int(_set(p, "failureThreshold", 3)),
                        )
                    )
            limits = (c.get("resources") or {}).get("limits") or {}
            for key in ("nvidia.com/gpu", "amd.com/gpu"):
                if key in limits:
                    w.gpus = int(str(limits[key]))
                    w.gpus_line = doc.line(*cp, "resources", "limits", key)
            w.shm = any(m.path == "/dev/shm" and m.kind == "memory" for m in w.mounts)
            w.host_ipc = bool(pod.get("hostIPC"))
            w.host_ipc_line = doc.line(*base, "hostIPC")
            w.user = _k8s_user(c.get("securityContext")) or pod_user
            w.node_gpu = node_gpu
            workloads.append(w)
    return workloads


def _k8s_user(ctx: Any) -> str | None:
    if not isinstance(ctx, dict):
        return None
    if ctx.get("runAsUser") == 0:
        return "root"
    if ctx.get("runAsNonRoot") or isinstance(ctx.get("runAsUser"), int):
        return "nonroot"
    return None


def _volume_kind(vol: dict[str, Any]) -> Any:
    if "persistentVolumeClaim" in vol:
        return "pvc"
    if "emptyDir" in vol:
        ed = vol.get("emptyDir") or {}
        return "memory" if isinstance(ed, dict) and ed.get("medium") == "Memory" else "emptyDir"
    if "hostPath" in vol:
        return "hostPath"
    if "csi" in vol or "nfs" in vol:
        return "pvc"
    return "other"


def _set(fields: dict[str, Any], key: str, default: float) -> Any:
    """A field's value, or Kubernetes' default when it is absent or null (null is unset)."""
    value = fields.get(key)
    return default if value is None else value
