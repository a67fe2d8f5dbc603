"""``hfdeploy serve``: hfdeploy's own inference server (needs the ``serve`` extra)."""

from hfdeploy.serve.settings import ServeSettings, resolve_serve_settings

__all__ = ["ServeSettings", "resolve_serve_settings"]
