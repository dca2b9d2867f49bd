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
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
import unicodedata
import zlib
from dataclasses import dataclass, replace
from importlib import resources
from typing import Iterable

LEVELS = ("shapes", "objects", "scenes", "compositions", "effects", "relations")
CURATED_LEVELS = ("shapes", "objects", "scenes")
N_DISTRACTORS = 5  # stored per concept; the recognizer usually shows 4 of them
DATA_FILE = "concepts.json"

__all__ = [
    "LEVELS", "Concept", "load_concepts", "get_concept", "distractors_for", "slugify",
    "generate_compositions", "generate_effects", "generate_relations",
]


@dataclass(frozen=True)
class Concept:
    name: str                      # what the model is asked to draw: "a cat on top of a table"
    level: str                     # one of LEVELS
    category: str                  # objects: "animal", "vehicle"...; generated: the kind, "on top of"
    distractors: tuple[str, ...]   # other concepts for multiple choice, hardest kinds first
    parts: tuple[str, ...] = ()    # generated concepts: the objects they are built from


# ---------------------------------------------------------------------------------------------
# Public API


def load_concepts(levels: str | Iterable[str] | None = None) -> list[Concept]:
    """All concepts of the given levels (default: all six), curated ones in file order."""
    wanted = _check_levels(levels)
    by_level = {level: [] for level in LEVELS}
    for concept in _curated():
        by_level[concept.level].append(concept)
    out = []
    for level in wanted:
        out += by_level[level] if level in CURATED_LEVELS else _fixed(level)
    return out


def get_concept(name: str) -> Concept | None:
    """The concept with this name (case, spacing and a leading article don't matter), or None.
    Generated concepts outside the fixed sets resolve too ("a guitar-shaped cake")."""
    if not isinstance(name, str):
        return None
    key = _key(name)
    found = _curated_index().get(key)
    if found is not None:
        return found
    bare = _universe().get(key)
    return None if bare is None else _with_distractors(bare)


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


def generate_compositions(n: int, seed: int = 0) -> list[Concept]:
    """n distinct "a <A>-shaped <B>" concepts (A and B from different categories), spread over B."""
    return _sample_universe("compositions", n, seed)


def generate_effects(n: int, seed: int = 0) -> list[Concept]:
    """n distinct visual-effect concepts ("a glowing lantern", "a cat in fog"), spread over kinds."""
    return _sample_universe("effects", n, seed)


def generate_relations(n: int, seed: int = 0) -> list[Concept]:
    """n distinct spatial-relation concepts ("a dog to the left of a tree", "a row of cats")."""
    return _sample_universe("relations", n, seed)


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
# Words


@functools.lru_cache(maxsize=1 << 16)  # distractor choice compares keys a few hundred thousand times
def _key(text: str) -> str:
    """Lookup key: lower case, single spaces, no trailing full stop, no leading article."""
    text = " ".join(text.lower().replace("\u2019", "'").split()).rstrip(".!?")
    return re.sub(r"^(a|an|the) ", "", text)


def _noun(name: str) -> str:
    return re.sub(r"^(a|an|the) ", "", name)


def _article(word: str) -> str:
    word = word.lower()
    if word.startswith(("uni", "use", "eu", "one", "ufo")):
        return "a"
    if word.startswith(("hour", "honest", "heir")):
        return "an"
    return "an" if word[:1] in "aeiou" else "a"


def _fix_articles(text: str) -> str:
    """Template filling makes "a owl-shaped cake"; fix every a/an to agree with the next word."""
    return re.sub(r"\b(a|an) (\w+)", lambda m: f"{_article(m.group(2))} {m.group(2)}", text)


# ---------------------------------------------------------------------------------------------
# Curated levels


@functools.lru_cache(maxsize=1)
def _data() -> dict:
    text = resources.files(__name__).joinpath(DATA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def _check_levels(levels: str | Iterable[str] | None) -> list[str]:
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
    for a, b in _data()["not_distractors"]:
        partners.setdefault(_key(a), set()).add(_key(b))
        partners.setdefault(_key(b), set()).add(_key(a))
    return partners


def _compatible(a: str, b: str) -> bool:
    """True when b must not be a distractor of a: the same concept, or too alike."""
    ka, kb = _key(a), _key(b)
    return ka == kb or kb in _avoid().get(ka, ())


@functools.lru_cache(maxsize=1)
def _curated_entries() -> tuple[tuple[str, str, str, tuple[str, ...]], ...]:
    """(level, category, name, hand-picked distractors) for every curated concept."""
    out = []
    for level in CURATED_LEVELS:
        for category, entries in _data()[level].items():
            for entry in entries:
                if isinstance(entry, str):
                    out.append((level, category, entry, ()))
                else:
                    out.append((level, category, entry["name"], tuple(entry.get("distractors", ()))))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def _curated() -> tuple[Concept, ...]:
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
    same = [c for c in same if not _compatible(name, c)]
    others = [c for c in others if not _compatible(name, c)]
    picked = rng.sample(same, min(3, len(same)))
    return tuple(picked + rng.sample(others, N_DISTRACTORS - len(picked)))


@functools.lru_cache(maxsize=1)
def _curated_index() -> dict[str, Concept]:
    return {_key(c.name): c for c in _curated()}


@functools.lru_cache(maxsize=1)
def _object_category() -> dict[str, str]:
    return {c.name: c.category for c in _curated() if c.level == "objects"}


@functools.lru_cache(maxsize=None)
def _fixed(level: str) -> list[Concept]:
    fixed = _data()["generators"]["fixed"]
    return _sample_universe(level, fixed["count"], fixed["seed"])


# ---------------------------------------------------------------------------------------------
# Generated levels: every possible concept is enumerated once (a few thousand strings), so any
# generated name resolves, sampling is exact, and distractors are chosen only when needed.


def _gen() -> dict:
    return _data()["generators"]


@functools.lru_cache(maxsize=1)
def _universe() -> dict[str, Concept]:
    """Key -> generated concept without distractors, for all three generated levels."""
    out = {}
    for concept in [*_all_compositions(), *_all_effects(), *_all_relations()]:
        out[_key(concept.name)] = concept
    return out


def _composition(a: str, b: str) -> Concept:
    name = _fix_articles(_gen()["compositions"]["template"].format(a=_noun(a), b=_noun(b)))
    return Concept(name, "compositions", "shaped", (), (a, b))


def _composition_ok(a: str, b: str) -> bool:
    # "unrelated": a teapot-shaped bottle is too close to be a composition of two concepts
    return a != b and _object_category()[a] != _object_category()[b]


def _all_compositions() -> list[Concept]:
    spec = _gen()["compositions"]
    return [_composition(a, b) for b in spec["shaped_things"] for a in spec["shape_sources"]
            if _composition_ok(a, b)]


@functools.lru_cache(maxsize=1)
def _effect_kinds() -> dict[str, dict]:
    return {k["kind"]: k for k in _gen()["effects"]["kinds"]}


def _effect_objects(kind: str) -> list[str]:
    return _effect_kinds()[kind].get("objects") or _gen()["effects"]["universal_objects"]


def _effect(kind: str, obj: str) -> Concept:
    template = _effect_kinds()[kind]["template"]
    return Concept(_fix_articles(template.format(A=obj, n=_noun(obj))), "effects", kind, (), (obj,))


def _all_effects() -> list[Concept]:
    return [_effect(kind, obj) for kind in _effect_kinds() for obj in _effect_objects(kind)]


@functools.lru_cache(maxsize=1)
def _pair_kinds() -> dict[str, dict]:
    return {k["kind"]: k for k in _gen()["relations"]["pair_kinds"]}


@functools.lru_cache(maxsize=1)
def _group_kinds() -> dict[str, dict]:
    return {k["kind"]: k for k in _gen()["relations"]["group_kinds"]}


def _pool(name: str) -> list[str]:
    return _gen()["relations"]["pools"][name]


def _pair(kind: str, a: str, b: str) -> Concept:
    name = _fix_articles(_pair_kinds()[kind]["template"].format(A=a, B=b))
    return Concept(name, "relations", kind, (), (a, b))


def _group(kind: str, obj: str) -> Concept:
    plural = _gen()["relations"]["plurals"][obj]
    name = _fix_articles(_group_kinds()[kind]["template"].format(P=plural))
    return Concept(name, "relations", kind, (), (obj,))


def _all_relations() -> list[Concept]:
    out = []
    for kind, spec in _pair_kinds().items():
        if "a" in spec:  # "below" only ever appears as a distractor ("a kite below a house")
            out += [_pair(kind, a, b) for a in _pool(spec["a"]) for b in _pool(spec["b"]) if a != b]
    for kind, spec in _group_kinds().items():
        out += [_group(kind, obj) for obj in _pool(spec["objects"])]
    return out


def _sample_universe(level: str, n: int, seed: int) -> list[Concept]:
    """n distinct concepts of a generated level, round-robin over kinds (compositions: over the
    shaped thing) in a seeded order, so small samples still cover every kind."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    groups: dict[str, list[Concept]] = {}
    for concept in _universe().values():
        if concept.level == level:
            group = concept.parts[1] if level == "compositions" else concept.category
            groups.setdefault(group, []).append(concept)
    total = sum(map(len, groups.values()))
    if n > total:
        raise ValueError(f"asked for {n} {level}, only {total} distinct ones exist")
    rng = random.Random(seed)
    queues = [rng.sample(members, len(members)) for members in groups.values()]
    rng.shuffle(queues)
    out: list[Concept] = []
    while len(out) < n:
        for queue in queues:
            if queue and len(out) < n:
                out.append(queue.pop())
    return [_with_distractors(c) for c in out]


# ---------------------------------------------------------------------------------------------
# Distractors of generated concepts: the same parts arranged differently make the hard ones.


def _with_distractors(concept: Concept) -> Concept:
    rng = random.Random(zlib.crc32(concept.name.encode()))
    make = {"compositions": _composition_distractors, "effects": _effect_distractors,
            "relations": _relation_distractors}[concept.level]
    names = _dedupe(concept.name, make(concept, rng))
    return replace(concept, distractors=tuple(names[:N_DISTRACTORS]))


def _dedupe(name: str, candidates: Iterable[str]) -> list[str]:
    seen, out = {_key(name)}, []
    for candidate in candidates:
        if _key(candidate) not in seen:
            seen.add(_key(candidate))
            out.append(candidate)
    return out


def _take(rng: random.Random, items: list, k: int) -> list:
    return rng.sample(items, min(k, len(items)))


def _composition_distractors(concept: Concept, rng: random.Random) -> list[str]:
    """car-shaped cake -> guitar-shaped cake, owl-shaped cake, car-shaped pillow, car-shaped lamp,
    cake-shaped car (when that exists). Never "a cake": the cake in the picture is one."""
    a, b = concept.parts
    spec = _gen()["compositions"]
    other_a = [x for x in spec["shape_sources"] if x != a and _composition_ok(x, b)]
    other_b = [y for y in spec["shaped_things"] if y != b and _composition_ok(a, y)]
    swapped = [_composition(b, a).name] if (
        b in spec["shape_sources"] and a in spec["shaped_things"] and _composition_ok(b, a)) else []
    firsts = [_composition(x, b).name for x in _take(rng, other_a, 3)]
    seconds = [_composition(a, y).name for y in _take(rng, other_b, 2)]
    return firsts[:2] + seconds + swapped + firsts[2:]


def _confusable_kinds(kind: str) -> set[str]:
    out = {kind}
    for group in _gen()["effects"]["confusable"]:
        if kind in group:
            out.update(group)
    return out


def _effect_distractors(concept: Concept, rng: random.Random) -> list[str]:
    """a glowing lantern -> a glowing candle, a glowing jellyfish, a glowing mushroom (same effect,
    other objects of the same category first), a lantern with a drop shadow, a silhouette of a
    lantern (same object, effects that don't look alike: never "a lantern in fog" for a glow)."""
    (obj,) = concept.parts
    category = _object_category()
    others = [o for o in _effect_objects(concept.category) if o != obj]
    rng.shuffle(others)
    others.sort(key=lambda o: category.get(o) != category.get(obj))  # same category first
    same_effect = [_effect(concept.category, o).name for o in others[:3]]
    kinds = [k for k in _effect_kinds() if k not in _confusable_kinds(concept.category)
             and (obj in _effect_objects(k) or "objects" not in _effect_kinds()[k])]
    same_object = [_effect(k, obj).name for k in _take(rng, kinds, 2)]
    return same_effect + same_object + [_effect(concept.category, o).name for o in others[3:]]


def _relation_distractors(concept: Concept, rng: random.Random) -> list[str]:
    if concept.category in _group_kinds():
        return _group_distractors(concept, rng)
    return _pair_distractors(concept, rng)


def _group_distractors(concept: Concept, rng: random.Random) -> list[str]:
    """a row of bicycles -> six bicycles in a circle, a grid of nine bicycles, three bicycles
    stacked, a row of umbrellas, a row of cats. Never "a bicycle": the row has bicycles."""
    (obj,) = concept.parts
    kind = concept.category
    arrangements = [_group(k, obj).name for k in _group_kinds() if k != kind]
    objects = [o for o in _pool(_group_kinds()[kind]["objects"]) if o != obj]
    return rng.sample(arrangements, len(arrangements)) + [
        _group(kind, o).name for o in _take(rng, objects, N_DISTRACTORS)]


def _pair_distractors(concept: Concept, rng: random.Random) -> list[str]:
    """a dog to the left of a tree -> a dog to the right of a tree (opposite), a dog behind a tree
    (another axis), a frog/cat to the left of a tree, a dog to the left of a house. Relations
    that the same picture would satisfy ("above" for "on top of") are never offered."""
    a, b = concept.parts
    kinds = _pair_kinds()
    spec = kinds[concept.category]
    opposite = [spec["opposite"]] if "opposite" in spec else []
    other_axes = [k for k, s in kinds.items() if s["axis"] != spec["axis"]
                  and (k != "inside" or b in _pool("containers"))]
    relations = opposite + _take(rng, other_axes, 2 - len(opposite))
    other_a = [x for x in _pool(spec["a"]) if x not in (a, b)]
    other_b = [y for y in _pool(spec["b"]) if y not in (a, b)]
    swapped = ([_pair(concept.category, x, b).name for x in _take(rng, other_a, 2)]
               + [_pair(concept.category, a, y).name for y in _take(rng, other_b, 1)])
    more = [_pair(concept.category, x, b).name for x in _take(rng, other_a, N_DISTRACTORS)]
    return [_pair(k, a, b).name for k in relations] + swapped + more


# ---------------------------------------------------------------------------------------------
# Filling beyond the stored distractors, and free text


def _fillers(concept: Concept) -> list[str]:
    """More distractors when n exceeds the stored ones: same category, then same level; for a
    generated concept, same-level concepts that share none of its parts."""
    if concept.level in CURATED_LEVELS:
        same = [c.name for c in _curated() if c.level == concept.level]
        same.sort(key=lambda name: _curated_index()[_key(name)].category != concept.category)
        return [n for n in same if not _compatible(concept.name, n)]
    return [c.name for c in _universe().values()
            if c.level == concept.level and not set(c.parts) & set(concept.parts)]


@functools.lru_cache(maxsize=1)
def _object_patterns() -> list[tuple[re.Pattern, str]]:
    """Regexes for object nouns in free text, longest first ("a baseball bat" before "a bat")."""
    names = sorted(_object_category(), key=lambda n: -len(_noun(n)))
    return [(re.compile(rf"\b{re.escape(_noun(n).lower())}(s|es)?\b"), n) for n in names]


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
    category = _object_category()
    wanted = {category[m] for m in mentioned}
    fine = [n for n in category
            if _key(n) != _key(text) and not any(_compatible(n, m) for m in mentioned)]
    return [n for n in fine if category[n] in wanted], [n for n in fine if category[n] not in wanted]
