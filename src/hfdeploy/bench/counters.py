"""The server's own count of answered requests, read from its Prometheus ``/metrics``.

Read before and after each phase, it checks the client's count (``client_over_server``).
"""

from __future__ import annotations

import asyncio

from hfdeploy.bench.http import Pool
from hfdeploy.errors import EndpointError

__all__ = ["parse_request_counter", "server_count"]

#: Counters of completed requests, per engine (name, label filter).
_SERVER_COUNTERS = (
    "hfdeploy_requests_total",
    "vllm:request_success_total",
    "tgi_request_success",
    "te_request_success",
)


_PROBE_ROUTES = {"/metrics", "/health", "/ready", "/v2/health/live", "/v2/health/ready"}


def parse_request_counter(text: str, route: str | None) -> tuple[str, float] | None:
    """The server's own count of answered requests from Prometheus text, if it has one.

    hfdeploy: ``hfdeploy_requests_total`` with a 2xx status for ``route`` (None: every route
    but metrics and probes); vLLM, TGI and TEI: their success counters, summed over labels.
    """
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name not in _SERVER_COUNTERS:
                    continue
                if s.name == "hfdeploy_requests_total":
                    r = s.labels.get("route", "")
                    wrong = r in _PROBE_ROUTES if route is None else r != route
                    if wrong or not s.labels.get("status", "").startswith("2"):
                        continue
                totals[s.name] = totals.get(s.name, 0.0) + float(s.value)
    except ValueError:
        return None
    for name in _SERVER_COUNTERS:
        if name in totals:
            return name, totals[name]
    return None


async def server_count(pool: Pool, headers: dict[str, str], route: str) -> tuple[str, float] | None:
    """The server's counter and its value now, or None when it has none (or cannot answer)."""
    try:
        res = await pool.request("GET", "/metrics", headers=headers)
    except (OSError, TimeoutError, EndpointError, asyncio.IncompleteReadError):
        return None
    if res.status != 200:
        return None
    return parse_request_counter(res.body.decode("utf-8", "replace"), route)
