"""A drawing as a colour thumbnail in the terminal, two pixels per character cell.

    from rich.console import Console
    Console().print(Thumbnail.from_png("runs/<id>/best.png", width=24))   # 24 columns x 12 rows
    Console().print(Thumbnail.placeholder("render failed", width=24))      # same size, no image

Each cell prints "▀" with the foreground set to the upper pixel and the background to the lower
one, so a W-column thumbnail shows a W x W image in W/2 rows (terminal cells are about twice as
tall as wide, which keeps the pixels square). Transparent drawings are shown on white, as the
renderer and the critic see them.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style

UPPER_HALF = "▀"
Pixel = tuple[int, int, int]


class Thumbnail:
    def __init__(self, pixels: list[list[Pixel]] | None, width: int, label: str = ""):
        self.pixels = pixels  # rows of RGB, an even number of rows; None for a placeholder
        self.width = width
        self.height = (len(pixels) // 2) if pixels else max(1, width // 2)
        self.label = label

    @classmethod
    def from_png(cls, source: str | Path | bytes, width: int = 24) -> "Thumbnail":
        """Load and shrink a PNG; an unreadable file becomes a placeholder that says so."""
        from PIL import Image, UnidentifiedImageError

        if not isinstance(source, bytes) and not Path(source).is_file():
            return cls.placeholder("image missing", width)
        try:
            image = Image.open(io.BytesIO(source if isinstance(source, bytes) else Path(source).read_bytes()))
            image.load()
        except (OSError, UnidentifiedImageError, ValueError):
            return cls.placeholder("unreadable image", width)
        return cls(_pixels(image, width), width)

    @classmethod
    def placeholder(cls, label: str, width: int = 24) -> "Thumbnail":
        return cls(None, width, label)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.width, self.width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.pixels is None:
            yield from self._placeholder_lines()
            return
        for top, bottom in zip(self.pixels[0::2], self.pixels[1::2]):
            for upper, lower in zip(top, bottom):
                yield Segment(UPPER_HALF, Style(color=_hex(upper), bgcolor=_hex(lower)))
            yield Segment.line()

    def _placeholder_lines(self) -> RenderResult:
        box = Style(color="grey50", bgcolor="grey19")
        middle = self.height // 2
        for row in range(self.height):
            text = self.label[: self.width - 2].center(self.width) if row == middle else " " * self.width
            yield Segment(text, box)
            yield Segment.line()


def _pixels(image, width: int) -> list[list[Pixel]]:
    from PIL import Image

    rgba = image.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    canvas.alpha_composite(rgba)
    height = max(2, math.ceil(width * image.height / image.width / 2) * 2)  # whole cells: an even pixel count
    small = canvas.convert("RGB").resize((width, height), Image.Resampling.BOX)  # box: averages, keeps colours
    return [[tuple(px) for px in row] for row in np.asarray(small).tolist()]


def _hex(pixel: Pixel) -> str:
    return "#{:02x}{:02x}{:02x}".format(*pixel)
