"""ModelRef → ModelProfile: sources, headers, architecture, task."""

from hfdeploy.model.profile import ModelProfile, build_profile
from hfdeploy.model.resolve import inspect_model, parse_ref, resolve

__all__ = ["ModelProfile", "build_profile", "inspect_model", "parse_ref", "resolve"]
