"""The scale-out options ``plan`` and ``generate`` share: autoscaler, GPU placement label,
priority class, Prometheus, Gateway, and a bench result whose measured capacity scales the
autoscaling thresholds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, cast

import typer

from hfdeploy.errors import InvalidSettingError
from hfdeploy.plan.destination import Autoscaler, GpuLabel, ScaleOut
from hfdeploy.plan.scale_out import measured_rps

__all__ = [
    "DEFAULTS",
    "AutoscalerOpt",
    "BenchOpt",
    "GatewayOpt",
    "GpuLabelOpt",
    "PriorityClassOpt",
    "PrometheusOpt",
    "PrometheusSecretOpt",
    "scale_out_options",
]

#: The defaults ``plan`` and ``generate`` show: the library's own.
DEFAULTS = ScaleOut()

AutoscalerOpt = Annotated[
    str,
    typer.Option(help="hpa (a Prometheus adapter serves the queue metric) or keda (a "
                 "ScaledObject queries Prometheus; the keda target implies it)."),
]  # fmt: skip
GpuLabelOpt = Annotated[
    str,
    typer.Option(help="Node label that places pods on the planned GPU: gfd "
                 "(nvidia.com/gpu.product) or gke (cloud.google.com/gke-accelerator)."),
]  # fmt: skip
PriorityClassOpt = Annotated[
    str | None, typer.Option(help="PriorityClass name for the serving pods.")
]
PrometheusOpt = Annotated[str, typer.Option(help="The Prometheus KEDA queries.")]
PrometheusSecretOpt = Annotated[
    str | None,
    typer.Option(help="Secret (key `token`) with a bearer token for Prometheus: KEDA gets a "
                 "TriggerAuthentication."),
]  # fmt: skip
GatewayOpt = Annotated[
    str, typer.Option(help="The Gateway the inference-pool target's HTTPRoute attaches to.")
]
BenchOpt = Annotated[
    Path | None,
    typer.Option(help="`hfdeploy bench --profile sweep --json` of one replica: its measured "
                 "saturation rate scales the autoscaling thresholds."),
]  # fmt: skip


def scale_out_options(
    *,
    autoscaler: str = DEFAULTS.autoscaler,
    gpu_label: str = DEFAULTS.gpu_label,
    priority_class: str | None = None,
    prometheus: str = DEFAULTS.prometheus,
    prometheus_secret: str | None = None,
    gateway: str = DEFAULTS.gateway,
    bench: Path | None = None,
) -> ScaleOut:
    """The validated options, with the bench file read.

    Raises:
        InvalidSettingError: a bad value, or a bench file that is not a sweep's JSON.
    """
    rps = None
    if bench is not None:
        try:
            doc = json.loads(bench.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidSettingError(
                "bench", str(bench), f"not readable JSON ({exc})",
                hint="Pass the file `hfdeploy bench --json` wrote.",
            ) from None  # fmt: skip
        rps = measured_rps(doc.get("result", doc) if isinstance(doc, dict) else doc)
    return ScaleOut(
        autoscaler=cast(Autoscaler, autoscaler.lower()),
        gpu_label=cast(GpuLabel, gpu_label.lower()),
        priority_class=priority_class, prometheus=prometheus,
        prometheus_secret=prometheus_secret, gateway=gateway, measured_rps=rps,
    )  # fmt: skip
