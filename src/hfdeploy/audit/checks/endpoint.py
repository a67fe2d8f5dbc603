"""What an image is told to run, and where Inference Endpoints takes the model and image from:
arguments that repeat the image's ENTRYPOINT, an endpoint that is not pinned."""

from __future__ import annotations

from collections.abc import Iterator

from hfdeploy.audit.extract import FileFacts
from hfdeploy.audit.findings import Finding, Rule
from hfdeploy.audit.model import HUB_ID, SHA
from hfdeploy.audit.placeholders import placeholder
from hfdeploy.catalog.engines import engine_catalog
from hfdeploy.render.common import FETCH_IMAGE

__all__ = ["args_repeat_entrypoint", "endpoint_not_pinned"]

_SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh"})
_PYTHONS = frozenset({"python", "python3"})
#: Command words that start an engine (the catalog's ``detect``).
_COMMANDS = tuple(words for e in engine_catalog().values() for words in e.detect.commands)
#: hfdeploy's own images (its server's, from the catalog, and the fetch Job's), which exist
#: only where they were built and pushed.
_OWN_IMAGES = frozenset(
    {FETCH_IMAGE.split(":", 1)[0]}
    | {e.deploy.image for e in engine_catalog().values() if e.name == "hfdeploy" and e.deploy}
)


#: What each kind of file calls the arguments appended to the image's ENTRYPOINT.
_ARGS_NAME = {"hf-endpoint": "container_args", "kubernetes": "args", "compose": "command",
              "dockerfile": "CMD", "docker-run": "the arguments after the image"}  # fmt: skip


def _names(args: tuple[str, ...]) -> list[str]:
    return [a.rsplit("/", 1)[-1] for a in args[:3]]


def _repeated(args: tuple[str, ...], entry: tuple[str, ...]) -> str | None:
    """The command the arguments start with again, when they start with one."""
    names = _names(args)
    if not names:
        return None
    if names[0] == entry[0].rsplit("/", 1)[-1]:
        n = len(entry) if names[: len(entry)] == [e.rsplit("/", 1)[-1] for e in entry] else 1
        return " ".join(args[:n])
    if len(entry) > 1 and names[0] == entry[-1]:  # `vllm serve` + `serve MODEL`
        return args[0]
    if names[0] in _PYTHONS and names[1:2] == ["-m"] and len(args) > 2:
        return " ".join(args[:3])
    if names[0] in _SHELLS:
        return " ".join(args[:2])
    for words in _COMMANDS:
        if tuple(names[: len(words)]) == words:
            return " ".join(args[: len(words)])
    return None


def args_repeat_entrypoint(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD020: arguments appended to an image's ENTRYPOINT that start with a command again."""
    for w in facts.workloads:
        argv = w.exec
        engine = w.image_engine()
        spec = engine_catalog().get(engine or "")
        if argv is None or argv.own_entrypoint or spec is None or spec.deploy is None:
            continue
        entry = spec.deploy.image_entrypoint
        again = _repeated(argv.args, entry) if entry and argv.args else None
        if again:
            where = _ARGS_NAME.get(w.source, "the arguments")
            yield rule.finding(
                facts, argv.line(0),
                f"{w.image} runs `{' '.join(entry)}` (its ENTRYPOINT) followed by {where}: "
                f"starting with `{again}`, the process is `{' '.join(entry)} {again} ...`, "
                f"which {engine} rejects",
            )  # fmt: skip


def endpoint_not_pinned(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD021: an Inference Endpoint whose repository, revision or image is not one that
    resolves to a fixed, pullable thing."""
    ep = facts.endpoint
    if ep is None:
        return
    repo = ep.repository
    why = placeholder(repo) if repo else None
    if repo is None or why or not HUB_ID.match(repo):
        yield rule.finding(
            facts, ep.repository_line,
            "repository is missing" if repo is None
            else f"repository {repo!r} is {why}" if why
            else f"repository {repo!r} is not a Hub repository id (owner/name)",
        )  # fmt: skip
    rev = ep.revision
    if rev is None or not SHA.match(rev):
        bad = placeholder(rev) if rev else None
        yield rule.finding(
            facts, ep.revision_line,
            "revision is null: the endpoint serves whatever the main branch holds when it "
            "(re)starts" if rev is None
            else f"revision {rev!r} is {bad}" if bad
            else f"revision {rev!r} is a branch or tag, not a commit: it can move",
            severity=None if bad else "warning",
        )  # fmt: skip
    image = ep.image or ""
    if "/" not in image and image.split("@", 1)[0].split(":", 1)[0] in _OWN_IMAGES:
        yield rule.finding(
            facts, ep.image_line,
            f"custom_image.url {image!r} is a local tag: the endpoint pulls it from Docker "
            "Hub, where it does not exist; push it to a registry and name that",
        )  # fmt: skip
