"""The Visual Aptitude Dataset: what drawloop asks a model to draw, from shapes to scenes.

Six levels of increasing difficulty, after "A Vision Check-up for Language Models" (CVPR 2024):
hand-curated shapes, objects and scenes (concepts.json, beside this file), and three levels
generated from the objects: compositions of two unrelated things ("a car-shaped cake"), visual
effects ("a glowing light bulb", "a blurred image of a cat") and spatial relations ("a row of
bicycles", "a cat on top of a table"). Every concept has a level, a category, the parts it was
built from, and distractors: plausible but clearly different concepts for the recognizer's
multiple choice (for relations, the same objects in another relation; never the concept itself,
never something the concept's picture would also show, like "a cake" for "a car-shaped cake").

    from drawloop.concepts import LEVELS, load_concepts, get_concept, distractors_for, slugify
    objects = load_concepts(["objects"])        # [Concept(name='a cat', level='objects', ...), ...]
    get_concept("a parrot").distractors         # ('a hummingbird', 'a duck', ..., 'a wrench', ...)
    get_concept("a guitar-shaped cake")         # any generated concept resolves, not just the fixed set
    distractors_for("a purple bicycle", n=4)    # free text: other vehicles, never "a bicycle"
    generate_relations(10, seed=3)              # fresh relations, the same list for the same seed
    slugify("a parrot in a jungle")             # 'parrot-in-a-jungle' (dataset folder names)

`load_concepts(["compositions"])` (likewise effects, relations) is a fixed seeded sample of 60, so a
dataset build is reproducible; `generate_*(n, seed)` draws other samples from the same pools.
Generated samples are spread evenly over their kinds (every relation, every effect appears).

This module is the public face (lookup, distractors for any text, slugs); data.py holds the
Concept record, the levels and the curated tables of concepts.json; generated.py builds the three
generated levels and their distractors.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
import unicodedata
from typing import Iterable

from drawloop.concepts.data import (
    CURATED_LEVELS,
    LEVELS,
    Concept,
    check_levels,
    compatible,
    concept_key,
    curated,
    curated_index,
    noun,
    object_category,
)
from drawloop.concepts.generated import (
    fixed_sample,
    generate_compositions,
    generate_effects,
    generate_relations,
    universe,
    with_distractors,
)

__all__ = [
    "LEVELS", "Concept", "load_concepts", "get_concept", "distractors_for", "slugify",
    "generate_compositions", "generate_effects", "generate_relations",
]


# ---------------------------------------------------------------------------------------------
# Public API


def load_concepts(levels: str | Iterable[str] | None = None) -> list[Concept]:
    """All concepts of the given levels (default: all six), curated ones in file order."""
    wanted = check_levels(levels)
    by_level = {level: [] for level in LEVELS}
    for concept in curated():
        by_level[concept.level].append(concept)
    out = []
    for level in wanted:
        out += by_level[level] if level in CURATED_LEVELS else fixed_sample(level)
    return out


def get_concept(name: str) -> Concept | None:
    """The concept with this name (case, spacing and a leading article don't matter), or None.
    Generated concepts outside the fixed sets resolve too ("a guitar-shaped cake")."""
    if not isinstance(name, str):
        return None
    key = concept_key(name)
    found = curated_index().get(key)
    if found is not None:
        return found
    bare = universe().get(key)
    return None if bare is None else with_distractors(bare)


def distractors_for(concept_text: str, n: int = 4, seed: int = 0) -> list[str]:
    """n distractors for any concept text, deterministic under seed. Known concepts use their own
    distractors (then their category); free text uses the categories of the objects it mentions,
    else random objects. Never the text itself, never an object the text mentions."""
    if not isinstance(concept_text, str):
        raise TypeError(f"concept_text must be a string, got {type(concept_text).__name__}")
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    rng = random.Random(seed)
    concept = get_concept(concept_text)
    if concept is None:
        first, rest = _free_text_pools(concept_text)
    else:
        first, rest = list(concept.distractors), _fillers(concept)
    rest = [c for c in rest if c not in first]
    if n > len(first) + len(rest):
        raise ValueError(f"asked for {n} distractors, only {len(first) + len(rest)} exist")
    chosen = rng.sample(first, min(n, len(first)))
    return chosen + rng.sample(rest, n - len(chosen))


def slugify(name: str) -> str:
    """A stable, filesystem-safe folder name: "a Rubik's cube" -> "rubiks-cube". ASCII only,
    at most 80 characters (long names keep a hash suffix so they stay unique)."""
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"^\s*(a|an|the)\s+", "", text).replace("'", "")
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    digest = hashlib.sha1(str(name).encode()).hexdigest()[:8]
    if not slug:
        return f"concept-{digest}"
    if len(slug) > 80:
        slug = f"{slug[:71].rstrip('-')}-{digest}"
    if slug in _WINDOWS_RESERVED:
        slug += "-concept"
    return slug


_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                     *(f"lpt{i}" for i in range(10))}


# ---------------------------------------------------------------------------------------------
# Filling beyond the stored distractors, and free text


def _fillers(concept: Concept) -> list[str]:
    """More distractors when n exceeds the stored ones: same category, then same level; for a
    generated concept, same-level concepts that share none of its parts."""
    if concept.level in CURATED_LEVELS:
        same = [c.name for c in curated() if c.level == concept.level]
        same.sort(key=lambda name: curated_index()[concept_key(name)].category != concept.category)
        return [n for n in same if not compatible(concept.name, n)]
    return [c.name for c in universe().values()
            if c.level == concept.level and not set(c.parts) & set(concept.parts)]


@functools.lru_cache(maxsize=1)
def _object_patterns() -> list[tuple[re.Pattern, str]]:
    """Regexes for object nouns in free text, longest first ("a baseball bat" before "a bat")."""
    names = sorted(object_category(), key=lambda n: -len(noun(n)))
    return [(re.compile(rf"\b{re.escape(noun(n).lower())}(s|es)?\b"), n) for n in names]


def _mentioned_objects(text: str) -> list[str]:
    text = " ".join(text.lower().split())
    found = []
    for pattern, name in _object_patterns():
        if pattern.search(text):
            found.append(name)
            text = pattern.sub(" ", text)
    return found


def _free_text_pools(text: str) -> tuple[list[str], list[str]]:
    """(objects from the categories the text mentions, all other objects): a purple bicycle gets
    other vehicles first. Never a mentioned object, nor one too like it."""
    mentioned = _mentioned_objects(text)
    category = object_category()
    wanted = {category[m] for m in mentioned}
    fine = [n for n in category
            if concept_key(n) != concept_key(text) and not any(compatible(n, m) for m in mentioned)]
    return [n for n in fine if category[n] in wanted], [n for n in fine if category[n] not in wanted]
