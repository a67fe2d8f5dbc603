"""From a folder to a warm runner: inspect, check, load, warm up."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from hfdeploy.errors import HfDeployError, ModelLoadError
from hfdeploy.model.profile import ModelProfile
from hfdeploy.model.resolve import inspect_model
from hfdeploy.serve.duplex.runner import check_duplex
from hfdeploy.serve.runtime import (
    LoadedModel,
    Runner,
    check_weights,
    model_folder,
    resolve_task,
    setup_torch,
)
from hfdeploy.serve.settings import ServeSettings

__all__ = ["load_model", "preflight"]

log = logging.getLogger("hfdeploy.serve")


def preflight(settings: ServeSettings) -> tuple[Path, ModelProfile, str]:
    """The checks that need no torch: the folder, its weights' format, the task.

    Run before the server binds its port, so that a wrong folder fails at once.

    Raises:
        ModelLoadError: not a folder, pickle-only weights, a task the server does not run.
    """
    folder = model_folder(settings)
    profile = inspect_model(str(folder), environ={"HF_HUB_OFFLINE": "1"})
    check_weights(profile, settings)
    check_duplex(folder, profile)
    return folder, profile, resolve_task(profile, settings)


def load_model(
    settings: ServeSettings,
    *,
    checked: tuple[Path, ModelProfile, str] | None = None,
    preflight_seconds: float | None = None,
    imports_seconds: float | None = None,
) -> LoadedModel:
    """Load the model in ``settings.model`` for its task (no warmup).

    ``checked``: the result of :func:`preflight` when the caller already ran it, and
    ``preflight_seconds`` how long that took, ``imports_seconds`` the time from the
    process's start to the preflight (for the start-up phase metrics).

    Raises:
        ModelLoadError: not a folder, pickle-only weights, a task the server does not run.
        MissingDependencyError: the ``serve`` extra is not installed.
    """
    started = time.perf_counter()
    folder, profile, task = checked or preflight(settings)
    t_imports = time.perf_counter()
    workers, threads_for = setup_torch(settings, task)
    t_model = time.perf_counter()
    if workers > 1:
        # Forward passes of all workers together stay within the padded-token budget: the
        # activation memory the size estimate counts (one batch of max_batch_tokens).
        per_worker = max(1, settings.max_batch_tokens // workers)
        settings = replace(settings, max_batch_tokens=per_worker)
    try:
        runner = _runner(task, folder, settings, profile)
    except HfDeployError:
        raise
    except Exception as e:  # transformers' and torch's errors, translated once, here
        raise ModelLoadError(
            str(folder),
            f"{type(e).__name__}: {e}",
            hint="Check that the folder holds a complete model (config, weights, tokenizer) "
            "that this transformers version can load; HFDEPLOY_DEBUG=1 shows the traceback.",
        ) from e
    name = settings.served_model_name or profile.repo_id or folder.resolve().name
    done = time.perf_counter()
    seconds = done - started
    phases = {
        "imports": imports_seconds,
        "preflight": preflight_seconds if checked else t_imports - started,
        "torch_setup": t_model - t_imports,
        "model_load": done - t_model,
    }
    log.info("loaded %s (%s) in %.2fs on %s", name, task, seconds, settings.device)
    return LoadedModel(
        runner=runner, profile=profile, name=name, load_seconds=seconds,
        phases={k: round(v, 4) for k, v in phases.items() if v is not None}, workers=workers,
        threads_for=threads_for,
    )  # fmt: skip


def _runner(task: str, folder: Path, settings: ServeSettings, profile: ModelProfile) -> Runner:
    match task:
        case "feature-extraction":
            from hfdeploy.serve.embed import EmbedRunner

            return EmbedRunner(folder, settings, profile)
        case "text-ranking" | "text-classification":
            from hfdeploy.serve.encoders import ScoreRunner

            return ScoreRunner(folder, settings, profile, task=task)
        case "token-classification":
            from hfdeploy.serve.encoders import TokenRunner

            return TokenRunner(folder, settings, profile)
        case "text-generation":
            from hfdeploy.serve.generate import GenerateRunner

            return GenerateRunner(folder, settings, profile)
        case "audio-to-audio":
            from hfdeploy.serve.duplex.runner import DuplexRunner

            return DuplexRunner(folder, settings, profile)  # type: ignore[return-value]
        case _:
            from hfdeploy.serve.speech import SpeechRunner

            return SpeechRunner(folder, settings, profile)
