"""The live view: rows per iteration from streamed events, final scores after review nodes."""

import io
from pathlib import Path

from rich.console import Console

from drawloop.trace.events import TraceEvent, load_events
from drawloop.trace.view import LiveView, sparkline

RECORDED = Path(__file__).parent / "recorded_runs" / "20261125-135755-a-bicycle-32f2"


def text_of(view: LiveView) -> str:
    console = Console(width=160, record=True, file=io.StringIO())
    console.print(view.render())
    return console.export_text()


def test_replaying_a_recorded_stream_fills_one_row_per_iteration():
    view = LiveView("a bicycle", model="local")
    for event in load_events(RECORDED / "trace.jsonl"):
        view.update(event)
    text = text_of(view)
    assert sorted(view.rows) == [0, 1, 2]
    assert text.count("a horse-drawn") == 3 and "167.2s · 1200 tok" in text  # fits on one line
    assert "stopped: max_iters" in text and "best 0.05" in text


def test_a_review_node_that_vetoes_changes_the_row_score_and_note():
    view = LiveView("a red apple")
    view.update(TraceEvent(node="critique", phase="end", score=0.87, message="add more detail"))
    view.update(TraceEvent(node="review", phase="start"))
    assert view.running == "review"
    view.update(TraceEvent(node="review", phase="end", score=0.0, message="VETO: identical to #0"))
    view.update(TraceEvent(node="decide", phase="end", score=0.0, message="continue"))
    text = text_of(view)
    assert view.rows[0]["score"] == 0.0 and "review: VETO: identical to #0" in text
    assert view.running is None and view.stop_reason is None


def test_sparkline_clamps_to_the_unit_interval():
    assert sparkline([0.0, 1.0]) == "▁█" and sparkline([-3, 7]) == "▁█" and len(sparkline([0.5] * 4)) == 4


def test_summary_panel_says_how_to_replay_the_run(tmp_path):
    from drawloop.api import DrawResult
    from drawloop.trace.view import summary_panel

    attempt = {"iteration": 0, "critique": {"score": 0.5}, "recognition": {"label": "a cat"}, "usage": {}}
    result = DrawResult(concept="a cat", run_dir=tmp_path, attempts=[attempt], best_index=0, stop_reason="patience",
                        model="fake")
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(summary_panel(result))
    text = console.export_text()
    assert "best score 0.50 at iteration 0" in text and f"drawloop trace show {tmp_path} --diff" in text


def test_candidates_show_as_round_dot_candidate_with_the_judges_verdict():
    view = LiveView(concept="a bicycle")
    for index in range(4):
        view.update(TraceEvent(node="critique", phase="end", iteration=index, round=index // 2,
                               candidate=index % 2, score=0.1 * (index + 1)))
    view.update(TraceEvent(node="judge", phase="end", iteration=1, round=0, candidate=1,
                           message="kept: the first round's best"))
    view.update(TraceEvent(node="judge", phase="end", iteration=3, round=1, candidate=1,
                           message="rejected: B scores 0.40, no better than A's 0.42"))
    view.update(TraceEvent(node="decide", phase="end", iteration=3, round=1, score=0.2, message="max_iters"))
    text = text_of(view)
    assert "0.40" in text  # the round's last candidate keeps its own score, not the best's (decide's 0.20)
    assert "round.cand" in text and "★ 0.1" in text and "· 1.1" in text and " 1.0 " in text
    assert "rejected: B scores 0.40" in text
