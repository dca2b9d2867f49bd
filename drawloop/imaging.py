"""Pictures as arrays: where the drawing is on its canvas, and contact sheets of many drawings.

    from drawloop.imaging import Tile, contact_sheet, content_stats, is_blank
    content_stats(png)     # {"coverage": 0.21, "bbox_area": 0.4, "box": [x0, y0, x1, y1], "edge_touch": 0, ...}
    is_blank(png)          # True when under 0.5% of the pixels differ from the background
    contact_sheet([[Tile(png, ["round 1", "0.62"])], ...], title="a bicycle").save("sheet.png")

Every measure takes the canvas background to be the most common colour on the image border and
counts a pixel as content when a channel differs from it by more than CONTENT_TOLERANCE, so the
critic's render sanity, the pixel scorers, the image embedders and the reports agree on what is
drawn. The one place for canvas statistics, label fonts and grid painting.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ImageLike = Union[Image.Image, bytes, str, Path]

CONTENT_TOLERANCE = 24     # max per-channel difference from the border colour still counted as background
BLANK_COVERAGE = 0.005     # below this fraction of content pixels the canvas counts as empty


def load_image(image: ImageLike) -> Image.Image:
    """PNG bytes, a path or a PIL image -> RGB on white (transparency flattened)."""
    if isinstance(image, (bytes, bytearray)):
        image = Image.open(io.BytesIO(image))
    elif isinstance(image, (str, Path)):
        image = Image.open(image)
    elif not isinstance(image, Image.Image):
        raise TypeError(f"expected PNG bytes, a path or a PIL image, got {type(image).__name__}")
    if image.mode in ("RGBA", "LA", "P", "PA"):
        image = image.convert("RGBA")
        canvas = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, image)
    return image.convert("RGB")


def border_colour(pixels: np.ndarray) -> np.ndarray:
    """The most common colour on the image border: the canvas background."""
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]).astype(np.int32)
    packed = (border[:, 0] << 16) | (border[:, 1] << 8) | border[:, 2]
    values, counts = np.unique(packed, return_counts=True)
    top = int(values[counts.argmax()])
    return np.array([top >> 16, (top >> 8) & 255, top & 255], dtype=np.int32)


def content_mask(pixels: np.ndarray, background: np.ndarray | None = None) -> np.ndarray:
    """Boolean (H, W): pixels that differ visibly from the background colour."""
    background = border_colour(pixels) if background is None else background
    return np.abs(pixels.astype(np.int32) - background).max(axis=2) > CONTENT_TOLERANCE


def content_box(image: Image.Image) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) around the drawn content, or None for a blank canvas."""
    mask = content_mask(np.asarray(image))
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def is_blank(png: ImageLike) -> bool:
    """Whether (almost) nothing is drawn: under BLANK_COVERAGE of the pixels are content."""
    return float(content_mask(np.asarray(load_image(png))).mean()) < BLANK_COVERAGE


def content_stats(png: ImageLike) -> dict[str, float]:
    """Where the drawing is on the canvas, measured against the background colour.

    Returns coverage (fraction of content pixels), bbox_area (fraction of the canvas inside the
    content's bounding box), box ([x0, y0, x1, y1] of that box, as fractions of the canvas),
    background_light (1 when the background is near white), edge_touch (how many of the 4 sides
    have content along > 30% of their length: a sign the drawing runs off the canvas) and colours
    (distinct coarse colours in the content).
    """
    rgb = np.asarray(load_image(png), dtype=np.int16)
    h, w, _ = rgb.shape
    background = border_colour(rgb)
    mask = content_mask(rgb, background)
    light = float(background.min() > 200)
    if not mask.any():
        return {"coverage": 0.0, "bbox_area": 0.0, "edge_touch": 0.0, "colours": 0.0, "background_light": light,
                "box": [0.0, 0.0, 0.0, 0.0]}
    rows, cols = mask.any(axis=1).nonzero()[0], mask.any(axis=0).nonzero()[0]
    bbox_area = float((rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)) / (h * w)
    box = [round(cols[0] / w, 4), round(rows[0] / h, 4), round((cols[-1] + 1) / w, 4), round((rows[-1] + 1) / h, 4)]
    sides = [mask[0].mean(), mask[-1].mean(), mask[:, 0].mean(), mask[:, -1].mean()]
    coarse = rgb[mask] // 32
    key_counts = np.bincount(coarse[:, 0] * 64 + coarse[:, 1] * 8 + coarse[:, 2], minlength=512)
    colours_used = int((key_counts > 0.01 * mask.sum()).sum())  # ignore anti-aliasing fringes
    return {"coverage": float(mask.mean()), "bbox_area": bbox_area, "edge_touch": float(sum(s > 0.3 for s in sides)),
            "colours": float(colours_used), "background_light": light, "box": box}


def no_new_shape(a: ImageLike, b: ImageLike, tolerance: int = 24, seam_pixels: int = 20) -> bool:
    """Whether two renders of (nearly) the same drawing show the same shapes: pixels that differ
    form at most one-pixel seams. Drawing an antialiased shape twice darkens its edge; a new shape
    changes a region, which survives a 3x3 erosion. (Used to judge what a loop guard's cut lost.)"""
    pa, pb = (np.asarray(load_image(x), dtype=np.int16) for x in (a, b))
    changed = np.any(np.abs(pa - pb) > tolerance, axis=2)
    core = changed[1:-1, 1:-1].copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            core &= changed[1 + dy:changed.shape[0] - 1 + dy, 1 + dx:changed.shape[1] - 1 + dx]
    return int(core.sum()) < seam_pixels


# ---------------------------------------------------------------- contact sheets

FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf")
NO_PICTURE = (236, 236, 236)
PLAIN_FRAME = (190, 190, 190)
PICK_FRAME = (30, 150, 60)       # the loop's pick, framed 4 px wide


@dataclass
class Tile:
    """One cell of a contact sheet: a picture (None draws a crossed-out box) and caption lines."""

    image: ImageLike | None
    lines: Sequence[str] = ()
    frame: tuple[int, int, int] = PLAIN_FRAME
    frame_width: int = 1
    line_colours: Sequence[Any] = ()       # per caption line; black where not given


def contact_sheet(rows: Sequence[Sequence[Tile]], title: str = "", tile: int = 220, row_labels: Sequence[str] = (),
                  label_width: int = 0, caption_size: int = 12, pad: int = 10) -> Image.Image:
    """A white sheet: an optional title, then each row of tiles left to right (a label column first
    when `row_labels` are given), each tile resized to `tile` pixels and captioned underneath."""
    lines_per_tile = max((len(t.lines) for row in rows for t in row), default=0)
    line_h = caption_size + 3
    caption_h = 4 + lines_per_tile * line_h
    header_h = 34 if title else pad
    columns = max((len(row) for row in rows), default=1) or 1
    width = pad + label_width + columns * (tile + pad)
    height = header_h + max(1, len(rows)) * (tile + caption_h + pad)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    heading, small, label = label_font(18), label_font(caption_size), label_font(13)
    if title:
        draw.text((pad, 8), fit_text(title, heading, width - 2 * pad), fill="black", font=heading)
    label_lines = max(1, (tile - 8) // 16)                # as many label lines as the row's height holds
    for r, row in enumerate(rows):
        y = header_h + r * (tile + caption_h + pad)
        if r < len(row_labels):
            for j, text in enumerate(wrap_words(row_labels[r], label, label_width - pad)[:label_lines]):
                draw.text((pad, y + 8 + j * 16), text, fill="black", font=label)
        for c, cell in enumerate(row):
            x = pad + label_width + c * (tile + pad)
            if cell.image is not None:
                picture = load_image(cell.image)
                scale = tile / max(picture.size)          # drawings are square; a photo keeps its shape
                picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))))
                sheet.paste(picture, (x + (tile - picture.width) // 2, y + (tile - picture.height) // 2))
            else:
                draw.rectangle([x, y, x + tile - 1, y + tile - 1], fill=NO_PICTURE)
                draw.line([x, y, x + tile - 1, y + tile - 1], fill=(200, 80, 80), width=2)
                draw.line([x + tile - 1, y, x, y + tile - 1], fill=(200, 80, 80), width=2)
            draw.rectangle([x - 1, y - 1, x + tile, y + tile], outline=cell.frame, width=cell.frame_width)
            for j, text in enumerate(cell.lines):
                colour = cell.line_colours[j] if j < len(cell.line_colours) else "black"
                draw.text((x, y + tile + 4 + j * line_h), fit_text(text, small, tile), fill=colour, font=small)
    return sheet


def label_font(size: int):
    """DejaVu Sans for captions (Pillow's own font where it is missing)."""
    for candidate in FONTS:
        if Path(candidate).exists():
            return ImageFont.truetype(candidate, size)
    return ImageFont.load_default(size=size)


def fit_text(text: str, font, width: int) -> str:
    """Shorten text with an ellipsis until it fits `width` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def wrap_words(text: str, font, width: int) -> list[str]:
    """Greedy word wrap to lines that fit `width` pixels (a word too long for a line is shortened)."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(lines[-1] + " " + word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(fit_text(word, font, width))
    return lines
