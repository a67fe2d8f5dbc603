"""How Kubernetes runs, scales and moves the pods: rollouts, disruption budgets, autoscaler
metrics, volume claims, Triton's repository volume.

Some of these read several files at once (folder checks, given every file's facts): an
autoscaler or a budget names the workload it acts on, which usually sits in another file
of the same folder.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from hfdeploy.audit.checks.owners import (
    in_nearest_folder,
    owners_of,
    same_namespace,
    scaled_target,
)
from hfdeploy.audit.extract import FileFacts
from hfdeploy.audit.findings import Finding, Rule
from hfdeploy.audit.objects import DisruptionBudget
from hfdeploy.catalog.engines import engine_catalog

__all__ = [
    "autoscaler_metric_not_exported",
    "gpu_rollout_surge",
    "pdb_allows_full_outage",
    "rwx_without_storage_class",
    "triton_repository_on_configmap",
]


def _scaled(value: int | str, of: int, *, up: bool) -> int:
    """An int-or-percent field as Kubernetes resolves it against ``of`` pods."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%") and text[:-1].isdigit():
        exact = int(text[:-1]) * of / 100
        return math.ceil(exact) if up else math.floor(exact)
    return int(text) if text.isdigit() else 0


def _shown(value: int | str, resolved: int) -> str:
    return f"{value}" if str(value) == str(resolved) else f"{value} = {resolved}"


def gpu_rollout_surge(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD030: a GPU Deployment whose rolling update needs a surge pod before any old pod
    may go (maxSurge at least 1, maxUnavailable resolving to 0)."""
    for w in facts.workloads:
        r = w.rollout
        if r is None or r.type != "RollingUpdate" or not w.gpus or w.gpus < 1:
            continue
        n = w.replicas or 1
        surge = _scaled(r.max_surge, n, up=True)
        unavailable = _scaled(r.max_unavailable, n, up=False)
        if surge >= 1 and unavailable == 0:
            yield rule.finding(
                facts, r.line,
                f"a rollout of {n} replica(s) starts {surge} new pod(s) of {w.gpus} GPU(s) "
                f"before any old one may go (maxSurge {_shown(r.max_surge, surge)}, "
                f"maxUnavailable {_shown(r.max_unavailable, 0)}): without that many spare "
                "GPUs it never finishes",
            )  # fmt: skip


def rwx_without_storage_class(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD026: a ReadWriteMany claim left to the cluster's default storage class."""
    for c in facts.claims:
        if "ReadWriteMany" in c.access_modes and c.storage_class is None and not c.volume_name:
            yield rule.finding(
                facts, c.modes_line,
                f"PersistentVolumeClaim {c.name} asks for ReadWriteMany without a "
                "storageClassName: default classes (block storage) rarely offer it, and the "
                "claim stays Pending",
            )  # fmt: skip


def triton_repository_on_configmap(rule: Rule, files: Sequence[FileFacts]) -> Iterator[Finding]:
    """HFD019: Triton's model repository is a ConfigMap (or Secret, projected) volume
    mounted as a folder. Folder check: the ConfigMap's keys, wherever it is, name what it
    holds."""
    maps = {cm.name: cm for f in files for cm in f.config_maps}
    for facts in files:
        for w in facts.workloads:
            if w.engine != "triton" or w.invocation is None:
                continue
            repo = w.invocation.flag("--model-repository", "--model-store") or ""
            for m in w.mounts if repo else ():
                if m.kind != "configMap" or m.sub_path or m.path.rstrip("/") != repo.rstrip("/"):
                    continue
                cm = maps.get(m.source)
                holds = f" (holding {', '.join(cm.keys)})" if cm and cm.keys else ""
                volume = f"the ConfigMap {m.source}" if m.source else "a Secret or projected volume"
                yield rule.finding(
                    facts, m.line,
                    f"Triton's model repository {repo} is {volume}{holds} "
                    "mounted as a folder: the kubelet keeps hidden ..data and ..<timestamp> "
                    "folders in it, which Triton tries to load as models, and start-up fails",
                )  # fmt: skip


def _prefix(name: str) -> str:
    return name.replace(":", "_")


def autoscaler_metric_not_exported(rule: Rule, files: Sequence[FileFacts]) -> Iterator[Finding]:
    """HFD023: an autoscaler scaling an engine on a metric that engine does not export.
    Folder check: the HPA and the workload it scales are matched across files."""
    catalog = engine_catalog()
    prefixes = {
        n: _prefix(e.deploy.routes.metrics_prefix)
        for n, e in catalog.items()
        if e.deploy and e.deploy.routes.metrics_prefix  # servers without metrics own none
    }
    owners = owners_of(files)
    for facts in files:
        for hpa in facts.autoscalers:
            target = scaled_target(hpa, facts.path, owners)
            if target is None or target.engine is None:
                continue
            engine = target.engine
            sizing = catalog[engine].sizing
            # Triton's vLLM backend exports vLLM's metrics beside Triton's.
            runs = {engine} | ({sizing.name} if sizing and sizing.name in prefixes else set())
            own = tuple(prefixes[e] for e in runs if e in prefixes)
            routes = catalog[engine].deploy.routes  # type: ignore[union-attr]
            exported = (f"{routes.metrics_prefix}* (its queue: {routes.queue_metric})" if own
                        else "no metrics")  # fmt: skip
            for m in hpa.metrics:
                name = _prefix(m.name)
                if name.startswith(own):
                    continue
                other = next((e for e, p in prefixes.items() if name.startswith(p)), None)
                if other:
                    yield rule.finding(
                        facts, m.line,
                        f"{hpa.name} scales {target.kind} {target.name} ({engine}) on "
                        f"{m.name}, a metric of {other}: {engine} exports {exported}",
                    )  # fmt: skip
                elif m.type == "Pods" and own:  # a server without metrics: a sidecar's
                    yield rule.finding(
                        facts, m.line,
                        f"{hpa.name} scales {target.kind} {target.name} ({engine}) on "
                        f"{m.name}, which its pods do not export: {engine} exports "
                        f"{exported}; unless a metrics adapter renames one to it, the "
                        "autoscaler gets no value and never scales",
                        severity="warning",
                    )  # fmt: skip


def _allowed(b: DisruptionBudget, pods: int) -> int | None:
    """How many of ``pods`` the budget lets a drain evict at once."""
    if b.max_unavailable is not None:
        return _scaled(b.max_unavailable, pods, up=True)
    if b.min_available is not None:
        return pods - _scaled(b.min_available, pods, up=True)
    return None


def pdb_allows_full_outage(rule: Rule, files: Sequence[FileFacts]) -> Iterator[Finding]:
    """HFD031: a PodDisruptionBudget that lets a drain evict every pod it protects.
    Folder check: the workloads it selects (and their autoscalers) are in other files."""
    owners = owners_of(files)
    hpas = [(f.path, h) for f in files for h in f.autoscalers]
    for facts in files:
        for b in facts.budgets:
            if b.selector is None:
                continue
            picked = in_nearest_folder(facts.path, [
                o for o in owners if o.replicas and same_namespace(o.namespace, b.namespace)
                and b.selector.items() <= o.labels.items()
            ], lambda o: o.file)  # fmt: skip
            # An autoscaler may take the workload down to its minReplicas.
            pods = sum(next((h.min_replicas for p, h in hpas if scaled_target(h, p, owners) is o),
                            o.replicas) for o in picked)  # fmt: skip
            allowed = _allowed(b, pods) if pods else None
            if allowed is not None and allowed >= pods:
                names = ", ".join(f"{o.kind} {o.name}" for o in picked)
                yield rule.finding(
                    facts, b.value_line,
                    f"{b.name} lets a drain evict {allowed} of the {pods} pod(s) of {names} "
                    "at once: draining a node takes the service down",
                )  # fmt: skip
