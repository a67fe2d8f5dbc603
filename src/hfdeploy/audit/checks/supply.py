"""Where the model and the image come from: downloads, pinning, the cache, offline mode."""

from __future__ import annotations

from collections.abc import Iterator

from hfdeploy.audit.extract import FileFacts
from hfdeploy.audit.findings import Finding, Rule, Severity
from hfdeploy.audit.formats.dockerfile import DOWNLOADS
from hfdeploy.audit.formats.python import Dynamic, EnvRead
from hfdeploy.audit.model import (
    CACHE_FLAGS,
    HUB_ID,
    MODEL_FLAGS,
    REVISION_FLAGS,
    SHA,
    TOKENIZER_REVISION_FLAGS,
    PythonCall,
    Value,
    Workload,
    under,
)
from hfdeploy.catalog.engines import engine_catalog

__all__ = [
    "cache_not_persistent",
    "hub_download_at_start",
    "hub_online_at_runtime",
    "mutable_image_tag",
    "root_cache_path",
    "unpinned_revision",
    "weights_baked_into_image",
]

CACHE_VARS = ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE")
_CACHE_PATHS = ("/root/.cache/huggingface", "/data", "/.cache/huggingface")


def _hub_model(w: Workload) -> str | None:
    model = w.model()
    return model if model and HUB_ID.match(model) and not model.startswith((".", "/")) else None


def _unresolved_model(w: Workload) -> Value | None:
    """The model, when the files do not give its value (an unset or secret variable)."""
    model = w.model_value()
    return model if model is not None and model.unresolved is not None else None


def _cache_paths(w: Workload) -> set[str]:
    """Where the workload's Hugging Face cache can be: env, engine flags, image defaults."""
    paths = {e.value for e in w.env if e.name in CACHE_VARS and e.value}
    if w.invocation:
        paths |= {v for f in CACHE_FLAGS if (v := w.invocation.flag(f))}
    return paths | set(_CACHE_PATHS)


def _repo_download(w: Workload) -> tuple[str, str, int] | None:
    """A server given a Hub repo for its files (``moshi.server --hf-repo``) that takes its
    weights from it, not from local paths: the repo, what it downloads, the line. A compose
    service built from a Dockerfile of the run is read with that Dockerfile's command."""
    inv = w.invocation or w.built
    spec = engine_catalog().get(inv.engine if inv else "")
    flags = spec.deploy.flags if spec and spec.deploy else {}
    repo = inv.flag(flags["repo"]) if inv and "repo" in flags else None
    if inv is None or repo is None or not HUB_ID.match(repo):
        return None
    # The weights' flags take paths; an hf:// URL (or none) is read from the Hub.
    fetched = [f for k in ("lm", "codec") if (f := flags.get(k))
               and (inv.flag(f) or "hf://").startswith("hf://")]  # fmt: skip
    if not fetched:
        return None
    line = inv.flag_line(flags["repo"]) if inv is w.invocation else w.build_line or w.line
    return f"{repo} (no local {' or '.join(fetched)})", inv.engine, line


def hub_download_at_start(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD001: a Hub model with no persistent volume behind the Hugging Face cache."""
    for w in facts.workloads:
        model, engine, line = _hub_model(w), w.engine, w.line_of(*MODEL_FLAGS)
        if model is None and (found := _repo_download(w)):
            model, engine, line = found
        elif model is not None and (value := w.model_value()):
            model, line = f"{model}{value.via(facts.path)}", value.line
        # A command line on a host (shell) keeps the host's cache across restarts.
        if model is None or w.source in ("dockerfile", "shell"):
            continue
        cache_paths = _cache_paths(w)
        persistent = [
            m
            for m in w.mounts
            if m.kind in ("pvc", "hostPath", "volume", "bind")
            and any(under(c, m.path) for c in cache_paths)
        ]
        if not persistent:
            yield rule.finding(
                facts,
                line,
                f"{engine or 'the server'} downloads {model} from the Hub at every start: "
                "no persistent volume backs the Hugging Face cache",
            )


def weights_baked_into_image(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD002: a Dockerfile RUN step that downloads weights, itself or through a script of
    its build context."""
    for line, cmd in facts.run_steps:
        if DOWNLOADS.search(cmd):
            yield rule.finding(facts, line, "the image downloads model weights at build time")
    for line, what in facts.baked:
        yield rule.finding(facts, line, f"the image downloads model weights at build time: {what}")


def _not_a_commit(rev: Value, file: str) -> str:
    """What a revision that is not a 40-hex sha is, for a message."""
    text = rev.text
    if (ref := rev.unresolved) is not None and ref.state == "unset":
        return (f"revision {text!r}: nothing in the files sets {ref.name}, so the engine is "
                "given the text as written")  # fmt: skip
    text, via = rev.text, rev.via(file)
    if text.startswith("refs/pr/"):
        return f"revision {text!r}{via} (a pull request's head: it moves with every push)"
    if len(text) < 40 and all(c in "0123456789abcdef" for c in text.lower()) and text:
        return f"revision {text!r}{via} (a short sha: only a full commit sha pins)"
    return f"revision {text!r}{via} (a branch or tag: mutable)"


def unpinned_revision(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD003: a Hub model or tokenizer loaded without a commit sha."""
    for w in facts.workloads:
        yield from _workload_revisions(rule, facts, w)
    for call in facts.python_calls:
        yield from _call_revision(rule, facts, call)


def _workload_revisions(rule: Rule, facts: FileFacts, w: Workload) -> Iterator[Finding]:
    model, value = _hub_model(w), w.model_value()
    unresolved = _unresolved_model(w)
    if (model is None and unresolved is None) or value is None:
        return
    shown = model if model else f"the model id from {value.unresolved.where(facts.path)},"  # type: ignore[union-attr]
    rev = w.revision_value()
    line = rev.line if rev else w.line_of(*REVISION_FLAGS, *MODEL_FLAGS)
    if rev is not None and (ref := rev.unresolved) is not None and ref.state == "unknown":
        yield rule.finding(
            facts, rev.line,
            f"{shown} is loaded with the revision from {ref.where(facts.path)}: pinned only "
            "if that is a commit sha", severity="info",
        )  # fmt: skip
    elif rev is None or not SHA.match(rev.text):
        what = "no revision" if rev is None else _not_a_commit(rev, facts.path)
        at = rev.fault_line(facts.path) if rev else line
        yield rule.finding(facts, at, f"{shown}{'' if model is None else value.via(facts.path)} "
                                      f"is loaded with {what}",
                           severity="info" if model is None and rev is None else None)  # fmt: skip
    if w.invocation and w.invocation.has(*TOKENIZER_REVISION_FLAGS):
        trev = w.invocation.value(*TOKENIZER_REVISION_FLAGS)
        if trev is None or not SHA.match(trev.text):
            text = trev.text if trev else ""
            at = trev.fault_line(facts.path) if trev else w.line_of(*TOKENIZER_REVISION_FLAGS)
            yield rule.finding(
                facts, at,
                f"tokenizer revision {text!r} is not a commit sha"
                + (trev.via(facts.path) if trev else ""),
            )  # fmt: skip


def _call_revision(rule: Rule, facts: FileFacts, call: PythonCall) -> Iterator[Finding]:
    """A Python Hub call's revision: a sha, an environment read (unpinned when unset unless
    its default is a sha), or a value the file does not give."""
    source = call.source
    known = call.repo is not None and bool(HUB_ID.match(call.repo))
    if call.function == "login" or not (known or isinstance(source, EnvRead | Dynamic)):
        return
    verdict = _python_revision(call.kwargs.get("revision"))
    if verdict is None:
        return
    what, severity = verdict
    if known:
        shown = f"{call.function}({call.repo!r})"
        shown += f" (the default of {source})" if isinstance(source, EnvRead) else ""
    else:  # the repository is not known: unpinned only if it names one on the Hub
        shown = f"{call.function}() of the model from {source}, unresolved,"
        severity = "info" if "revision" not in call.kwargs else severity
    yield rule.finding(facts, call.line, f"{shown} {what}", severity=severity)


def _python_revision(rev: object) -> tuple[str, Severity | None] | None:
    """What a Python call's ``revision=`` is when it is not a commit sha (None when it is)."""
    match rev:
        case None:
            return "without a commit sha revision", None
        case str() if SHA.match(rev):
            return None
        case str():
            return f"with revision {rev!r}, not a commit sha", None
        case EnvRead(default=str() as default) if SHA.match(default):
            return None
        case EnvRead(required=True):
            return (f"with its revision from {rev}, unresolved: pinned only if the environment "
                    "gives a commit sha", "info")  # fmt: skip
        case EnvRead(default=default):
            unset = "no revision" if default is None else f"revision {default!r}"
            return f"with its revision from {rev}: {rev.unset} it loads {unset}", None
        case Dynamic():
            return (f"with its revision from {rev.text or 'a computed value'}, unresolved: "
                    "pinned only if it holds a commit sha", "info")  # fmt: skip
    return f"with revision {rev!r}, not a commit sha", None


def mutable_image_tag(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD013: an image with no tag or a mutable one."""
    for w in facts.workloads:
        image = w.image
        if not image or "@sha256:" in image or image.startswith("$") or image.lower() == "scratch":
            continue
        name = image.rsplit("/", 1)[-1]
        tag = name.split(":", 1)[1] if ":" in name else None
        if tag is None or tag in ("latest", "main", "nightly", "edge"):
            yield rule.finding(
                facts,
                w.image_line or w.line,
                f"image {image} "
                + ("has no tag" if tag is None else f"uses the mutable tag {tag!r}"),
            )


def hub_online_at_runtime(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD014: a local model served without HF_HUB_OFFLINE."""
    for w in facts.workloads:
        model = w.model()
        if not model or _hub_model(w) or w.source == "dockerfile" or w.engine == "hfdeploy":
            continue
        if _unresolved_model(w):
            continue  # not known to be a local path
        offline = w.env_value("HF_HUB_OFFLINE")
        if offline is None or (offline.value or "") not in ("1", "true", "True"):
            yield rule.finding(
                facts,
                w.line_of(*MODEL_FLAGS),
                f"the model is read from {model} but HF_HUB_OFFLINE is not set: "
                "the server may still call the Hub",
            )


def cache_not_persistent(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD015: the Hugging Face cache on ephemeral storage."""
    for w in facts.workloads:
        if _hub_model(w) is None:
            continue
        cache = _cache_paths(w)
        for m in w.mounts:
            if m.kind in ("emptyDir", "memory", "tmpfs") and any(under(c, m.path) for c in cache):
                yield rule.finding(
                    facts,
                    m.line,
                    f"the Hugging Face cache at {m.path} is on ephemeral storage: "
                    "the model is downloaded again on every reschedule",
                )


def root_cache_path(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD016: a cache path under /root for a non-root user."""
    for w in facts.workloads:
        if w.user != "nonroot":
            continue
        for e in w.env:
            if e.name in CACHE_VARS and (e.value or "").startswith("/root"):
                yield rule.finding(
                    facts,
                    e.line,
                    f"{e.name}={e.value} is under /root, which a non-root user cannot write",
                )
