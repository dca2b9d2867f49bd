"""`drawloop gallery` and `drawloop index`: the reference gallery and nearest-neighbour search.

    drawloop gallery build                                   # all sources; minutes once, then cached
    drawloop gallery build --source emoji --category emoji --limit 50
    drawloop index search "a red apple" --k 8                # gallery drawings nearest the concept
    drawloop index search drawing.png --k 8 --sheet nn.png   # an image (PNG or SVG) as the query
    drawloop index search cat.svg --index data/llm/index     # search a saved VectorIndex instead

A concept query is turned into a picture query: the mean embedding of the concept's gallery
references (matched by text). Results print as a table and as a PNG contact sheet.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from drawloop.commands import console, err_console, exit_code
from drawloop.imaging import Tile, contact_sheet, load_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".svg"}


class UserError(Exception):
    pass


def register(app: typer.Typer) -> None:
    gallery = typer.Typer(help="The reference gallery of human-made drawings (openclipart, emoji, Symbola).",
                          no_args_is_help=True)
    gallery.command("build")(build_command)
    app.add_typer(gallery, name="gallery")
    index = typer.Typer(help="Nearest-neighbour search over the gallery or a saved drawing index.",
                        no_args_is_help=True)
    index.command("search")(search_command)
    app.add_typer(index, name="index")


def build_command(
    source: Optional[List[str]] = typer.Option(None, "--source", "-s", help="emoji | symbola | openclipart "
                                               "(repeatable; default: all)."),
    category: Optional[List[str]] = typer.Option(None, "--category", "-c", help="Keep categories starting with "
                                                 "this, e.g. food/fruit or emoji (repeatable)."),
    limit: Optional[int] = typer.Option(None, min=1, help="At most N items per category."),
    per_series: int = typer.Option(8, min=1, help="At most N near-copies per series (numbered variants)."),
    retry_failed: bool = typer.Option(False, help="Try again the drawings that could not be drawn before."),
    threads: int = typer.Option(1, min=1, help="Torch threads for embedding (1 is fastest on busy cores)."),
) -> None:
    """Render, embed and cache the gallery; later builds only redo what changed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from drawloop.vision.features import EfficientNetEmbedder
    from drawloop.vision.gallery import build_gallery, cache_root
    from drawloop.vision.gallery_sources import SOURCES

    try:
        sources = tuple(source or SOURCES)
        start = time.perf_counter()
        with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=console, transient=True) as progress:
            task = progress.add_task("rendering + embedding", total=None)
            gallery = build_gallery(sources, category or None, limit, per_series, retry_failed=retry_failed,
                                    embedder=EfficientNetEmbedder(threads=threads),
                                    progress=lambda done, total: progress.update(task, completed=done, total=total))
    except (ValueError, RuntimeError) as exc:
        err_console.print(f"[red]{exc}[/]")
        raise typer.Exit(exit_code(exc))
    table = Table(title=f"gallery: {len(gallery)} drawings in {time.perf_counter() - start:.1f} s")
    table.add_column("source")
    table.add_column("drawings", justify="right")
    for name, count in sorted(gallery.summary().items()):
        table.add_row(name, str(count))
    table.add_row("[dim]could not be drawn[/]", f"[dim]{len(gallery.failed)}[/]")
    console.print(table)
    console.print(f"[dim]cache: {cache_root()}[/]")


def search_command(
    query: str = typer.Argument(..., help="An image file (PNG, SVG, ...) or a concept, e.g. \"a red apple\"."),
    k: int = typer.Option(8, "--k", "-k", min=1, max=200, help="How many neighbours."),
    index_path: Optional[Path] = typer.Option(None, "--index", help="A saved VectorIndex folder (default: the "
                                              "gallery)."),
    sheet: Path = typer.Option(Path("neighbours.png"), help="Where to write the PNG contact sheet."),
    source: Optional[List[str]] = typer.Option(None, "--source", "-s", help="Gallery sources (default: all)."),
    category: Optional[List[str]] = typer.Option(None, "--category", "-c", help="Gallery categories (default: all)."),
) -> None:
    """The k nearest drawings to an image or a concept: a table and a PNG sheet."""
    try:
        rows, query_image, title = _search(query, k, index_path, tuple(source or ()), tuple(category or ()))
    except (UserError, ValueError, FileNotFoundError, RuntimeError) as exc:
        err_console.print(f"[red]{exc}[/]")
        raise typer.Exit(exit_code(exc))
    table = Table(title=title)
    for column in ("#", "similarity", "label", "source", "where"):
        table.add_column(column, justify="right" if column in ("#", "similarity") else "left")
    for rank, (hit, _) in enumerate(rows, 1):
        table.add_row(str(rank), f"{hit.score:.3f}", str(hit.meta.get("concept", "")), str(hit.meta.get("source", "")),
                      str(hit.meta.get("key") or hit.meta.get("path") or ""))
    console.print(table)
    _contact_sheet(query_image, rows, sheet)
    console.print(f"sheet: {sheet}")


def _search(query: str, k: int, index_path: Path | None, sources: tuple[str, ...], categories: tuple[str, ...]):
    """(rows of (Hit, thumbnail or None), query thumbnail or None, title)."""
    import numpy as np

    from drawloop.vision.gallery import build_gallery
    from drawloop.vision.gallery_sources import SOURCES
    from drawloop.vision.index import VectorIndex

    gallery = build_gallery(sources or SOURCES, categories or None)
    index = VectorIndex.load(index_path) if index_path else gallery.index
    path = Path(query)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        if not path.is_file():
            raise UserError(f"no image file at {path}")
        query_image = _load_query_image(path)
        vector = gallery.embed([query_image])
        title = f"nearest to {path.name}"
    else:
        rows = gallery.references(query)[:8]
        vector = gallery.vectors[rows].mean(axis=0, keepdims=True)
        vector /= np.linalg.norm(vector)
        query_image = None
        title = f"nearest to \"{query}\" (via gallery references: {', '.join(dict.fromkeys(gallery.items[r].label for r in rows[:3]))})"
    if index.embedder and index.embedder != gallery.embedder.name:
        raise UserError(f"the index at {index_path} holds {index.embedder} features, not {gallery.embedder.name}")
    hits = index.search(vector, k)[0]
    thumbs = [(hit, gallery.image(hit.id) if index is gallery.index else _artifact(hit.meta, index_path))
              for hit in hits]
    return thumbs, query_image, title


def _load_query_image(path: Path):
    from PIL import Image

    from drawloop.renderers import render

    if path.suffix.lower() == ".svg":
        result = render(path.read_text("utf-8", errors="replace"), "svg", size=256)
        if not result.ok:
            raise UserError(f"could not render {path}: {result.error}")
        return load_image(result.png)
    try:
        return load_image(path)
    except (OSError, Image.DecompressionBombError) as exc:
        raise UserError(f"could not read {path} as an image: {exc}") from exc


def _artifact(meta: dict, index_path: Path | None):
    """The thumbnail of an indexed drawing: its artifact path, absolute or next to the index."""

    raw = meta.get("path")
    if not raw:
        return None
    for candidate in (Path(raw), (index_path or Path(".")).parent / raw, (index_path or Path(".")) / raw):
        if candidate.is_file():
            try:
                return load_image(candidate)
            except OSError:
                return None
    return None


def _contact_sheet(query_image, rows, out: Path, cell: int = 160) -> None:
    tiles = ([Tile(query_image, ["query"])] if query_image is not None else []) + \
            [Tile(image, [f"{i}. {hit.meta.get('concept', '')[:22]} {hit.score:.2f}"]) for i, (hit, image) in enumerate(rows, 1)]
    columns = min(5, len(tiles)) or 1
    out.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet([tiles[i:i + columns] for i in range(0, len(tiles), columns)], tile=cell).save(out)
