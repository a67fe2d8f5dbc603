"""Servers that hold conversations, not requests (the engine catalog's ``routes.session``: a
WebSocket per conversation, a fixed number per process): probes on the session route, proxy
timeouts under a conversation, autoscalers on utilisation.

The proxy and the autoscaler sit in other files than the pods they serve or scale: those two
are folder checks, matching an Ingress to its Service and the Service to the workloads its
selector picks (an autoscaler to its ``scaleTargetRef``) in the nearest folder.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from hfdeploy.audit.checks.owners import (
    Owner,
    in_nearest_folder,
    owners_of,
    same_namespace,
    scaled_target,
)
from hfdeploy.audit.extract import FileFacts
from hfdeploy.audit.findings import Finding, Rule
from hfdeploy.audit.model import Probe
from hfdeploy.audit.objects import Frontend, ScalingMetric, Service
from hfdeploy.catalog.engines import engine_catalog
from hfdeploy.render.duplex import SESSION_TIMEOUT_S

__all__ = [
    "SESSION_S",
    "probe_takes_session",
    "scale_on_utilization",
    "session_route",
    "session_timeout_short",
]

#: How long a conversation may last: the timeout hfdeploy's own Ingress gives it (an hour).
SESSION_S = SESSION_TIMEOUT_S
#: A health check's command that names the route in a URL (curl, wget, a Python one-liner,
#: a WebSocket client): ``http://localhost:8998/api/chat``.
_URL = re.compile(r"\b(?:https?|wss?)://[^/\s'\"]+(/[^\s'\"?#]*)")
#: GPU-utilisation series (NVIDIA's DCGM exporter, and the usual names elsewhere).
_GPU_UTILISATION = re.compile(
    r"DCGM_FI_(?:DEV_GPU_UTIL|PROF_GR_ENGINE_ACTIVE|PROF_SM_ACTIVE|PROF_SM_OCCUPANCY"
    r"|DEV_MEM_COPY_UTIL|DEV_FB_USED)|gpu_?util", re.I
)  # fmt: skip


def session_route(engine: str | None) -> str:
    """The WebSocket route a conversation holds open on ``engine`` ("" when it has none)."""
    spec = engine_catalog().get(engine or "")
    return spec.deploy.routes.session if spec and spec.deploy else ""


def _held(engine: str | None) -> str:
    """How many conversations one process holds, as a phrase."""
    spec = engine_catalog().get(engine or "")
    n = spec.sizing.sessions_per_process if spec and spec.sizing else None
    return f"{n} conversation{'s' if n != 1 else ''} per process" if n else "conversations"


def _probed_route(p: Probe) -> str | None:
    """The route a probe or health check asks for over HTTP or a WebSocket."""
    if p.path is not None:
        return p.path.split("?", 1)[0]
    found = _URL.search(" ".join(p.command))
    return found.group(1) if found else None


def probe_takes_session(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD035: a probe or health check on a session-bound server's session route."""
    for w in facts.workloads:
        engine = w.engine or (w.built.engine if w.built else None)
        route = session_route(engine)
        for p in w.probes if route else ():
            asked = _probed_route(p)
            if asked is None or asked.rstrip("/") != route.rstrip("/"):
                continue
            what = "health check" if p.kind == "healthcheck" else f"{p.kind} probe"
            yield rule.finding(
                facts, p.line,
                f"the {what} asks for {route}, {engine}'s conversation WebSocket "
                f"({_held(engine)}): a plain request is no WebSocket handshake and "
                "fails, and one that opens the WebSocket takes the conversation or waits "
                "behind it",
            )  # fmt: skip


def _served_by(
    front: Frontend, path: str, services: list[tuple[str, Service]], owners: list[Owner]
) -> list[tuple[Service, Owner]]:
    """The session-bound workloads a frontend sends connections to, through its Services."""
    out = []
    for name in front.services:
        named = [(p, s) for p, s in services
                 if s.name == name and same_namespace(s.namespace, front.namespace)]  # fmt: skip
        for svc_path, svc in in_nearest_folder(path, named, lambda ps: ps[0]):
            selector = svc.selector
            if not selector:
                continue
            picked = in_nearest_folder(svc_path, [
                o for o in owners if session_route(o.engine)
                and same_namespace(o.namespace, svc.namespace)
                and selector.items() <= o.labels.items()
            ], lambda o: o.file)  # fmt: skip
            out += [(svc, o) for o in picked]
    return out


def session_timeout_short(rule: Rule, files: Sequence[FileFacts]) -> Iterator[Finding]:
    """HFD036: an Ingress, HTTPRoute or LoadBalancer Service whose timeout is under a
    conversation's length, in front of a session-bound server. Folder check: the proxy, the
    Service and the workload are matched across files."""
    owners = owners_of(files)
    services = [(f.path, s) for f in files for s in f.services]
    for facts in files:
        for front in facts.frontends:
            # An HTTPRoute's 0s is no timeout (Gateway API).
            short = [t for t in front.timeouts if t.seconds < SESSION_S
                     and not (t.seconds == 0 and front.kind == "HTTPRoute")]  # fmt: skip
            served = _served_by(front, facts.path, services, owners) if short else []
            if not served:
                continue
            svc, owner = served[0]
            first = next((t for t in short if t.written), short[0])
            said = ", ".join(f"{t.setting} {t.seconds:g} s{'' if t.written else ' (unset)'}"
                             for t in short)  # fmt: skip
            via = "" if front.kind == "Service" else f" through Service {svc.name}"
            yield rule.finding(
                facts, first.line,
                f"{front.kind} {front.name} carries {session_route(owner.engine)} "
                f"conversations to {owner.kind} {owner.name} ({owner.engine}){via} with "
                f"{said}: shorter than a conversation may last ({SESSION_S // 60} min, this "
                "rule's length), so the proxy can cut the WebSocket mid-conversation",
            )  # fmt: skip


def _utilisation(m: ScalingMetric) -> str | None:
    """What the metric measures when it is a utilisation (CPU, memory, GPU), else None."""
    if m.type in ("Resource", "ContainerResource") and m.name in ("cpu", "memory"):
        return f"{m.name} utilisation" + ("" if m.written else " (the default: no metric given)")
    found = _GPU_UTILISATION.search(m.name)
    return f"GPU utilisation ({found.group(0)})" if found else None


def scale_on_utilization(rule: Rule, files: Sequence[FileFacts]) -> Iterator[Finding]:
    """HFD037: an autoscaler scaling a session-bound server on CPU, memory or GPU
    utilisation. Folder check: the autoscaler and the workload it scales are matched."""
    owners = owners_of(files)
    for facts in files:
        for hpa in facts.autoscalers:
            target = scaled_target(hpa, facts.path, owners)
            if target is None or not session_route(target.engine):
                continue
            for m in hpa.metrics:
                what = _utilisation(m)
                if what is None:
                    continue
                yield rule.finding(
                    facts, m.line,
                    f"{hpa.name} scales {target.kind} {target.name} ({target.engine}, "
                    f"{_held(target.engine)}) on {what}: a replica's load does not say "
                    "whether it has a free conversation, and scaling down can stop one in "
                    "progress",
                )  # fmt: skip
