"""Renderers: untrusted drawing code -> PNG bytes, or a clear reason why not.

    from drawloop.renderers import render
    result = render(svg_code, language="svg", size=256)   # -> RenderResult(ok, png, error)
"""

from __future__ import annotations

from drawloop.renderers.base import RenderResult, Renderer

LANGUAGES = ("svg",)


def render(code: str, language: str = "svg", size: int = 256) -> RenderResult:
    if language == "svg":
        from drawloop.renderers.svg import render_svg

        return render_svg(code, size=size)
    return RenderResult.failure(f"no renderer for language {language!r} (known: {', '.join(LANGUAGES)})")


__all__ = ["render", "RenderResult", "Renderer", "LANGUAGES"]
