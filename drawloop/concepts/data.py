"""The concept tables: the Concept record, the six levels, concepts.json and the curated levels.

    from drawloop.concepts.data import LEVELS, Concept, concept_key, curated, object_category
    curated()                          # every hand-curated shape, object and scene, file order
    concept_key("A Cat.")              # 'cat': the lookup key (case, spaces, article, full stop)
    object_category()["a parrot"]      # 'animal'
    compatible("a dog", "a wolf")      # True: too alike to offer one against the other

A curated concept without hand-picked distractors gets 3 from its own category and 2 from
other categories of its level, chosen by a hash of its name so they never change. The public
face of all this is drawloop.concepts; generated.py builds the three generated levels from here.
"""

from __future__ import annotations

import functools
import json
import random
import re
import zlib
from dataclasses import dataclass
from importlib import resources
from typing import Iterable

LEVELS = ("shapes", "objects", "scenes", "compositions", "effects", "relations")
CURATED_LEVELS = ("shapes", "objects", "scenes")
N_DISTRACTORS = 5  # stored per concept; the recognizer usually shows 4 of them
DATA_FILE = "concepts.json"


@dataclass(frozen=True)
class Concept:
    name: str                      # what the model is asked to draw: "a cat on top of a table"
    level: str                     # one of LEVELS
    category: str                  # objects: "animal", "vehicle"...; generated: the kind, "on top of"
    distractors: tuple[str, ...]   # other concepts for multiple choice, hardest kinds first
    parts: tuple[str, ...] = ()    # generated concepts: the objects they are built from


# ---------------------------------------------------------------------------------------------
# Curated levels


@functools.lru_cache(maxsize=1)
def tables() -> dict:
    text = resources.files("drawloop.concepts").joinpath(DATA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def check_levels(levels: str | Iterable[str] | None) -> list[str]:
    if levels is None or levels == "all":
        return list(LEVELS)
    wanted = [levels] if isinstance(levels, str) else list(levels)
    unknown = [level for level in wanted if level not in LEVELS]
    if unknown:
        raise ValueError(f"unknown level {unknown[0]!r}; choose from {', '.join(LEVELS)}")
    return list(dict.fromkeys(wanted))


@functools.lru_cache(maxsize=1)
def _avoid() -> dict[str, set[str]]:
    """Key -> keys of concepts too alike to be offered against it (a dog / a wolf)."""
    partners: dict[str, set[str]] = {}
    for a, b in tables()["not_distractors"]:
        partners.setdefault(concept_key(a), set()).add(concept_key(b))
        partners.setdefault(concept_key(b), set()).add(concept_key(a))
    return partners


def compatible(a: str, b: str) -> bool:
    """True when b must not be a distractor of a: the same concept, or too alike."""
    ka, kb = concept_key(a), concept_key(b)
    return ka == kb or kb in _avoid().get(ka, ())


@functools.lru_cache(maxsize=1)
def _curated_entries() -> tuple[tuple[str, str, str, tuple[str, ...]], ...]:
    """(level, category, name, hand-picked distractors) for every curated concept."""
    out = []
    for level in CURATED_LEVELS:
        for category, entries in tables()[level].items():
            for entry in entries:
                if isinstance(entry, str):
                    out.append((level, category, entry, ()))
                else:
                    out.append((level, category, entry["name"], tuple(entry.get("distractors", ()))))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def curated() -> tuple[Concept, ...]:
    entries = _curated_entries()
    by_category: dict[tuple[str, str], list[str]] = {}
    for level, category, name, _ in entries:
        by_category.setdefault((level, category), []).append(name)
    others = {(level, category): [n for (lv, cat), names in by_category.items()
                                  if lv == level and cat != category for n in names]
              for level, category in by_category}
    out = []
    for level, category, name, given in entries:
        if not given:
            group = (level, category)
            given = _category_distractors(name, by_category[group], others[group])
        out.append(Concept(name, level, category, given))
    return tuple(out)


def _category_distractors(name: str, same: list[str], others: list[str]) -> tuple[str, ...]:
    """3 from the concept's own category (hard but different: an owl for a parrot) and 2 from
    other categories of its level, chosen by a hash of the name so they never change."""
    rng = random.Random(zlib.crc32(name.encode()))
    same = [c for c in same if not compatible(name, c)]
    others = [c for c in others if not compatible(name, c)]
    picked = rng.sample(same, min(3, len(same)))
    return tuple(picked + rng.sample(others, N_DISTRACTORS - len(picked)))


@functools.lru_cache(maxsize=1)
def curated_index() -> dict[str, Concept]:
    return {concept_key(c.name): c for c in curated()}


@functools.lru_cache(maxsize=1)
def object_category() -> dict[str, str]:
    return {c.name: c.category for c in curated() if c.level == "objects"}


# ---------------------------------------------------------------------------------------------
# Words


@functools.lru_cache(maxsize=1 << 16)  # distractor choice compares keys a few hundred thousand times
def concept_key(text: str) -> str:
    """Lookup key: lower case, single spaces, no trailing full stop, no leading article."""
    text = " ".join(text.lower().replace("\u2019", "'").split()).rstrip(".!?")
    return re.sub(r"^(a|an|the) ", "", text)


def noun(name: str) -> str:
    return re.sub(r"^(a|an|the) ", "", name)


def _article(word: str) -> str:
    word = word.lower()
    if word.startswith(("uni", "use", "eu", "one", "ufo")):
        return "a"
    if word.startswith(("hour", "honest", "heir")):
        return "an"
    return "an" if word[:1] in "aeiou" else "a"


def fix_articles(text: str) -> str:
    """Template filling makes "a owl-shaped cake"; fix every a/an to agree with the next word."""
    return re.sub(r"\b(a|an) (\w+)", lambda m: f"{_article(m.group(2))} {m.group(2)}", text)
