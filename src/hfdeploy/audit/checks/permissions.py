"""Who the server runs as and what it may do: privileged ports without the capability, an
engine left to run as root, volumes its user cannot write."""

from __future__ import annotations

from collections.abc import Iterator

from hfdeploy.audit.extract import FileFacts
from hfdeploy.audit.findings import Finding, Rule
from hfdeploy.audit.model import Workload
from hfdeploy.catalog.engines import EngineDeploy, engine_catalog

__all__ = ["engine_runs_as_root", "privileged_port", "volume_not_writable"]


def _deploy(w: Workload) -> tuple[str, EngineDeploy] | None:
    """The engine a workload runs (its command, else its image) with its catalog facts."""
    name = w.engine or w.image_engine()
    spec = engine_catalog().get(name or "")
    return (spec.name, spec.deploy) if spec and spec.deploy else None


def _bound_port(w: Workload, deploy: EngineDeploy) -> tuple[int, int] | None:
    """The port the engine binds, and the line that says so: its port flag, the environment
    variable it reads, else its image's default."""
    inv = w.invocation
    flag = deploy.flags.get("port")
    names = tuple(n for n in (flag, "-p") if n)
    raw = inv.flag(*names) if inv and names else None
    line = w.line_of(*names) if raw is not None else w.line
    env = w.env_value(deploy.routes.port_env) if deploy.routes.port_env else None
    if raw is None and env is not None:
        raw, line = env.value, env.line
    if raw is None:
        return deploy.routes.image_port, w.line
    return (int(raw), line) if raw.isdigit() else None


def privileged_port(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD025: a Kubernetes container that binds a port below 1024 with every capability
    dropped and NET_BIND_SERVICE not added back."""
    for w in facts.workloads:
        if w.source != "kubernetes" or "ALL" not in w.caps_drop or "NET_BIND_SERVICE" in w.caps_add:
            continue
        found = _deploy(w)
        bound = _bound_port(w, found[1]) if found else None
        ports = [bound] if bound else [] if found else w.ports
        start = w.unprivileged_port_start
        for port, line in ports:
            if 0 < port < 1024 and (start is None or port < start):
                what = f"{found[0]} binds" if found else "the container declares"
                yield rule.finding(
                    facts, line,
                    f"{what} port {port} with every capability dropped and NET_BIND_SERVICE "
                    "not added: the bind is refused where the runtime keeps "
                    "net.ipv4.ip_unprivileged_port_start at 1024 (CRI-O, containerd 1.x)",
                )  # fmt: skip


def engine_runs_as_root(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD027: a Kubernetes or KServe pod with no user set, running an engine whose image
    defaults to root though it is built to run as a non-root uid."""
    for w in facts.workloads:
        found = _deploy(w)
        if w.source != "kubernetes" or w.kind in ("Job", "CronJob") or w.user or not found:
            continue
        engine, deploy = found
        if deploy.run_as_user is not None and deploy.image_user == 0:
            yield rule.finding(
                facts, w.line,
                f"no securityContext sets runAsUser or runAsNonRoot, so {engine} runs as "
                f"root, its image's default, though the image is built to run as uid "
                f"{deploy.run_as_user}",
            )  # fmt: skip


def volume_not_writable(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD028: a compose service running as a non-root uid with a named volume mounted where
    the engine's image has no folder owned by that uid."""
    for w in facts.workloads:
        found = _deploy(w)
        if w.source != "compose" or not w.uid or not found:
            continue
        engine, deploy = found
        # The one folder the catalog knows an owner of: cache_dir, owned by run_as_user.
        owned = deploy.cache_dir.rstrip("/") if deploy.run_as_user == w.uid else None
        for m in w.mounts:
            if m.kind != "volume" or m.read_only or m.path.rstrip("/") == owned:
                continue
            yield rule.finding(
                facts, m.line,
                f"the named volume {m.source or m.path} at {m.path}: the {engine} image has "
                f"no folder there owned by uid {w.uid}, so Docker creates the volume owned "
                f"by root and uid {w.uid} cannot write it"
                + (f" (the image's {owned} is owned by it)" if owned else ""),
            )  # fmt: skip
