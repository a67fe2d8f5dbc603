"""Prometheus metrics of one server, on a registry of its own (not the global one)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from hfdeploy.serve.duplex.metrics import DuplexMetrics

# The *_created series double the output for no use on a dashboard.
disable_created_metrics()  # type: ignore[no-untyped-call]

__all__ = ["CONTENT_TYPE_LATEST", "ServerMetrics"]

_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
    10.0, 30.0, 60.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServerMetrics:
    """Request, queue, batch, token and start-up metrics, named ``hfdeploy_*``."""

    def __init__(self, *, duplex: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        #: Full-duplex conversations' metrics, for a duplex model's server only.
        self.duplex = DuplexMetrics(r) if duplex else None
        self.requests = Counter(
            "hfdeploy_requests", "HTTP requests answered", ["route", "method", "status"], registry=r
        )
        self.duration = Histogram(
            "hfdeploy_request_duration_seconds",
            "Time from request start to last byte sent",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue = Gauge(
            "hfdeploy_queue_depth", "Inputs queued or running, not yet answered", registry=r
        )
        self.batch_size = Histogram(
            "hfdeploy_batch_size", "Inputs per model batch", buckets=_BATCH_BUCKETS, registry=r
        )
        self.batch_duration = Histogram(
            "hfdeploy_batch_duration_seconds",
            "Model time per batch (tokenize, forward, post-process)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("hfdeploy_tokens", "Tokens processed", ["kind"], registry=r)
        self.load_seconds = Gauge("hfdeploy_model_load_seconds", "Model load time", registry=r)
        self.warmup_seconds = Gauge("hfdeploy_warmup_seconds", "Warmup time", registry=r)
        self.startup_phase = Gauge(
            "hfdeploy_startup_phase_seconds",
            "Start-up phases: imports, preflight, torch_setup, model_load (weights read + init), "
            "warmup",
            ["phase"],
            registry=r,
        )
        self.ready = Gauge("hfdeploy_ready", "1 when the model is loaded and warm", registry=r)
        self.info = Gauge(
            "hfdeploy_model_info", "The model served (value 1)", ["model", "task"], registry=r
        )
        self.tokens.labels("input")
        self.tokens.labels("output")

    # BatchObserver
    def queue_depth(self, depth: int) -> None:
        self.queue.set(depth)

    def batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_duration.observe(seconds)

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        code = str(status)
        self.requests.labels(route, method, code).inc()
        self.duration.labels(route, method, code).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
