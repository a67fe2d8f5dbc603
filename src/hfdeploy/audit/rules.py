"""The audit rule catalog: each rule a stable id, one tag, a default severity, and a check.

The rules' texts are package data (``rules.toml``, in catalog order); the checks, pure
functions over :class:`FileFacts`, live in ``audit/checks/`` by area and are keyed by id
here. Each rule has a page in ``docs/rules/<ID>.md``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from importlib import resources

from hfdeploy.audit.checks import runtime, security, supply
from hfdeploy.audit.extract import FileFacts
from hfdeploy.audit.findings import Check, Finding, Rule

__all__ = ["PARSE_ERROR", "RULES"]

_CHECKS: dict[str, Check] = {
    "HFD001": supply.hub_download_at_start,
    "HFD002": supply.weights_baked_into_image,
    "HFD003": supply.unpinned_revision,
    "HFD004": security.token_in_plaintext,
    "HFD005": security.trust_remote_code,
    "HFD006": security.pickle_weights,
    "HFD007": runtime.no_warmup,
    "HFD008": runtime.probe_kills_loading_pod,
    "HFD009": runtime.missing_shm_for_tp,
    "HFD010": security.host_ipc,
    "HFD011": runtime.gpu_limit_mismatch,
    "HFD012": runtime.gpu_memory_utilization_high,
    "HFD013": supply.mutable_image_tag,
    "HFD014": supply.hub_online_at_runtime,
    "HFD015": supply.cache_not_persistent,
    "HFD016": supply.root_cache_path,
    "HFD017": runtime.model_does_not_fit,
    "HFD018": runtime.deprecated_vllm_launch,
}


def _no_check(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    return iter(())


def _load() -> tuple[Rule, ...]:
    raw = tomllib.loads(resources.files("hfdeploy.audit").joinpath("rules.toml").read_text("utf-8"))
    return tuple(
        Rule(rid, r["tag"], r["severity"], r["title"], r["impact"], r["recommendation"],
             _CHECKS.get(rid, _no_check), r["detects"])
        for rid, r in raw.items()
    )  # fmt: skip


_ALL = _load()
#: The parse-error pseudo-rule: reported by the runner, never by a check.
PARSE_ERROR: Rule = _ALL[0]
RULES: tuple[Rule, ...] = tuple(r for r in _ALL if r.id in _CHECKS)
