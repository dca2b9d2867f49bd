"""Replaying runs: a recorded real-model run, a fresh run through the real loop, and damaged ones."""

import http.server
import io
import json
import shutil
import threading
from pathlib import Path

import pytest
from rich.console import Console

from conftest import FakeOpenAI
from drawloop.trace.events import traced
from drawloop.trace.replay import RunNotFound, find_run, list_runs, load_run, run_summary, run_to_dict
from drawloop.trace.show import render_run

RECORDED = Path(__file__).parent / "recorded_runs" / "20261125-135755-a-bicycle-32f2"
NODES = ["draw", "render", "recognize", "critique", "decide"]
REFUSED_SVG = '```svg\n<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>\n```'


def text_of(renderable, colour: bool = False, width: int = 160) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), force_terminal=colour,
                      color_system="truecolor" if colour else None)
    console.print(renderable)
    return console.export_text()


@pytest.fixture
def recorded(tmp_path):
    """A copy of a real run of the local 1.5B model, safe to damage."""
    target = tmp_path / "runs" / RECORDED.name
    shutil.copytree(RECORDED, target)
    return target


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory):
    """A run through the real loop and renderer: a refused drawing, then an apple twice, a review node."""
    import drawloop

    FakeOpenAI.answers, FakeOpenAI.requests, FakeOpenAI.concept = [(200, REFUSED_SVG)], [], "a red apple"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = drawloop.draw("a red apple", model="openai:fake", runs_dir=str(tmp_path_factory.mktemp("runs")),
                               base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", max_iters=3, patience=2,
                               review_nodes=[("review", traced("review")(lambda state: {}))])
    finally:
        server.shutdown()
    assert [bool(a.get("render_error")) for a in result.attempts] == [True, False, False]
    return result.run_dir


def test_recorded_run_replays_every_iteration_and_node():
    trace = load_run(RECORDED)
    (thread,) = trace.threads.values()
    assert [it.index for it in thread.iterations] == [0, 1, 2]
    assert all([s.node for s in it.steps] == NODES for it in thread.iterations)
    assert thread.stop_reason == "max_iters" and thread.best == 0 and thread.scores == [0.05, 0.05, 0.05]
    text = text_of(render_run(trace, thumbs=False))
    for needle in ("a bicycle", "local:qwen2.5-coder-1.5b", "#0", "#1", "#2", "stop: max_iters",
                   "a horse-drawn carriage ✗ (wanted a bicycle)", "127→1200 tok", "hit the 1200-token cap",
                   "sanity 0.00 · recognition 0.00 · llm 0.80", "- Add a seat frame to the seat.",
                   "tokens 3336 in / 1959 out", "167.2s"):
        assert needle in text, needle
    assert text.count("recognize") == 3 and text.count("decide") == 3


def test_thumbnails_come_from_the_png_artifacts():
    trace = load_run(RECORDED)
    text = text_of(render_run(trace, thumbs=True, thumb_width=16), colour=True)
    assert text.count("▀" * 16) == 3 * 8  # three 16 x 16-pixel drawings, 8 rows each
    assert "▀" not in text_of(render_run(trace, thumbs=False))
    console = Console(width=80, record=True, file=io.StringIO(), force_terminal=True, color_system="truecolor")
    console.print(render_run(trace, thumbs=True, thumb_width=16))
    narrow = console.export_text().splitlines()
    critique = next(line for line in narrow if "critique" in line)
    assert "▀" not in critique and "0.05  sanity 0.00" in critique  # the thumbnail went above the rows


def test_fresh_run_shows_failures_review_nodes_and_code_diffs(fresh_run):
    trace = load_run(fresh_run)
    iterations = trace.threads[fresh_run.name].iterations   # a run's thread id is its run id
    assert [s.node for s in iterations[0].steps] == ["draw", "render", "critique", "review", "judge", "decide"]
    assert [s.node for s in iterations[1].steps] == ["draw", "render", "recognize", "critique", "review", "judge",
                                                       "decide"]
    assert "script" in iterations[0].error and iterations[0].image_path is None
    text = text_of(render_run(trace, diff=True, thumbs=True, thumb_width=20), colour=True)
    assert "render failed" in text  # the placeholder where the drawing would be
    assert "code diff vs #0: +" in text and "code identical to #1" in text
    assert text.count("- add more detail") == 1 and "same feedback as #1" in text  # repeats are not reprinted
    assert "★ best" in text and "stop: max_iters" in text
    data = run_to_dict(trace, diff=True)
    (thread,) = data["threads"]
    assert thread["scores"][0] == 0.0 and thread["best_iteration"] == 1
    assert thread["iterations"][1]["diff"].startswith("--- #0\n+++ #1\n") and thread["iterations"][2]["diff"] == ""
    assert thread["iterations"][1]["recognition"]["correct"] is True
    json.dumps(data)  # plain JSON all the way down


def test_a_killed_run_with_a_cut_line_and_a_lost_image_still_replays(recorded):
    lines = (recorded / "trace.jsonl").read_text().splitlines()
    (recorded / "trace.jsonl").write_text("\n".join(lines[:14]) + "\n" + lines[14][:30])  # killed mid-write
    (recorded / "result.json").unlink()
    for png in (recorded / "artifacts").rglob("*.png"):
        png.unlink()
    trace = load_run(recorded)
    iterations = trace.threads["main"].iterations
    assert trace.skipped_lines == 1 and trace.result is None
    assert [s.node for s in iterations[1].steps] == ["draw", "render", "recognize"]
    assert iterations[1].steps[-1].interrupted
    text = text_of(render_run(trace, thumbs=True), colour=True)
    for needle in ("1 unreadable trace line(s) skipped", "artifact file(s) missing", "image missing",
                   "interrupted (no end event)", "unfinished (no result.json)", "stop: not yet"):
        assert needle in text, needle
    assert run_to_dict(trace)["missing_artifacts"] == [iterations[0].image_path, iterations[1].image_path]
    summary = run_summary(recorded)  # no result.json: the row comes from the trace
    assert (summary["finished"], summary["iterations"], summary["best_score"]) == (False, 2, 0.05)


def test_a_v0_trace_replays_like_the_v1_trace(recorded):
    v0_lines = []
    for line in (recorded / "trace.jsonl").read_text().splitlines():
        record = json.loads(line)
        record["event"] = record.pop("phase")
        if "seconds" in record:
            record["duration"] = record.pop("seconds")
        record.pop("v")
        v0_lines.append(json.dumps(record))
    (recorded / "trace.jsonl").write_text("\n".join(v0_lines) + "\n")
    assert run_to_dict(load_run(recorded)) == run_to_dict(load_run(RECORDED)) | {"run": str(recorded)}


def test_costs_show_when_the_trace_knows_them(recorded):
    lines = [json.loads(line) for line in (recorded / "trace.jsonl").read_text().splitlines()]
    for record in lines:
        if record["node"] == "draw" and record["phase"] == "end":
            record["cost_usd"] = 0.0015
    (recorded / "trace.jsonl").write_text("\n".join(map(json.dumps, lines)) + "\n")
    text = text_of(render_run(load_run(recorded), thumbs=False))
    assert text.count("$0.0015") == 3 and "$0.0045" in text
    assert "$" not in text_of(render_run(load_run(RECORDED), thumbs=False))


def test_threads_are_kept_apart_and_can_be_selected(recorded):
    lines = (recorded / "trace.jsonl").read_text().splitlines()
    other = [json.dumps({**json.loads(line), "thread": "cat-0001"}) for line in lines[:9]]
    (recorded / "trace.jsonl").write_text("\n".join(lines + other) + "\n")
    trace = load_run(recorded)
    assert list(trace.threads) == ["main", "cat-0001"]
    assert [t["thread"] for t in run_to_dict(trace, thread="cat-0001")["threads"]] == ["cat-0001"]
    assert "thread cat-0001" in text_of(render_run(trace, thread="cat-0001", thumbs=False))
    with pytest.raises(RunNotFound, match="no thread 'dog'.*'main', 'cat-0001'"):
        render_run(trace, thread="dog")
    assert run_summary(recorded)["threads"] == 2
    assert "every tree: --all" not in text_of(render_run(trace, thumbs=False))  # two threads: both trees


def test_a_batch_trace_of_many_threads_starts_with_one_row_per_thread(recorded):
    lines = (recorded / "trace.jsonl").read_text().splitlines()
    batch = [json.dumps({**json.loads(line), "thread": f"bicycle-000{i}"}) for i in range(5) for line in lines]
    (recorded / "trace.jsonl").write_text("\n".join(batch) + "\n")
    (recorded / "run.json").unlink()  # a batch's work directory has none
    (recorded / "result.json").unlink()
    text = text_of(render_run(load_run(recorded), thumbs=False))
    assert "trace of" in text and "5 thread(s)" in text and "every tree: --all" in text
    assert all(f"bicycle-000{i}" in text for i in range(5)) and "#0" not in text
    assert "a horse-drawn carriage ✗" in text and "wanted ?" not in text  # the concept is not known
    assert text_of(render_run(load_run(recorded), thumbs=False, all_threads=True)).count("#2") == 5


def test_find_run_accepts_paths_ids_parts_of_ids_and_latest(recorded, tmp_path):
    runs = recorded.parent
    second = runs / "20261126-090000-a-red-apple-1a2b"
    shutil.copytree(recorded, second)
    meta = json.loads((second / "run.json").read_text())
    (second / "run.json").write_text(json.dumps({**meta, "created": "2026-11-26T09:00:00"}))
    (runs / "train-moco").mkdir()  # not a run: ignored
    assert list_runs(runs) == [recorded, second]
    assert find_run(recorded) == recorded and find_run(str(recorded / "trace.jsonl")) == recorded / "trace.jsonl"
    assert find_run(recorded.name, runs) == recorded
    assert find_run("red-apple", runs) == second and find_run("latest", runs) == second
    with pytest.raises(RunNotFound, match="matches 2 runs"):
        find_run("2026112", runs)
    with pytest.raises(RunNotFound, match="no run matches 'zebra'"):
        find_run("zebra", runs)
    with pytest.raises(RunNotFound, match="not a drawloop run"):
        find_run(runs / "train-moco", runs)
    with pytest.raises(RunNotFound, match="no runs in"):
        find_run("latest", tmp_path / "empty")


def test_run_summary_prefers_result_json():
    summary = run_summary(RECORDED)
    assert summary["concept"] == "a bicycle" and summary["finished"] is True
    assert (summary["best_score"], summary["iterations"], summary["stop_reason"]) == (0.05, 3, "max_iters")
    assert (summary["tokens_in"], summary["tokens_out"], summary["seconds"]) == (3336, 1959, 318.94)
