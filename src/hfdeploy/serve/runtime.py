"""Loading a model for serving: safety checks, device, dtype, threads, tokens.

The one boundary where torch and transformers come in; everything here runs on the
model worker thread or at start-up, never on the event loop.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hfdeploy.errors import MissingDependencyError, ModelLoadError
from hfdeploy.model.profile import ModelProfile
from hfdeploy.serve.cpu import cpu_budget, worker_plan
from hfdeploy.serve.settings import ServeSettings

log = logging.getLogger("hfdeploy.serve")

__all__ = [
    "SERVED_TASKS",
    "Encoded",
    "LoadedModel",
    "Runner",
    "WarmupShape",
    "import_torch",
    "load_kwargs",
    "pad_batch",
    "resolve_task",
    "setup_torch",
    "token_limit",
]


def import_torch() -> Any:
    """torch and transformers, or a message that names the extra to install."""
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError(
            e.name or "torch", extra="serve", purpose="serve a model"
        ) from e
    return torch


class Runner(Protocol):
    """A loaded model for one task. ``run`` is called on the model thread only."""

    task: str
    max_input_tokens: int

    def run(self, payloads: list[Any]) -> list[Any]: ...
    def warmup_shapes(self, settings: ServeSettings) -> list[WarmupShape]: ...
    def warm(self, shape: WarmupShape) -> None: ...
    def info(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class WarmupShape:
    batch: int
    tokens: int

    def __str__(self) -> str:
        return f"{self.batch}x{self.tokens}"


@dataclass(slots=True)
class LoadedModel:
    """What the app needs to know of the runner it serves."""

    runner: Runner
    profile: ModelProfile
    name: str
    load_seconds: float
    warmup_seconds: float = 0.0
    warmup_shapes: list[str] = field(default_factory=list)
    #: Start-up phases in seconds: imports (process start to preflight: interpreter and
    #: modules), preflight, torch_setup, model_load (weights read and model init: one
    #: from_pretrained call), warmup.
    phases: dict[str, float] = field(default_factory=dict)
    #: Worker threads running batches side by side (1: one batch at a time).
    workers: int = 1
    #: Called on a worker thread before each batch with the batches running: sets that
    #: thread's torch threads to its share of the CPUs (None: fixed threads).
    threads_for: Callable[[int], None] | None = None


#: Detected task -> the task hfdeploy's server runs for it.
SERVED_TASKS = {
    "feature-extraction": "feature-extraction",
    "sentence-similarity": "feature-extraction",
    "text-ranking": "text-ranking",
    "reranking": "text-ranking",
    "text-classification": "text-classification",
    "token-classification": "token-classification",
    "text-generation": "text-generation",
    "automatic-speech-recognition": "automatic-speech-recognition",
    "audio-to-audio": "audio-to-audio",
}


def resolve_task(profile: ModelProfile, settings: ServeSettings) -> str:
    """The task to serve: the flag, else the detected one; a reranker is a 1-label classifier.

    Raises:
        ModelLoadError: the model's task is not one the server runs.
    """
    task = settings.task or profile.task.task
    if task == "text-classification" and not settings.task and profile.task.kind == "reranker":
        task = "text-ranking"
    served = SERVED_TASKS.get(task)
    if served is None:
        raise ModelLoadError(
            profile.location,
            f"task {task!r} is not one hfdeploy serve runs",
            hint="Pass --task with one of: "
            + ", ".join(sorted(set(SERVED_TASKS.values())))
            + "; or serve it with the engine `hfdeploy plan` picks.",
        )
    return served


def check_weights(profile: ModelProfile, settings: ServeSettings) -> None:
    """Refuse pickle-only weights unless asked, and folders with no weights at all."""
    f = profile.formats
    if not f.safetensors and f.pickle and not settings.allow_pickle:
        raise ModelLoadError(
            profile.location,
            "weights are pickle files only ("
            + ", ".join(f.pickle[:3])
            + "); loading pickle can run arbitrary code",
            hint="Convert them to safetensors, or pass --allow-pickle if you trust the source.",
        )
    if not f.safetensors and not f.pickle:
        raise ModelLoadError(
            profile.location,
            "no safetensors weights in the folder",
            hint="Download the weights (`hf download` or `hfdeploy fetch`) into the folder.",
        )


ThreadShare = Callable[[int], None]


def setup_torch(settings: ServeSettings, task: str = "") -> tuple[int, ThreadShare | None]:
    """Import torch, set its threads for this machine and the workers, check the device;
    the number of model workers, and what each calls before a batch (:func:`thread_share`)."""
    torch = import_torch()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no tqdm bars in a server's log
    budget, source = cpu_budget()
    workers, threads = worker_plan(
        budget, device=settings.device, task=task, workers=settings.workers,
        threads=settings.threads,
    )  # fmt: skip
    torch.set_num_threads(threads)
    share = thread_share(settings, workers, budget)
    shares = f"{budget} torch thread(s) for a batch alone, {threads} each side by side" if (
        share) else f"{threads} torch thread(s) each"  # fmt: skip
    log.info(
        "%d model worker(s), %s (%s: %d CPUs); OMP_WAIT_POLICY=%s",
        workers, shares, source, budget, os.environ.get("OMP_WAIT_POLICY", "unset"),
    )  # fmt: skip
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            settings.model,
            "--device cuda asked but torch sees no CUDA device",
            hint="Use --device cpu, or install a CUDA build of torch on a GPU machine.",
        )
    return workers, share


def thread_share(settings: ServeSettings, workers: int, budget: int) -> ThreadShare | None:
    """With several CPU workers and no ``--threads``: a function a worker thread calls
    before each batch, giving it all the CPUs when its batch runs alone and an equal share
    when others run (torch's thread count is per thread under OpenMP; MKL's is global, so a
    batch that starts while another runs also narrows that one's matrix products)."""
    if workers < 2 or settings.device != "cpu" or settings.threads is not None:
        return None
    torch = import_torch()

    def share(running: int) -> None:
        threads = max(1, budget // max(1, running))
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    return share


def torch_dtype(settings: ServeSettings, profile: ModelProfile) -> Any:
    """float32 on CPU unless asked; on CUDA the checkpoint's half type (never float32 fp16)."""
    torch = import_torch()
    if settings.dtype != "auto":
        return getattr(torch, settings.dtype)
    if settings.device == "cpu":
        return torch.float32
    config_dtype = str(profile.config.get("torch_dtype") or profile.config.get("dtype") or "")
    return torch.bfloat16 if "bfloat16" in config_dtype else torch.float16


def load_kwargs(settings: ServeSettings, profile: ModelProfile) -> dict[str, Any]:
    """Keyword arguments for ``from_pretrained``: local files only, safetensors unless allowed."""
    return {
        "local_files_only": True,
        "use_safetensors": None if settings.allow_pickle else True,
        "trust_remote_code": settings.trust_remote_code,
        "dtype": torch_dtype(settings, profile),
    }


def token_limit(settings: ServeSettings, model_limit: int | None) -> int:
    """Tokens per input: the setting, never above the model's own limit.

    Raises:
        InvalidSettingError: the setting is above what the model's positions allow.
    """
    from hfdeploy.errors import InvalidSettingError

    if model_limit is None:
        model_limit = 512
    if settings.max_input_tokens is None:
        return model_limit
    if settings.max_input_tokens > model_limit:
        raise InvalidSettingError(
            "max_input_tokens",
            settings.max_input_tokens,
            f"the model accepts at most {model_limit} tokens",
            hint=f"Use --max-input-tokens {model_limit} or less.",
        )
    return settings.max_input_tokens


@dataclass(slots=True)
class Encoded:
    """Token ids of one input, with its token types when the model uses them."""

    ids: list[int]
    type_ids: list[int] | None = None
    offsets: list[tuple[int, int]] | None = None


def pad_batch(items: Sequence[Encoded], *, pad_id: int, device: str) -> dict[str, Any]:
    """Right-padded ``input_ids`` / ``attention_mask`` (/ ``token_type_ids``) tensors."""
    torch = import_torch()
    width = max(len(e.ids) for e in items)
    n = len(items)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    types = torch.zeros((n, width), dtype=torch.long) if items[0].type_ids is not None else None
    for row, e in enumerate(items):
        length = len(e.ids)
        ids[row, :length] = torch.tensor(e.ids, dtype=torch.long)
        mask[row, :length] = 1
        if types is not None and e.type_ids is not None:
            types[row, :length] = torch.tensor(e.type_ids, dtype=torch.long)
    out = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
    if types is not None:
        out["token_type_ids"] = types.to(device)
    return out


def model_folder(settings: ServeSettings) -> Path:
    path = Path(settings.model).expanduser()
    if not path.is_dir():
        raise ModelLoadError(
            settings.model,
            "not a folder",
            hint="hfdeploy serve reads a local folder; run `hfdeploy fetch MODEL@REV --to DIR` "
            "or `hf download MODEL --local-dir DIR` first.",
        )
    return path
