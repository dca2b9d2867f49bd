"""Python drawings: matplotlib or PIL code from a model, run in the sandbox (renderers/sandbox.py).

    from drawloop.renderers import render
    result = render(code, language="python", size=256)     # RenderResult(ok, png, error, ...)

The contract the drawer's prompt promises (keep the two in sync):
- The code is a plain Python 3 script, run once from top to bottom. It may import numpy, math,
  random, colorsys and other pure standard-library helpers, matplotlib (the Agg backend is already
  selected; `import matplotlib.pyplot as plt`) and PIL (Image, ImageDraw, ImageFilter, ...).
- The drawing is taken from, in this order: a PIL image assigned to a variable named `image`;
  otherwise the current matplotlib figure (`plt.gcf()`). The default figure is already square
  (size/100 inches at 100 dpi), so `fig, ax = plt.subplots()` fits; hide axes with `ax.axis("off")`.
  No `plt.show()` or `savefig` is needed.
- The result is scaled to fit a `size` x `size` PNG, centred on white.
- No files (other than in the current temporary folder), no network, no other programs; a job gets
  10 s of wall time, 10 s of CPU and 512 MiB of memory. print() output is kept as a warning.

Before the sandbox, code over MAX_CODE_BYTES is refused and an AST check gives early, readable
errors for imports outside the list above, `open`/`exec`/`eval`/`__import__` and dunder attributes.
It is a lint, not the boundary: the sandbox contains code that gets past it (tests/sandbox_escapes/
runs with the lint off). Nothing from the sandbox is trusted either: every PNG is fully decoded
(at exactly size x size pixels, at most MAX_PNG_BYTES) and re-encoded here before it is returned.
render_python() never raises: every failure, the renderer's own included, is a failed RenderResult.
"""

from __future__ import annotations

import ast
import io
import time

from drawloop.renderers.base import RenderResult

ENGINE = "python-sandbox"
DEFAULT_TIMEOUT = 10.0
MIN_SIZE, MAX_SIZE = 8, 2048
MAX_CODE_BYTES = 256 * 1024   # drawings are a few KiB; more is a runaway model, not a picture
ALLOWED_MODULES = frozenset("""
    numpy matplotlib PIL math cmath random colorsys itertools functools collections statistics
    string dataclasses typing enum fractions decimal copy textwrap operator bisect heapq __future__
""".split())
FORBIDDEN_CALLS = frozenset("open exec eval compile __import__ input breakpoint globals locals vars "
                            "getattr setattr delattr memoryview".split())


def render_python(code: str, size: int = 256, timeout: float = DEFAULT_TIMEOUT, lint: bool = True) -> RenderResult:
    start = time.perf_counter()
    try:
        return _render(code, size, timeout, lint, start)
    except Exception as exc:  # noqa: BLE001 - a failure is data (base.py), even our own, e.g. MemoryError
        return RenderResult.failure(f"the Python renderer failed: {type(exc).__name__}: {exc}"[:500],
                                    engine=ENGINE, seconds=time.perf_counter() - start)


def _render(code: str, size: int, timeout: float, lint: bool, start: float) -> RenderResult:
    if not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        return RenderResult.failure(f"size must be an integer between {MIN_SIZE} and {MAX_SIZE} pixels, "
                                    f"got {size!r}", engine=ENGINE)
    problem = _too_long(code) or (lint_python(code) if lint else None)
    if problem:
        return RenderResult.failure(problem, engine=ENGINE, seconds=time.perf_counter() - start)
    from drawloop.renderers.sandbox import SandboxFailed, run_in_sandbox

    try:
        header, png = run_in_sandbox(code, size=size, timeout=timeout)
    except SandboxFailed as failure:
        return RenderResult.failure(str(failure), engine=ENGINE, seconds=time.perf_counter() - start)
    seconds = time.perf_counter() - start
    if not isinstance(header, dict):
        return RenderResult.failure("the Python sandbox gave a malformed reply", ENGINE, seconds)
    log = header.get("log") if isinstance(header.get("log"), str) else ""
    warnings = [f"the drawing printed: {log.strip()[-300:]}"] if log.strip() else []
    if header.get("ok") is not True:
        result = RenderResult.failure(str(header.get("error") or "the drawing failed")[:1000], ENGINE, seconds)
        result.warnings = warnings
        return result
    png, problem = _trusted_png(png, size)
    if problem:
        return RenderResult.failure(problem, engine=ENGINE, seconds=seconds)
    return RenderResult(ok=True, png=png, engine=ENGINE, seconds=seconds, warnings=warnings)


def _too_long(code) -> str | None:
    # len() first: a str's UTF-8 is at least as long, and encoding a huge one is itself a risk
    if isinstance(code, str) and (len(code) > MAX_CODE_BYTES or len(code.encode("utf-8", "replace")) > MAX_CODE_BYTES):
        return f"the drawing code is too long (over {MAX_CODE_BYTES // 1024} KiB); draw with less code"
    return None


def lint_python(code: str) -> str | None:
    """A readable reason why this code will not run as a drawing, or None."""
    if not isinstance(code, str) or not code.strip():
        return "empty drawing code: expected a Python script that draws with matplotlib or PIL"
    try:
        tree = ast.parse(code, "<drawing>")
    except SyntaxError as exc:
        return f"line {exc.lineno}: SyntaxError: {exc.msg}"
    problems = [(node.lineno, node.end_col_offset, problem) for node in ast.walk(tree)
                if (problem := _problem(node)) is not None]  # report the first, reading left to right
    return f"line {min(problems)[0]}: {min(problems)[2]}" if problems else None


def _problem(node: ast.AST) -> str | None:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        for name in names:
            if name.split(".")[0] not in ALLOWED_MODULES or (isinstance(node, ast.ImportFrom) and node.level):
                allowed = ", ".join(sorted(m for m in ALLOWED_MODULES if m != "__future__"))
                return f"import of {name!r} is not allowed in drawing code (allowed: {allowed})"
    elif isinstance(node, ast.Name) and node.id in FORBIDDEN_CALLS:
        return f"{node.id}() is not allowed in drawing code; just draw"
    elif isinstance(node, ast.Attribute) and node.attr.startswith("__") and node.attr.endswith("__"):
        return f"special attributes such as {node.attr} are not allowed in drawing code"
    elif isinstance(node, ast.Name) and node.id.startswith("__") and node.id != "__name__":
        return f"{node.id} is not allowed in drawing code"
    return None


def max_png_bytes(size: int) -> int:
    """More than an uncompressed RGBA PNG of size x size (what PIL writes is far smaller)."""
    return 4 * size * (size + 1) + 64 * 1024


def _trusted_png(png, size: int) -> tuple[bytes | None, str | None]:
    """The sandbox's PNG is untrusted: capped in bytes, at exactly size x size pixels (checked
    before decoding: the pixel cap), fully decoded, and re-encoded here, so that trailing data,
    extra chunks or undecodable pixels never leave this function. (png, None) or (None, reason)."""
    from PIL import Image

    if not isinstance(png, bytes) or len(png) > max_png_bytes(size):
        return None, f"the drawing produced no valid PNG (more than {max_png_bytes(size)} bytes)"
    try:
        with Image.open(io.BytesIO(png), formats=["PNG"]) as image:
            if image.size != (size, size):
                return None, f"the drawing produced a {image.width}x{image.height} image instead of {size}x{size}"
            image.load()
            picture = image.convert("RGB")
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
    except Exception:  # noqa: BLE001 - PIL raises many kinds for broken data
        return None, "the drawing produced no valid PNG"
    return buffer.getvalue(), None
