import pytest

from conftest import APPLE, BLANK, fake_llm
from drawloop.agents.base import ScoreResult
from drawloop.agents.critic import (Critic, LLMCodeCritic, RecognitionScorer, RenderSanityScorer,
                                    parse_critique, parse_weights, svg_blank_causes)
from drawloop.imaging import content_stats
from drawloop.renderers import render
from drawloop.state import Drawing


def drawing(svg, concept="a red apple", **kw):
    result = render(svg, "svg", 128)
    return Drawing(concept=concept, code=svg, png=result.png if result.ok else None,
                   render_error=result.error, **kw)


def svg(body):
    return f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">{body}</svg>'


def test_content_stats_measure_coverage_and_colours():
    stats = content_stats(drawing(APPLE).png)
    assert 0.2 < stats["coverage"] < 0.45 and stats["colours"] >= 3 and stats["edge_touch"] == 0
    assert content_stats(drawing(BLANK).png)["coverage"] == 0.0


@pytest.mark.parametrize("body, expected_score, phrase", [
    ("", 0.0, "blank"),
    ('<rect width="100" height="100" fill="#3a6"/>', 0.0, "one flat colour"),
    ('<circle cx="50" cy="50" r="4" fill="red"/><circle cx="52" cy="50" r="2" fill="blue"/>', 0.05, "nearly empty"),
    ('<circle cx="50" cy="50" r="14" fill="red"/><circle cx="52" cy="50" r="6" fill="blue"/>', 0.5, "tiny"),
    ('<rect x="-20" y="-20" width="140" height="60" fill="navy"/><circle cx="50" cy="70" r="12" fill="gold"/>',
     0.75, "off the canvas"),
    ('<circle cx="50" cy="50" r="30" fill="red"/>', 0.75, "one colour"),
])
def test_sanity_scorer_flags(body, expected_score, phrase):
    """Scores of the sanity scorer alone: nearly empty canvases get 0.05 (and cap the critic)."""
    result = RenderSanityScorer().score(drawing(svg(body)))
    assert result.score == pytest.approx(expected_score) and phrase in result.feedback


NEAR_EMPTY = {
    # the demo's "a bicycle": a thin green sliver down the left edge of a white canvas
    "sliver": '<rect width="100" height="100" fill="white"/><rect x="0" y="10" width="3" height="80" fill="green"/>',
    "speck": '<rect width="100" height="100" fill="white"/><circle cx="90" cy="90" r="3" fill="black"/>',
    "stray": '<rect width="100" height="100" fill="white"/><line x1="10" y1="10" x2="90" y2="90" '
             'stroke="#888" stroke-width="0.4"/>',
    "top strip": '<rect width="100" height="100" fill="white"/><rect x="5" y="0" width="90" height="8" fill="blue"/>',
}
CONTENT = {
    "line bicycle": '<g fill="none" stroke="black" stroke-width="2"><circle cx="28" cy="65" r="16"/>'
                    '<circle cx="72" cy="65" r="16"/><path d="M28 65 L45 40 L65 40 L72 65 M45 40 L50 65 L28 65"/></g>',
    "red circle": '<circle cx="50" cy="50" r="30" fill="red"/>',
}


@pytest.mark.parametrize("name", sorted(NEAR_EMPTY))
def test_near_empty_canvases_score_below_any_drawing_with_content(name):
    critic = Critic([(RenderSanityScorer(), 1.0), (AlwaysRight(), 2.0)])  # code readers fooled completely
    empty = critic.critique(drawing(svg(NEAR_EMPTY[name])))
    assert empty["score"] <= 0.15 and ("nearly empty" in empty["feedback"] or "blank" in empty["feedback"])
    for body in CONTENT.values():
        assert critic.critique(drawing(svg(body)))["score"] > 0.5


class AlwaysRight:
    name = "recognition"

    def score(self, drawing):
        return ScoreResult(1.0)


# What the local model wrote for "a black and white checkerboard" three times in a row (dataset
# build, session 3): a pattern without width/height paints nothing, and "the canvas is blank"
# alone never told it why.
CHECKERBOARD_WITHOUT_SIZE = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 256 256" width="256" height="256">
  <pattern id="checkerboard" patternUnits="userSpaceOnUse">
    <rect width="32" height="32" fill="#000" />
    <rect width="32" height="32" x="32" y="32" fill="#000" />
  </pattern>
  <rect width="256" height="256" fill="url(#checkerboard)" /></svg>"""


@pytest.mark.parametrize("code, phrase", [
    (CHECKERBOARD_WITHOUT_SIZE, '<pattern id="checkerboard"> has no width and height'),
    (svg('<circle cx="50" cy="50" r="30" fill="url(#skin)"/>'), "url(#skin) refer to ids that are not defined"),
    (svg('<defs><circle id="c" cx="50" cy="50" r="30" fill="red"/></defs>'), "inside <defs>"),
    (svg('<circle cx="50" cy="50" r="30" fill="none"/><rect width="9" height="9" style="fill:none"/>'),
     'Every shape has fill="none"'),
])
def test_a_blank_canvas_gets_the_cause_in_the_code_as_feedback(code, phrase):
    result = RenderSanityScorer().score(drawing(code))
    assert result.score == 0.0 and phrase in result.feedback, result.feedback
    assert "may be the same colour" not in result.feedback     # the guess is replaced by the cause


def test_blank_causes_say_nothing_when_the_code_is_fine_or_the_cause_is_unknown():
    fixed = CHECKERBOARD_WITHOUT_SIZE.replace('patternUnits="userSpaceOnUse"',
                                              'patternUnits="userSpaceOnUse" width="64" height="64"')
    assert svg_blank_causes(fixed) == []
    assert RenderSanityScorer().score(drawing(fixed)).score > 0          # it really draws now
    white_on_white = svg('<circle cx="50" cy="50" r="30" fill="#fff"/>')
    assert svg_blank_causes(white_on_white) == []
    assert "may be the same colour" in RenderSanityScorer().score(drawing(white_on_white)).feedback
    assert svg_blank_causes("<svg") == []
    assert svg_blank_causes(svg('<defs><circle id="c" r="9"/></defs><use href="#c" x="50" y="50"/>')) == []


def test_sanity_abstains_on_failed_render():
    assert RenderSanityScorer().score(drawing("<svg")) is None


def test_recognition_scorer():
    right = drawing(APPLE, recognition={"label": "a red apple", "correct": True})
    wrong = drawing(APPLE, recognition={"label": "a tomato", "correct": False})
    assert RecognitionScorer().score(right).score == 1.0
    result = RecognitionScorer().score(wrong)
    assert result.score == 0.0 and "a tomato" in result.feedback
    assert RecognitionScorer().score(drawing(APPLE)) is None


@pytest.mark.parametrize("text, score, fixes", [
    ("SCORE: 7\nFIXES:\n- add a stem\n- make it rounder", 0.7, ["- add a stem", "- make it rounder"]),
    ("**Score**: 4/5\nFixes:\n* darker red", 0.8, ["- darker red"]),
    ("Score: 12\nFIXES:\n- a\n- more leaves", 1.0, ["- more leaves"]),
    ("I like it a lot!", None, []),
])
def test_parse_critique(text, score, fixes):
    parsed_score, parsed_fixes = parse_critique(text)
    assert parsed_score == (pytest.approx(score) if score is not None else None)
    assert [f for f in parsed_fixes.splitlines() if f] == fixes


def test_llm_critic_scores_and_abstains_on_garbage():
    good = LLMCodeCritic(fake_llm("SCORE: 6\nFIXES:\n- add a leaf")).score(drawing(APPLE))
    assert good.score == pytest.approx(0.6) and "add a leaf" in good.feedback
    assert LLMCodeCritic(fake_llm("no idea")).score(drawing(APPLE)) is None


class Fixed:
    def __init__(self, name, value, cap=None):
        self.name, self.value, self.cap = name, value, cap

    def score(self, d):
        if self.value is None:
            return None
        return ScoreResult(self.value, f"{self.name} says hi", {"cap": self.cap} if self.cap is not None else {})


def test_critic_weighted_mean_ignores_abstainers_and_respects_caps():
    critic = Critic([(Fixed("a", 1.0), 1.0), (Fixed("b", 0.0), 3.0), (Fixed("c", None), 5.0)])
    result = critic.critique(drawing(APPLE))
    assert result["score"] == pytest.approx(0.25) and result["scores"] == {"a": 1.0, "b": 0.0}
    assert "a says hi" in result["feedback"] and "b says hi" in result["feedback"]
    capped = Critic([(Fixed("a", 1.0), 1.0), (Fixed("gate", 0.9, cap=0.1), 1.0)]).critique(drawing(APPLE))
    assert capped["score"] == pytest.approx(0.1 * 0.95)   # the mean, scaled into [0, cap]
    emptier = Critic([(Fixed("a", 0.2), 1.0), (Fixed("gate", 0.9, cap=0.1), 1.0)]).critique(drawing(APPLE))
    assert emptier["score"] < capped["score"] <= 0.1      # capped drawings still rank among themselves


def test_critic_scores_failed_render_zero_with_the_error_as_feedback():
    result = Critic([(Fixed("a", 1.0), 1.0)]).critique(drawing("<svg><"))
    assert result["score"] == 0.0 and result["feedback"].startswith("No picture:")


def test_parse_weights():
    assert parse_weights("sanity=1, recognition=2.5") == {"sanity": 1.0, "recognition": 2.5}
    with pytest.raises(ValueError, match="name=number"):
        parse_weights("sanity")


class Constant:
    name = "llm"

    def score(self, drawing):
        return ScoreResult(0.8, "add detail")


class Abstains:
    name = "vlm"

    def score(self, drawing):
        return None


def test_a_scorer_that_rates_different_pictures_alike_is_down_weighted_and_noted():
    critic = Critic([(RenderSanityScorer(), 1.0), (Constant(), 1.0), (Abstains(), 2.0)])
    pictures = [svg(NEAR_EMPTY["sliver"]), svg(CONTENT["red circle"]), svg(CONTENT["line bicycle"])]
    seen, critiques = [], []
    for i, picture in enumerate(pictures):   # what the loop passes: the thread's earlier pictures
        d = drawing(picture, concept="a bicycle", extra={"image": f"img{i}", "seen": list(seen)})
        critiques.append(critic.critique(d))
        seen.append({"image": f"img{i}", "scores": critiques[-1]["scores"]})
    first, second, third = critiques
    assert "no score from vlm" in first["notes"][0]                      # abstaining is visible
    assert not any("same score" in n for n in first["notes"] + second["notes"])
    assert any("llm gave the same score" in n for n in third["notes"])  # 0.8 for a sliver and a bicycle
    assert third["score"] == pytest.approx((1.0 + 0.25 * 0.8) / 1.25, abs=1e-3)
    alone = critic.critique(drawing(pictures[2], concept="a bicycle"))   # no history: nothing to compare
    assert not any("same score" in n for n in alone.get("notes", []))
