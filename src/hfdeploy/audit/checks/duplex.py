"""Full-duplex speech servers (Moshi's ``moshi.server``, PersonaPlex's fork of it): TLS in the
container, and a GPU too slow to run an 80 ms frame in real time."""

from __future__ import annotations

import re
from collections.abc import Iterator

from hfdeploy.audit.extract import FileFacts
from hfdeploy.audit.findings import Finding, Rule
from hfdeploy.audit.gpus import gpu_from_label
from hfdeploy.audit.model import Workload
from hfdeploy.catalog.engines import engine_catalog
from hfdeploy.plan.realtime import REALTIME_BUDGET, frame_step, reference_spec

__all__ = ["realtime_gpu_too_slow", "tls_in_container"]

#: Engines whose servers hold full-duplex conversations (the catalog's kind).
DUPLEX = frozenset(n for n, e in engine_catalog().items() if "full-duplex-speech" in e.kinds)
#: moshi.server's TLS flag (``--ssl DIR``: DIR/cert.pem and DIR/key.pem; the engine
#: catalog's ``evidence.ssl`` for each server).
_SSL = "--ssl"
#: A certificate tool run or fetched by the start command, or a certificate made there.
_CERT_TOOL = re.compile(
    r"\b(?:mkcert|certbot|make-ssl-cert)\b|\bopenssl\s+(?:req|x509|genrsa|genpkey)\b"
)


def _variant(facts: FileFacts, w: Workload) -> str:
    """``personaplex`` when the image, the flags, the repo or the build name it (its server
    is ``moshi.server`` too), else ``moshi``."""
    inv = w.invocation
    named = [w.image or "", (inv.flag("--hf-repo") or "") if inv else ""]
    if w.source == "dockerfile":
        named += [cmd for _, cmd in facts.run_steps]  # the image installs the fork
    voices = bool(inv and inv.has("--voice-prompt-dir"))
    fork = voices or any("personaplex" in n.lower() for n in named)
    return "personaplex" if w.engine == "personaplex" or fork else "moshi"


def tls_in_container(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD034: a full-duplex server that terminates TLS itself (``--ssl``), or whose start
    command fetches or makes a certificate."""
    for w in facts.workloads:
        inv = w.invocation
        if inv is None or inv.engine not in DUPLEX or w.source == "shell":
            continue  # a command line on a host is no container
        tool = _CERT_TOOL.search(w.script[0]) if w.script else None
        if not inv.has(_SSL) and tool is None:
            continue
        variant = _variant(facts, w)
        said = []
        if inv.has(_SSL):
            said.append(f"{variant} is started with {_SSL} {inv.flag(_SSL) or ''}".rstrip()
                        + ": it serves TLS itself")  # fmt: skip
            if variant == "personaplex":
                said.append("without cert.pem and key.pem there it downloads mkcert "
                            "from GitHub at every start and serves plain HTTP when that "
                            "fails")  # fmt: skip
        if tool is not None:
            said.append(f"its start command fetches or makes a certificate ({tool.group(0)})")
        line = inv.flag_line(_SSL) if inv.has(_SSL) else w.script[1] if w.script else inv.line
        yield rule.finding(facts, line, "; ".join(said))


def _eager(w: Workload) -> bool:
    """``NO_CUDA_GRAPH`` set: the server runs each step without CUDA graphs."""
    flag = w.env_value("NO_CUDA_GRAPH")
    return bool(flag and (flag.value or "").strip().lower() not in ("", "0", "false", "no"))


def realtime_gpu_too_slow(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    """HFD038: a full-duplex server on a GPU (a node selector's or node affinity's) whose
    predicted frame step does not hold real time."""
    for w in facts.workloads:
        if w.engine not in DUPLEX or not w.node_gpus:
            continue
        variant = _variant(facts, w)
        sizing = engine_catalog()[variant].sizing
        mode = "eager" if _eager(w) else "cuda-graphs"
        seen = set()
        for label, line in w.node_gpus:
            gpu = gpu_from_label(label)
            if gpu is None or gpu.name in seen:
                continue
            seen.add(gpu.name)
            rt = frame_step(reference_spec(variant), gpu, mode=mode,
                            codec_instances=sizing.codec_instances if sizing else 1)  # fmt: skip
            if rt.ok:
                continue
            over = rt.step_ms > rt.frame_ms
            budget = REALTIME_BUDGET * rt.frame_ms
            yield rule.finding(
                facts, line,
                f"{variant} on {label} ({gpu.name}, {gpu.bandwidth_gbps:,.0f} GB/s): a predicted "
                f"frame step of {rt.step_ms:g} ms ({mode}) "
                + (f"is longer than the {rt.frame_ms} ms frame" if over
                   else f"leaves no margin in the {rt.frame_ms} ms frame")
                + f"; real time needs at most {budget:g} ms ({REALTIME_BUDGET:.0%} of it): "
                "the audio falls behind and the delay grows through the conversation",
                severity="error" if over else "warning",
            )  # fmt: skip
