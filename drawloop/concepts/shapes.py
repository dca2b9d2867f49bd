"""Concepts that name plain shapes, and what they ask for.

    shape_spec("three blue squares")   # ShapeSpec(count=3, noun='square', colours=('blue',), outline=False)
    shape_spec("an apple")             # None: not a plain shape

The structure scorer checks a shape drawing for exactly the shapes and colours named (more parts are
not better for "a red circle"), and the drawer gives such concepts a smaller token budget.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# The offline model's drafts of a plain shape took 72-224 tokens (the demo's red circle); drafts of
# objects reach 1,128. A looping shape draft that the loop guard misses stops here, not at 1,200.
SHAPE_TOKENS = 600


class ShapeSpec(NamedTuple):
    count: int                 # how many of the shape
    noun: str
    colours: tuple[str, ...]   # colour names in the concept, in order
    outline: bool              # drawn with strokes, not fills (outlines, lines, rings, arrows)


COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 160, 50), "yellow": (240, 220, 30),
           "purple": (130, 40, 170), "orange": (250, 140, 20), "pink": (245, 140, 180), "black": (0, 0, 0),
           "brown": (130, 80, 30), "gray": (128, 128, 128), "grey": (128, 128, 128), "white": (255, 255, 255)}
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
            "eight": 8, "nine": 9, "ten": 10}
_SHAPES = ("circle|square|triangle|star|hexagon|heart|oval|arrow|rectangle|cross|diamond|pentagon|octagon|"
           "semicircle|trapezoid|parallelogram|ring|line|cube|sphere|cylinder|cone|pyramid|dot|ellipse")
_SIZE = r"(?:(?:diagonal|small|big|large)\s+)?"
_ONE_SHAPE = re.compile(rf"^(?P<n>{'|'.join(_NUMBERS)})\s+{_SIZE}(?:(?P<colour>{'|'.join(COLOURS)})\s+)?{_SIZE}"
                        rf"(?P<noun>{_SHAPES})s?(?P<rest>\s+outline|\s+pointing \w+)?$", re.I)
SOLIDS = ("cube", "sphere", "cylinder", "cone", "pyramid")   # shaded faces are parts of one shape


def shape_spec(concept: str) -> ShapeSpec | None:
    """What a concept that names plain shapes asks for; None for anything else (an apple, a scene).
    "a yellow triangle inside a green circle" is two shapes in two colours."""
    text = (concept or "").strip().lower()
    parts = [_ONE_SHAPE.match(piece) for piece in re.split(r"\s+inside\s+", text)]
    if not parts or not all(parts) or len(parts) > 2:
        return None
    colours = tuple(m.group("colour") for m in parts if m.group("colour"))
    count = sum(_NUMBERS[m.group("n")] for m in parts)
    noun = parts[-1].group("noun")
    outline = any((m.group("rest") or "").strip() == "outline" or m.group("noun") in ("line", "ring", "arrow")
                  for m in parts)
    return ShapeSpec(count, noun, colours, outline)
