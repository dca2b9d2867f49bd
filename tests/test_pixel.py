"""Pixel agents: structure and concept scorers, the gallery recognizer, the VLM critic (against a
fake OpenAI-compatible server on loopback) and the optional CLIP scorer."""

from __future__ import annotations

import base64
import random
from pathlib import Path

import numpy as np
import pytest

from conftest import FakeOpenAI
from drawloop.agents.base import Recognizer, Scorer
from drawloop.agents.pixel import (ClipScorer, ConceptScorer, PixelRecognizer, StructureScorer, VLMCriticScorer,
                                   _region_sizes, parse_vlm_answer, structure_stats)
from drawloop.renderers import render
from drawloop.state import Drawing

LADDERS = Path(__file__).parent / "ladders"
LEVELS = ("blank", "scribble", "primitive", "parts", "detailed")
CONCEPTS = {"apple": "an apple", "bicycle": "a bicycle", "car": "a car", "cat": "a cat", "fish": "a fish",
            "flower": "a flower", "house": "a house", "sun": "the sun", "tree": "a tree", "umbrella": "an umbrella"}


def drawing(code: str, concept: str = "an apple", choices=None) -> Drawing:
    result = render(code, "svg", size=256)
    assert result.ok, result.error
    return Drawing(concept=concept, code=code, png=result.png, choices=list(choices or []))


def ladder(name: str) -> list[Drawing]:
    files = sorted((LADDERS / name).glob("*.svg"))
    assert [f.stem.split("_", 1)[1] for f in files] == list(LEVELS)
    return [drawing(f.read_text(), CONCEPTS[name], CONCEPTS.values()) for f in files]


def svg(body: str) -> str:
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256" viewBox="0 0 256 256">'
            f'<rect width="256" height="256" fill="white"/>{body}</svg>')


def random_scribble(seed: int) -> str:
    """Scribbles from another generator than the ladders': zigzags and loops, 1-5 colours, any width."""
    rng = random.Random(seed)
    strokes = []
    for _ in range(rng.randint(1, 5)):
        points = " ".join(f"{rng.uniform(15, 241):.0f},{rng.uniform(15, 241):.0f}" for _ in range(rng.randint(4, 30)))
        colour = "#%02x%02x%02x" % tuple(rng.randrange(256) for _ in range(3))
        strokes.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                       f'stroke-width="{rng.choice([1, 2, 3, 5, 8])}" stroke-linejoin="round"/>')
    return svg("".join(strokes))


PRIMITIVES = [svg('<circle cx="128" cy="128" r="80" fill="#d22"/>'), svg('<rect x="40" y="70" width="176" height="110" fill="#36c"/>'),
              svg('<ellipse cx="128" cy="128" rx="100" ry="50" fill="#f90"/>'), svg('<polygon points="128,30 230,220 26,220" fill="#2a2"/>'),
              svg('<circle cx="128" cy="128" r="80" fill="none" stroke="#222" stroke-width="8"/>')]


# ---------------------------------------------------------------- structure

def test_region_counting_follows_shapes_not_rows():
    keys = -np.ones((20, 20), dtype=np.int64)
    keys[2:18, 2] = keys[17, 2:18] = keys[2:18, 17] = 5        # a U: one region, long and thin
    keys[5:8, 6:9] = 5                                          # same colour, separate: a second region
    keys[10:13, 6:9] = 7                                        # another colour
    assert sorted(_region_sizes(keys).tolist()) == [9, 9, 46]


def test_structure_stats_see_parts_colours_fills_and_order():
    disc = structure_stats(render(PRIMITIVES[0], "svg").png, PRIMITIVES[0])
    assert (disc["parts"], disc["colours"]) == (1, 1) and disc["solidity"] > 0.9 and disc["symmetry"] > 0.95
    two = svg('<circle cx="80" cy="128" r="50" fill="#d22"/><rect x="140" y="80" width="90" height="90" fill="#2a2"/>')
    stats = structure_stats(render(two, "svg").png, two)
    assert (stats["parts"], stats["colours"], stats["elements"]) == (2, 2, 3)
    lines = structure_stats(render(random_scribble(1), "svg").png)
    assert lines["solidity"] < 0.3


def test_a_named_shape_is_best_drawn_as_exactly_that_shape():
    """Busyness is not quality for "a red circle": the demo once kept concentric rings over a
    plain red disc because more parts and colours scored higher (issue 12)."""
    scorer = StructureScorer()
    plain = drawing(svg('<circle cx="128" cy="128" r="100" fill="red"/>'), "a red circle")
    rings = drawing(svg('<circle cx="128" cy="128" r="100" fill="darkred" stroke="black" stroke-width="4"/>'
                        '<circle cx="128" cy="128" r="78" fill="red" stroke="black" stroke-width="2"/>'
                        '<circle cx="128" cy="128" r="18" fill="darkred"/>'), "a red circle")
    blue = drawing(svg('<circle cx="128" cy="128" r="100" fill="#2244dd"/>'), "a red circle")
    tiny = drawing(svg('<circle cx="20" cy="20" r="12" fill="red"/>'), "a red circle")
    scores = {name: scorer.score(d).score for name, d in
              (("plain", plain), ("rings", rings), ("blue", blue), ("tiny", tiny))}
    assert scores["plain"] > 0.95 and all(scores["plain"] > v + 0.2 for k, v in scores.items() if k != "plain")
    assert "exactly 1 circle" in scorer.score(rings).feedback and "red" in scorer.score(blue).feedback
    squares = {n: drawing(svg("".join(f'<rect x="{20 + 80 * i}" y="100" width="56" height="56" fill="blue"/>'
                                      for i in range(n))), "three blue squares") for n in (1, 3)}
    assert scorer.score(squares[3]).score > scorer.score(squares[1]).score + 0.1
    # an object is still scored for its parts: more filled parts beat one disc
    assert scorer.score(drawing(PRIMITIVES[0], "an apple")).score < 0.6


@pytest.mark.parametrize("name", sorted(CONCEPTS))
def test_structure_climbs_each_ladder(name):
    scores = [StructureScorer().score(d).score for d in ladder(name)]
    assert scores[0] == 0.0
    assert scores == sorted(scores) and len(set(scores)) == 5, scores


def test_structure_mostly_ranks_unseen_scribbles_below_filled_primitives():
    """Scribbles from a generator the scorer was never tuned on. Measured, and weak: dense
    multi-colour tangles of thick lines make filled blots and pass for structure (see report)."""
    scorer = StructureScorer()
    scribbles = np.array([scorer.score(drawing(random_scribble(seed))).score for seed in range(40)])
    primitives = np.array([scorer.score(drawing(p)).score for p in PRIMITIVES])
    filled = primitives[:4]
    print(f"\nunseen scribbles: median {np.median(scribbles):.2f}, max {scribbles.max():.2f}; filled primitives "
          f"{filled.min():.2f}; above them: {(scribbles > filled.min()).sum()}/40")
    assert np.median(scribbles) < filled.min()
    assert (scribbles > filled.min()).mean() < 0.4


def test_scorers_abstain_on_failed_renders_and_satisfy_the_protocol():
    failed = Drawing(concept="an apple", code="<svg", png=None, render_error="not XML")
    for scorer in (StructureScorer(), ConceptScorer(gallery=lambda: pytest.fail("no gallery needed")),
                   VLMCriticScorer(_NeverCalled()), ClipScorer(None)):
        assert isinstance(scorer, Scorer)
        assert scorer.score(failed) is None
    assert isinstance(PixelRecognizer(gallery=lambda: None), Recognizer)
    assert PixelRecognizer(gallery=lambda: None).recognize(failed)["error"] == "not XML"


class _NeverCalled:
    def invoke(self, *args, **kwargs):
        raise AssertionError("the model must not be called")


# ---------------------------------------------------------------- VLM critic on a fake server

def test_vlm_critic_sends_the_png_and_reads_score_and_feedback(fake_server):
    apple = ladder("apple")[4]
    FakeOpenAI.answers = [(200, '```json\n{"score": 8, "feedback": "Add a shadow under the apple."}\n```')]
    scorer = VLMCriticScorer.from_model("openai:fake-vl", base_url=fake_server, api_key="k", timeout=10)
    result = scorer.score(apple)
    assert result.score == pytest.approx(0.8) and result.feedback == "Add a shadow under the apple."
    assert result.usage["tokens_in"] == 11 and result.usage["tokens_out"] == 7
    request = FakeOpenAI.requests[0]
    assert request["model"] == "fake-vl"
    parts = request["messages"][0]["content"]
    text = next(p["text"] for p in parts if p["type"] == "text")
    url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
    assert "an apple" in text
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == apple.png


def test_vlm_critic_retries_server_errors_and_abstains_on_nonsense(fake_server):
    scorer = VLMCriticScorer.from_model("fake-vl", base_url=fake_server, timeout=10, retries=1)
    scorer.llm.backoff = 0.01
    FakeOpenAI.answers = [(500, ""), (200, "Rating: 3/10. The wheels are missing.")]
    result = scorer.score(ladder("bicycle")[2])
    assert result.score == pytest.approx(0.3) and "wheels are missing" in result.feedback
    FakeOpenAI.answers = [(200, "I like it very much!")]
    assert scorer.score(ladder("bicycle")[2]) is None and "no score" in scorer.last_error
    FakeOpenAI.answers = [(500, ""), (500, "")]
    assert scorer.score(ladder("bicycle")[2]) is None and scorer.last_error


@pytest.mark.parametrize("answer, score, feedback", [
    ('{"score": 0.65, "feedback": ["bigger", "redder"]}', 0.65, "- bigger\n- redder"),
    ("SCORE: 7.5\nFIXES: add leaves", 0.75, "FIXES: add leaves"),
    ("**Score**: 45/100 - too plain", 0.45, "too plain"),
    ('{"rating": "9"}', 0.9, ""),
    ("no number here", None, "no number here"),
])
def test_parse_vlm_answer(answer, score, feedback):
    value, text = parse_vlm_answer(answer)
    assert value == (pytest.approx(score) if score is not None else None)
    assert text == feedback


# ---------------------------------------------------------------- CLIP (optional)

def test_clip_scorer_skips_cleanly_without_a_checkpoint(tmp_path):
    assert "no CLIP checkpoint" in ClipScorer(None).unavailable
    assert "does not exist" in ClipScorer(tmp_path / "missing.pt").unavailable
    assert ClipScorer(None).score(ladder("sun")[4]) is None


def test_clip_scorer_scores_the_concept_caption_against_the_others(tmp_path):
    import torch

    checkpoint = tmp_path / "clip.pt"
    checkpoint.write_bytes(b"weights")

    class TinyClip:          # image -> redness, captions -> [apple-ness, other]
        def encode_image(self, image):
            return torch.stack([image[:, 0].mean((1, 2)), image[:, 2].mean((1, 2))], dim=1)

        def encode_text(self, tokens):
            return torch.tensor([[1.0, 0.0] if "apple" in t else [0.0, 1.0] for t in tokens])

    def loader(name, path):
        assert path == str(checkpoint)
        preprocess = lambda im: torch.from_numpy(np.asarray(im.resize((32, 32)), dtype=np.float32) / 255).permute(2, 0, 1)
        return TinyClip(), preprocess, lambda captions: captions

    scorer = ClipScorer(checkpoint, loader=loader)
    red = scorer.score(drawing(PRIMITIVES[0], "an apple", ["an apple", "a blue sea"]))
    blue = scorer.score(drawing(PRIMITIVES[1], "an apple", ["an apple", "a blue sea"]))
    assert red.details["captions"] == ["a drawing of an apple", "a drawing of a blue sea"]
    assert red.score > 0.5 > blue.score


# ---------------------------------------------------------------- gallery-based agents (real data)
# The reference gallery here is the emoji + Symbola drawings (~2,500; about 1.5 min to embed on 2
# idle cores the first time, then read from the cache); the held-out test adds 16 openclipart
# folders. Both are cached under ~/.cache/drawloop/gallery, so reruns take seconds.

HELD_OUT = {"food/fruit": "a fruit", "animals/birds": "a bird", "animals/bugs": "an insect",
            "animals/fish": "a fish", "plants/flowers": "a flower", "buildings/homes": "a house",
            "transportation/vehicles": "a car", "recreation/music": "a musical instrument",
            "people/smilies": "a smiley face", "signs_and_symbols/weather": "a weather symbol",
            "signs_and_symbols/clocks": "a clock", "tools/weapons": "a weapon", "food/beverages": "a drink",
            "transportation/boating": "a boat", "plants/trees": "a tree", "animals/dinosaurs": "a dinosaur"}


@pytest.fixture(scope="module")
def reference():
    from drawloop.vision.gallery import build_gallery

    return build_gallery(["emoji", "symbola"])


@pytest.fixture(scope="module")
def ladders():
    return {name: ladder(name) for name in CONCEPTS}


def combined(drawing_, concept, structure) -> float:
    """The combined offline critic of the issue: concept and structure, equal weights."""
    return (concept.score(drawing_).score + structure.score(drawing_).score) / 2


@pytest.mark.slow
def test_combined_offline_critic_ranks_every_quality_ladder(reference, ladders):
    from scipy.stats import spearmanr

    concept, structure = ConceptScorer(reference), StructureScorer()
    rhos = {}
    print()
    for name, rungs in ladders.items():
        scores = [combined(d, concept, structure) for d in rungs]
        rhos[name] = float(spearmanr(scores, range(len(LEVELS))).statistic)
        print(f"{name:9s} rho={rhos[name]:.2f}  " + "  ".join(f"{lvl} {v:.3f}" for lvl, v in zip(LEVELS, scores)))
        blank, scribble, primitive = scores[:3]
        assert blank <= primitive and scribble <= primitive, (name, scores)
    print(f"mean Spearman {np.mean(list(rhos.values())):.3f}")
    assert np.mean(list(rhos.values())) >= 0.8
    # The same critic on scribbles from a generator nobody tuned against (weak spot, reported).
    above = 0
    for i, (name, rungs) in enumerate(ladders.items()):
        primitive = combined(rungs[2], concept, structure)
        above += sum(combined(drawing(random_scribble(1000 + 4 * i + s), CONCEPTS[name]), concept, structure)
                     > primitive for s in range(4))
    print(f"unseen scribbles scoring above their concept's primitive: {above}/40")
    assert above <= 14


@pytest.mark.slow
def test_pixel_recognizer_picks_the_drawn_concept_among_choices(reference, ladders):
    recognizer = PixelRecognizer(reference)
    results = {name: recognizer.recognize(rungs[4]) for name, rungs in ladders.items()}
    for result in results.values():
        assert result["source"] == "pixels" and result["choices"] == list(CONCEPTS.values())
        assert 0 < result["confidence"] <= 1
    right = [name for name, r in results.items() if r["correct"]]
    print(f"\ndetailed ladder drawings recognized among 10 choices: {len(right)}/10 (chance 1/10)")
    assert len(right) >= 7
    blank = recognizer.recognize(ladders["apple"][0])
    assert blank["label"] is None and "blank" in blank["error"]


@pytest.mark.slow
def test_pixel_recognizer_votes_over_labels_without_choices(reference, ladders):
    bicycle = ladders["bicycle"][4]
    result = PixelRecognizer(reference, k=5).recognize(Drawing(concept="bicycle", code="", png=bicycle.png))
    assert result["label"] == "bicycle" and result["correct"]


@pytest.mark.slow
def test_pixel_recognizer_remembers_accepted_drawings(reference, ladders):
    from drawloop.vision.index import VectorIndex

    cat = ladders["cat"][3]                                  # grey disc with ears
    choices = ["a grey kitten", "an umbrella", "a rocket", "a guitar"]
    memory = VectorIndex(reference.embedder.dim)
    memory.add(reference.embed([cat.png]), [{"concept": "a grey kitten"}])
    redrawn = cat.code.replace("#8a8a8a", "#8c8c8c").replace('r="76"', 'r="74"')
    probe = Drawing(concept="a grey kitten", code=redrawn, png=render(redrawn, "svg").png, choices=choices)
    assert PixelRecognizer(reference, memory=memory).recognize(probe)["label"] == "a grey kitten"


@pytest.mark.slow
def test_concept_scorer_prefers_the_right_concept_and_says_what_it_sees(reference, ladders):
    scorer = ConceptScorer(reference)
    house = ladders["house"][4]
    right = scorer.score(house)
    wrong = scorer.score(Drawing(concept="a bicycle", code=house.code, png=house.png))
    assert right.score > 0.5 > 0.1 > wrong.score
    assert right.details["z"] > wrong.details["z"] + 3
    assert "house" in wrong.feedback
    assert scorer.score(ladders["apple"][0]).score == 0.0


@pytest.mark.slow
def test_pixel_recognizer_on_held_out_human_drawings():
    """openclipart drawings of 16 subjects, recognized with their whole near-duplicate series
    (file-name series joined with embedding near-copies) held out of the references."""
    from drawloop.vision.gallery import build_gallery

    everything = build_gallery(["emoji", "symbola", "openclipart"],
                               select=lambda i: i.source != "openclipart" or i.category in HELD_OUT, per_series=3)
    series = everything.merged_series(threshold=0.92)
    clip_rows = [r for r, item in enumerate(everything.items) if item.source == "openclipart"]
    groups = sorted({series[r] for r in clip_rows})
    fold_of = {g: i % 5 for i, g in enumerate(random.Random(0).sample(groups, len(groups)))}
    names = list(HELD_OUT.values())
    rng = random.Random(1)
    hits5 = hits_all = votes = total = 0
    for fold in range(5):
        test = [r for r in clip_rows if fold_of[series[r]] == fold]
        held = set(test)
        train = [r for r in range(len(everything)) if r not in held]
        recognizer = PixelRecognizer(everything.subset(train))
        train_clip = everything.subset([r for r in train if everything.items[r].source == "openclipart"])
        for r in test:
            truth = HELD_OUT[everything.items[r].category]
            five = [truth] + rng.sample([n for n in names if n != truth], 4)
            vector = everything.vectors[r]
            hits5 += names_pick(recognizer, vector, five) == truth
            hits_all += names_pick(recognizer, vector, names) == truth
            neighbours = train_clip.neighbours(vector[None], k=10)[0]
            tally: dict[str, float] = {}
            for hit in neighbours:
                tally[hit.meta["category"]] = tally.get(hit.meta["category"], 0) + hit.score
            votes += max(tally, key=tally.get) == everything.items[r].category
            total += 1
    sizes = [sum(everything.items[r].category == c for r in clip_rows) for c in HELD_OUT]
    print(f"\nheld-out openclipart drawings: {total} in {len(groups)} series, 16 subjects "
          f"(largest subject {max(sizes) / total:.1%})\n"
          f"  recognizer, 5 choices: {hits5 / total:.1%} (chance 20%)\n"
          f"  recognizer, 16 choices: {hits_all / total:.1%} (chance 6.3%)\n"
          f"  kNN vote over folders: {votes / total:.1%}")
    assert hits5 / total > 0.45
    assert hits_all / total > 0.2
    assert votes / total > 0.3


def names_pick(recognizer: PixelRecognizer, vector: np.ndarray, choices: list[str]) -> str:
    return choices[int(np.argmax(recognizer.choice_z(vector, choices)))]
