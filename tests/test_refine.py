"""The loop's routing, stop rule wiring and resume, with fake models and the real renderer."""

import sqlite3

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver

from conftest import APPLE, BLANK, RED_CIRCLE, fake_llm
from drawloop.agents.critic import Critic, RecognitionScorer, RenderSanityScorer
from drawloop.agents.drawer import Drawer
from drawloop.agents.recognizer import CodeRecognizer, make_choices
from drawloop.agents.renderer import RendererAgent
from drawloop.graphs.refine import build_refine_graph
from drawloop.graphs.stopping import StopRule
from drawloop.runs import ArtifactStore
from drawloop.state import attempt_score

DISTRACTORS = ["a dog", "a tree", "a car", "a house"]
CONCEPT = "a red apple"


def letter_for(label, seed=None):
    choices = make_choices(CONCEPT, DISTRACTORS, seed)
    return "ABCDE"[choices.index(label)]


class CountingDrawer:
    def __init__(self, *answers):
        self.inner = Drawer(fake_llm(*answers))
        self.calls = []

    def draw(self, concept, language, history, seed=None):
        self.calls.append(len(history))
        return self.inner.draw(concept, language, history, seed)


def make_graph(tmp_path, drawer, recognizer_answers, stop=None, renderer=None, checkpointer=None, **kw):
    return build_refine_graph(
        drawer=drawer,
        renderer=renderer or RendererAgent(),
        recognizer=CodeRecognizer(fake_llm(*recognizer_answers, cycle=True)),
        critic=Critic([(RenderSanityScorer(), 1.0), (RecognitionScorer(), 1.0)]),
        stop_rule=stop or StopRule(max_iters=4, patience=2),
        store=ArtifactStore(tmp_path),
        distractors=lambda c, n, s: DISTRACTORS,
        checkpointer=checkpointer,
        **kw,
    )


def test_improving_then_stale_run_stops_on_patience_and_keeps_best(tmp_path):
    drawer = CountingDrawer(BLANK, APPLE, APPLE, APPLE)
    graph = make_graph(tmp_path, drawer, [letter_for(CONCEPT)])
    state = graph.invoke({"concept": CONCEPT})
    scores = [attempt_score(a) for a in state["attempts"]]
    assert len(scores) == 4 and state["stop_reason"] == "max_iters"
    assert 0 < scores[0] <= 0.05  # blank canvas is capped even though the recognizer was right
    assert state["best"] == 1  # ties later keep the earliest best
    assert drawer.calls == [0, 1, 2, 3]
    assert state["choices"] == make_choices(CONCEPT, DISTRACTORS, None)


def test_blank_drawing_scores_low_even_when_recognized(tmp_path):
    graph = make_graph(tmp_path, CountingDrawer(BLANK), [letter_for(CONCEPT)], stop=StopRule(max_iters=1))
    attempt = graph.invoke({"concept": CONCEPT})["attempts"][0]
    assert attempt["critique"]["scores"] == {"sanity": 0.0, "recognition": 1.0}
    assert "blank" in attempt["critique"]["feedback"]


def test_patience_stop(tmp_path):
    graph = make_graph(tmp_path, CountingDrawer(APPLE, RED_CIRCLE, RED_CIRCLE), [letter_for(CONCEPT)],
                       stop=StopRule(max_iters=10, patience=2))
    state = graph.invoke({"concept": CONCEPT})
    assert state["stop_reason"] == "patience" and len(state["attempts"]) == 3 and state["best"] == 0


def test_render_error_path_skips_recognizer_and_feeds_error_back(tmp_path):
    bad = '<svg xmlns="http://www.w3.org/2000/svg"><circle r="5" fill="red"/></svg><extra>'
    drawer = CountingDrawer('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle r="5" fill="url(#nope"/>'
                            '<rect width="5" height="5" fill="red" onload="x"/></svg>', APPLE)
    recognizer_calls = []

    class SpyRecognizer(CodeRecognizer):
        def recognize(self, drawing):
            recognizer_calls.append(drawing.iteration)
            return super().recognize(drawing)

    class FailFirst(RendererAgent):
        def render(self, code, language="svg", size=256):
            if code.count("<circle") and "fill=\"url(#nope\"" in code:
                from drawloop.renderers import RenderResult
                return RenderResult.failure("refused: broken url() reference")
            return super().render(code, language, size)

    graph = build_refine_graph(drawer=drawer, renderer=FailFirst(),
                               recognizer=SpyRecognizer(fake_llm(letter_for(CONCEPT), cycle=True)),
                               critic=Critic([(RenderSanityScorer(), 1.0), (RecognitionScorer(), 1.0)]),
                               stop_rule=StopRule(max_iters=2), store=ArtifactStore(tmp_path),
                               distractors=lambda c, n, s: DISTRACTORS)
    state = graph.invoke({"concept": CONCEPT})
    first, second = state["attempts"]
    assert first["render_error"] == "refused: broken url() reference"
    assert first["image"] is None and first["recognition"] is None
    assert first["critique"]["score"] == 0.0 and "broken url()" in first["critique"]["feedback"]
    assert recognizer_calls == [1]
    assert second["image"] and state["best"] == 1
    assert bad  # (kept for readability of the scenario)


def test_prose_answers_become_failed_attempts_and_stop_the_loop(tmp_path):
    drawer = CountingDrawer("I can't draw.", "Still no.", "Nope.", APPLE)
    graph = make_graph(tmp_path, drawer, ["A"], stop=StopRule(max_iters=10, patience=10, max_failures=3))
    state = graph.invoke({"concept": CONCEPT})
    assert state["stop_reason"] == "model_failing"
    assert [a["draw_error"] for a in state["attempts"]] == ["the answer contained no <svg> element"] * 3
    assert all(a["critique"]["score"] == 0.0 for a in state["attempts"])


def test_agent_exceptions_are_recorded_not_raised(tmp_path):
    class Exploding:
        def render(self, code, language="svg", size=256):
            raise MemoryError("renderer blew up")

    graph = make_graph(tmp_path, CountingDrawer(APPLE), ["A"], stop=StopRule(max_iters=1), renderer=Exploding())
    attempt = graph.invoke({"concept": CONCEPT})["attempts"][0]
    assert attempt["render_error"] == "MemoryError: renderer blew up"


def test_target_stop_and_artifacts_are_content_addressed(tmp_path):
    graph = make_graph(tmp_path, CountingDrawer(APPLE, APPLE), [letter_for(CONCEPT)],
                       stop=StopRule(max_iters=5, target=0.9))
    state = graph.invoke({"concept": CONCEPT})
    attempt = state["attempts"][0]
    assert state["stop_reason"] == "target" and len(state["attempts"]) == 1
    assert (tmp_path / attempt["image"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / attempt["code_path"]).read_text() == APPLE


def test_review_node_runs_between_critique_and_decide(tmp_path):
    def veto(state):
        vetoed = [{**c, "critique": {**c["critique"], "score": 0.0, "feedback": "vetoed"}} for c in state["candidates"]]
        return {"candidates": vetoed}

    graph = make_graph(tmp_path, CountingDrawer(APPLE), ["A"], stop=StopRule(max_iters=1),
                       review_nodes=[("reviewer", veto)])
    state = graph.invoke({"concept": CONCEPT})
    assert state["attempts"][0]["critique"]["feedback"] == "vetoed"


def test_interrupted_run_resumes_without_losing_or_repeating_attempts(tmp_path):
    """Kill the run inside iteration 2's render; resume finishes with each attempt exactly once."""
    answers = [BLANK, RED_CIRCLE, APPLE, APPLE, APPLE]

    class CrashOnce(RendererAgent):
        crashed = False

        def render(self, code, language="svg", size=256):
            if code == APPLE and not CrashOnce.crashed:
                CrashOnce.crashed = True
                raise KeyboardInterrupt  # what Ctrl-C or a kill looks like mid-node
            return super().render(code, language, size)

    conn = sqlite3.connect(tmp_path / "ckpt.sqlite", check_same_thread=False)
    config = {"configurable": {"thread_id": "t1"}}
    drawer = CountingDrawer(*answers)
    graph = make_graph(tmp_path, drawer, [letter_for(CONCEPT)], stop=StopRule(max_iters=4, patience=3),
                       renderer=CrashOnce(), checkpointer=SqliteSaver(conn))
    with pytest.raises(KeyboardInterrupt):
        graph.invoke({"concept": CONCEPT}, config)
    assert [a["iteration"] for a in graph.get_state(config).values["attempts"]] == [0, 1]
    conn.close()

    conn = sqlite3.connect(tmp_path / "ckpt.sqlite", check_same_thread=False)
    resumed = make_graph(tmp_path, drawer, [letter_for(CONCEPT)], stop=StopRule(max_iters=4, patience=3),
                         renderer=CrashOnce(), checkpointer=SqliteSaver(conn))
    state = resumed.invoke(None, config)
    assert [a["iteration"] for a in state["attempts"]] == [0, 1, 2, 3]
    assert drawer.calls == [0, 1, 2, 3]  # iteration 2's draw was checkpointed, not redone
    assert state["stop_reason"] == "max_iters"
    conn.close()
