"""The check-up report's contact sheets: a grid of drawings per concept, and one overview of them all.

    concept_sheet(directory, "a cat", concept_rows(results, "a cat"), directory / "sheets" / "cat.png")
    concept_sheet(directory, "every concept", overview_rows(results), figures / "overview.png", tile=120)

A row is (label, tiles); a tile is (image path under the check-up directory or None, caption lines,
framed). The loop's pick is framed in green; a drawing that did not render is a crossed-out box.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from PIL import Image, ImageDraw

from drawloop.imaging import label_font


def concept_sheet(directory: Path, concept: str,
                  rows: list[tuple[str, list[tuple[str | None, list[str], bool]]]],
                  path: Path, tile: int = 150, label_w: int = 92) -> Path:
    """A grid: one labelled row per thread (or people's drawings), one tile per drawing
    (image path, caption lines, framed); the loop's pick is framed in green."""
    caption_h, header_h, pad = 32, 30, 8
    cols = max([len(tiles) for _, tiles in rows] + [1])
    width = label_w + cols * (tile + pad) + pad
    height = header_h + len(rows) * (tile + caption_h + pad) + pad
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 6), concept[:100], fill="black", font=label_font(16))
    small = label_font(11)
    for r, (label, tiles) in enumerate(rows):
        y = header_h + r * (tile + caption_h + pad)
        lines = textwrap.wrap(label, max(8, label_w // 8))[:6]
        for j, line in enumerate(lines):
            draw.text((pad, y + tile // 2 - 8 * len(lines) + 16 * j), line, fill="black", font=label_font(12))
        for c, (image, caption, framed) in enumerate(tiles):
            x = label_w + c * (tile + pad)
            if image and (directory / image).exists():
                picture = Image.open(directory / image).convert("RGB").resize((tile, tile))
                sheet.paste(picture, (x, y))
            else:
                draw.rectangle([x, y, x + tile - 1, y + tile - 1], fill=(236, 236, 236))
                draw.line([x, y, x + tile - 1, y + tile - 1], fill=(200, 80, 80), width=2)
            frame = (30, 150, 60) if framed else (190, 190, 190)
            draw.rectangle([x - 2, y - 2, x + tile + 1, y + tile + 1], outline=frame,
                           width=4 if framed else 1)
            for j, line in enumerate(caption[:2]):
                draw.text((x, y + tile + 3 + j * 13), line[:max(12, tile // 6)], fill="black", font=small)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def overview_rows(results: dict) -> list[tuple[str, list]]:
    """One row per concept: each sample's first draft, then the critic loop's pick."""
    rows = []
    for concept in results["concepts"]:
        tiles = []
        for thread in (t for t in results["threads"]
                       if t["concept"] == concept["name"] and t["mode"] == "critic"):
            if not thread["attempts"]:
                continue
            first, pick = thread["attempts"][0], thread["attempts"][thread["best"] or 0]
            tiles.append((first.get("image"), [f"s{thread['sample']} first"] + _attempt_caption(first)[1:],
                          False))
            tiles.append((pick.get("image"), [f"s{thread['sample']} final, it {pick['iteration']}"]
                          + _attempt_caption(pick)[1:], True))
        rows.append((f"{concept['name']} ({concept['level']})", tiles))
    return rows


def concept_rows(results: dict, concept: str) -> list[tuple[str, list]]:
    rows = []
    mine = [t for t in results["threads"] if t["concept"] == concept]
    for thread in sorted(mine, key=lambda t: (t["mode"] != "critic", t["sample"])):
        tiles = [(a.get("image"), _attempt_caption(a), i == thread.get("best"))
                 for i, a in enumerate(thread["attempts"])]
        rows.append((f"{thread['mode']} s{thread['sample']}", tiles))
    people = [h for h in results["human"] if h["concept"] == concept]
    if people:
        rows.append(("people", [(h.get("image"), [h["title"][:26], "recognized" if h["correct"]
                                                  else f"seen as: {h.get('label') or '?'}"], False)
                                for h in people]))
    return rows


def _attempt_caption(attempt: dict) -> list[str]:
    head = f"it {attempt['iteration']}  score {attempt['score']:.2f}"
    if attempt.get("error") and not attempt.get("image"):
        return [head, "failed: " + attempt["error"]]
    if attempt.get("correct"):
        return [head, "recognized"]
    return [head, f"seen as: {attempt.get('label') or '?'}"]
