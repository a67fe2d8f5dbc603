"""``hfdeploy serve MODEL_DIR``: hfdeploy's own inference server."""

from __future__ import annotations

from typing import Annotated

import typer

from hfdeploy.cli._output import handle_errors
from hfdeploy.serve.server import serve_model

__all__ = ["serve_command"]

_ENV = "Environment: HFDEPLOY_<FLAG> (e.g. HFDEPLOY_MAX_BATCH_SIZE); a flag wins."

ModelDirArg = Annotated[
    str,
    typer.Argument(help="A local model folder (/repository in a container).", show_default=False),
]
TaskOpt = Annotated[
    str | None, typer.Option(help="Task to serve (default: detected from the model's files).")
]
HostOpt = Annotated[str | None, typer.Option(help="Address to bind [127.0.0.1].")]
PortOpt = Annotated[int | None, typer.Option(help="Port [8080].")]
MaxBatchSizeOpt = Annotated[int | None, typer.Option(help="Inputs per forward pass [32].")]
MaxWaitMsOpt = Annotated[float | None, typer.Option(help="Wait for a batch to fill, at most [5].")]
MaxBatchTokensOpt = Annotated[
    int | None, typer.Option(help="Padded tokens per forward pass [16384].")
]
MaxQueueOpt = Annotated[
    int | None, typer.Option(help="Inputs queued or running; beyond: 503 [1024].")
]
MaxInputTokensOpt = Annotated[
    int | None, typer.Option(help="Tokens per input (default: the model's limit).")
]
MaxClientBatchSizeOpt = Annotated[
    int | None, typer.Option(help="Inputs per request; beyond: 422 [64].")
]
MaxPayloadBytesOpt = Annotated[
    int | None, typer.Option(help="Body size; beyond: 413 [2 MB; 25 MB for speech].")
]
RequestTimeoutOpt = Annotated[float | None, typer.Option(help="Seconds before 504 [60].")]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(help="Require 'Authorization: Bearer KEY' (or set HFDEPLOY_API_KEY)."),
]
DeviceOpt = Annotated[str | None, typer.Option(help="cpu or cuda (default: cpu).")]
DtypeOpt = Annotated[
    str | None, typer.Option(help="auto, float32, float16 or bfloat16 (default: auto).")
]
AllowPickleOpt = Annotated[
    bool | None, typer.Option("--allow-pickle", help="Load pickle weights (can run code).")
]
TrustRemoteCodeOpt = Annotated[
    bool | None,
    typer.Option("--trust-remote-code", help="Run the model repository's own code."),
]
ServedModelNameOpt = Annotated[
    str | None, typer.Option(help="Model name in /v1/models (default: the folder's).")
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        help="Torch threads per worker, fixed (default: all the CPUs for a batch "
        "alone, a share when batches run side by side)."
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(help="Model worker threads running batches side by side (encoders on CPU; "
                 "default: see docs/serve.md)."),
]  # fmt: skip
NoWarmupOpt = Annotated[
    bool, typer.Option("--no-warmup", help="Skip warmup (ready sooner, first calls slow).")
]
LogFormatOpt = Annotated[str | None, typer.Option(help="text or json (default: text).")]
JsonLogsOpt = Annotated[bool, typer.Option("--json", help="Same as --log-format json.")]
LogLevelOpt = Annotated[str | None, typer.Option(help="debug, info, warning (default: info).")]
DrainTimeoutOpt = Annotated[
    float | None,
    typer.Option(help="Seconds to drain in-flight requests (and conversations) on SIGTERM [30]."),
]
MaxSessionsOpt = Annotated[
    int | None,
    typer.Option(help="Full-duplex conversations at once; beyond: 503 (default: measured at "
                 "warm-up)."),
]  # fmt: skip


def serve_command(
    model: ModelDirArg,
    task: TaskOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    max_batch_size: MaxBatchSizeOpt = None,
    max_wait_ms: MaxWaitMsOpt = None,
    max_batch_tokens: MaxBatchTokensOpt = None,
    max_queue: MaxQueueOpt = None,
    max_input_tokens: MaxInputTokensOpt = None,
    max_client_batch_size: MaxClientBatchSizeOpt = None,
    max_payload_bytes: MaxPayloadBytesOpt = None,
    request_timeout: RequestTimeoutOpt = None,
    api_key: ApiKeyOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    allow_pickle: AllowPickleOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = None,
    served_model_name: ServedModelNameOpt = None,
    threads: ThreadsOpt = None,
    workers: WorkersOpt = None,
    no_warmup: NoWarmupOpt = False,
    log_format: LogFormatOpt = None,
    json_logs: JsonLogsOpt = False,
    log_level: LogLevelOpt = None,
    drain_timeout: DrainTimeoutOpt = None,
    max_sessions: MaxSessionsOpt = None,
) -> None:
    """Serve a model with dynamic batching, warmup, readiness, metrics, TEI and OpenAI APIs;
    a full-duplex speech model (Moshi) with conversations on /api/chat, stepped together.

    Never downloads: HF_HUB_OFFLINE=1 is set for the process.
    """
    with handle_errors():
        code = serve_model(
            model,
            task=task,
            host=host,
            port=port,
            max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms,
            max_batch_tokens=max_batch_tokens,
            max_queue=max_queue,
            max_input_tokens=max_input_tokens,
            max_client_batch_size=max_client_batch_size,
            max_payload_bytes=max_payload_bytes,
            request_timeout=request_timeout,
            api_key=api_key,
            device=device,
            dtype=dtype,
            allow_pickle=allow_pickle,
            trust_remote_code=trust_remote_code,
            served_model_name=served_model_name,
            threads=threads,
            workers=workers,
            warmup=False if no_warmup else None,
            log_format="json" if json_logs else log_format,
            log_level=log_level,
            drain_timeout=drain_timeout,
            max_sessions=max_sessions,
        )
    raise typer.Exit(code)


serve_command.__doc__ = (serve_command.__doc__ or "") + "\n\n" + _ENV
