"""Render: a Plan as deployment files, one module per target; ``generate`` writes them."""

from hfdeploy.render.generate import generate_deployment
from hfdeploy.render.targets import render_targets

__all__ = ["generate_deployment", "render_targets"]
