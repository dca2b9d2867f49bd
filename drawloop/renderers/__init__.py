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

from collections.abc import Iterable

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


def render_many(codes: Iterable[str], language: str = "svg", size: int = 256, workers: int | None = None, *,
                engine: str | None = None, timeout: float | None = None) -> list[RenderResult]:
    """Render many drawings, results in input order. Parallelism is bounded by `workers` (default:
    the usable cores) and by the worker/sandbox pools, which hold one process per core. A drawing
    that crashes, hangs or bombs fails alone."""
    from concurrent.futures import ThreadPoolExecutor

    from drawloop.renderers.isolation import usable_cores

    codes = list(codes)
    workers = max(1, min(workers or usable_cores(), len(codes) or 1))

    def one(code: str) -> RenderResult:
        try:
            return render(code, language, size, engine=engine, timeout=timeout)
        except Exception as exc:  # a renderer bug must not lose the rest of the batch
            return RenderResult.failure(f"internal renderer error: {type(exc).__name__}: {exc}"[:500])

    if workers == 1:
        return [one(code) for code in codes]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="render") as pool:
        return list(pool.map(one, codes))


__all__ = ["render", "render_many", "RenderResult", "Renderer", "LANGUAGES"]
