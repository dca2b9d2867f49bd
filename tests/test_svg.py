"""SVG rendering: fidelity of the default engine (asserted on pixels), both engines, and the
hostile corpus in tests/hostile/ (nothing outside the drawing is read, nothing is connected to)."""

from __future__ import annotations

import io
import pathlib
import socket
import time

import numpy as np
import pytest
from PIL import Image

from canary_watch import FileWatch, connected, loopback_listener
from drawloop.renderers import render, render_many
from drawloop.renderers.svg import DEFAULT_ENGINE, ENGINES, normalise_colors, render_svg

HEAD = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">'
HOSTILE = sorted((pathlib.Path(__file__).parent / "hostile").glob("*.svg"))
MAGENTA = (255, 0, 255)


def pixels(code: str, engine: str = DEFAULT_ENGINE, size: int = 100) -> np.ndarray:
    result = render(code, size=size, engine=engine)
    assert result.ok, result.error
    image = Image.open(io.BytesIO(result.png))
    assert image.size == (size, size)
    return np.asarray(image.convert("RGB")).astype(int)


def near(pixel, colour, tolerance=12) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel) - np.asarray(colour)) <= tolerance))


# --- fidelity of the default engine --------------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
def test_hsl_colours(engine):
    image = pixels(HEAD + '<rect width="50" height="100" fill="hsl(120, 100%, 25%)"/>'
                   '<rect x="50" width="50" height="100" style="fill: hsla(240deg 100% 50% / 0.5)"/></svg>', engine)
    assert near(image[50, 25], (0, 128, 0))
    assert near(image[50, 75], (128, 128, 255))  # half-transparent blue over the white background


def test_gaussian_blur_softens_edges():
    sharp = HEAD + '<circle cx="50" cy="50" r="25" fill="black"/></svg>'
    blurred = sharp.replace("<circle", '<filter id="b" x="-50%" y="-50%" width="200%" height="200%">'
                            '<feGaussianBlur stdDeviation="6"/></filter><circle filter="url(#b)"')
    sharp_row, blurred_row = pixels(sharp)[50, :, 0], pixels(blurred)[50, :, 0]
    grey = lambda row: int(np.sum((row > 30) & (row < 225)))  # noqa: E731
    assert grey(sharp_row) <= 4 and grey(blurred_row) >= 20
    assert blurred_row[50] < 60 and blurred_row[20] < 250  # still dark at the centre, shadow outside


def test_linear_and_radial_gradients():
    linear = pixels(HEAD + '<linearGradient id="g"><stop offset="0" stop-color="red"/>'
                    '<stop offset="1" stop-color="blue"/></linearGradient><rect width="100" height="100" fill="url(#g)"/></svg>')
    assert near(linear[50, 1], (255, 0, 0), 15) and near(linear[50, 98], (0, 0, 255), 15)
    assert near(linear[50, 50], (128, 0, 128), 20)
    radial = pixels(HEAD + '<radialGradient id="g"><stop offset="0" stop-color="white"/><stop offset="1" '
                    'stop-color="black"/></radialGradient><rect width="100" height="100" fill="url(#g)"/></svg>')
    assert radial[50, 50, 0] > 240 and radial[50, 2, 0] < 20 and 80 < radial[50, 25, 0] < 180


@pytest.mark.parametrize("family", ["sans-serif", "serif", "monospace", "cursive", "fantasy", "Arial, sans-serif",
                                    "Helvetica"])
def test_text_with_generic_font_families_is_drawn(family):
    image = pixels(HEAD + f'<text x="5" y="60" font-family="{family}" font-size="30">Hello</text></svg>')
    ink = int(np.sum(image[..., 0] < 128))
    assert ink > 300, f"text in {family!r} vanished ({ink} dark pixels)"


def test_serif_and_sans_serif_are_different_fonts():
    text = HEAD + '<text x="5" y="60" font-family="{}" font-size="30">Hamburg</text></svg>'
    assert np.mean(pixels(text.format("serif")) != pixels(text.format("sans-serif"))) > 0.01


def test_transforms():
    image = pixels(HEAD + '<g transform="translate(60 60) scale(3)"><rect width="10" height="10" fill="green"/></g>'
                   '<rect x="20" y="20" width="20" height="20" fill="red" transform="rotate(45 30 30)"/></svg>')
    assert near(image[75, 75], (0, 128, 0)) and near(image[55, 55], (255, 255, 255))
    assert near(image[30, 30], (255, 0, 0))
    assert near(image[21, 21], (255, 255, 255))  # the rotated square's corner is empty
    assert near(image[18, 30], (255, 0, 0))       # ...and its tip pokes above the unrotated top edge


def test_masks_and_clip_paths():
    masked = pixels(HEAD + '<mask id="m"><rect width="50" height="100" fill="white"/></mask>'
                    '<rect width="100" height="100" fill="purple" mask="url(#m)"/></svg>')
    assert near(masked[50, 25], (128, 0, 128)) and near(masked[50, 75], (255, 255, 255))
    clipped = pixels(HEAD + '<clipPath id="c"><circle cx="50" cy="50" r="20"/></clipPath>'
                     '<rect width="100" height="100" fill="orange" clip-path="url(#c)"/></svg>')
    assert near(clipped[50, 50], (255, 165, 0)) and near(clipped[10, 10], (255, 255, 255))


@pytest.mark.parametrize("engine", ENGINES)
def test_non_square_drawings_are_letterboxed_on_white_at_the_requested_size(engine):
    image = pixels('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 100">'
                   '<rect width="200" height="100" fill="teal"/></svg>', engine, size=64)
    assert near(image[32, 32], (0, 128, 128)) and near(image[4, 32], (255, 255, 255))


def test_both_engines_agree_on_plain_shapes():
    code = HEAD + '<rect width="100" height="100" fill="#ffe"/><circle cx="40" cy="45" r="25" fill="#d22"/>' \
                  '<path d="M10 90 L90 90 L50 60 Z" fill="#2a2" stroke="#000" stroke-width="2"/></svg>'
    resvg, cairo = pixels(code, "resvg", 64), pixels(code, "cairosvg", 64)
    assert np.mean(np.abs(resvg - cairo) > 40) < 0.02


def test_colour_normalisation():
    assert normalise_colors('fill="hsl(0, 100%, 50%)"') == 'fill="rgb(255,0,0)"'
    assert normalise_colors("hsla(0.5turn 100% 50% / 50%)") == "rgba(0,255,255,0.5)"
    assert normalise_colors("rgb(0 128 255)") == "rgb(0,128,255)"
    assert normalise_colors("rgb(10%, 20%, 30%)") == "rgb(26,51,76)"
    assert normalise_colors("hsl(nonsense)") == "hsl(nonsense)"


def test_colour_normalisation_is_linear_on_hostile_hues():
    """A 100k-character hue that is not a number took 46 s (the hue regex backtracked); now it is
    read once. 5 s is generous on any machine, and far below the old time."""
    started = time.perf_counter()
    assert normalise_colors('fill="hsl(' + "e" * 100_000 + '% 1 1)"').startswith('fill="hsl(eee')
    assert time.perf_counter() - started < 5
    assert normalise_colors("hsl(120deg 100% 25%) hsl(1e2 100% 50%)") == "rgb(0,128,0) rgb(85,255,0)"


def test_bad_requests_are_failures_not_exceptions():
    assert "unknown SVG engine 'inkscape'" in render(HEAD + "</svg>", engine="inkscape").error
    assert "size must be an integer" in render(HEAD + "</svg>", size=0).error
    assert "no renderer for language 'tikz'" in render("x", language="tikz").error


def test_in_process_and_isolated_renders_are_identical():
    code = HEAD + '<circle cx="50" cy="50" r="30" fill="hsl(30,80%,50%)"/></svg>'
    for engine in ENGINES:
        isolated, local = render_svg(code, 64, engine), render_svg(code, 64, engine, isolate=False)
        assert isolated.ok and local.ok and isolated.png == local.png


# --- the hostile corpus --------------------------------------------------------------------------

@pytest.fixture
def hostile_setup(tmp_path, monkeypatch):
    """A canary PNG in a folder (absolute path), copies in the cwd and its parent (relative paths),
    an inotify watch on all of them, and a loopback listener that must never see a connection."""
    canary = tmp_path / "secret" / "canary.png"
    work = tmp_path / "work"
    for folder in (canary.parent, work):
        folder.mkdir()
    for path in (canary, work / "canary.png", tmp_path / "canary.png"):
        Image.new("RGB", (64, 64), MAGENTA).save(path)
    monkeypatch.chdir(work)
    listener = loopback_listener()
    watch = FileWatch([canary, canary.parent, work, work / "canary.png", tmp_path, tmp_path / "canary.png"])
    yield {"canary": str(canary), "port": str(listener.getsockname()[1]), "watch": watch, "listener": listener}
    listener.close()
    watch.close()


def test_the_corpus_is_big_and_labelled():
    assert len(HOSTILE) >= 40
    assert {path.name.split("__")[0] for path in HOSTILE} == {"refuse", "render"}


def test_hostile_corpus_is_refused_or_rendered_harmlessly(hostile_setup):
    outcomes = []
    for path in HOSTILE:
        code = path.read_bytes().decode("utf-8", "replace")
        code = code.replace("@CANARY@", hostile_setup["canary"]).replace("@PORT@", hostile_setup["port"])
        for engine in ENGINES:
            result = render(code, size=64, engine=engine, timeout=20)
            outcomes.append((path.name, engine, result))
    for name, engine, result in outcomes:
        expected = name.split("__")[0]
        if expected == "refuse":
            assert not result.ok and result.error and len(result.error) > 15, (name, engine, result.error)
        else:
            assert result.ok, (name, engine, result.error)
            image = np.asarray(Image.open(io.BytesIO(result.png)).convert("RGB")).astype(int)
            assert image.shape == (64, 64, 3)
            assert not np.any(np.all(np.abs(image - MAGENTA) < 30, axis=-1)), f"{name}: canary pixels drawn"
    assert hostile_setup["watch"].events() == b"", "a canary file outside the drawing was opened"
    assert not connected(hostile_setup["listener"]), "something connected to the loopback listener"


def test_the_canary_watch_and_listener_would_notice(hostile_setup):
    """The two proofs above are not vacuous: a real read and a real connect are seen."""
    with open(hostile_setup["canary"], "rb") as handle:
        handle.read(1)
    assert hostile_setup["watch"].events() != b""
    with socket.create_connection(("127.0.0.1", int(hostile_setup["port"]))):
        assert connected(hostile_setup["listener"], wait=2)


# --- render_many ---------------------------------------------------------------------------------

def test_render_many_keeps_input_order_and_survives_bad_and_slow_drawings():
    circles = [HEAD + f'<circle cx="50" cy="50" r="{r}" fill="black"/></svg>' for r in (5, 15, 25, 35, 45)]
    slow = HEAD + '<filter id="t" x="0" y="0" width="1" height="1"><feTurbulence baseFrequency="0.9" ' \
                  'numOctaves="2000"/></filter>' + '<rect width="100" height="100" filter="url(#t)"/>' * 30 + '</svg>'
    codes = circles[:2] + ["<svg", slow] + circles[2:]
    results = render_many(codes, size=32, workers=2, timeout=0.5)
    assert [r.ok for r in results] == [True, True, False, False, True, True, True]
    assert "not well-formed" in results[2].error and "timed out" in results[3].error
    ink = [int(np.sum(np.asarray(Image.open(io.BytesIO(r.png)).convert("L")) < 128)) for r in results if r.ok]
    assert ink == sorted(ink) and len(set(ink)) == 5


def test_render_many_of_nothing_is_nothing():
    assert render_many([]) == []
