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

Before the sandbox, an AST check gives early, readable errors for imports outside the list above,
`open`/`exec`/`eval`/`__import__` and dunder attributes. It is a lint, not the boundary: the
sandbox contains code that gets past it (tests/sandbox_escapes/ runs with the lint off).
"""

from __future__ import annotations

import ast
import io
import time

from drawloop.renderers.base import RenderResult

ENGINE = "python-sandbox"
DEFAULT_TIMEOUT = 10.0
MIN_SIZE, MAX_SIZE = 8, 2048
ALLOWED_MODULES = frozenset("""
    numpy matplotlib PIL math cmath random colorsys itertools functools collections statistics
    string dataclasses typing enum fractions decimal copy textwrap operator bisect heapq __future__
""".split())
FORBIDDEN_CALLS = frozenset("open exec eval compile __import__ input breakpoint globals locals vars "
                            "getattr setattr delattr memoryview".split())


def render_python(code: str, size: int = 256, timeout: float = DEFAULT_TIMEOUT, lint: bool = True) -> RenderResult:
    start = time.perf_counter()
    if not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        return RenderResult.failure(f"size must be an integer between {MIN_SIZE} and {MAX_SIZE} pixels, "
                                    f"got {size!r}", engine=ENGINE)
    problem = lint_python(code) if lint else None
    if problem:
        return RenderResult.failure(problem, engine=ENGINE, seconds=time.perf_counter() - start)
    from drawloop.renderers.sandbox import SandboxFailed, run_in_sandbox

    try:
        header, png = run_in_sandbox(code, size=size, timeout=timeout)
    except SandboxFailed as failure:
        return RenderResult.failure(str(failure), engine=ENGINE, seconds=time.perf_counter() - start)
    seconds = time.perf_counter() - start
    warnings = [f"the drawing printed: {header['log'].strip()[-300:]}"] if header.get("log", "").strip() else []
    if not header.get("ok"):
        result = RenderResult.failure(str(header.get("error") or "the drawing failed"), ENGINE, seconds)
        result.warnings = warnings
        return result
    problem = _check_png(png, size)
    if problem:
        return RenderResult.failure(problem, engine=ENGINE, seconds=seconds)
    return RenderResult(ok=True, png=png, engine=ENGINE, seconds=seconds, warnings=warnings)


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


def _check_png(png: bytes, size: int) -> str | None:
    """The sandbox's PNG is untrusted too: it must decode to the promised size."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(png), formats=["PNG"]) as image:
            if image.size != (size, size):
                return f"the drawing produced a {image.width}x{image.height} image instead of {size}x{size}"
            image.verify()
    except Exception:
        return "the drawing produced no valid PNG"
    return None
