"""``hfdeploy audit``: what is wrong in a model deployment's files."""

from hfdeploy.audit.findings import AuditReport, Finding
from hfdeploy.audit.run import AuditConfig, audit_paths, audit_texts, load_config

__all__ = ["AuditConfig", "AuditReport", "Finding", "audit_paths", "audit_texts", "load_config"]
