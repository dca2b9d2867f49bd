"""The generated levels: compositions, effects and relations, built from the curated objects.

    from drawloop.concepts.generated import generate_relations, universe, with_distractors
    generate_relations(10, seed=3)     # fresh relations, the same list for the same seed
    universe()["cat on top of a table"]            # any generated concept, without distractors
    with_distractors(universe()["glowing lantern"]).distractors

Every possible concept is enumerated once (a few thousand strings), so any generated name
resolves, sampling is exact, and distractors are chosen only when needed: the same parts
arranged differently make the hard ones ("a dog to the right of a tree" for "... left of ...").
Templates and pools come from concepts.json (data.tables()["generators"]).
"""

from __future__ import annotations

import functools
import random
import zlib
from dataclasses import replace
from typing import Iterable

from drawloop.concepts.data import (
    N_DISTRACTORS,
    Concept,
    concept_key,
    fix_articles,
    noun,
    object_category,
    tables,
)


def generate_compositions(n: int, seed: int = 0) -> list[Concept]:
    """n distinct "a <A>-shaped <B>" concepts (A and B from different categories), spread over B."""
    return _sample_universe("compositions", n, seed)


def generate_effects(n: int, seed: int = 0) -> list[Concept]:
    """n distinct visual-effect concepts ("a glowing lantern", "a cat in fog"), spread over kinds."""
    return _sample_universe("effects", n, seed)


def generate_relations(n: int, seed: int = 0) -> list[Concept]:
    """n distinct spatial-relation concepts ("a dog to the left of a tree", "a row of cats")."""
    return _sample_universe("relations", n, seed)


@functools.lru_cache(maxsize=None)
def fixed_sample(level: str) -> list[Concept]:
    fixed = tables()["generators"]["fixed"]
    return _sample_universe(level, fixed["count"], fixed["seed"])


# ---------------------------------------------------------------------------------------------
# Every possible concept, and seeded samples of them


def _gen() -> dict:
    return tables()["generators"]


@functools.lru_cache(maxsize=1)
def universe() -> dict[str, Concept]:
    """Key -> generated concept without distractors, for all three generated levels."""
    out = {}
    for concept in [*_all_compositions(), *_all_effects(), *_all_relations()]:
        out[concept_key(concept.name)] = concept
    return out


def _composition(a: str, b: str) -> Concept:
    name = fix_articles(_gen()["compositions"]["template"].format(a=noun(a), b=noun(b)))
    return Concept(name, "compositions", "shaped", (), (a, b))


def _composition_ok(a: str, b: str) -> bool:
    # "unrelated": a teapot-shaped bottle is too close to be a composition of two concepts
    return a != b and object_category()[a] != object_category()[b]


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
    return Concept(fix_articles(template.format(A=obj, n=noun(obj))), "effects", kind, (), (obj,))


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
    name = fix_articles(_pair_kinds()[kind]["template"].format(A=a, B=b))
    return Concept(name, "relations", kind, (), (a, b))


def _group(kind: str, obj: str) -> Concept:
    plural = _gen()["relations"]["plurals"][obj]
    name = fix_articles(_group_kinds()[kind]["template"].format(P=plural))
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
    for concept in universe().values():
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
    return [with_distractors(c) for c in out]


# ---------------------------------------------------------------------------------------------
# Distractors of generated concepts: the same parts arranged differently make the hard ones.


def with_distractors(concept: Concept) -> Concept:
    rng = random.Random(zlib.crc32(concept.name.encode()))
    make = {"compositions": _composition_distractors, "effects": _effect_distractors,
            "relations": _relation_distractors}[concept.level]
    names = _dedupe(concept.name, make(concept, rng))
    return replace(concept, distractors=tuple(names[:N_DISTRACTORS]))


def _dedupe(name: str, candidates: Iterable[str]) -> list[str]:
    seen, out = {concept_key(name)}, []
    for candidate in candidates:
        if concept_key(candidate) not in seen:
            seen.add(concept_key(candidate))
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
    category = object_category()
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
