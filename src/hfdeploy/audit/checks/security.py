"""What can leak or run code: tokens in files, remote code, pickle weights, host IPC."""

from __future__ import annotations

import re
from collections.abc import Iterator
from fnmatch import fnmatch

from hfdeploy.audit.extract import FileFacts
from hfdeploy.audit.findings import Finding, Rule
from hfdeploy.audit.formats.python import EnvRead
from hfdeploy.audit.model import SHA, EnvVar
from hfdeploy.audit.variables import Binding

__all__ = ["host_ipc", "pickle_weights", "token_in_plaintext", "trust_remote_code"]

TOKEN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACEHUB_API_TOKEN", "HF_API_TOKEN")
_TOKEN_SHAPE = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")
_REFERENCE = re.compile(r"^\$(\{\w+(:?[-?][^}]*)?\}|\w+|\(\w+\))$")
_PLACEHOLDER = re.compile(
    r"^(<.*>|\$\{?\w+\}?|\$\(\w+\)|x+|changeme|your[_-]?\w*|hf_x+|\*+|\.\.\.|)$", re.I
)


def _is_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.match(value.strip()))


#: Where a value is set outside the file that uses it (``.env``, env files, ConfigMaps).
_ELSEWHERE = ("ConfigMap", "env_file", "source", "--env-file", ".env")


def _written_here(e: EnvVar | Binding, file: str) -> tuple[bool, int, str]:
    """Whether a variable's value is written in ``file`` (as it is, through a variable set in
    the file, or as a reference's default), and the line that holds it. A value from another
    file (``.env``, an env file, a ConfigMap) is not: that file may stay out of version
    control, and a token it holds is that file's finding."""
    if e.origin.startswith(_ELSEWHERE) or (isinstance(e, Binding) and e.file not in ("", file)):
        return False, e.line, e.name
    for r in e.refs:
        if r.state == "default":
            return True, e.line, e.name
        if r.state == "set" and r.binding is not None:
            here, line, name = _written_here(r.binding, file)
            return here, line or e.line, name
    return not e.refs, e.line, e.name


def token_in_plaintext(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD004: a Hugging Face token written in the file."""
    reported: set[int] = set()
    for w in facts.workloads:
        for e in w.env:
            if e.name not in TOKEN_VARS or e.value is None or e.from_secret:
                continue
            here, line, holder = _written_here(e, facts.path)
            if not here or _REFERENCE.match(e.value.strip()) or e.origin == "ENV":
                continue  # ${HF_TOKEN}: taken from the environment at run time
            reported.add(line)
            if _is_placeholder(e.value):
                yield rule.finding(
                    facts, line,
                    f"{e.name} has a placeholder value meant to be replaced in the file",
                    severity="warning",
                )  # fmt: skip
            else:
                via = f" ({holder} on line {line}, given as {e.name} on line {e.line})"
                yield rule.finding(facts, line, f"{e.name} is set to a literal token"
                                   + (via if line != e.line else ""))  # fmt: skip
    yield from _image_tokens(rule, facts, reported)
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
    env_lines |= reported | {e.line for e in facts.build_args if e.name in TOKEN_VARS}
    for n, text_line in enumerate(facts.text.splitlines(), 1):
        m = _TOKEN_SHAPE.search(text_line)
        # A token env var's value sits on its own line or the next: reported above.
        if m and not (env_lines & {n, n - 1}):
            yield rule.finding(facts, n, "an hf_-shaped token is written in the file")


def _image_tokens(rule: Rule, facts: FileFacts, reported: set[int]) -> Iterator[Finding]:
    """A Dockerfile's ``ARG`` or ``ENV`` carrying a token: a build argument's value is kept
    in the image's history, an ``ENV``'s in its configuration (a build secret is in neither)."""
    for e in facts.build_args:
        if e.name in TOKEN_VARS:
            reported.add(e.line)
            yield rule.finding(
                facts, e.line,
                f"ARG {e.name}: the value given with --build-arg is kept in the image's history "
                "(`docker history`), readable by anyone who pulls the image",
            )  # fmt: skip
    for w in facts.workloads:
        for e in w.env:
            if e.origin == "ENV" and e.name in TOKEN_VARS and (e.value or "").strip():
                reported.add(e.line)
                literal = not e.refs and not _is_placeholder(e.value or "")
                source = e.refs[0].written if e.refs else "a placeholder"
                yield rule.finding(
                    facts, e.line,
                    f"ENV {e.name} is set "
                    + ("to a literal token" if literal else f"from {source}")
                    + ": it is kept in the image's configuration, shown by `docker inspect` and "
                    "set in every container",
                )  # fmt: skip


def trust_remote_code(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD005: the model repo's code runs in the server (an error unless pinned)."""
    for w in facts.workloads:
        env = w.env_value("TRUST_REMOTE_CODE")
        flag = w.invocation is not None and w.invocation.has(
            "--trust-remote-code", "--trust_remote_code")  # fmt: skip
        on = flag or (env is not None and (env.value or "").lower() in ("1", "true", "yes"))
        if not on:
            continue
        rev = w.revision()
        pinned = rev is not None and bool(SHA.match(rev))
        line = w.line_of("--trust-remote-code", "--trust_remote_code")
        yield rule.finding(
            facts,
            line if flag or env is None else env.line,
            "remote code from the model repo runs in the server"
            + (f" (TRUST_REMOTE_CODE={env.value})" if not flag and env else "")
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
            if isinstance(kw_rev, EnvRead) and isinstance(kw_rev.default, str):
                kw_rev = kw_rev.default
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
        admitted = _pickle_patterns(call.kwargs.get("allow_patterns"),
                                    call.kwargs.get("ignore_patterns"))  # fmt: skip
        if admitted:
            yield rule.finding(
                facts, call.line,
                f"{call.function}(allow_patterns=...) fetches pickle weights: "
                f"{', '.join(repr(p) for p in admitted)} admits "
                f"{', '.join(n for n in _PICKLE_NAMES if any(fnmatch(n, p) for p in admitted))}",
            )  # fmt: skip
        filename = call.kwargs.get("filename")
        if (
            call.function == "hf_hub_download"
            and isinstance(filename, str)
            and filename.endswith(_PICKLE_SUFFIXES)
        ):
            message = f"hf_hub_download(filename={filename!r}) fetches pickle weights"
            yield rule.finding(facts, call.line, message)


_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
#: File names checkpoints are saved under in pickle formats, and in safetensors.
_PICKLE_NAMES = ("pytorch_model.bin", "pytorch_model-00001-of-00002.bin", "model.pt",
                 "model.pth", "model.ckpt", "training_args.bin")  # fmt: skip
_SAFE_NAMES = ("model.safetensors", "model-00001-of-00002.safetensors", "config.json")


def _pickle_patterns(allow: object, ignore: object) -> list[str]:
    """The ``allow_patterns`` that admit pickle weight files ``ignore_patterns`` keeps, but not
    everything (``*`` is the same as no pattern: what the repository holds)."""
    allows = [allow] if isinstance(allow, str) else allow if isinstance(allow, list) else []
    ignores = [ignore] if isinstance(ignore, str) else ignore if isinstance(ignore, list) else []
    out = []
    for p in (str(a) for a in allows if isinstance(a, str)):
        pickles = [n for n in _PICKLE_NAMES if fnmatch(n, p)
                   and not any(fnmatch(n, str(i)) for i in ignores)]  # fmt: skip
        if pickles and not all(fnmatch(n, p) for n in _SAFE_NAMES):
            out.append(p)
    return out


def host_ipc(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD010: the host's IPC namespace shared with the container."""
    for w in facts.workloads:
        if w.host_ipc:
            yield rule.finding(
                facts,
                w.host_ipc_line or w.line,
                "the host's IPC namespace is shared for shared memory",
            )
