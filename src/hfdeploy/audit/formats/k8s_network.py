"""Services and what sends client connections to them → facts: the Service's selector, and
the Services an Ingress, a Gateway API HTTPRoute or a LoadBalancer Service sends traffic to,
with the timeouts that can end a long-lived connection (a WebSocket) on the way.

Timeouts read, each with its default where the proxy has one:

- ingress-nginx: ``nginx.ingress.kubernetes.io/proxy-read-timeout`` and ``proxy-send-timeout``
  (seconds, 60 when absent); NGINX's own controller: ``nginx.org/proxy-read-timeout`` and
  ``proxy-send-timeout`` (60 s). Known when the Ingress's class says nginx or it carries
  one of their annotations.
- AWS Load Balancer Controller (Ingress class ``alb``): ``idle_timeout.timeout_seconds`` in
  ``alb.ingress.kubernetes.io/load-balancer-attributes`` (60 when absent).
- A LoadBalancer Service on AWS's classic load balancer (an ``aws-load-balancer`` annotation,
  not an NLB): ``service.beta.kubernetes.io/aws-load-balancer-connection-idle-timeout`` (60).
- HTTPRoute: ``timeouts.request`` and ``timeouts.backendRequest`` of each rule, when written
  (their default is the implementation's).
"""

from __future__ import annotations

import re
from typing import Any

from hfdeploy.audit.objects import Frontend, ProxyTimeout, Service
from hfdeploy.audit.yamlsrc import Doc

__all__ = ["http_route", "ingress", "service"]

_NGINX = "nginx.ingress.kubernetes.io/"
_NGINX_INC = "nginx.org/"
_ALB = "alb.ingress.kubernetes.io/"
_ALB_ATTRIBUTES = _ALB + "load-balancer-attributes"
_AWS = "service.beta.kubernetes.io/aws-load-balancer-"
_AWS_IDLE = _AWS + "connection-idle-timeout"
_DEFAULT_S = 60.0  # the default of every proxy timeout read here


def service(doc: Doc, name: str, ns: str | None, spec: dict[str, Any]) -> list[Service | Frontend]:
    """The Service, and, for a LoadBalancer on AWS's classic load balancer, that balancer."""
    selector = spec.get("selector")
    out: list[Service | Frontend] = [Service(
        name, ns, doc.start,
        {str(k): str(v) for k, v in selector.items()} if isinstance(selector, dict) else None,
    )]  # fmt: skip
    notes = _annotations(doc)
    aws = any(k.startswith(_AWS) for k in notes)
    nlb = notes.get(_AWS + "type", "") in ("nlb", "external", "nlb-ip")
    if spec.get("type") == "LoadBalancer" and aws and not nlb:
        timeouts = _timeouts(doc, notes, (_AWS_IDLE,), doc.line("metadata", "annotations"))
        out.append(Frontend("Service", name, ns, doc.start, (name,), timeouts))
    return out


def ingress(doc: Doc, name: str, ns: str | None, spec: dict[str, Any]) -> Frontend:
    """An Ingress: the Services of its rules and default backend, and its proxy's timeouts."""
    services: list[str] = []
    backends = [_dict(spec.get("defaultBackend") or spec.get("backend"))]
    for rule in _list(spec.get("rules")):
        backends += [_dict(_dict(p).get("backend"))
                     for p in _list(_dict(_dict(rule).get("http")).get("paths"))]  # fmt: skip
    for b in backends:
        svc = _dict(b.get("service")).get("name") or b.get("serviceName")  # v1, v1beta1
        if svc and str(svc) not in services:
            services.append(str(svc))
    return Frontend("Ingress", name, ns, doc.start, tuple(services), _ingress_timeouts(doc, spec))


def _ingress_timeouts(doc: Doc, spec: dict[str, Any]) -> tuple[ProxyTimeout, ...]:
    notes = _annotations(doc)
    cls = str(spec.get("ingressClassName") or notes.get("kubernetes.io/ingress.class") or "")
    at = (doc.line("metadata", "annotations") if notes
          else doc.line("spec", "ingressClassName") if spec.get("ingressClassName")
          else doc.line("metadata"))  # fmt: skip
    if any(k.startswith(_NGINX_INC) for k in notes):
        prefix = _NGINX_INC
    elif "nginx" in cls.lower() or any(k.startswith(_NGINX) for k in notes):
        prefix = _NGINX
    elif cls == "alb" or any(k.startswith(_ALB) for k in notes):
        return (_alb_timeout(doc, notes, at),)
    else:
        return ()  # another controller: its timeouts are not read
    return _timeouts(doc, notes, (prefix + "proxy-read-timeout", prefix + "proxy-send-timeout"), at)


def _alb_timeout(doc: Doc, notes: dict[str, str], at: int) -> ProxyTimeout:
    m = re.search(r"idle_timeout\.timeout_seconds=(\d+)", notes.get(_ALB_ATTRIBUTES, ""))
    if m is None:
        return ProxyTimeout(_ALB_ATTRIBUTES, _DEFAULT_S, at, written=False)
    line = doc.line("metadata", "annotations", _ALB_ATTRIBUTES)
    return ProxyTimeout(_ALB_ATTRIBUTES, float(m.group(1)), line)


def http_route(doc: Doc, name: str, ns: str | None, spec: dict[str, Any]) -> Frontend:
    """A Gateway API HTTPRoute: the Services its rules send to, and the timeouts written."""
    services: list[str] = []
    timeouts: list[ProxyTimeout] = []
    for i, rule in enumerate(_list(spec.get("rules"))):
        rule = _dict(rule)
        for ref in _list(rule.get("backendRefs")):
            ref = _dict(ref)
            if ref.get("kind", "Service") == "Service" and ref.get("name"):
                services.append(str(ref["name"]))
        for key, value in _dict(rule.get("timeouts")).items():
            seconds = _duration(value)
            if seconds is not None and key in ("request", "backendRequest"):
                line = doc.line("spec", "rules", i, "timeouts", key)
                timeouts.append(ProxyTimeout(f"timeouts.{key}", seconds, line))
    return Frontend("HTTPRoute", name, ns, doc.start, tuple(dict.fromkeys(services)),
                    tuple(timeouts))  # fmt: skip


def _timeouts(
    doc: Doc, notes: dict[str, str], keys: tuple[str, ...], at: int
) -> tuple[ProxyTimeout, ...]:
    """The annotations' timeouts, or the default (at line ``at``) for each one absent; one
    whose value is not a duration (a template) is left out."""
    out = []
    for key in keys:
        if key not in notes:
            out.append(ProxyTimeout(key, _DEFAULT_S, at, written=False))
        elif (seconds := _duration(notes[key])) is not None:
            out.append(ProxyTimeout(key, seconds, doc.line("metadata", "annotations", key)))
    return tuple(out)


def _duration(value: Any) -> float | None:
    """Seconds from ``3600``, ``60s``, ``1h30m``, ``500ms`` (nginx and Gateway API units)."""
    text = str(value).strip().strip('"')
    if text.isdigit():
        return float(text)
    parts = re.findall(r"(\d+)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(int(n) * scale[u] for n, u in parts)


def _annotations(doc: Doc) -> dict[str, str]:
    meta = _dict(_dict(doc.data).get("metadata"))
    return {str(k): str(v) for k, v in _dict(meta.get("annotations")).items()}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
