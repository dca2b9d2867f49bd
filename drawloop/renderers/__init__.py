"""Renderers: untrusted drawing code -> PNG bytes, or a clear reason why not.

    from drawloop.renderers import render, render_many
    result = render(svg_code, language="svg", size=256)        # -> RenderResult(ok, png, error, ...)
    result = render(svg_code, engine="cairosvg", timeout=5)    # pick the SVG engine, bound the time
    result = render(python_code, language="python")            # matplotlib/PIL code, sandboxed
    results = render_many(codes, language="svg", workers=2)    # in input order, crash-tolerant

A failure is data, never an exception. Modules: guard.py (the SVG guard), svg.py (engines),
isolation.py (worker processes), python.py + sandbox.py (the Python sandbox), base.py (types).
"""

from __future__ import annotations

from drawloop.renderers.base import Renderer, RenderResult

LANGUAGES = ("svg", "python")


def render(code: str, language: str = "svg", size: int = 256, *, engine: str | None = None,
           timeout: float | None = None) -> RenderResult:
    if language == "svg":
        from drawloop.renderers.svg import DEFAULT_ENGINE, DEFAULT_TIMEOUT, render_svg

        return render_svg(code, size=size, engine=engine or DEFAULT_ENGINE, timeout=timeout or DEFAULT_TIMEOUT)
    if language == "python":
        from drawloop.renderers.python import DEFAULT_TIMEOUT, render_python

        return render_python(code, size=size, timeout=timeout or DEFAULT_TIMEOUT)
    return RenderResult.failure(f"no renderer for language {language!r} (known: {', '.join(LANGUAGES)})")


__all__ = ["render", "RenderResult", "Renderer", "LANGUAGES"]
