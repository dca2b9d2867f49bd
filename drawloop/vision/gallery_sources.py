"""The gallery's sources: what people drew, as GalleryItems, and how each is drawn into a picture.

    from drawloop.vision.gallery_sources import gallery_items, render_items
    items = gallery_items(["openclipart"], categories=["food/fruit"], per_series=8)
    items[0].label, items[0].text, items[0].series   # "red apple", label + keywords + folder, near-copies
    pictures = render_items(items[:16])                # RGB images, or the reason one could not be drawn

  openclipart  /usr/share/openclipart/svg: ~8k public-domain SVGs in subject folders. Label from the
               file's own <dc:title> (or its file name when the title is a collection name), plus
               its keywords and folder. Rendered through drawloop.renderers, like LLM drawings.
  emoji        Noto Color Emoji: ~1,300 designer-drawn colour pictures, labelled by Unicode name.
  symbola      Symbola: outline drawings of the same code points.

gallery.py embeds, caches and indexes them (build_gallery, Gallery).
"""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image, ImageDraw, ImageFont

OPENCLIPART_DIR = Path("/usr/share/openclipart/svg")
EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
SYMBOLA_FONT = Path("/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf")
SOURCES = ("emoji", "symbola", "openclipart")
RENDER_SIZE = 256
PER_SERIES = 8              # near-copies kept per series (see gallery_items)
GENERIC_KEYWORDS = {"", "hash", "icon", "icons", "theme", "clip", "art", "clipart", "svg", "image",
                    "signs_and_symbols", "media", "public", "domain", "unsorted", "special"}


@dataclass
class GalleryItem:
    key: str          # unique and stable: "openclipart:food/fruit/apple.svg", "emoji:1F34E"
    source: str       # openclipart | emoji | symbola
    label: str        # short human label: "red apple", "butterfly"
    text: str         # what concept text is matched against: label, keywords, folder
    category: str     # openclipart folder ("food/fruit"); "emoji" / "symbola"
    series: str       # near-copies share a series (held out together in evaluations)
    path: str         # the SVG file or the font
    stamp: str        # changes when the item's input changes (cache key)


def gallery_items(sources: Sequence[str] = SOURCES, categories: Sequence[str] | None = None,
                  limit: int | None = None, per_series: int | None = PER_SERIES,
                  select: Callable[[GalleryItem], bool] | None = None) -> list[GalleryItem]:
    """The items of the chosen sources; `categories` keeps items whose category starts with one
    of them (e.g. "food/fruit", "emoji"); `select` is any other filter; `per_series` caps
    near-copies (1,375 numbered stars are one series) and `limit` the count per category, both
    picking evenly spaced items."""
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown gallery source(s) {', '.join(sorted(unknown))}; known: {', '.join(SOURCES)}")
    loaders = {"openclipart": openclipart_items, "emoji": emoji_items, "symbola": symbola_items}
    items = [item for source in sources for item in loaders[source]()]
    if categories:
        wanted = [c.strip("/") for c in categories]
        items = [i for i in items if any(i.category == c or i.category.startswith(c + "/") for c in wanted)]
    if select:
        items = [i for i in items if select(i)]
    if per_series:
        items = _spread(items, lambda i: i.series, per_series)
    if limit:
        items = _spread(items, lambda i: i.category, limit)
    return items


# ---------------------------------------------------------------- sources

def openclipart_items(root: Path = OPENCLIPART_DIR) -> list[GalleryItem]:
    if not root.is_dir():
        return []
    raw = []
    for path in sorted(root.rglob("*.svg")):
        with open(path, "rb") as handle:
            head = handle.read(65536).decode("utf-8", "replace")
        title, keywords = _svg_metadata(head)
        raw.append((path, title, keywords))
    # A title shared by many files names a collection ("Lemon SVG theme"), not the picture.
    title_counts: dict[str, int] = {}
    for _, title, _ in raw:
        title_counts[title.lower()] = title_counts.get(title.lower(), 0) + 1
    items = []
    for path, title, keywords in raw:
        rel = path.relative_to(root)
        folder = rel.parent.as_posix()
        stem_words = _words(path.stem)
        label = title if title and title_counts[title.lower()] < 5 else " ".join(stem_words)
        folder_words = " ".join(w.replace("_", " ") for w in folder.split("/"))
        keywords = [k.replace("_", " ") for k in dict.fromkeys(keywords) if k.lower() not in GENERIC_KEYWORDS]
        text = "; ".join(x for x in (label, ", ".join(keywords), folder_words) if x)
        stat = path.stat()
        items.append(GalleryItem(
            key=f"openclipart:{rel.as_posix()}", source="openclipart", label=label.lower(), text=text,
            category=folder, series=f"{folder}/{_series_stem(path.stem)}", path=str(path),
            stamp=f"{stat.st_size}-{stat.st_mtime_ns}"))
    return items


def _svg_metadata(head: str) -> tuple[str, list[str]]:
    """(title, keywords) from the RDF block Inkscape / openclipart write into each file."""
    work = re.search(r"<cc:Work.*?</cc:Work>", head, re.S)
    block = work.group(0) if work else head
    title_match = re.search(r"<dc:title>([^<]*)</dc:title>", block)
    title = _clean_title(title_match.group(1)) if title_match else ""
    subject = re.search(r"<dc:subject>(.*?)</dc:subject>", block, re.S)
    keywords = re.findall(r"<rdf:li>([^<]*)</rdf:li>", subject.group(1)) if subject else []
    return title, [k.strip() for k in keywords]


def _clean_title(title: str) -> str:
    title = " ".join(title.split())
    if title.lower().startswith("clipart by") and " - " in title:
        title = title.split(" - ", 1)[1]
    return " ".join(_words(title)) if "_" in title else title


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^A-Za-z]+", text) if len(w) > 1]


def _series_stem(stem: str) -> str:
    """'jigsaw_blue_05' -> 'jigsaw blue'; 'apple_bw' -> 'apple': numbered and recoloured versions."""
    words = [w.lower() for w in _words(stem) if w.lower() not in ("bw", "color", "colour", "grey", "gray")]
    return " ".join(words) or stem


def emoji_code_points(font: Path = EMOJI_FONT) -> list[int]:
    """Single code points in the font that are named pictographs (no letters, tags, modifiers)."""
    from fontTools.ttLib import TTFont

    points = []
    for cp in sorted(TTFont(str(font), lazy=True).getBestCmap()):
        char = chr(cp)
        name = unicodedata.name(char, "")
        if unicodedata.category(char) != "So" or not name:
            continue
        if name.startswith(("REGIONAL INDICATOR", "EMOJI MODIFIER", "TAG ")):
            continue
        points.append(cp)
    return points


def emoji_items(font: Path = EMOJI_FONT, source: str = "emoji", only: Sequence[int] | None = None) -> list[GalleryItem]:
    if not font.exists():
        return []
    if only is None:
        points = emoji_code_points(font)
    else:
        from fontTools.ttLib import TTFont

        cmap = TTFont(str(font), lazy=True).getBestCmap()
        points = [cp for cp in only if cp in cmap]
    stat = font.stat()
    items = []
    for cp in points:
        label = unicodedata.name(chr(cp)).lower()
        items.append(GalleryItem(
            key=f"{source}:{cp:04X}", source=source, label=label, text=label, category=source,
            series=f"glyph:{cp:04X}",   # the colour and outline versions of one glyph are one series
            path=str(font), stamp=f"{stat.st_size}-{stat.st_mtime_ns}"))
    return items


def symbola_items(font: Path = SYMBOLA_FONT) -> list[GalleryItem]:
    """Outline versions of the emoji code points that Symbola draws."""
    if not font.exists() or not EMOJI_FONT.exists():
        return []
    return emoji_items(font, source="symbola", only=emoji_code_points(EMOJI_FONT))


def _spread(items: list[GalleryItem], group_of: Callable[[GalleryItem], str], cap: int) -> list[GalleryItem]:
    """At most `cap` evenly spaced items of each group, in the original order."""
    groups: dict[str, list[int]] = {}
    for position, item in enumerate(items):
        groups.setdefault(group_of(item), []).append(position)
    keep = {p for members in groups.values() for p in members[:: max(1, len(members) // cap)][:cap]}
    return [item for position, item in enumerate(items) if position in keep]


# ---------------------------------------------------------------- rendering

def render_items(items: Sequence[GalleryItem], size: int = RENDER_SIZE) -> list[Image.Image | str]:
    """Each item as an RGB image, or a string saying why it could not be drawn."""
    out: list[Image.Image | str | None] = [None] * len(items)
    svg_rows = [i for i, item in enumerate(items) if item.source == "openclipart"]
    for i, item in enumerate(items):
        if item.source != "openclipart":
            out[i] = _render_glyph(item, size)
    if svg_rows:
        codes = [_readable_svg(Path(items[i].path)) for i in svg_rows]
        for i, result in zip(svg_rows, _render_svgs(codes, size)):
            if result.ok:
                out[i] = Image.open(io.BytesIO(result.png)).convert("RGB")
            else:
                out[i] = result.error or "render failed"
    return out  # type: ignore[return-value]


def _render_svgs(codes: list[str], size: int):
    """Through the project's renderers (the same guard and engine as LLM drawings)."""
    import drawloop.renderers as renderers

    if hasattr(renderers, "render_many"):
        return renderers.render_many(codes, size=size)
    return [renderers.render(code, "svg", size=size) for code in codes]


def _readable_svg(path: Path) -> str:
    """The file's text without what editors add and the guard rightly refuses: the DOCTYPE (its
    internal entities, plain namespace strings, are expanded) and Illustrator's <foreignObject>
    blocks of private data (the drawing itself sits next to them in the same <switch>)."""
    text = path.read_text("utf-8", errors="replace")
    doctype = re.search(r"<!DOCTYPE[^\[>]*(\[.*?\])?\s*>", text, re.S)
    if doctype:
        entities = dict(re.findall(r'<!ENTITY\s+(\w+)\s+"([^"]*)"\s*>', doctype.group(1) or ""))
        text = text[:doctype.start()] + text[doctype.end():]
        for name, value in entities.items():
            text = text.replace(f"&{name};", value)
    return re.sub(r"<foreignObject\b[^>]*?(/>|>.*?</foreignObject\s*>)", "", text, flags=re.S)


_FONTS: dict[tuple[str, int], ImageFont.FreeTypeFont] = {}


def _render_glyph(item: GalleryItem, size: int) -> Image.Image | str:
    char = chr(int(item.key.split(":")[1], 16))
    colour = item.source == "emoji"
    # Noto Color Emoji is a bitmap font that only exists at 109 px; prepare() rescales anyway.
    font_size = 109 if colour else 96
    font = _FONTS.get((item.path, font_size))
    if font is None:
        font = _FONTS[(item.path, font_size)] = ImageFont.truetype(item.path, font_size)
    canvas = Image.new("RGBA", (160, 160), (255, 255, 255, 0))
    ImageDraw.Draw(canvas).text((80, 80), char, font=font, anchor="mm", embedded_color=colour,
                                fill=None if colour else (0, 0, 0, 255))
    if canvas.getbbox() is None:
        return "the font draws nothing for this code point"
    white = Image.new("RGBA", canvas.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, canvas).convert("RGB").resize((size, size), Image.LANCZOS)
