"""Trace records: schema round-trip, old and new versions, damaged files, events from custom nodes."""

import json

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from drawloop.trace.events import (SCHEMA_VERSION, TraceEvent, TraceWriter, load_events, node_event, read_events,
                                   traced)

FULL = TraceEvent(node="critique", phase="end", iteration=2, run="r1", thread="t1", ts=123.5, seconds=0.25,
                  tokens_in=11, tokens_out=7, cost_usd=0.0001, score=0.8, scores={"sanity": 1.0, "llm": 0.6},
                  recognition={"label": "a cat", "correct": True}, error=None, artifact="artifacts/ab/x.png",
                  message="add whiskers")


def test_every_field_round_trips_through_the_file(tmp_path):
    path = tmp_path / "trace.jsonl"
    with TraceWriter(path) as writer:
        writer.write(FULL)
        writer.write(TraceEvent(node="draw", phase="start", ts=1.0))
    loaded = load_events(path)
    assert loaded == [FULL, TraceEvent(node="draw", phase="start", ts=1.0)]
    first = json.loads(path.read_text().splitlines()[0])
    assert first["v"] == SCHEMA_VERSION and "error" not in first  # unset fields are not written


def test_v0_records_are_upgraded(tmp_path):
    path = tmp_path / "trace.jsonl"
    path.write_text('{"node": "draw", "event": "end", "duration": 9.5, "iteration": 1}\n'
                    '{"node": "decide", "message": "patience", "v": 0}\n')
    draw, decide = load_events(path)
    assert (draw.phase, draw.seconds, draw.v, draw.iteration) == ("end", 9.5, 1, 1)
    assert decide.phase == "info" and decide.message == "patience"


def test_records_from_a_newer_version_load_and_unknown_fields_are_ignored(tmp_path):
    path = tmp_path / "trace.jsonl"
    path.write_text('{"node": "draw", "phase": "end", "v": 7, "seconds": 1.5, "gpu_joules": 3.2}\n')
    (event,) = load_events(path)
    assert event.seconds == 1.5 and event.v == 7 and not hasattr(event, "gpu_joules")


def test_damaged_lines_are_skipped_and_counted(tmp_path):
    path = tmp_path / "trace.jsonl"
    good = FULL.to_json()
    path.write_text("\n".join([good, good[:40], "", "[1, 2]", '"text"', '{"phase": "end"}', "\x00\x01", good]) + "\n")
    events, skipped = read_events(path)
    assert events == [FULL, FULL] and skipped == 5


class S(TypedDict, total=False):
    attempts: list
    candidates: list


def test_traced_nodes_emit_start_and_end_with_the_verdict(tmp_path):
    def veto(state):
        return {"candidates": [{**state["candidates"][0], "critique": {"score": 0.0, "feedback": "vetoed"}}]}

    def boom(state):
        raise RuntimeError("reviewer crashed")

    graph = StateGraph(S)
    graph.add_node("review", traced("review")(veto))
    graph.add_node("check", traced("check")(lambda state, config: {}))
    graph.add_edge(START, "review")
    graph.add_edge("review", "check")
    graph.add_edge("check", END)
    state = {"attempts": [{}, {}], "candidates": [{"candidate": 0, "critique": {"score": 0.9, "feedback": "fine"}}]}
    config = {"configurable": {"thread_id": "t9", "run_id": "r9"}}
    events = [TraceEvent.from_dict(c) for c in graph.compile().stream(state, config, stream_mode="custom")]
    assert [(e.node, e.phase) for e in events] == [("review", "start"), ("review", "end"),
                                                   ("check", "start"), ("check", "end")]
    review_end, check_end = events[1], events[3]
    assert (review_end.score, review_end.message, review_end.iteration) == (0.0, "vetoed", 2)
    assert (review_end.run, review_end.thread) == ("r9", "t9") and review_end.seconds >= 0
    assert check_end.score == 0.0 and check_end.message is None  # unchanged feedback is not repeated

    crashing = StateGraph(S)
    crashing.add_node("review", traced("review")(boom))
    crashing.add_edge(START, "review")
    crashing.add_edge("review", END)
    seen = []
    try:
        for chunk in crashing.compile().stream(state, config, stream_mode="custom"):
            seen.append(TraceEvent.from_dict(chunk))
    except RuntimeError:
        pass
    assert seen[-1].phase == "end" and "reviewer crashed" in seen[-1].error


def test_node_event_labels_the_current_iteration():
    event = node_event("x", "start", {"attempts": [1, 2, 3]}, {"configurable": {"thread_id": "a"}})
    assert (event.iteration, event.thread, event.run) == (3, "a", "")


def test_text_in_events_cannot_drive_the_terminal(tmp_path):
    from drawloop.trace.events import TraceEvent, load_events

    hostile = "boom\x1b[2J\x1b]0;pwned\x07\rfake ok"
    line = json.dumps({"node": "render", "phase": "end", "error": hostile, "message": hostile,
                       "notes": [hostile], "recognition": {"label": hostile}})
    (tmp_path / "trace.jsonl").write_text(line + "\n")
    event = load_events(tmp_path / "trace.jsonl")[0]
    for text in (event.error, event.message, event.notes[0], event.recognition["label"]):
        assert text == "boomfake ok"
    assert "\x1b" not in TraceEvent(node="draw", phase="end", error=hostile).to_json()
