"""SVG rendering, v1: defusedxml pre-parse (no DTDs, no entities), then cairosvg at a fixed size.

    from drawloop.renderers.svg import render_svg
    result = render_svg(code, size=256)

cairosvg runs with its default `unsafe=False` (it fetches nothing). The full guard and process
isolation are layered on in renderers/guard.py (see design.md section 6).
"""

from __future__ import annotations

import time

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from drawloop.renderers.base import RenderResult

MAX_SVG_BYTES = 256 * 1024


def _preparse(code: str) -> str | None:
    """Return a refusal reason, or None when the text is a well-formed, DTD-free <svg>."""
    if not code or not code.strip():
        return "empty drawing code"
    if len(code.encode("utf-8", "replace")) > MAX_SVG_BYTES:
        return f"SVG is larger than {MAX_SVG_BYTES // 1024} KiB"
    try:
        root = SafeET.fromstring(code, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        return f"refused XML feature: {type(exc).__name__} (DTDs and entities are not allowed)"
    except SafeET.ParseError as exc:
        return f"SVG is not well-formed XML: {exc}"
    if root.tag.rsplit("}", 1)[-1] != "svg":
        return f"root element must be <svg>, got <{root.tag.rsplit('}', 1)[-1]}>"
    return None


def render_svg(code: str, size: int = 256, background: str = "white") -> RenderResult:
    start = time.perf_counter()
    reason = _preparse(code)
    if reason:
        return RenderResult.failure(reason, engine="cairosvg", seconds=time.perf_counter() - start)
    import cairosvg

    try:
        png = cairosvg.svg2png(bytestring=code.encode("utf-8"), output_width=size, output_height=size,
                               background_color=background)
    except Exception as exc:  # cairosvg raises many types on bad input; all are render failures
        return RenderResult.failure(f"cairosvg could not render: {type(exc).__name__}: {exc}"[:500],
                                    engine="cairosvg", seconds=time.perf_counter() - start)
    return RenderResult(ok=True, png=png, engine="cairosvg", seconds=time.perf_counter() - start)
