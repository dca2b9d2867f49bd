"""The renderer contract: drawing code in, PNG bytes (or a clear reason) out.

    from drawloop.renderers import render
    result = render('<svg xmlns="http://www.w3.org/2000/svg" ...>', language="svg", size=256)
    if result.ok:
        open("out.png", "wb").write(result.png)
    else:
        print(result.error)   # human-readable, goes back to the drawer as feedback

A failure is data, never an exception: untrusted code that cannot or must not be drawn yields
`RenderResult(ok=False, error=...)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class RenderResult:
    ok: bool
    png: bytes | None = None
    error: str | None = None
    engine: str = ""
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def failure(cls, error: str, engine: str = "", seconds: float = 0.0) -> "RenderResult":
        return cls(ok=False, png=None, error=error, engine=engine, seconds=seconds)


class Renderer(Protocol):
    """Anything with this method can be the loop's renderer (see agents/registry.py)."""

    language: str

    def render(self, code: str, size: int = 256) -> RenderResult: ...
