"""The audit rule catalog: each rule a stable id, one tag, a default severity, and a check.

The rules' texts are package data (``rules.toml``, in catalog order); the checks, pure
functions over :class:`FileFacts`, live in ``audit/checks/`` by area and are keyed by id
here: most see one file (``_CHECKS``), folder checks see every file of the run at once
(``_FOLDER_CHECKS``). Each rule has a page in ``docs/rules/<ID>.md``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from importlib import resources

from hfdeploy.audit.checks import (
    build,
    cluster,
    duplex,
    endpoint,
    permissions,
    runtime,
    security,
    sessions,
    supply,
)
from hfdeploy.audit.extract import FileFacts
from hfdeploy.audit.findings import Check, Finding, FolderCheck, Rule

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
    "HFD020": endpoint.args_repeat_entrypoint,
    "HFD021": endpoint.endpoint_not_pinned,
    "HFD022": build.placeholder_argument,
    "HFD024": runtime.probe_on_slow_route,
    "HFD025": permissions.privileged_port,
    "HFD026": cluster.rwx_without_storage_class,
    "HFD027": permissions.engine_runs_as_root,
    "HFD028": permissions.volume_not_writable,
    "HFD029": runtime.compile_cache_not_persistent,
    "HFD030": cluster.gpu_rollout_surge,
    "HFD032": runtime.llama_model_not_gguf,
    "HFD033": build.copy_source_missing,
    "HFD034": duplex.tls_in_container,
    "HFD035": sessions.probe_takes_session,
    "HFD038": duplex.realtime_gpu_too_slow,
}
#: Checks over every file of the run at once (see ``FolderCheck``).
_FOLDER_CHECKS: dict[str, FolderCheck] = {
    "HFD019": cluster.triton_repository_on_configmap,
    "HFD023": cluster.autoscaler_metric_not_exported,
    "HFD031": cluster.pdb_allows_full_outage,
    "HFD036": sessions.session_timeout_short,
    "HFD037": sessions.scale_on_utilization,
}


def _no_check(rule: Rule, facts: FileFacts) -> Iterator[Finding]:
    return iter(())


def _load() -> tuple[Rule, ...]:
    raw = tomllib.loads(resources.files("hfdeploy.audit").joinpath("rules.toml").read_text("utf-8"))
    return tuple(
        Rule(rid, r["tag"], r["severity"], r["title"], r["impact"], r["recommendation"],
             _CHECKS.get(rid, _no_check), r["detects"], _FOLDER_CHECKS.get(rid))
        for rid, r in raw.items()
    )  # fmt: skip


_ALL = _load()
#: The parse-error pseudo-rule: reported by the runner, never by a check.
PARSE_ERROR: Rule = _ALL[0]
RULES: tuple[Rule, ...] = tuple(r for r in _ALL if r.id in _CHECKS or r.id in _FOLDER_CHECKS)
