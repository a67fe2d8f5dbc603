"""Every exception hfdeploy raises, under one root: :class:`HfDeployError`.

Each error carries structured fields (for ``--json``, MCP and HTTP faces) and a
``hint``: the next step a user should take. Exceptions from third-party libraries
are translated into these at exactly one boundary per dependency.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadRequestError", "BenchError", "ClientBottleneckError", "CorruptSafetensorsError",
    "DoesNotFitError", "EndpointError", "GGUFError", "GatedRepoError", "HfDeployError",
    "HubAuthError", "HubUnavailableError", "InputTooLongError", "InvalidModelRefError",
    "InvalidSettingError", "LockMismatchError", "MissingConfigError", "MissingDependencyError",
    "ModelLoadError", "ModelNotFoundError", "ModelNotServedError", "NotReadyError",
    "PayloadTooLargeError", "PickleOnlyError", "QueueFullError", "RequestTimeoutError",
    "RevisionNotFoundError", "SafetensorsHeaderError", "SafetensorsHeaderTooLargeError",
    "ServeError", "UnauthorizedError", "UnknownDtypeError", "UnknownGPUError",
    "UnknownLayerTypeError", "UnknownModelTypeError", "UpError", "YamlParseError",
]  # fmt: skip


class HfDeployError(Exception):
    """Root of every error hfdeploy raises on purpose.

    A subclass names its structured fields in its class statement and stores each one as
    an attribute of the same name; :meth:`fields` reads them back, the parent's first::

        class LockMismatchError(HfDeployError, ValueError, fields=("folder", "differences")):

    Attributes:
        message: one line saying what went wrong.
        hint: one line saying what to do next.
    """

    default_hint = (
        "Run with HFDEPLOY_DEBUG=1 for a traceback, and report it if it looks like a bug."
    )
    _fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, *, fields: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._fields = (*cls._fields, *fields)

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint or self.default_hint

    def fields(self) -> dict[str, Any]:
        """The structured fields of this error, in the order the classes name them."""
        return {name: getattr(self, name) for name in self._fields}

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON-ready data: type, message, hint and fields."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            **self.fields(),
        }


class InvalidModelRefError(HfDeployError, ValueError, fields=("ref", "reason")):
    """MODEL is neither an existing folder nor a well-formed ``owner/name[@revision]``."""

    def __init__(self, ref: str, reason: str) -> None:
        super().__init__(
            f"{ref!r} is not a model reference: {reason}",
            hint="Pass a local folder, a Hub id such as 'Qwen/Qwen2.5-7B-Instruct', "
            "or a Hub id with a revision such as 'Qwen/Qwen2.5-7B-Instruct@main'.",
        )
        self.ref, self.reason = ref, reason


class ModelNotFoundError(HfDeployError, LookupError, fields=("ref", "where")):
    """The model is not in the folder, the Hugging Face cache, or on the Hub."""

    def __init__(self, ref: str, *, where: str, hint: str | None = None) -> None:
        super().__init__(
            f"model {ref!r} not found in {where}",
            hint=hint
            or "Check the spelling; for a private repo set HF_TOKEN; offline, download it first "
            "with `hf download REPO --revision REV`.",
        )
        self.ref, self.where = ref, where


class RevisionNotFoundError(ModelNotFoundError, fields=("revision",)):
    """The repository exists but the requested revision does not."""

    def __init__(self, ref: str, revision: str, *, where: str) -> None:
        super().__init__(
            ref,
            where=where,
            hint=f"Revision {revision!r} does not exist: use a branch, tag or 40-hex commit "
            "that the repository has.",
        )
        self.message = f"revision {revision!r} of {ref!r} not found in {where}"
        self.args = (self.message,)
        self.revision = revision


class MissingConfigError(HfDeployError, FileNotFoundError, fields=("location",)):
    """The model has no ``config.json`` (nor GGUF metadata to stand in for it)."""

    def __init__(self, location: str) -> None:
        super().__init__(
            f"no config.json in {location}",
            hint="Point MODEL at the folder that holds config.json (a Transformers or "
            "Sentence-Transformers model), or at a folder with a .gguf file.",
        )
        self.location = location


class UnknownModelTypeError(HfDeployError, ValueError, fields=("model_type", "reason", "location")):
    """config.json describes an architecture hfdeploy cannot size."""

    def __init__(self, model_type: str | None, *, reason: str, location: str) -> None:
        shown = model_type or "<missing model_type>"
        super().__init__(
            f"cannot size model type {shown!r} in {location}: {reason}",
            hint="Add safetensors weights beside config.json (sizes come from their headers), "
            "or install a transformers release that knows this architecture.",
        )
        self.model_type, self.reason, self.location = model_type, reason, location


class UnknownLayerTypeError(
    HfDeployError, ValueError, fields=("model_type", "layer_types", "source")
):
    """Some layers of a model are of a type whose cache hfdeploy cannot size."""

    def __init__(self, model_type: str | None, layer_types: dict[str, int], source: str) -> None:
        shown = ", ".join(f"{name} ({n} layers)" if n else name for name, n in layer_types.items())
        super().__init__(
            f"cannot size the cache of model type {model_type or '<missing model_type>'!r}: "
            f"{shown} not known to hfdeploy's sizing (layer types from {source or 'config.json'})",
            hint="Counting them as holding nothing would say the model fits when it does not. "
            "Sizing knows full, sliding, chunked, MLA, cross-attention, Mamba, linear-attention, "
            "hybrid and cache-free layers; `hfdeploy inspect MODEL --json` shows the types it "
            "read. Report this one with the model id.",
        )
        self.model_type, self.layer_types, self.source = model_type, layer_types, source


class SafetensorsHeaderError(HfDeployError, ValueError, fields=("file", "reason")):
    """A safetensors file whose header cannot be trusted."""

    def __init__(self, file: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"{file}: bad safetensors header: {reason}",
            hint=hint
            or "The file is truncated or corrupt: download it again and compare its sha256 "
            "with the Hub's.",
        )
        self.file, self.reason = file, reason


class CorruptSafetensorsError(SafetensorsHeaderError):
    """The header is truncated, not JSON, or describes impossible tensors."""


class SafetensorsHeaderTooLargeError(SafetensorsHeaderError, fields=("header_len", "limit")):
    """The header length field points beyond the end of the file (or beyond sanity)."""

    def __init__(self, file: str, header_len: int, limit: int) -> None:
        super().__init__(
            file,
            f"header length {header_len:,} bytes exceeds the {limit:,} bytes available",
        )
        self.header_len, self.limit = header_len, limit


class UnknownDtypeError(SafetensorsHeaderError, fields=("tensor", "dtype")):
    """A tensor's dtype is not one the safetensors format defines."""

    def __init__(self, file: str, tensor: str, dtype: str) -> None:
        super().__init__(
            file,
            f"tensor {tensor!r} has unknown dtype {dtype!r}",
            hint="Upgrade hfdeploy; if the dtype is new to safetensors, report it with the "
            "model id.",
        )
        self.tensor, self.dtype = tensor, dtype


class GGUFError(HfDeployError, ValueError, fields=("file", "reason")):
    """A GGUF file that cannot be read."""

    def __init__(self, file: str, reason: str) -> None:
        super().__init__(
            f"{file}: cannot read GGUF metadata: {reason}",
            hint="Check that the file is a complete GGUF file (re-download it).",
        )
        self.file, self.reason = file, reason


class HubAuthError(HfDeployError, PermissionError, fields=("repo_id", "status", "has_token")):
    """The Hub refused access: private or gated repo, or a bad token."""

    def __init__(self, repo_id: str, *, status: int, has_token: bool) -> None:
        if has_token:
            msg = f"the Hub refused access to {repo_id!r} (HTTP {status}) with the token given"
            hint = (
                "Check that the token can read this repo, and accept its licence on the "
                "model page if it is gated."
            )
        else:
            msg = f"{repo_id!r} is private, gated or missing on the Hub (HTTP {status}, no token)"
            hint = "Set HF_TOKEN (or run `hf auth login`) with a token that can read it."
        super().__init__(msg, hint=hint)
        self.repo_id, self.status, self.has_token = repo_id, status, has_token


class GatedRepoError(HubAuthError):
    """The repo is gated and the token has not been granted access."""

    def __init__(self, repo_id: str, *, status: int, has_token: bool) -> None:
        super().__init__(repo_id, status=status, has_token=has_token)
        self.message = f"{repo_id!r} is gated on the Hub (HTTP {status})"
        self.args = (self.message,)
        self.hint = (
            f"Accept the licence at https://huggingface.co/{repo_id} and set HF_TOKEN "
            "to a token of that account."
        )


class HubUnavailableError(HfDeployError, ConnectionError, fields=("endpoint", "reason")):
    """The Hub could not be reached, or answered with a server error."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(
            f"cannot reach the Hugging Face Hub at {endpoint}: {reason}",
            hint="Check the network or HF_ENDPOINT; offline, use a local folder or a model "
            "already in the cache with HF_HUB_OFFLINE=1.",
        )
        self.endpoint, self.reason = endpoint, reason


class MissingDependencyError(HfDeployError, ImportError, fields=("package", "extra", "purpose")):
    """An optional dependency is needed for this path and is not installed."""

    def __init__(
        self, package: str, *, extra: str, purpose: str, failure: ImportError | None = None
    ) -> None:
        # Installed but broken (a version another package refuses, say) is not "missing".
        missing = failure is None or (
            isinstance(failure, ModuleNotFoundError) and failure.name == package
        )
        super().__init__(
            f"{package} is needed to {purpose} and is not installed"
            if missing
            else f"{package} is needed to {purpose} but fails to import: {failure}",
            hint=f"pip install 'hfdeploy[{extra}]'"
            + ("" if missing else " (its pinned versions work together)"),
        )
        self.package, self.extra, self.purpose = package, extra, purpose


class InvalidSettingError(HfDeployError, ValueError, fields=("name", "value", "reason")):
    """A serving setting (flag) is out of range or inconsistent with the model."""

    def __init__(self, name: str, value: object, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"invalid {name} {value!r}: {reason}", hint=hint or f"Fix {name}.")
        self.name, self.value, self.reason = name, value, reason

    def fields(self) -> dict[str, Any]:
        # The value is whatever was passed (a path, a dict, a float): its repr is valid JSON.
        return {**super().fields(), "value": repr(self.value)}


class UnknownGPUError(InvalidSettingError, fields=("known",)):
    """A GPU name that the catalog does not hold."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            "gpu",
            name,
            "not in the GPU catalog",
            hint="Use one of: " + ", ".join(known) + " (`hfdeploy size --help` lists them).",
        )
        self.known = known


class DoesNotFitError(HfDeployError, ValueError, fields=("options",)):
    """Nothing holds the model at these settings: no GPU count up to 8 on one node, nor (for
    vLLM on NVLink GPUs) up to 4 nodes of 8."""

    def __init__(self, model: str, tried: str, options: list[str]) -> None:
        super().__init__(
            f"{model} does not fit on {tried} at these settings",
            hint="Nearest options: " + "; ".join(options),
        )
        self.options = options


class ModelLoadError(HfDeployError, RuntimeError, fields=("location", "reason")):
    """``hfdeploy serve`` cannot load the model as asked (format, task, device)."""

    def __init__(self, location: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"cannot serve {location}: {reason}", hint=hint)
        self.location, self.reason = location, reason


class ServeError(HfDeployError, fields=("status", "code", "param")):
    """An error answered to an HTTP client: carries its status and an OpenAI-style code."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.param = param


class BadRequestError(ServeError, ValueError):
    """The request is well-formed JSON but asks for something invalid."""

    status = 422
    code = "invalid_request"


class InputTooLongError(BadRequestError):
    """An input has more tokens than the server accepts, and truncation was not asked for."""

    code = "input_too_long"

    def __init__(self, tokens: int, limit: int, *, param: str = "inputs") -> None:
        super().__init__(
            f"input has {tokens} tokens, more than the limit of {limit}; "
            "shorten it or send truncate=true",
            param=param,
        )
        self.tokens, self.limit = tokens, limit


class PayloadTooLargeError(ServeError):
    """The request body is over the server's size limit."""

    status = 413
    code = "payload_too_large"


class QueueFullError(ServeError):
    """The batch queue is full: the server sheds load instead of queueing without bound."""

    status = 503
    code = "overloaded"

    def __init__(self, queued: int, capacity: int, *, retry_after: int = 1) -> None:
        super().__init__(f"server overloaded: {queued} of {capacity} queue slots in use")
        self.retry_after = retry_after


class NotReadyError(ServeError):
    """The model is still loading or warming up, or the server is shutting down."""

    status = 503
    code = "not_ready"

    def __init__(self, state: str, *, retry_after: int = 5) -> None:
        super().__init__(f"model not ready ({state})")
        self.retry_after = retry_after


class RequestTimeoutError(ServeError, TimeoutError):
    """The request was not answered within the server's request timeout."""

    status = 504
    code = "timeout"

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"request not answered within {timeout_s:g} s")


class UnauthorizedError(ServeError, PermissionError):
    """The API key is missing or wrong."""

    status = 401
    code = "invalid_api_key"


class ModelNotServedError(ServeError, LookupError):
    """The request names a model this server does not serve."""

    status = 404
    code = "model_not_found"

    def __init__(self, asked: str, served: str) -> None:
        super().__init__(
            f"the model {asked!r} is not served here; this server serves {served!r}", param="model"
        )


class LockMismatchError(HfDeployError, ValueError, fields=("folder", "differences")):
    """A fetched folder no longer matches its ``model.lock.json``."""

    def __init__(self, folder: str, differences: list[str]) -> None:
        shown = "; ".join(differences[:5]) + (
            f"; and {len(differences) - 5} more" if len(differences) > 5 else ""
        )
        super().__init__(
            f"{folder} does not match its model.lock.json: {shown}",
            hint="Fetch the model again (`hfdeploy fetch MODEL@REV --to DIR`); "
            "do not edit a locked folder.",
        )
        self.folder, self.differences = folder, differences


class PickleOnlyError(HfDeployError, ValueError, fields=("repo_id", "files")):
    """The repository's weights exist only as pickle files, and pickle was not allowed."""

    def __init__(self, repo_id: str, files: list[str]) -> None:
        super().__init__(
            f"{repo_id} has pickle weights only ({', '.join(files[:3])}); "
            "loading pickle can run code",
            hint="Pass --allow-pickle if you trust the repository, "
            "or use a safetensors conversion.",
        )
        self.repo_id, self.files = repo_id, files


class YamlParseError(HfDeployError, ValueError, fields=("file", "line", "reason")):
    """A YAML file (a Kubernetes manifest, a compose file) that does not parse."""

    def __init__(self, reason: str, *, file: str, line: int | None) -> None:
        at = file if line is None else f"{file}:{line}"
        super().__init__(
            f"{at}: YAML does not parse: {reason}",
            hint="Fix the YAML there: indentation, a missing colon, an unclosed quote or bracket.",
        )
        self.file, self.line, self.reason = file, line, reason


class BenchError(HfDeployError):
    """``hfdeploy bench`` / ``hfdeploy profile`` could not measure what was asked."""


class EndpointError(BenchError, ConnectionError, fields=("url", "reason")):
    """The endpoint under test cannot be reached, or does not speak the API asked for."""

    def __init__(self, url: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"endpoint {url}: {reason}",
            hint=hint
            or "Check that the server is up and ready (curl URL/health), and pass --api if "
            "auto-detection guessed wrong.",
        )
        self.url, self.reason = url, reason


class ClientBottleneckError(BenchError, fields=("reason", "offered", "achieved")):
    """The load generator itself could not deliver the offered load: the run is invalid."""

    def __init__(self, reason: str, *, offered: float | None, achieved: float | None) -> None:
        super().__init__(
            f"the benchmark client could not keep up: {reason}",
            hint="Lower the rate or concurrency, run the client on another machine than the "
            "server, or use smaller payloads; results of this run are not the server's.",
        )
        self.reason, self.offered, self.achieved = reason, offered, achieved


class UpError(HfDeployError, fields=("step",)):
    """A step of ``hfdeploy up`` failed; the message names the step."""

    def __init__(self, step: str, message: str, *, hint: str) -> None:
        super().__init__(f"step {step}: {message}", hint=hint)
        self.step = step
