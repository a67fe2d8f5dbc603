"""What can leak or run code: tokens in files, remote code, pickle weights, host IPC."""

from __future__ import annotations

import re
from collections.abc import Iterator

from hfdeploy.audit.extract import FileFacts
from hfdeploy.audit.findings import Finding, Rule
from hfdeploy.audit.model import SHA

__all__ = ["host_ipc", "pickle_weights", "token_in_plaintext", "trust_remote_code"]

TOKEN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACEHUB_API_TOKEN", "HF_API_TOKEN")
_TOKEN_SHAPE = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")
_REFERENCE = re.compile(r"^\$(\{\w+(:?[-?][^}]*)?\}|\w+|\(\w+\))$")
_PLACEHOLDER = re.compile(
    r"^(<.*>|\$\{?\w+\}?|\$\(\w+\)|x+|changeme|your[_-]?\w*|hf_x+|\*+|\.\.\.|)$", re.I
)


def _is_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.match(value.strip()))


def token_in_plaintext(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD004: a Hugging Face token written in the file."""
    for w in facts.workloads:
        for e in w.env:
            if e.name in TOKEN_VARS and e.value is not None and not e.from_secret:
                if _REFERENCE.match(e.value.strip()):
                    continue  # ${HF_TOKEN}: taken from the environment at run time
                if _is_placeholder(e.value):
                    yield rule.finding(
                        facts,
                        e.line,
                        f"{e.name} has a placeholder value meant to be replaced in the file",
                        severity="warning",
                    )
                else:
                    yield rule.finding(facts, e.line, f"{e.name} is set to a literal token")
    for line, cmd in facts.run_steps:
        m = re.search(r"(huggingface-cli|hf\s+auth)\s+login\b.*--token[ =](\S+)", cmd)
        if m:
            yield rule.finding(
                facts, line, "a build step logs in with a token: it stays in the image history"
            )
    for call in facts.python_calls:
        token = call.kwargs.get("token")
        if call.function == "login" and isinstance(token, str) and not _is_placeholder(token):
            yield rule.finding(facts, call.line, "login() with a literal token")
    env_lines = {e.line for w in facts.workloads for e in w.env if e.name in TOKEN_VARS}
    for n, text_line in enumerate(facts.text.splitlines(), 1):
        m = _TOKEN_SHAPE.search(text_line)
        # A token env var's value sits on its own line or the next: reported above.
        if m and not (env_lines & {n, n - 1}):
            yield rule.finding(facts, n, "an hf_-shaped token is written in the file")


def trust_remote_code(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD005: the model repo's code runs in the server (an error unless pinned)."""
    for w in facts.workloads:
        env = w.env_value("TRUST_REMOTE_CODE")
        on = (
            w.invocation is not None
            and w.invocation.has("--trust-remote-code", "--trust_remote_code")
        ) or (env is not None and (env.value or "").lower() in ("1", "true", "yes"))
        if not on:
            continue
        rev = w.revision()
        pinned = rev is not None and bool(SHA.match(rev))
        yield rule.finding(
            facts,
            w.line_of("--trust-remote-code", "--trust_remote_code"),
            "remote code from the model repo runs in the server"
            + (
                ""
                if pinned
                else ", and the revision is not pinned: the code can change at any restart"
            ),
            severity="warning" if pinned else "error",
        )
    for call in facts.python_calls:
        if call.kwargs.get("trust_remote_code") is True:
            kw_rev = call.kwargs.get("revision")
            pinned = isinstance(kw_rev, str) and bool(SHA.match(kw_rev))
            yield rule.finding(
                facts,
                call.line,
                f"{call.function}(trust_remote_code=True)"
                + ("" if pinned else " without a pinned revision"),
                severity="warning" if pinned else "error",
            )


def pickle_weights(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD006: weights loaded or fetched as pickle."""
    for w in facts.workloads:
        inv = w.invocation
        if inv is None:
            continue
        if inv.flag("--load-format") in ("pt", "pickle"):
            yield rule.finding(
                facts, w.line_of("--load-format"), "--load-format pt loads pickle weights"
            )
        if inv.engine == "hfdeploy" and inv.has("--allow-pickle"):
            yield rule.finding(
                facts, w.line_of("--allow-pickle"), "--allow-pickle loads pickle weights"
            )
    for call in facts.python_calls:
        if call.kwargs.get("use_safetensors") is False:
            yield rule.finding(facts, call.line, f"{call.function}(use_safetensors=False)")
        patterns = call.kwargs.get("allow_patterns")
        if isinstance(patterns, str):
            patterns = [patterns]
        if isinstance(patterns, list | tuple) and any(
            str(p).endswith((".bin", ".pt", ".pth", ".ckpt")) for p in patterns
        ):
            yield rule.finding(
                facts, call.line, f"{call.function}(allow_patterns=...) fetches pickle weights"
            )


def host_ipc(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD010: the host's IPC namespace shared with the container."""
    for w in facts.workloads:
        if w.host_ipc:
            yield rule.finding(
                facts,
                w.host_ipc_line or w.line,
                "the host's IPC namespace is shared for shared memory",
            )
