"""The Visual Aptitude Dataset: counts, well-formed distractors, seeded generators, slugs, CLI."""

import json
import re

import pytest
from typer.testing import CliRunner

import drawloop.concepts.data as D
import drawloop.concepts.generated as G
from drawloop.concepts import (
    LEVELS, Concept, distractors_for, generate_compositions, generate_effects, generate_relations,
    get_concept, load_concepts, slugify,
)

GENERATORS = {"compositions": generate_compositions, "effects": generate_effects,
              "relations": generate_relations}


@pytest.fixture(scope="module")
def everything() -> list[Concept]:
    """The loaded set plus every concept the generators can make, with distractors."""
    generated = [G.with_distractors(c) for c in G.universe().values()]
    return load_concepts(D.CURATED_LEVELS) + generated


# --- the set ---------------------------------------------------------------------------------


def test_levels_meet_the_paper_counts():
    counts = {level: len(load_concepts([level])) for level in LEVELS}
    assert counts["shapes"] >= 60 and counts["objects"] >= 250 and counts["scenes"] >= 120
    assert counts["compositions"] == counts["effects"] == counts["relations"] == 60
    assert len(load_concepts()) == sum(counts.values())
    assert {c.level for c in load_concepts("objects")} == {"objects"}


def test_names_are_unique_and_generated_names_never_shadow_curated_ones():
    keys = [D.concept_key(c.name) for c in load_concepts(D.CURATED_LEVELS)]
    assert len(keys) == len(set(keys))
    assert not set(keys) & set(G.universe())


def test_every_concept_has_level_category_and_curated_ones_no_parts():
    for c in load_concepts():
        assert c.level in LEVELS and c.category and c.name == c.name.strip()
        assert (c.parts == ()) == (c.level in D.CURATED_LEVELS)


def test_objects_cover_everyday_categories():
    categories = {c.category for c in load_concepts("objects")}
    assert {"animal", "bird", "vehicle", "food", "fruit", "tool", "instrument", "furniture"} <= categories
    for name in ["a bicycle", "a parrot", "a strawberry"]:
        assert get_concept(name).level == "objects"
    assert get_concept("a parrot in a jungle").level == "scenes"
    assert get_concept("a lighthouse at night").level == "scenes"


def test_articles_agree_everywhere(everything):
    # "a owl-shaped cake" or a hand-typed "a orange heart" would read wrong to the drawing model
    for c in everything:
        for text in (c.name, *c.distractors):
            assert D.fix_articles(text) == text, text


def test_data_file_references_only_real_objects():
    objects = {c.name for c in load_concepts("objects")}
    curated = {c.name for c in load_concepts(D.CURATED_LEVELS)}
    for a, b in D.tables()["not_distractors"]:
        assert a in curated and b in curated, (a, b)
    gen = D.tables()["generators"]
    pools = gen["relations"]["pools"]
    used = [*gen["compositions"]["shape_sources"], *gen["compositions"]["shaped_things"],
            *gen["effects"]["universal_objects"], *[o for pool in pools.values() for o in pool],
            *[o for kind in gen["effects"]["kinds"] for o in kind.get("objects", [])]]
    assert set(used) <= objects, set(used) - objects
    assert set(pools["group"]) | set(pools["stackable"]) <= set(gen["relations"]["plurals"])


# --- distractors -----------------------------------------------------------------------------


def test_every_distractor_list_is_well_formed(everything):
    for c in everything:
        keys = [D.concept_key(d) for d in c.distractors]
        assert len(keys) >= 4, c
        assert len(set(keys)) == len(keys), c
        assert D.concept_key(c.name) not in keys, c
        assert all(d.strip() == d and d for d in c.distractors), c


def test_distractors_never_show_what_the_picture_also_shows(everything):
    # "a cake" is in the picture of "a car-shaped cake"; "a dog" and "a wolf" look alike
    for c in everything:
        assert not set(c.parts) & set(c.distractors), c
        assert not any(D.compatible(c.name, d) for d in c.distractors), c


def test_object_distractors_come_mostly_from_the_same_category():
    objects = load_concepts("objects")
    category = {c.name: c.category for c in objects}
    same = sum(category[d] == c.category for c in objects for d in c.distractors)
    assert same == 3 * len(objects)
    assert "a wolf" not in get_concept("a dog").distractors


def test_relation_distractors_rearrange_the_same_objects():
    concept = get_concept("a cat on top of a table")
    assert concept.parts == ("a cat", "a table")
    assert "a cat under a table" in concept.distractors            # the opposite relation
    assert "a cat above a table" not in concept.distractors        # the same picture
    same_pair = [d for d in concept.distractors if "cat" in d and "table" in d]
    assert len(same_pair) >= 2
    row = get_concept("a row of bicycles")
    assert "a bicycle" not in row.distractors
    assert sum("bicycles" in d for d in row.distractors) >= 2


def test_composition_and_effect_distractors_vary_one_part_at_a_time():
    cake = get_concept("a car-shaped cake")
    assert cake.level == "compositions" and cake.parts == ("a car", "a cake")
    assert any(d.endswith("-shaped cake") for d in cake.distractors)
    assert any(d.startswith("a car-shaped") for d in cake.distractors)
    teapot = get_concept("a car-shaped teapot")                    # car and teapot can swap roles
    assert "a teapot-shaped car" in teapot.distractors
    bulb = get_concept("a glowing light bulb")
    assert bulb.level == "effects" and bulb.category == "glow"
    assert any(d.startswith("a glowing") for d in bulb.distractors)
    assert any("light bulb" in d and "glowing" not in d for d in bulb.distractors)
    # blur and fog look alike, so one is never offered against the other
    assert not any("fog" in d or "pixelated" in d for d in get_concept("a blurred image of a cat").distractors)


def test_distractors_for_known_concepts_uses_their_own_then_their_category():
    parrot = get_concept("a parrot")
    four = distractors_for("A Parrot", n=4, seed=0)
    assert len(four) == 4 and set(four) <= set(parrot.distractors)
    assert distractors_for("a parrot", n=4, seed=0) == four
    assert any(distractors_for("a parrot", n=4, seed=s) != four for s in range(1, 5))
    ten = distractors_for("a parrot", n=10, seed=1)
    assert len(set(ten)) == 10 and "a parrot" not in ten and set(parrot.distractors) <= set(ten)
    assert distractors_for("a parrot", n=0) == []


def test_distractors_for_free_text_uses_mentioned_categories_and_never_the_mention():
    bikes = distractors_for("a purple bicycle with wings", n=4, seed=3)
    vehicles = {c.name for c in load_concepts("objects") if c.category == "vehicle"}
    assert set(bikes) <= vehicles and "a bicycle" not in bikes
    bat = distractors_for("a baseball bat", n=40)
    assert "a baseball bat" not in bat
    unknown = distractors_for("a zorblax", n=5, seed=7)
    assert len(set(unknown)) == 5 and all(get_concept(d).level == "objects" for d in unknown)
    assert distractors_for("a zorblax", n=5, seed=7) == unknown
    with pytest.raises(ValueError):
        distractors_for("a cat", n=-1)
    with pytest.raises(TypeError):
        distractors_for(None)
    with pytest.raises(ValueError):
        distractors_for("a zorblax", n=10_000)


# --- generators ------------------------------------------------------------------------------


@pytest.mark.parametrize("level", list(GENERATORS))
def test_generators_are_deterministic_under_a_seed(level):
    generate = GENERATORS[level]
    first = generate(25, seed=1)
    assert first == generate(25, seed=1)
    assert [c.name for c in first] != [c.name for c in generate(25, seed=2)]
    assert len({c.name for c in first}) == 25 and {c.level for c in first} == {level}
    assert load_concepts([level]) == generate(60, seed=0)      # the fixed, reproducible set
    assert generate(0, seed=5) == []
    with pytest.raises(ValueError):
        generate(10**6, seed=0)


def test_generated_samples_cover_every_kind():
    relation_kinds = {c.category for c in G.universe().values() if c.level == "relations"}
    assert {c.category for c in generate_relations(len(relation_kinds), seed=4)} == relation_kinds
    effect_kinds = {k["kind"] for k in D.tables()["generators"]["effects"]["kinds"]}
    assert {c.category for c in generate_effects(len(effect_kinds), seed=4)} == effect_kinds


def test_compositions_are_two_unrelated_objects():
    category = {c.name: c.category for c in load_concepts("objects")}
    for c in generate_compositions(100, seed=9):
        a, b = c.parts
        assert re.fullmatch(r"an? [a-z' -]+-shaped [a-z' -]+", c.name), c.name
        assert c.name.endswith(f"-shaped {D.noun(b)}") and f" {D.noun(a)}-shaped" in c.name
        assert a != b and category[a] != category[b]


def test_relations_name_their_parts():
    for c in generate_relations(120, seed=2):
        assert 1 <= len(c.parts) <= 2
        if len(c.parts) == 2:
            assert c.name.startswith(c.parts[0]) and c.name.endswith(D.noun(c.parts[1]))
        else:
            assert D.tables()["generators"]["relations"]["plurals"][c.parts[0]] in c.name


# --- lookup and slugs --------------------------------------------------------------------------


def test_get_concept_normalises_and_resolves_generated_names():
    assert get_concept("  The   Bicycle. ").name == "a bicycle"
    assert get_concept("an owl-shaped lamp").parts == ("an owl", "a lamp")
    assert get_concept("a dog to the left of a tree").category == "left of"
    assert get_concept("a unicorn-shaped spaceship") is None
    assert get_concept(None) is None
    with pytest.raises(ValueError, match="unknown level"):
        load_concepts(["animals"])


def test_slugify_is_stable_safe_and_unique_across_the_set(everything):
    assert slugify("a parrot in a jungle") == "parrot-in-a-jungle"
    assert slugify("a Rubik's cube") == "rubiks-cube"
    assert slugify("an owl-shaped lamp") == "owl-shaped-lamp"
    assert slugify("Café crème!") == "cafe-creme"
    assert slugify("").startswith("concept-") and slugify("a") == slugify("a")
    assert slugify("con") == "con-concept"
    long = slugify("a " + "very " * 40 + "long name")
    assert len(long) <= 80 and long != slugify("a " + "very " * 40 + "long game")
    slugs = [slugify(c.name) for c in everything]
    assert len(set(slugs)) == len(slugs)
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", s) for s in slugs)


# --- CLI -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli():
    from drawloop.cli import build_app

    app, runner = build_app(), CliRunner()
    return lambda *args: runner.invoke(app, ["concepts", *args])


def test_cli_lists_a_level(cli):
    result = cli("list", "--level", "objects")
    assert result.exit_code == 0, result.output
    assert "a parrot" in result.output and "a bicycle" in result.output
    assert f"{len(load_concepts('objects'))} concepts" in result.output
    assert "a birthday party" not in result.output


def test_cli_json_limit_and_category(cli):
    result = cli("list", "--level", "relations", "--json", "--limit", "5")
    rows = json.loads(result.output)
    assert len(rows) == 5 and {r["level"] for r in rows} == {"relations"}
    assert rows[0]["name"] == load_concepts("relations")[0].name and len(rows[0]["distractors"]) >= 4
    birds = json.loads(cli("list", "-l", "objects", "-c", "bird", "--json").output)
    assert "a parrot" in [r["name"] for r in birds] and {r["category"] for r in birds} == {"bird"}


def test_cli_show_and_clear_errors(cli):
    shown = cli("show", "a row of bicycles")
    assert shown.exit_code == 0 and "six bicycles in a circle" in shown.output
    assert "train/row-of-bicycles-NNNN.png" in shown.output
    missing = cli("show", "a parot")
    assert missing.exit_code == 2 and "a parrot" in missing.output   # an unknown concept is a usage error
    bad = cli("list", "--level", "animals")
    assert bad.exit_code == 2 and "shapes" in bad.output
