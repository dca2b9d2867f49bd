"""The renderer agent: the loop's adapter over drawloop.renderers.

    renderer = RendererAgent()
    result = renderer.render(code, language="svg", size=256)   # RenderResult(ok, png, error)

A custom renderer for another drawing language is any object with this `render` method
(register it under a name in agents/registry.py or through the `drawloop.agents` entry points).
"""

from __future__ import annotations

from drawloop.renderers import RenderResult, render


class RendererAgent:
    def __init__(self, **options):
        self.options = options  # passed through to drawloop.renderers.render (e.g. engine=)

    def render(self, code: str, language: str = "svg", size: int = 256) -> RenderResult:
        return render(code, language=language, size=size, **self.options)
