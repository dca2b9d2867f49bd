"""Terminal thumbnails: two pixels per cell, colours kept, placeholders the same size."""

import io

from PIL import Image
from rich.console import Console

from drawloop.trace.thumbnail import UPPER_HALF, Thumbnail


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def cells(thumb: Thumbnail) -> list[list[tuple]]:
    """Each printed row as (char, fg rgb, bg rgb) per cell."""
    console = Console(width=80, color_system="truecolor", force_terminal=True)
    rows, row = [], []
    for segment in console.render(thumb):
        if segment.text == "\n":
            rows.append(row)
            row = []
            continue
        style = segment.style
        for char in segment.text:
            fg = style.color.get_truecolor() if style and style.color else None
            bg = style.bgcolor.get_truecolor() if style and style.bgcolor else None
            row.append((char, tuple(fg) if fg else None, tuple(bg) if bg else None))
    return rows


def test_upper_half_block_carries_the_top_pixel_as_foreground_and_the_bottom_as_background():
    image = Image.new("RGB", (8, 8), (255, 0, 0))
    image.paste((0, 0, 255), (0, 2, 8, 4))  # rows 2-3 blue: the second pixel row pair
    image.paste((0, 255, 0), (4, 0, 8, 1))  # top-right quarter of the first row green... at 4x4 a mixed pixel
    rows = cells(Thumbnail.from_png(png(image), width=4))
    assert len(rows) == 2 and all(len(r) == 4 for r in rows)  # 4 x 4 pixels -> 4 columns x 2 rows
    assert {c[0] for r in rows for c in r} == {UPPER_HALF}
    assert rows[1][0][1:] == ((255, 0, 0), (255, 0, 0))
    top_left = rows[0][0]
    assert top_left[1] == (255, 0, 0) and top_left[2] == (0, 0, 255)  # red above blue
    assert rows[0][3][1][1] > 0  # the green quarter shows in the top-right cell


def test_transparent_drawings_show_on_white_and_aspect_ratio_is_kept():
    image = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    rows = cells(Thumbnail.from_png(png(image), width=10))
    assert len(rows) == 3  # 10 x 5 pixels, rounded to whole cells: 10 x 6
    assert rows[0][0][1] == (255, 255, 255)


def test_missing_and_unreadable_images_become_placeholders_of_the_same_size(tmp_path):
    missing = Thumbnail.from_png(tmp_path / "gone.png", width=12)
    broken_path = tmp_path / "broken.png"
    broken_path.write_bytes(b"not a png")
    broken = Thumbnail.from_png(broken_path, width=12)
    for thumb, label in ((missing, "image missing"), (broken, "unreadable image")):
        rows = cells(thumb)
        assert len(rows) == 6 and all(len(r) == 12 for r in rows)
        assert label[:10] in "".join(c[0] for r in rows for c in r)
