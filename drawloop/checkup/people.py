"""People's drawings for the recognition test: openclipart SVGs matched to concepts by their titles.

    drawings = human_drawings(concepts, choices, per_concept=2, max_chars=12000)   # HumanDrawing list
    shows("sleeping cat", "a cat")          # True: every content word of the concept is in the title
    clean_svg_source(svg_text)              # the SVG without the metadata that names the picture
    names_concept('<g id="waterfallGradient">', "a waterfall in a forest")   # True: the code says it

People's drawings are matched to concepts by words, not by embedding similarity, so a match is a
drawing of that thing (see `shows`): every content word of the concept must appear in the
drawing's title, and the title must not name a distractor. Editor metadata (title, keywords,
descriptions, Inkscape/Sodipodi data, comments) is removed from the SVG before the model reads it,
because it states the answer in words; the drawing's elements are kept as they are. One drawing
per series and per title (near-copies share both). `names_concept` records, for own and people's
drawings alike, whether ids, classes, comments or text in the code spell out the concept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from drawloop.concepts import Concept
from drawloop.vision import gallery_sources


@dataclass
class HumanDrawing:
    concept: str
    level: str
    key: str          # the gallery item's key, e.g. "openclipart:animals/cat.svg"
    label: str        # its title
    path: str
    code: str         # cleaned SVG source: what the model reads

    @property
    def work_key(self) -> str:
        return f"{self.concept}|{self.key}"


def human_drawings(concepts: Sequence[Concept], choices: dict[str, list[str]],
                   items: Sequence[Any] | None = None, per_concept: int = 2,
                   max_chars: int = 12000) -> list[HumanDrawing]:
    """Up to `per_concept` people's drawings of each concept, shortest code first, one per series.
    `items` are gallery items (label, key, path, series); default: the openclipart gallery."""
    if per_concept <= 0:
        return []
    if items is None:
        items = gallery_sources.openclipart_items()
    found: list[HumanDrawing] = []
    for concept in concepts:
        distractors = [c for c in choices[concept.name] if c != concept.name]
        candidates = []
        for item in items:
            if not shows(item.label, concept.name, distractors):
                continue
            code = clean_svg_source(Path(item.path).read_text("utf-8", errors="replace"))
            if len(code) <= max_chars and "<svg" in code:
                candidates.append((len(code), item, code))
        seen: set[str] = set()   # one drawing per series and per title: same title, usually the same picture
        for _, item, code in sorted(candidates, key=lambda c: (c[0], c[1].key)):
            if item.series in seen or item.label.lower() in seen:
                continue
            seen |= {item.series, item.label.lower()}
            found.append(HumanDrawing(concept.name, concept.level, item.key, item.label, item.path, code))
            if len([h for h in found if h.concept == concept.name]) >= per_concept:
                break
    return found


# ---------------------------------------------------------------- words

_STOPWORDS = {"a", "an", "the", "of", "on", "in", "with", "and", "to", "at", "by", "its", "some", "for"}


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def content_words(text: str) -> set[str]:
    """'a row of Bicycles' -> {'row', 'bicycle'}: lower case, no articles or prepositions, no plural s."""
    return {_stem(w) for w in re.findall(r"[a-z]+", text.lower()) if w not in _STOPWORDS}


def shows(label: str, concept: str, distractors: Iterable[str] = ()) -> bool:
    """Does a drawing titled `label` show `concept`? Every content word of the concept is in the
    title ("sleeping cat" shows "a cat"; "apple" does not show "a red apple"), and no word that sets
    a distractor apart from the concept is ("cat and telephone" is no drawing of "a cat" when "a rotary
    telephone" is among the choices; "red and blue circle" none of "a red circle" beside "a blue circle")."""
    words, title = content_words(concept), content_words(label)
    if not words or not words <= title:
        return False
    return not any((content_words(d) - words) & title for d in distractors)


_NAMES = re.compile(r"""\b(?:id|class)\s*=\s*["']([^"']*)["']"""     # ids and classes
                    r"""|<!--(.*?)-->|<(?:text|title|desc)\b[^>]*>([^<]*)""", re.S)   # comments, text


def code_names(code: str) -> set[str]:
    """Words a reader of the code is told outright: ids, classes, comments, text, titles.
    'waterfallGradient' -> {'waterfall', 'gradient'}. Element names (<circle>) are not names."""
    words: set[str] = set()
    for groups in _NAMES.findall(code or ""):
        for text in groups:
            spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
            words |= content_words(spaced.replace("_", " ").replace("-", " "))
    return words


def names_concept(code: str, concept: str) -> bool:
    """Does the code name a content word of the concept ("a waterfall in a forest" and an id
    "waterfallGradient")?"""
    return bool(content_words(concept) & code_names(code))


_XML_DECL = re.compile(r"<\?xml.*?\?>", re.S)
_DOCTYPE = re.compile(r"<!DOCTYPE[^\[>]*(\[.*?\])?\s*>", re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_BLOCKS = re.compile(r"<(metadata|title|desc|sodipodi:namedview|foreignObject|i:pgf)\b"
                     r"[^>]*?(?:/>|>.*?</\1\s*>)", re.S)
_EDITOR_ATTR = re.compile(r"\s(?:inkscape|sodipodi|xmlns:(?:inkscape|sodipodi|dc|cc|rdf))(?::[\w.-]+)?\s*=\s*"
                          r"(?:\"[^\"]*\"|'[^']*')")


def clean_svg_source(text: str) -> str:
    """A person's SVG as the model reads it: no metadata that names the picture, no editor data."""
    doctype = _DOCTYPE.search(text)
    if doctype:  # Illustrator files spell namespaces as entities declared in the DOCTYPE
        entities = dict(re.findall(r'<!ENTITY\s+(\w+)\s+"([^"]*)"\s*>', doctype.group(1) or ""))
        text = text[:doctype.start()] + text[doctype.end():]
        for name, value in entities.items():
            text = text.replace(f"&{name};", value)
    for pattern in (_XML_DECL, _COMMENT, _BLOCKS, _EDITOR_ATTR):
        text = pattern.sub("", text)
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


