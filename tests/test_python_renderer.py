"""Python drawings: the contract (what is captured, at what size), the lint, and render_many."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from PIL import Image

from drawloop.renderers import render, render_many
from drawloop.renderers.python import lint_python, render_python

needs_bwrap = pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap is not installed")

MATPLOTLIB_DISC = """
import matplotlib.pyplot as plt
import numpy as np
fig, ax = plt.subplots()
t = np.linspace(0, 2 * np.pi, 200)
ax.fill(np.cos(t), np.sin(t), color="red")
ax.set_aspect("equal")
ax.axis("off")
"""
PIL_BANNER = """
from PIL import Image, ImageDraw
image = Image.new("RGB", (200, 100), (0, 0, 255))
ImageDraw.Draw(image).rectangle((0, 0, 99, 99), fill=(0, 255, 0))
"""


def pixels(result) -> np.ndarray:
    assert result.ok, result.error
    return np.asarray(Image.open(io.BytesIO(result.png)).convert("RGB")).astype(int)


@needs_bwrap
def test_the_current_matplotlib_figure_is_captured_square_at_the_requested_size():
    image = pixels(render(MATPLOTLIB_DISC, language="python", size=96))
    assert image.shape == (96, 96, 3)
    assert tuple(image[48, 48]) == (255, 0, 0) and tuple(image[2, 2]) == (255, 255, 255)


@needs_bwrap
def test_a_pil_image_named_image_wins_and_is_letterboxed_on_white():
    image = pixels(render(PIL_BANNER + "import matplotlib.pyplot as plt\nplt.plot([1, 2])\n",
                          language="python", size=100))
    assert tuple(image[50, 25]) == (0, 255, 0) and tuple(image[50, 75]) == (0, 0, 255)
    assert tuple(image[5, 50]) == (255, 255, 255)  # 2:1 image -> white bands above and below


@needs_bwrap
def test_a_wide_matplotlib_figure_is_letterboxed():
    code = "import matplotlib.pyplot as plt\nfig = plt.figure(figsize=(8, 2), facecolor='black')\n"
    image = pixels(render(code, language="python", size=64))
    assert tuple(image[32, 32]) == (0, 0, 0) and tuple(image[2, 32]) == (255, 255, 255)


@needs_bwrap
@pytest.mark.parametrize("code, reason", [
    ("x = 1", "the code drew nothing"),
    ("image = 'a picture'", "`image` must be a PIL Image, got str"),
    ("import numpy as np\nnp.zeros(3)[5]", "line 2: IndexError: index 5 is out of bounds"),
    ("import matplotlib.pyplot as plt\nplt.plot([1, 2], [1])", "line 2: ValueError: x and y must have same"),
])
def test_failures_point_at_the_drawing_code(code, reason):
    result = render(code, language="python", size=64)
    assert not result.ok and reason in result.error
    assert "Traceback" not in result.error and "site-packages" not in result.error


@needs_bwrap
def test_printed_output_becomes_a_warning_not_part_of_the_result():
    result = render_python("print('hello from the drawing')\n" + PIL_BANNER, size=32)
    assert result.ok and result.warnings == ["the drawing printed: hello from the drawing"]


@needs_bwrap
def test_render_many_python_in_input_order():
    codes = [f"from PIL import Image\nimage = Image.new('L', (8, 8), {v})" for v in (0, 100, 200)] + ["x = 1"]
    results = render_many(codes, language="python", size=8, workers=2)
    assert [r.ok for r in results] == [True, True, True, False]
    assert [int(pixels(r)[4, 4, 0]) for r in results[:3]] == [0, 100, 200]


def test_bad_sizes_fail_before_the_sandbox():
    assert "size must be an integer" in render_python(PIL_BANNER, size=100000).error


@pytest.mark.parametrize("code, reason", [
    ("", "empty drawing code"),
    ("def f(:\n", "line 1: SyntaxError"),
    ("import os", "line 1: import of 'os' is not allowed"),
    ("import numpy\nfrom subprocess import run", "line 2: import of 'subprocess' is not allowed"),
    ("from . import x", "import of '' is not allowed"),
    ("open('/etc/passwd')", "line 1: open() is not allowed"),
    ("__import__('os')", "__import__() is not allowed"),
    ("x = ().__class__.__base__", "special attributes such as __class__"),
    ("print(__builtins__)", "__builtins__ is not allowed"),
    ("getattr(object, 'x')", "getattr() is not allowed"),
])
def test_the_lint_explains_what_is_not_allowed(code, reason):
    assert reason in lint_python(code)


def test_the_lint_accepts_ordinary_drawing_code():
    for code in (MATPLOTLIB_DISC, PIL_BANNER, "import math, random, colorsys\nfrom matplotlib import patches\n"
                 "from PIL import ImageFilter\nif __name__ == '__main__':\n    pass\n"):
        assert lint_python(code) is None


# --- the host trusts nothing from the sandbox ------------------------------------------------------

def png_bytes(size: int, colour="red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def broken_pixels_png(size: int) -> bytes:
    """Every chunk's CRC is right, but the compressed pixels are far too short."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack("!I", len(data)) + kind + data + struct.pack("!I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack("!IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))


def fake_sandbox(monkeypatch, outcome):
    from drawloop.renderers import sandbox

    def run_in_sandbox(code, size=256, timeout=10.0):
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome
    monkeypatch.setattr(sandbox, "run_in_sandbox", run_in_sandbox)


@pytest.mark.parametrize("png", [png_bytes(64) + b"\0" * (30 << 20), broken_pixels_png(64), png_bytes(32),
                                 b"\x89PNG\r\n\x1a\n" + b"\0" * 100],
                         ids=["trailing_junk", "broken_pixels", "wrong_size", "garbage"])
def test_a_png_from_the_sandbox_must_decode_fully_within_its_size(monkeypatch, png):
    fake_sandbox(monkeypatch, ({"ok": True, "error": None, "log": ""}, png))
    result = render_python(PIL_BANNER, size=64)
    assert not result.ok and ("no valid PNG" in result.error or "instead of 64x64" in result.error)


def test_an_accepted_png_is_re_encoded_on_the_host(monkeypatch):
    fake_sandbox(monkeypatch, ({"ok": True, "error": None, "log": ""}, png_bytes(64) + b"trailing junk"))
    result = render_python(PIL_BANNER, size=64)
    assert result.ok and b"trailing junk" not in result.png
    assert Image.open(io.BytesIO(result.png)).size == (64, 64)


@pytest.mark.parametrize("outcome", [MemoryError(), RuntimeError("surprise"), ({"ok": "yes", "log": 5}, b""),
                                     ([], b""), ({"ok": False, "error": {"nested": []}, "log": None}, b"")])
def test_render_never_raises_whatever_the_sandbox_does(monkeypatch, outcome):
    fake_sandbox(monkeypatch, outcome)
    result = render_python(PIL_BANNER, size=64)
    assert not result.ok and isinstance(result.error, str) and result.error


def test_code_size_is_capped_before_the_sandbox(monkeypatch):
    from drawloop.renderers import python

    fake_sandbox(monkeypatch, AssertionError("the sandbox was reached"))
    huge = PIL_BANNER + "#" * (python.MAX_CODE_BYTES + 1)
    for lint in (True, False):
        result = render_python(huge, size=64, lint=lint)
        assert not result.ok and "too long" in result.error
