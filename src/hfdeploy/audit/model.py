"""What a deployment runs, read from any of its files: one ``Workload`` per server.

A Kubernetes container, a compose service, a ``docker run`` line, a Dockerfile or a
shell command line each become a Workload with the same fields, so that every rule is
written once. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from hfdeploy.audit.variables import Ref
from hfdeploy.catalog.engines import engine_catalog

__all__ = [
    "ENGINE_IMAGES",
    "HUB_ID",
    "SHA",
    "Argv",
    "Engine",
    "EnvVar",
    "Invocation",
    "Mount",
    "MountKind",
    "Probe",
    "PythonCall",
    "Rollout",
    "Value",
    "Workload",
    "image_engine",
    "under",
]

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
SHA = re.compile(r"^[0-9a-f]{40}$")

T = TypeVar("T")

#: An engine catalog name, or "custom" for a Python server the catalog does not know.
Engine = str

#: Image name fragment -> the engine its default entrypoint runs (the catalog's ``detect``).
ENGINE_IMAGES: tuple[tuple[str, Engine], ...] = tuple(
    (fragment, name) for name, e in engine_catalog().items() for fragment in e.detect.images
)

# Flag aliases per meaning, across engines.
MODEL_FLAGS = ("--model", "--model-id", "--model-path", "--model_id", "-m")
REVISION_FLAGS = ("--revision", "--model-revision", "--model_revision")
TOKENIZER_REVISION_FLAGS = ("--tokenizer-revision",)
TP_FLAGS = ("--tensor-parallel-size", "-tp", "--tp", "--tp-size", "--num-shard")
PP_FLAGS = ("--pipeline-parallel-size", "-pp", "--pp", "--pp-size")
MEM_FRACTION_FLAGS = ("--gpu-memory-utilization", "--mem-fraction-static")
MAX_LEN_FLAGS = ("--max-model-len", "--context-length", "--max-total-tokens")
CACHE_FLAGS = ("--download-dir", "--huggingface-hub-cache")


@dataclass(frozen=True, slots=True)
class EnvVar:
    name: str
    value: str | None  # None when it comes from a secret or another reference
    line: int
    from_secret: bool = False
    #: The variables its value was expanded from (``value: $(BASE)/hf``, ``${HF_TOKEN}``).
    refs: tuple[Ref, ...] = ()
    #: How it is set when not by a value of its own: ``ConfigMap llm key model``, ``ARG``.
    origin: str = ""


@dataclass(frozen=True, slots=True)
class Value:
    """A fact of the command line (the model, its revision, a degree of parallelism): its
    value, the line where the engine is given it, and the variables it was expanded from."""

    text: str
    line: int
    refs: tuple[Ref, ...] = ()

    @property
    def unresolved(self) -> Ref | None:
        """The first variable of the value the files do not give (None: fully known)."""
        return next((r for r in self.refs if not r.resolved), None)

    def fault_line(self, file: str) -> int:
        """The line that carries a fault of the value itself: the line of ``file`` that sets
        the variable it comes from, else where the engine is given it."""
        line, refs = self.line, self.refs
        for _ in range(16):  # down to the assignment that writes it (`-e REV=$REV`, `REV=main`)
            found = next((r.binding for r in refs if r.state == "set" and r.binding is not None
                          and r.binding.line and r.binding.file in ("", file)), None)  # fmt: skip
            if found is None:
                break
            line, refs = found.line, found.refs
        return line

    def via(self, file: str) -> str:
        """`` (from ...)`` when the value was not written where the engine reads it."""
        if not self.refs:
            return ""
        return f" (from {'; '.join(dict.fromkeys(r.where(file) for r in self.refs))})"


#: ``configMap``: a volume the kubelet writes atomically through hidden ``..data`` and
#: ``..<timestamp>`` entries (ConfigMap, Secret, projected, downward API).
MountKind = Literal[
    "pvc", "hostPath", "emptyDir", "memory", "bind", "volume", "tmpfs", "configMap", "other"
]


@dataclass(frozen=True, slots=True)
class Mount:
    path: str
    kind: MountKind
    line: int
    read_only: bool = False
    #: The volume's source: a ConfigMap's or claim's name, a compose volume's name.
    source: str = ""
    #: Kubernetes ``subPath``: one entry of the volume mounted, not the volume as a folder.
    sub_path: str | None = None


@dataclass(frozen=True, slots=True)
class Probe:
    """A Kubernetes probe, or a compose / Dockerfile health check (kind ``healthcheck``)."""

    kind: Literal["liveness", "readiness", "startup", "healthcheck"]
    line: int
    initial_delay: float = 0
    period: float = 10
    failure_threshold: int = 3
    #: The HTTP route probed (``httpGet.path``), None for exec and TCP probes.
    path: str | None = None
    #: Seconds the kubelet waits for an answer (``timeoutSeconds``, default 1).
    timeout: float = 1
    #: The command an exec probe or a health check runs, one argument per item.
    command: tuple[str, ...] = ()

    @property
    def budget_s(self) -> float:
        """Seconds a failing process survives this probe."""
        return self.initial_delay + self.period * self.failure_threshold


@dataclass(frozen=True, slots=True)
class Invocation:
    """An engine started with arguments, and where the command line is."""

    engine: Engine
    argv: tuple[str, ...]
    line: int
    #: The line of each argument, when the file puts them on lines of their own.
    arg_lines: tuple[int, ...] = ()
    #: The variables each argument was expanded from (empty when written as it is).
    arg_refs: tuple[tuple[Ref, ...], ...] = ()

    def _index(self, names: tuple[str, ...]) -> tuple[int, str | None] | None:
        for i, arg in enumerate(self.argv):
            for name in names:
                if arg == name:
                    return i, self.argv[i + 1] if i + 1 < len(self.argv) else None
                if arg.startswith(name + "="):
                    return i, arg.split("=", 1)[1]
        return None

    def value(self, *names: str) -> Value | None:
        """The first of ``names`` present, as a :class:`Value` (its line and variables)."""
        found = self._index(names)
        if found is None or found[1] is None:
            return None
        i, text = found[0], found[1]
        at = i if self.argv[i] not in names else i + 1  # `--flag=value` or `--flag value`
        return Value(text, self._at(self.arg_lines, i=i, default=self.line),
                     self._at(self.arg_refs, i=at, default=()))  # fmt: skip

    @staticmethod
    def _at(items: tuple[T, ...], *, i: int, default: T) -> T:
        return items[i] if i < len(items) else default

    def flag(self, *names: str) -> str | None:
        """The value of the first of ``names`` present (``--x v`` or ``--x=v``)."""
        found = self._index(names)
        return found[1] if found else None

    def flag_line(self, *names: str) -> int:
        """The line of the first of ``names`` present, else of the command."""
        found = self._index(names)
        if found and found[0] < len(self.arg_lines):
            return self.arg_lines[found[0]]
        return self.line

    def has(self, *names: str) -> bool:
        return any(a in names or a.split("=", 1)[0] in names for a in self.argv)

    @property
    def model(self) -> str | None:
        found = self.model_value()
        return found.text if found else None

    def model_value(self) -> Value | None:
        """The model as a flag's value or, for ``vllm serve MODEL`` and the vllm-openai and
        hfdeploy images, the first positional argument."""
        found = self.value(*MODEL_FLAGS)
        if found is not None:
            return found
        at = None
        for i, arg in enumerate(self.argv):
            if arg == "serve" and i + 1 < len(self.argv) and not self.argv[i + 1].startswith("-"):
                at = i + 1
                break
        if at is None and self.engine == "vllm" and self.argv and not self.argv[0].startswith("-"):
            at = 0
        if at is None:
            return None
        return Value(self.argv[at], self._at(self.arg_lines, i=at, default=self.line),
                     self._at(self.arg_refs, i=at, default=()))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Argv:
    """A command line written one argument per item (exec form), with each item's line."""

    args: tuple[str, ...]
    lines: tuple[int, ...]
    #: The file sets the command itself (Kubernetes ``command``, compose ``entrypoint``,
    #: Dockerfile ENTRYPOINT, ``--entrypoint``, Endpoints ``container_command``): the image's
    #: own ENTRYPOINT does not run; otherwise ``args`` are appended to it.
    own_entrypoint: bool

    def line(self, i: int) -> int:
        return self.lines[i] if i < len(self.lines) else self.lines[-1] if self.lines else 0


@dataclass(frozen=True, slots=True)
class Rollout:
    """A Deployment's update strategy as written (absent fields are Kubernetes' defaults)."""

    type: str
    max_surge: int | str
    max_unavailable: int | str
    line: int


@dataclass(slots=True)
class Workload:
    """One server process as a deployment file describes it."""

    file: str
    line: int
    source: Literal["kubernetes", "compose", "docker-run", "dockerfile", "shell", "hf-endpoint"]
    name: str = ""
    image: str | None = None
    image_line: int = 0
    invocation: Invocation | None = None
    env: list[EnvVar] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    gpus: int | None = None
    gpus_line: int = 0
    shm: bool = False  # a memory-backed /dev/shm, shm_size or --shm-size
    host_ipc: bool = False
    host_ipc_line: int = 0
    user: str | None = None  # "root", "nonroot" or None (unknown)
    node_gpu: str | None = None  # GPU type from a node selector, when one is given
    #: Every GPU type the pod may be scheduled on, as written (a node selector's value, or
    #: the values a required node affinity allows), with its line.
    node_gpus: list[tuple[str, int]] = field(default_factory=list)
    kind: str = ""  # Kubernetes kind (Deployment, ...)
    #: Pods that share one engine instance (a LeaderWorkerSet group's size): the GPUs of
    #: TP x PP are spread over them.
    group_size: int = 1
    uid: int | None = None  # the numeric user id, when the file gives one
    #: The command line as written one argument per item (None: a shell-form string).
    exec: Argv | None = None
    #: The shell script the container starts with (``sh -c SCRIPT``, a Dockerfile's
    #: shell-form CMD or ENTRYPOINT), and its line; None when no shell starts it.
    script: tuple[str, int] | None = None
    ports: list[tuple[int, int]] = field(default_factory=list)  # (container port, line)
    caps_drop: frozenset[str] = frozenset()  # capabilities dropped and added, upper case
    caps_add: frozenset[str] = frozenset()
    caps_line: int = 0
    #: The pod's ``net.ipv4.ip_unprivileged_port_start`` sysctl, when it sets one.
    unprivileged_port_start: int | None = None
    # The object the pod belongs to (Kubernetes): its name, namespace, replicas, pod labels
    object_name: str = ""
    namespace: str | None = None
    replicas: int | None = None  # None: not a replicated kind, or not known
    pod_labels: dict[str, str] = field(default_factory=dict)
    rollout: Rollout | None = None
    #: Compose ``build``: the Dockerfile the service's image is built from (its path beside
    #: the compose file's), and the line of ``build``.
    build: str | None = None
    build_line: int = 0
    #: What that Dockerfile starts, when it is in the same run and the service sets no command
    #: of its own (``link_builds``): its lines are the Dockerfile's, so rules report the
    #: flags where they are written, not here.
    built: Invocation | None = None

    def env_value(self, name: str) -> EnvVar | None:
        return next((e for e in self.env if e.name == name), None)

    @property
    def engine(self) -> Engine | None:
        return self.invocation.engine if self.invocation else None

    def model(self) -> str | None:
        found = self.model_value()
        return found.text if found else None

    def model_value(self) -> Value | None:
        """The model the server loads: its command line (engine variables included), else the
        ``MODEL_ID`` or ``MODEL_NAME`` a custom image reads."""
        if self.invocation and (found := self.invocation.model_value()):
            return found
        return self._env_fact("MODEL_ID", "MODEL_NAME")

    def _reads_env(self) -> bool:
        """Whether a generic ``MODEL_ID`` / ``REVISION`` may be the server's: not for an engine
        of the catalog, which reads what its catalog entry says (TGI's and TEI's variables are
        flags by then) and ignores the rest (vLLM has no ``REVISION``)."""
        return self.engine in (None, "custom") or engine_catalog().get(self.engine) is None

    def revision(self) -> str | None:
        found = self.revision_value()
        return found.text if found else None

    def revision_value(self) -> Value | None:
        if self.invocation and (found := self.invocation.value(*REVISION_FLAGS)):
            return found
        return self._env_fact("REVISION", "MODEL_REVISION")

    def _env_fact(self, *names: str) -> Value | None:
        if not self._reads_env():
            return None
        env = next((e for n in names if (e := self.env_value(n))), None)
        if env is None or env.value is None:
            return None
        return Value(env.value, env.line, env.refs)

    def line_of(self, *flags: str) -> int:
        """The line of the first of ``flags`` given (in this order, not the command's), else
        of the command, else of the workload."""
        if self.invocation is None:
            return self.line
        for flag in flags:
            if self.invocation.has(flag):
                return self.invocation.flag_line(flag)
        return self.invocation.line

    def image_engine(self) -> Engine | None:
        """The engine the image's own ENTRYPOINT starts, from the image name alone."""
        return image_engine(self.image)

    def tp(self) -> int:
        return _int(self.invocation.flag(*TP_FLAGS)) if self.invocation else 1

    def pp(self) -> int:
        return _int(self.invocation.flag(*PP_FLAGS)) if self.invocation else 1


def _int(value: str | None) -> int:
    try:
        return int(value) if value is not None else 1
    except ValueError:
        return 1


@dataclass(frozen=True, slots=True)
class PythonCall:
    """A Hub-facing call in Python source, with its keyword arguments as far as the file
    gives them (literals, constants, environment reads: ``formats/python.py``)."""

    function: str
    line: int
    #: The repository, when the file gives it (an environment read's default included).
    repo: str | None
    kwargs: dict[str, object]
    #: The repository argument as evaluated (a string, an environment read, ...), or None.
    source: object = None


def under(path: str, mount: str) -> bool:
    """Whether ``path`` is ``mount`` or inside it."""
    m = mount.rstrip("/")
    return path.rstrip("/") == m or path.startswith(m + "/")


def image_engine(image: str | None) -> Engine | None:
    """The engine an image runs, by the catalog's image name fragments."""
    return next((e for fragment, e in ENGINE_IMAGES if image and fragment in image), None)
