"""drawloop/checkup (the run, people's drawings, the CLI) with scripted agents: known scores,
known answers, known embeddings.

Every drawing carries its intended score as class="qX" (it survives the SVG cleaning of people's
drawings); the fake critic reads it back, the fake recognizer is right exactly when q >= 0.5.
"""

import dataclasses
import json
import re
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from drawloop.agents.base import Draft
from drawloop.checkup import Checkup, CheckupPlan
from drawloop.checkup.people import (clean_svg_source, code_names, content_words, human_drawings,
                                     names_concept, shows)
from drawloop.config import Settings

COLOURS = {0: "#ff0000", 1: "#00ff00", 2: "#ffff00"}   # sample k paints its canvas this colour


def svg(q: float, colour: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect class="q{q}" width="64" '
            f'height="64" fill="{colour}"/></svg>')


class ScriptedDrawer:
    """Score q for (sample, iteration) from a table; counts successful calls."""

    def __init__(self, table, interrupt_at=None):
        self.table, self.calls, self.interrupt_at = table, [], interrupt_at

    def draw(self, concept, language, history, seed=None):
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt  # what Ctrl-C does mid-run
        sample, iteration = seed // 1000, len(history)
        self.calls.append((concept, sample, iteration))
        return Draft(code=svg(self.table[sample][iteration], COLOURS[sample]), usage={"tokens_in": 100, "tokens_out": 10})


class FlakyDrawer(ScriptedDrawer):
    """Times out (as drawloop.llm reports it) on sample 1's second attempt."""

    def draw(self, concept, language, history, seed=None):
        if seed // 1000 == 1 and len(history) == 1:
            return Draft(code="", error="model fake gave no usable answer after 3 tries (OpenAITimeoutError)")
        return super().draw(concept, language, history, seed)


class QRecognizer:
    def __init__(self):
        self.codes = []

    def recognize(self, drawing):
        self.codes.append(drawing.code)
        q = float(re.search(r'class="q([\d.]+)"', drawing.code).group(1)) if "class=\"q" in drawing.code else 0.0
        wrong = next(c for c in drawing.choices if c != drawing.concept)
        label = drawing.concept if q >= 0.5 else wrong
        return {"label": label, "correct": label == drawing.concept, "choices": drawing.choices, "source": "code",
                "usage": {"tokens_in": 50, "tokens_out": 1}}


class QCritic:
    def critique(self, drawing):
        q = float(re.search(r'class="q([\d.]+)"', drawing.code).group(1))
        return {"score": q, "scores": {"q": q}, "feedback": "more", "usage": {"tokens_in": 7, "tokens_out": 3}}


class ColourEmbedder:
    """The centre pixel's colour as a vector: red [1,0,0], green [0,1,0], yellow [1,1,0]."""

    name = "centre-colour"

    def __init__(self):
        self.calls = 0

    def embed(self, images):
        from io import BytesIO

        from PIL import Image

        self.calls += len(images)
        out = []
        for png in images:
            image = Image.open(BytesIO(png)).convert("RGB")
            out.append(np.array(image.getpixel((image.width // 2, image.height // 2)), np.float32) / 255)
        return np.stack(out)


CRITIC_TABLE = {0: [0.2, 0.5, 0.8], 1: [0.4, 0.3, 0.6], 2: [0.1, 0.1, 0.1]}
PLAIN_TABLE = {0: [None, 0.1, 0.3], 1: [None, 0.3, 0.2], 2: [None, 0.1, 0.1]}


def cat_gallery(tmp_path, choices):
    """People's drawings: two good cats, one naming a distractor, one too long, one unrelated."""
    distractor_word = next(c for c in choices if c != "a cat").split()[-1]
    meta = ('<metadata><rdf:RDF><cc:Work><dc:title>sleeping cat</dc:title></cc:Work></rdf:RDF></metadata>'
            '<sodipodi:namedview id="base"/><title>sleeping cat</title><!-- a cat, obviously -->')
    files = {
        "sleeping_cat.svg": ("sleeping cat", "s1", f'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" '
                             f'xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape" inkscape:version="1.0" '
                             f'viewBox="0 0 10 10">{meta}<circle class="q0.9" r="4" cx="5" cy="5" '
                             f'inkscape:label="cat head"/></svg>'),
        "black_cat.svg": ("black cat", "s2", '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">'
                          '<rect class="q0.1" width="9" height="9"/></svg>'),
        "black_cat_2.svg": ("black cat", "s2", '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">'
                            '<rect width="9" height="9"/><rect width="3" height="3"/></svg>'),  # same series, longer
        "other_black_cat.svg": ("Black Cat", "s6", '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">'
                                '<rect width="9" height="9"/><rect width="3" height="3"/><rect/></svg>'),  # same title
        "cat_and.svg": (f"cat and {distractor_word}", "s3", '<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>'),
        "long_cat.svg": ("cartoon cat", "s4", '<svg xmlns="http://www.w3.org/2000/svg">' + "<rect/>" * 2000 + "</svg>"),
        "apple.svg": ("apple", "s5", '<svg xmlns="http://www.w3.org/2000/svg"><circle/></svg>'),
    }
    items = []
    for name, (label, series, code) in files.items():
        path = tmp_path / name
        path.write_text(code)
        items.append(SimpleNamespace(label=label, key=f"openclipart:{name}", path=str(path), series=series))
    return items


def make_checkup(out, items, samples=2, drawer=None, on_progress=None, on_event=None, **options):
    plan = CheckupPlan(**{"levels": ("shapes", "objects"), "concepts_per_level": 1, "samples": samples, "iters": 3,
                          "concurrency": 2, "human_per_concept": 3, "human_max_chars": 2000, **options})
    agents = {"drawer": drawer or ScriptedDrawer(CRITIC_TABLE), "plain_drawer": ScriptedDrawer(PLAIN_TABLE),
              "recognizer": QRecognizer(), "critic": QCritic()}
    return Checkup(out, plan, Settings(model="fake"), agents=agents, embedder=ColourEmbedder(), human_items=items,
                   on_progress=on_progress, on_event=on_event)


@pytest.fixture
def items(tmp_path):
    from drawloop.agents.recognizer import make_choices
    from drawloop.graphs.refine import default_distractors

    return cat_gallery(tmp_path, make_choices("a cat", default_distractors("a cat", 4, 0), 0))


def test_words_and_matching_rules():
    assert content_words("a row of Bicycles") == {"row", "bicycle"}
    assert shows("sleeping cat", "a cat") and shows("Cats", "a cat")
    assert not shows("apple", "a red apple")            # every content word must be in the title
    assert not shows("cat and dog", "a cat", ["a dog", "a tree"])
    assert not shows("cat and telephone", "a cat", ["a rotary telephone"])
    assert shows("red circle", "a red circle", ["a blue circle"])
    assert not shows("red and blue circle", "a red circle", ["a blue circle"])
    assert not shows("category", "a cat")                # words, not substrings


def test_names_in_code_are_ids_classes_comments_and_text_not_elements():
    code = ('<svg><linearGradient id="waterfallGradient"/><!-- the cat body --><g class="cat-ear">'
            '<text>Hi</text><circle r="3"/></g></svg>')
    assert code_names(code) == {"waterfall", "gradient", "cat", "body", "ear", "hi"}
    assert names_concept(code, "a waterfall in a forest") and names_concept(code, "two cats")
    assert not names_concept('<circle id="c1"/>', "a red circle")


def test_cleaning_removes_what_names_the_picture(items):
    code = clean_svg_source(open(items[0].path).read())
    assert "sleeping" not in code and "cat" not in code and "inkscape" not in code and "<?xml" not in code
    assert '<circle class="q0.9" r="4" cx="5" cy="5"/>' in code


def test_full_checkup_threads_curves_people_and_diversity(tmp_path, items):
    progress, events = [], []
    checkup = make_checkup(tmp_path / "c", items, samples=3, on_progress=lambda *a: progress.append(a),
                           on_event=events.append)
    results = checkup.run()
    threads = {t["thread"]: t for t in results["threads"]}
    # the live view hears of the loops before the first one finishes, and of every node as it runs
    assert progress[0] == (0, 12, "loops") and (12, 12) in [p[:2] for p in progress]
    assert {e.thread for e in events if e.node == "draw"} == set(threads)
    assert len(threads) == 2 * 3 * 2    # 2 concepts x 3 samples x (critic, plain)
    critic, plain = threads["critic:cat:s1"], threads["plain:cat:s1"]
    assert [a["score"] for a in critic["attempts"]] == [0.4, 0.3, 0.6]
    assert [a["correct"] for a in critic["attempts"]] == [False, False, True]
    assert critic["best"] == 2 and critic["stop_reason"] == "max_iters"
    # the plain loop starts from the critic loop's first draft (the same artifact), then goes its own way
    assert plain["attempts"][0] == critic["attempts"][0]
    assert [a["score"] for a in plain["attempts"]] == [0.4, 0.3, 0.2]
    plain_drawer = checkup.agents["plain_drawer"]
    assert all(iteration > 0 for _, _, iteration in plain_drawer.calls) and len(plain_drawer.calls) == 2 * 3 * 2
    assert plain["choices"] == critic["choices"] == results["concepts"][1]["choices"]

    # people's drawings: two cats (one per series, shortest first), same choices, no metadata leaked
    human = results["human"]
    assert [(h["title"], h["correct"]) for h in human] == [("black cat", False), ("sleeping cat", True)]
    assert all(h["choices"] == critic["choices"] for h in human)
    shown = [c for c in checkup.agents["recognizer"].codes if "q0.9" in c or "<rect class=\"q0.1\" width=\"9\"" in c]
    assert len(shown) == 2 and not any("sleeping" in c or "metadata" in c for c in shown)
    assert all(h["image"] and (tmp_path / "c" / h["image"]).exists() for h in human)
    assert [h["names_concept"] for h in human] == [False, False]   # the cleaned code no longer says "cat"

    # diversity: first drafts are red, green, yellow -> (1 + 2 (1 - 1/sqrt 2)) / 3
    expected = (1 + 2 * (1 - 1 / np.sqrt(2))) / 3
    assert results["diversity"]["a cat"]["first"] == pytest.approx(expected, abs=1e-6)
    assert results["diversity"]["a cat"]["n_first"] == 3
    assert checkup.embedder.calls == 3      # same colour, same PNG, same artifact: embedded once
    saved = json.loads((tmp_path / "c" / "results.json").read_text())
    assert saved["threads"] == json.loads(json.dumps(results["threads"]))


def test_rerun_recomputes_nothing(tmp_path, items):
    first = make_checkup(tmp_path / "c", items)
    results = first.run()
    assert first.computed == {"threads": 8, "human": 2, "embeddings": 2}
    again = make_checkup(tmp_path / "c", items)
    rerun = again.run()
    assert again.computed == {"threads": 0, "human": 0, "embeddings": 0}
    assert again.agents["drawer"].calls == [] and again.agents["plain_drawer"].calls == []
    assert again.agents["recognizer"].codes == [] and again.embedder.calls == 0
    assert rerun["threads"] == results["threads"] and rerun["human"] == results["human"]
    record = json.loads((tmp_path / "c" / "checkup.json").read_text())
    assert [s["computed"]["threads"] for s in record["sessions"]] == [8, 0]


def test_more_samples_later_computes_only_the_new_ones(tmp_path, items):
    make_checkup(tmp_path / "c", items, samples=1).run()
    more = make_checkup(tmp_path / "c", items, samples=2)
    more.run()
    assert more.computed["threads"] == 4 and {s for _, s, _ in more.agents["drawer"].calls} == {1}


def test_interrupted_run_resumes_without_repeating_finished_work(tmp_path, items):
    clean = make_checkup(tmp_path / "clean", items, concurrency=1)
    clean.run()
    broken = make_checkup(tmp_path / "c", items, drawer=ScriptedDrawer(CRITIC_TABLE, interrupt_at=4), concurrency=1)
    with pytest.raises(KeyboardInterrupt):
        broken.run()
    resumed = make_checkup(tmp_path / "c", items, concurrency=1)
    results = resumed.run()
    # every drawing was made exactly once across the two sessions
    made = broken.agents["drawer"].calls + resumed.agents["drawer"].calls
    assert sorted(made) == sorted(clean.agents["drawer"].calls)
    plain_made = broken.agents["plain_drawer"].calls + resumed.agents["plain_drawer"].calls
    assert sorted(plain_made) == sorted(clean.agents["plain_drawer"].calls)
    assert len(broken.agents["drawer"].calls) == 4
    sessions = json.loads((tmp_path / "c" / "checkup.json").read_text())["sessions"]
    assert [s["finished"] for s in sessions] == [False, True]      # the killed session still counts
    assert sessions[0]["computed"]["threads"] >= 1 and sessions[0]["seconds"] > 0
    def scores(threads):
        return [[(a["score"], a["label"], a["image"]) for a in t["attempts"]] for t in threads]

    clean_threads = json.loads((tmp_path / "clean" / "results.json").read_text())["threads"]
    assert scores(results["threads"]) == scores(clean_threads)


def test_retry_failed_redoes_only_threads_where_the_model_was_unreachable(tmp_path, items):
    first = make_checkup(tmp_path / "c", items, drawer=FlakyDrawer(CRITIC_TABLE), human_per_concept=0)
    failed = first.run()
    assert {t["thread"] for t in failed["threads"] if any(a["error"] for a in t["attempts"])} == {
        "critic:red-circle:s1", "critic:cat:s1"}
    plain = make_checkup(tmp_path / "c", items, human_per_concept=0)
    plain.run()
    assert plain.computed["threads"] == 0          # without the flag, finished is finished
    retry = make_checkup(tmp_path / "c", items, human_per_concept=0, retry_failed=True)
    results = retry.run()
    # the two failed critic threads and their plain twins (new first draft), nothing else
    assert retry.computed["threads"] == 4
    assert {(c, s) for c, s, _ in retry.agents["drawer"].calls} == {("a red circle", 1), ("a cat", 1)}
    assert not any(a["error"] for t in results["threads"] for a in t["attempts"])


def test_changed_settings_are_refused_not_mixed(tmp_path, items):
    make_checkup(tmp_path / "c", items, samples=1).run()
    plan = CheckupPlan(levels=("shapes",), concepts_per_level=1, samples=1, iters=2, human_per_concept=0)
    agents = make_checkup(tmp_path / "x", items).agents
    with pytest.raises(ValueError, match="iters 3 -> 2"):
        Checkup(tmp_path / "c", plan, Settings(model="fake"), agents=agents, embedder=ColourEmbedder()).run()
    with pytest.raises(ValueError, match="model 'fake' -> 'other'"):
        Checkup(tmp_path / "c", dataclasses.replace(plan, iters=3), Settings(model="other"), agents=agents,
                embedder=ColourEmbedder()).run()


def test_bad_plans_are_clear_errors():
    with pytest.raises(ValueError, match="unknown level"):
        CheckupPlan(levels=("shapez",)).validate()
    with pytest.raises(ValueError, match="samples must be at least 1"):
        CheckupPlan(samples=0).validate()


def test_human_drawings_respect_count_and_length(items):
    from drawloop.concepts import get_concept

    cat = get_concept("a cat")
    choices = {"a cat": ["a cat", "a crown", "a rotary telephone"]}
    assert [h.label for h in human_drawings([cat], choices, items, per_concept=1, max_chars=2000)] == ["black cat"]
    assert human_drawings([cat], choices, items, per_concept=0) == []
    long_ok = human_drawings([cat], choices, items, per_concept=5, max_chars=100_000)
    assert "cartoon cat" in [h.label for h in long_ok]


def test_cli_checkup_and_compare_end_to_end(fake_server, tmp_path, monkeypatch):
    from conftest import FakeOpenAI
    from drawloop.cli import build_app
    import drawloop.vision.features as features

    monkeypatch.setattr(features, "default_embedder", lambda: ColourEmbedder())
    FakeOpenAI.concept = "a red circle"
    runner = CliRunner()
    args = ["checkup", "--model", "openai:fake", "--base-url", fake_server, "--levels", "shapes",
            "--concepts-per-level", "2", "--samples", "2", "--iters", "2", "--human-per-concept", "0"]
    result = runner.invoke(build_app(), args + ["--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "a" / "report.md").read_text()
    assert "openai:fake" in report and "The critic is weak" in report
    requests = len(FakeOpenAI.requests)
    result = runner.invoke(build_app(), args + ["--out", str(tmp_path / "a")])
    assert result.exit_code == 0 and len(FakeOpenAI.requests) == requests   # rerun: nothing recomputed
    runner.invoke(build_app(), args + ["--out", str(tmp_path / "b"), "--seed", "5"])
    result = runner.invoke(build_app(), ["checkup", "compare", str(tmp_path / "a"), str(tmp_path / "b"),
                                         "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 5000
    assert "B − A" in (tmp_path / "cmp" / "compare.md").read_text()


def test_cli_bad_input_is_a_clear_error(tmp_path):
    from drawloop.cli import build_app

    result = CliRunner().invoke(build_app(), ["checkup", "--levels", "shapez", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown level" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(build_app(), ["checkup", "compare", str(tmp_path / "nope"), str(tmp_path)])
    assert result.exit_code == 2 and "no results.json" in result.output


def test_ctrl_c_stops_a_checkup_blocked_on_the_model_at_once(tmp_path, stuck_server):
    """Loops waiting on a model that takes minutes must not hold Ctrl-C: the process exits 130
    straight away and says how to resume (resuming is tested above)."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "c"
    process = subprocess.Popen(
        [sys.executable, "-m", "drawloop", "checkup", "--model", "openai:slow", "--base-url",
         stuck_server, "--levels", "shapes", "--concepts-per-level", "1",
         "--samples", "2", "--iters", "2", "--human-per-concept", "0", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "trace.jsonl").exists() or not (out / "trace.jsonl").read_text():
            assert time.monotonic() < deadline and process.poll() is None, process.stdout.read()
            time.sleep(0.2)                    # the loops have started and are waiting on the model
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)   # far less than the model's 60 s
    finally:
        process.kill()
    assert process.returncode == 130, output
    assert "interrupted" in output and "resume" in output



def test_a_failing_loop_ends_the_pool_without_waiting_for_loops_blocked_on_the_model():
    """One loop's error surfaces at once although another loop still waits (the pool used to join
    it first: minutes with a real model); loops_still_running tells the command to exit without
    joining it, and turns False once it ends."""
    from drawloop.checkup import loops_still_running

    release = threading.Event()

    def fails():
        raise ValueError("disk full")

    checkup = SimpleNamespace(plan=SimpleNamespace(concurrency=2))
    started = time.monotonic()
    with pytest.raises(ValueError, match="disk full"):
        Checkup._pool(checkup, [lambda: release.wait(30), fails])
    assert time.monotonic() - started < 10
    assert loops_still_running(timeout=0.1)
    release.set()
    assert not loops_still_running(timeout=10)


def test_with_several_candidates_the_curves_follow_each_rounds_top_candidate():
    from drawloop.checkup.results import round_winners

    attempts = [{"iteration": i, "round": i // 2, "candidate": i % 2} for i in range(6)]
    rounds = [{"winner": 1}, {"winner": 2}, {"winner": 5}]
    winners, best = round_winners({"attempts": attempts, "rounds": rounds, "best": 2})
    assert [a["iteration"] for a in winners] == [1, 2, 5] and best == 1
    single = [{"iteration": i, "round": i, "candidate": 0} for i in range(3)]
    assert round_winners({"attempts": single, "rounds": [{"winner": i} for i in range(3)], "best": 2}) == (single, 2)


def test_a_thread_killed_right_after_decide_is_resumed_not_recorded_as_finished(tmp_path, items):
    """decide's writes saved, the checkpoint that plans the next step not: the check-up must finish
    that loop (run_thread, shared with draw and the batch), not record a one-drawing thread."""
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    make_checkup(tmp_path / "c", items, samples=1).run()
    thread = "critic:cat:s0"
    with sqlite3.connect(tmp_path / "c" / "checkpoints.sqlite", check_same_thread=False) as conn:
        history = list(reversed(list(SqliteSaver(conn).list({"configurable": {"thread_id": thread}}))))
        cut = next(c for c in history if "branch:to:decide" in c.checkpoint["channel_values"])
        cut_id = cut.config["configurable"]["checkpoint_id"]
        for table in ("checkpoints", "writes"):
            conn.execute(f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_id > ?", (thread, cut_id))
    again = make_checkup(tmp_path / "c", items, samples=1)
    results = again.run()
    threads = {t["thread"]: t for t in results["threads"]}
    assert again.computed["threads"] == 1        # that loop only; its plain twin keeps its drawings
    assert len(threads[thread]["attempts"]) == 3 and threads[thread]["stop_reason"] == "max_iters"
    assert again.agents["plain_drawer"].calls == []
