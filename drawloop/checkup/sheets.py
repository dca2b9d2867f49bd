"""The check-up report's contact sheets: a grid of drawings per concept, and one overview of them all.

    concept_sheet(directory, "a cat", concept_rows(results, "a cat"), directory / "sheets" / "cat.png")
    concept_sheet(directory, "every concept", overview_rows(results), figures / "overview.png", tile=120)

A row is (label, tiles); a tile is (image path under the check-up directory or None, caption lines,
framed). The loop's pick is framed in green; a drawing that did not render is a crossed-out box.
"""

from __future__ import annotations

from pathlib import Path

from drawloop.imaging import PICK_FRAME, PLAIN_FRAME, Tile, contact_sheet


def concept_sheet(directory: Path, concept: str,
                  rows: list[tuple[str, list[tuple[str | None, list[str], bool]]]],
                  path: Path, tile: int = 150, label_w: int = 92) -> Path:
    """A grid: one labelled row per thread (or people's drawings), one tile per drawing
    (image path, caption lines, framed); the loop's pick is framed in green."""
    grid = [[Tile(directory / image if image and (directory / image).exists() else None, caption[:2],
                  frame=PICK_FRAME if framed else PLAIN_FRAME, frame_width=4 if framed else 1)
             for image, caption, framed in tiles] for _, tiles in rows]
    sheet = contact_sheet(grid, title=concept[:100], tile=tile, row_labels=[label for label, _ in rows],
                          label_width=label_w, caption_size=11, pad=8)
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
