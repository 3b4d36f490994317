"""Offline rendering: run the real Pulumi program under the mock runtime and write artifacts."""

from components.render.stack import RenderResult, render_stack

__all__ = ["RenderResult", "render_stack"]
