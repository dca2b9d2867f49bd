"""Rounds of N candidates: fan-out with Send, the pairwise judge, the best never regresses, resume mid-round."""

import sqlite3
from pathlib import Path
import threading

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver

from drawloop.agents.base import Draft, ScoreResult
from drawloop.agents.critic import Critic
from drawloop.agents.judge import ScoreJudge, Verdict, parse_pairwise
from drawloop.agents.renderer import RendererAgent
from drawloop.graphs.refine import build_refine_graph
from drawloop.graphs.stopping import StopRule
from drawloop.runs import ArtifactStore
from drawloop.state import Drawing, attempt_score, merge_candidates

CONCEPT = "a red apple"


def svg(index: int) -> str:
    """A distinct, non-blank drawing per attempt index (the circle moves)."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100"><rect width="100" height="100" '
            f'fill="white"/><circle cx="{20 + index * 5}" cy="50" r="15" fill="red"/><!-- {index} --></svg>')


class SeededDrawer:
    """Draws svg(seed): with config seed 0 the seed is the attempt index, whatever order threads run in."""

    def __init__(self):
        self.calls, self.lock = [], threading.Lock()

    def draw(self, concept, language, history, seed=None):
        with self.lock:
            self.calls.append((seed, history[-1]["iteration"] if history else None))
        return Draft(code=svg(seed))


class TableScorer:
    """Scores each drawing by its attempt index (read back from the code)."""

    name = "table"

    def __init__(self, scores):
        self.scores = scores

    def score(self, drawing):
        index = int(drawing.code.rsplit("<!-- ", 1)[1].split(" ")[0])
        return ScoreResult(self.scores[index], f"feedback for #{index}")


class NoRecognizer:
    def recognize(self, drawing):
        return {"label": None, "correct": False, "choices": drawing.choices, "source": "none"}


def make_graph(tmp_path, drawer, scores, candidates=3, stop=None, renderer=None, checkpointer=None):
    return build_refine_graph(drawer=drawer, renderer=renderer or RendererAgent(), recognizer=NoRecognizer(),
                              critic=Critic([(TableScorer(scores), 1.0)]), judge=ScoreJudge(margin=0.01),
                              candidates=candidates, stop_rule=stop or StopRule(max_iters=3, patience=5),
                              store=ArtifactStore(tmp_path), distractors=lambda c, n, s: ["a dog", "a tree"],
                              checkpointer=checkpointer)


#               round 0          round 1 (all worse)  round 2 (a tie at the top: the earliest wins)
SCORES = [0.2, 0.5, 0.4, 0.3, 0.45, 0.1, 0.9, 0.6, 0.9]


def test_each_round_drafts_n_candidates_and_only_a_better_one_replaces_the_best(tmp_path):
    drawer = SeededDrawer()
    state = make_graph(tmp_path, drawer, SCORES).invoke({"concept": CONCEPT}, {"configurable": {"seed": 0}})
    attempts = state["attempts"]
    assert [(a["iteration"], a["round"], a["candidate"]) for a in attempts] == \
        [(i, i // 3, i % 3) for i in range(9)]
    assert [attempt_score(a) for a in attempts] == SCORES
    assert [(r["winner"], r["replaced"], r["best"]) for r in state["rounds"]] == \
        [(1, True, 1), (4, False, 1), (6, True, 6)]
    assert [r["best_score"] for r in state["rounds"]] == [0.5, 0.5, 0.9]  # never a regression
    assert state["best"] == 6 and state["stop_reason"] == "max_iters"
    assert "0.45" in state["rounds"][1]["reason"] and "0.50" in state["rounds"][1]["reason"]
    # every draft of a round revises the best so far, not the last candidate drawn
    assert sorted(drawer.calls) == [(0, None), (1, None), (2, None), (3, 1), (4, 1), (5, 1), (6, 1), (7, 1), (8, 1)]
    assert all(a["image"] for a in attempts) and len({a["code_path"] for a in attempts}) == 9


def test_patience_counts_rounds_the_judge_did_not_replace_the_best(tmp_path):
    scores = [0.5, 0.4, 0.3, 0.45, 0.49, 0.2, 0.1, 0.1]
    state = make_graph(tmp_path, SeededDrawer(), scores, candidates=2,
                       stop=StopRule(max_iters=10, patience=2)).invoke({"concept": CONCEPT},
                                                                       {"configurable": {"seed": 0}})
    assert state["stop_reason"] == "patience" and len(state["rounds"]) == 3 and state["best"] == 0


def test_a_kill_mid_round_loses_no_finished_candidate_and_redraws_none(tmp_path):
    crashed = threading.Event()

    class CrashOnce(RendererAgent):
        def render(self, code, language="svg", size=256):
            if "<!-- 4 -->" in code and not crashed.is_set():
                crashed.set()
                raise KeyboardInterrupt  # what a kill looks like in the middle of round 1's renders
            return super().render(code, language, size)

    drawer = SeededDrawer()
    config = {"configurable": {"thread_id": "t1", "seed": 0}}
    conn = sqlite3.connect(tmp_path / "ckpt.sqlite", check_same_thread=False)
    graph = make_graph(tmp_path, drawer, SCORES, renderer=CrashOnce(), checkpointer=SqliteSaver(conn))
    with pytest.raises(KeyboardInterrupt):
        graph.invoke({"concept": CONCEPT}, config)
    saved = graph.get_state(config).values
    assert [a["iteration"] for a in saved["attempts"]] == [0, 1, 2]
    assert sorted(c["iteration"] for c in saved["candidates"]) == [3, 4, 5]  # round 1's drafts are all saved
    conn.close()

    conn = sqlite3.connect(tmp_path / "ckpt.sqlite", check_same_thread=False)
    resumed = make_graph(tmp_path, drawer, SCORES, renderer=CrashOnce(), checkpointer=SqliteSaver(conn))
    state = resumed.invoke(None, config)
    conn.close()
    assert [a["iteration"] for a in state["attempts"]] == list(range(9))
    assert sorted(seed for seed, _ in drawer.calls) == list(range(9))  # nothing drawn twice
    assert state["best"] == 6 and state["stop_reason"] == "max_iters"


def test_one_candidate_per_round_is_the_single_chain(tmp_path):
    drawer = SeededDrawer()
    state = make_graph(tmp_path, drawer, [0.3, 0.6, 0.5, 0.7], candidates=1,
                       stop=StopRule(max_iters=4, patience=4)).invoke({"concept": CONCEPT},
                                                                       {"configurable": {"seed": 0}})
    assert [a["iteration"] for a in state["attempts"]] == [0, 1, 2, 3] and state["best"] == 3
    assert drawer.calls == [(0, None), (1, 0), (2, 1), (3, 1)]  # round 3 revises #1, the best so far


def test_candidates_reducer_replaces_slots_and_the_empty_write_closes_the_round():
    round_ = merge_candidates([], [{"candidate": 1, "code": "b"}])
    round_ = merge_candidates(round_, [{"candidate": 0, "code": "a"}])
    round_ = merge_candidates(round_, [{"candidate": 1, "code": "b2"}])
    assert [(c["candidate"], c["code"]) for c in round_] == [(0, "a"), (1, "b2")]
    assert merge_candidates(round_, []) == []


# -- the pairwise judge on hand-made pairs -------------------------------------------------------

def drawing(score, png=b"png", scores=None, **kw):
    return Drawing(concept=CONCEPT, code="<svg/>", png=png, critique={"score": score, "scores": scores or {}}, **kw)


def test_score_judge_needs_a_margin_and_says_which_scorers_moved():
    judge = ScoreJudge(margin=0.05)
    better = judge.compare(drawing(0.4, scores={"concept": 0.2, "sanity": 1.0}),
                           drawing(0.6, b"other", scores={"concept": 0.6, "sanity": 1.0}))
    assert better == Verdict("b", "B scores 0.60 vs 0.40 (concept +0.40)", "score")
    assert judge.compare(drawing(0.5), drawing(0.53, b"other")).better == "a"   # within the margin: a tie
    assert judge.compare(drawing(0.5), drawing(0.2, b"other")).better == "a"
    failed = judge.compare(drawing(0.5), Drawing(concept=CONCEPT, code="", draw_error="no svg"))
    assert failed.better == "a" and "no svg" in failed.reason
    assert judge.compare(Drawing(concept=CONCEPT, code="", render_error="x"), drawing(0.0)).better == "b"


@pytest.mark.parametrize("text, expected", [
    ('{"better": "B", "reason": "it has wheels"}', ("b", "it has wheels")),
    ('```json\n{"better": "a", "reason": "cleaner"}\n```', ("a", "cleaner")),
    ("Drawing B is better because it shows the spokes.", ("b", "Drawing B is better because it shows the spokes.")),
    ("I cannot tell.", (None, "I cannot tell.")),
])
def test_pairwise_answers_parse(text, expected):
    assert parse_pairwise(text) == expected


def test_the_seeing_critic_replaces_a_near_empty_first_draft_that_code_readers_liked(tmp_path):
    """The demo's failure: a sliver at the left edge kept as best over later drawings with content,
    because render sanity said 1.0 and the code critic said 0.8 to everything."""
    from drawloop.agents.critic import RenderSanityScorer
    from drawloop.agents.pixel import ConceptScorer, StructureScorer

    class ConstantLLM:
        name = "llm"

        def score(self, drawing):
            return ScoreResult(0.8, "add more detail")

    sliver = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100"><rect width="100" height="100" '
              'fill="white"/><rect x="0" y="5" width="3" height="90" fill="green"/></svg>')
    bicycle = (Path(__file__).parent / "ladders" / "bicycle" / "3_parts.svg").read_text()

    class Scripted:
        def draw(self, concept, language, history, seed=None):
            return Draft(code=sliver if not history else bicycle)

    critic = Critic([(RenderSanityScorer(), 1.0), (ConceptScorer(), 1.0), (StructureScorer(), 1.0),
                     (ConstantLLM(), 1.0)])
    graph = build_refine_graph(drawer=Scripted(), renderer=RendererAgent(), recognizer=NoRecognizer(),
                               critic=critic, judge=ScoreJudge(), candidates=1,
                               stop_rule=StopRule(max_iters=2, patience=2), store=ArtifactStore(tmp_path),
                               distractors=lambda c, n, s: ["a car", "a tree"])
    state = graph.invoke({"concept": "a bicycle"})
    first, second = (attempt_score(a) for a in state["attempts"])
    assert first <= 0.15 < second and state["best"] == 1


def test_the_vision_judge_sees_both_pictures_and_falls_back_to_scores(fake_server):
    from langchain_openai import ChatOpenAI

    from conftest import FakeOpenAI
    from drawloop.agents.judge import VLMJudge

    llm = ChatOpenAI(model="fake-vlm", api_key="x", base_url=fake_server, max_retries=0, timeout=10)
    judge = VLMJudge(llm)
    a, b = drawing(0.7, b"png-a"), drawing(0.2, b"png-b")
    FakeOpenAI.answers = [(200, '{"better": "B", "reason": "B has two wheels"}'), (200, "I like both.")]
    assert judge.compare(a, b) == Verdict("b", "B has two wheels", "vlm")   # it overrules the scores
    images = [p for p in FakeOpenAI.requests[0]["messages"][-1]["content"] if p["type"] == "image_url"]
    assert len(images) == 2
    fallback = judge.compare(a, b)
    assert fallback.better == "a" and fallback.source == "score" and "no verdict" in fallback.reason
