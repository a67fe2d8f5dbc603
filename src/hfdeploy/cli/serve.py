"""``hfdeploy serve MODEL_DIR``: hfdeploy's own inference server."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from hfdeploy.cli._output import handle_errors
from hfdeploy.errors import MissingDependencyError

__all__ = ["serve_command"]

_ENV = "Environment: HFDEPLOY_<FLAG> (e.g. HFDEPLOY_MAX_BATCH_SIZE); a flag wins."


def serve_command(
    model: Annotated[
        str,
        typer.Argument(
            help="A local model folder (/repository in a container).", show_default=False
        ),
    ],
    task: Annotated[
        str | None,
        typer.Option(help="Task to serve (default: detected from the model's files)."),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind [127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [8080].")] = None,
    max_batch_size: Annotated[
        int | None, typer.Option(help="Inputs per forward pass [32].")
    ] = None,
    max_wait_ms: Annotated[
        float | None, typer.Option(help="Wait for a batch to fill, at most [5].")
    ] = None,
    max_batch_tokens: Annotated[
        int | None, typer.Option(help="Padded tokens per forward pass [16384].")
    ] = None,
    max_queue: Annotated[
        int | None, typer.Option(help="Inputs queued or running; beyond: 503 [1024].")
    ] = None,
    max_input_tokens: Annotated[
        int | None, typer.Option(help="Tokens per input (default: the model's limit).")
    ] = None,
    max_client_batch_size: Annotated[
        int | None, typer.Option(help="Inputs per request; beyond: 413 [64].")
    ] = None,
    max_payload_bytes: Annotated[
        int | None, typer.Option(help="Body size; beyond: 413 [2 MB; 25 MB for speech].")
    ] = None,
    request_timeout: Annotated[float | None, typer.Option(help="Seconds before 504 [60].")] = None,
    api_key: Annotated[
        str | None,
        typer.Option(help="Require 'Authorization: Bearer KEY' (or set HFDEPLOY_API_KEY)."),
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda [cpu].")] = None,
    dtype: Annotated[
        str | None, typer.Option(help="auto, float32, float16 or bfloat16 [auto].")
    ] = None,
    allow_pickle: Annotated[
        bool | None, typer.Option("--allow-pickle", help="Load pickle weights (can run code).")
    ] = None,
    trust_remote_code: Annotated[
        bool | None,
        typer.Option("--trust-remote-code", help="Run the model repository's own code."),
    ] = None,
    served_model_name: Annotated[
        str | None, typer.Option(help="Model name in /v1/models (default: the folder's).")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="Torch threads (default: CPUs).")] = None,
    no_warmup: Annotated[
        bool, typer.Option("--no-warmup", help="Skip warmup (ready sooner, first calls slow).")
    ] = False,
    log_format: Annotated[str | None, typer.Option(help="text or json [text].")] = None,
    json_logs: Annotated[bool, typer.Option("--json", help="Same as --log-format json.")] = False,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning [info].")] = None,
    drain_timeout: Annotated[
        float | None, typer.Option(help="Seconds to drain in-flight requests on SIGTERM [30].")
    ] = None,
) -> None:
    """Serve a model with dynamic batching, warmup, readiness, metrics, TEI and OpenAI APIs.

    Never downloads: HF_HUB_OFFLINE=1 is set for the process.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    with handle_errors():
        for module in (
            "fastapi",
            "uvicorn",
            "prometheus_client",
            "orjson",
            "torch",
            "transformers",
        ):
            try:
                __import__(module)
            except ImportError as e:
                raise MissingDependencyError(
                    module, extra="serve", purpose="serve a model", failure=e
                ) from e
        from hfdeploy.serve.server import run_server
        from hfdeploy.serve.settings import resolve_serve_settings

        settings = resolve_serve_settings(
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
            warmup=False if no_warmup else None,
            log_format="json" if json_logs else log_format,
            log_level=log_level,
            drain_timeout=drain_timeout,
        )
        code = run_server(settings)
    raise typer.Exit(code)


serve_command.__doc__ = (serve_command.__doc__ or "") + "\n\n" + _ENV
