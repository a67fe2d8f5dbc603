"""Where the model and the image come from: downloads, pinning, the cache, offline mode."""

from __future__ import annotations

import re
from collections.abc import Iterator

from hfdeploy.audit.extract import FileFacts
from hfdeploy.audit.findings import Finding, Rule
from hfdeploy.audit.model import (
    CACHE_FLAGS,
    HUB_ID,
    MODEL_FLAGS,
    REVISION_FLAGS,
    SHA,
    TOKENIZER_REVISION_FLAGS,
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
    """HFD002: a Dockerfile RUN step that downloads weights."""
    pattern = re.compile(
        r"snapshot_download|huggingface-cli\s+download|\bhf\s+download|from_pretrained|git\s+lfs|git\s+clone\s+https://huggingface\.co"
    )
    for line, cmd in facts.run_steps:
        if pattern.search(cmd):
            yield rule.finding(facts, line, "the image downloads model weights at build time")


def unpinned_revision(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD003: a Hub model or tokenizer loaded without a commit sha."""
    for w in facts.workloads:
        model = _hub_model(w)
        if model is None:
            continue
        rev = w.revision()
        if rev is None or not SHA.match(rev):
            what = "no revision" if rev is None else f"revision {rev!r} (a branch or tag: mutable)"
            yield rule.finding(
                facts,
                w.line_of(*REVISION_FLAGS, *MODEL_FLAGS),
                f"{model} is loaded with {what}",
            )
        if w.invocation and w.invocation.has(*TOKENIZER_REVISION_FLAGS):
            trev = w.invocation.flag(*TOKENIZER_REVISION_FLAGS) or ""
            if not SHA.match(trev):
                yield rule.finding(
                    facts,
                    w.line_of(*TOKENIZER_REVISION_FLAGS),
                    f"tokenizer revision {trev!r} is not a commit sha",
                )
    for call in facts.python_calls:
        if call.function == "login" or call.repo is None or not HUB_ID.match(call.repo):
            continue
        kw_rev = call.kwargs.get("revision")
        if not (isinstance(kw_rev, str) and SHA.match(kw_rev)):
            yield rule.finding(
                facts, call.line, f"{call.function}({call.repo!r}) without a commit sha revision"
            )


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
