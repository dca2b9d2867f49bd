"""`drawloop draw` end to end against an OpenAI-compatible server on loopback (no real model)."""

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import APPLE, FakeOpenAI
from drawloop.cli import build_app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(build_app(), list(args))


def test_empty_concept_is_a_clear_error():
    result = invoke("draw", "   ", "--model", "openai:x", "--base-url", "http://127.0.0.1:9/v1")
    assert result.exit_code == 2 and "the concept is empty" in result.output
    assert "Traceback" not in result.output


def test_missing_concept_is_a_clear_error():
    result = invoke("draw")
    assert result.exit_code == 2 and "say what to draw" in result.output


def test_unreachable_base_url_is_a_clear_error(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = invoke("draw", "a cat", "--model", "openai:x", "--base-url", f"http://127.0.0.1:{port}/v1",
                    "--out", str(tmp_path))
    assert result.exit_code == 1 and "cannot reach the model server" in result.output   # the work failed
    assert not any(tmp_path.iterdir())  # no half-made run directory


def test_bad_option_values_are_clear_errors(fake_server, tmp_path):
    result = invoke("draw", "a cat", "--model", "openai:x", "--base-url", fake_server, "--max-iters", "0",
                    "--out", str(tmp_path))
    assert result.exit_code == 2 and "--max-iters must be at least 1" in result.output
    result = invoke("draw", "a cat", "--model", "openai:x", "--base-url", fake_server, "--weights", "llm",
                    "--out", str(tmp_path))
    assert result.exit_code == 2 and "name=number" in result.output


def test_json_run_writes_a_complete_run_directory(fake_server, tmp_path):
    FakeOpenAI.concept = "a red apple"
    result = invoke("draw", "a red apple", "--model", "openai:fake", "--base-url", fake_server, "--max-iters", "3",
                    "--patience", "1", "--out", str(tmp_path), "--json", "--seed", "3",
                    "--weights", "sanity=1,recognition=1,llm=1")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    run_dir = Path(summary["run_dir"])
    assert summary["stop_reason"] == "patience" and summary["iterations"] == 2
    assert summary["best_iteration"] == 0 and summary["best_recognized_as"] == "a red apple"
    # sanity 1.0, recognition 1.0, llm critique 0.6 -> mean 0.8667
    assert summary["best_score"] == pytest.approx(0.8667, abs=1e-3)
    assert (run_dir / "best.svg").read_text() == APPLE
    assert (run_dir / "best.png").read_bytes()[:4] == b"\x89PNG"
    assert (run_dir / "contact_sheet.png").stat().st_size > 1000
    assert (run_dir / "checkpoints.sqlite").exists()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["concept"] == "a red apple" and "openai:fake" in meta["model"]
    nodes = [json.loads(line)["node"] for line in (run_dir / "trace.jsonl").read_text().splitlines()]
    assert nodes.count("draw") == 4 and nodes.count("decide") == 2  # start+end per draw, one decide each
    # the revision prompt carried the critic's feedback and the recognizer's verdict
    drawing_prompts = [r["messages"][-1]["content"] for r in FakeOpenAI.requests
                       if r["messages"][0]["role"] == "system"]
    assert len(drawing_prompts) == 2 and "add more detail" in drawing_prompts[1]
    assert "correctly recognized" in drawing_prompts[1]


def test_live_view_run_and_resume_of_a_finished_run(fake_server, tmp_path):
    FakeOpenAI.concept = "a red apple"
    result = invoke("draw", "a red apple", "--model", "openai:fake", "--base-url", fake_server, "--max-iters", "1",
                    "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "best score" in result.output and "max_iters" in result.output
    run_dir = next(tmp_path.iterdir())
    requests_before = len(FakeOpenAI.requests)
    again = invoke("draw", "--resume", str(run_dir), "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["iterations"] == 1
    assert len(FakeOpenAI.requests) == requests_before  # nothing recomputed


def test_unknown_critic_name_is_a_clear_error(fake_server, tmp_path):
    result = invoke("draw", "a cat", "--model", "openai:x", "--base-url", fake_server, "--critic", "no_such_critic",
                    "--out", str(tmp_path))
    assert result.exit_code == 2 and "no critic named 'no_such_critic'" in result.output
    assert not any(tmp_path.iterdir())  # refused before a run directory was made


def test_python_api_accepts_path_runs_dir(fake_server, tmp_path):
    from drawloop import draw

    FakeOpenAI.concept = "a red apple"
    result = draw("a red apple", model="openai:fake", base_url=fake_server, runs_dir=tmp_path, max_iters=1)
    assert result.run_dir.parent == tmp_path and json.loads((result.run_dir / "run.json").read_text())


def test_critic_model_flag_adds_a_vision_critic_that_sees_the_png(fake_server, tmp_path):
    FakeOpenAI.concept = "a red apple"
    result = invoke("draw", "a red apple", "--model", "openai:fake", "--base-url", fake_server,
                    "--critic-model", "openai:fake-vlm", "--critic-base-url", fake_server, "--max-iters", "1",
                    "--out", str(tmp_path), "--json", "--weights", "sanity=1,recognition=1,llm=1")
    assert result.exit_code == 0, result.output
    run_dir = Path(json.loads(result.output)["run_dir"])
    vision_requests = [r for r in FakeOpenAI.requests if isinstance(r["messages"][-1]["content"], list)]
    assert len(vision_requests) == 1 and vision_requests[0]["model"] == "fake-vlm"
    image = next(p for p in vision_requests[0]["messages"][-1]["content"] if p["type"] == "image_url")
    assert image["image_url"]["url"].startswith("data:image/png;base64,")
    critique = [json.loads(line) for line in (run_dir / "trace.jsonl").read_text().splitlines()
                if '"critique"' in line and '"end"' in line][0]
    assert critique["scores"]["vlm"] == pytest.approx(0.3)
    # sanity 1, recognition 1, llm 0.6 at weight 1 each, vlm 0.3 at weight 2 -> 3.2 / 5
    assert critique["score"] == pytest.approx(0.64, abs=1e-3)


def test_resume_of_a_run_killed_right_after_decide_finishes_it(fake_server, tmp_path):
    """decide's writes saved, the checkpoint that plans the next step not: `--resume` must go on
    drawing, not report the half-finished run as done."""
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    FakeOpenAI.concept = "a red apple"
    args = ["--model", "openai:fake", "--base-url", fake_server, "--max-iters", "3", "--patience", "5", "--json"]
    full = json.loads(invoke("draw", "a red apple", *args, "--out", str(tmp_path)).output)
    assert full["iterations"] == 3
    db = Path(full["run_dir"]) / "checkpoints.sqlite"
    with sqlite3.connect(db, check_same_thread=False) as conn:
        history = list(reversed(list(SqliteSaver(conn).list(None))))
        # the first checkpoint whose next step is decide; as if killed right after decide wrote
        cut = next(c for c in history if "branch:to:decide" in c.checkpoint["channel_values"])
        cut_id, thread = cut.config["configurable"]["checkpoint_id"], cut.config["configurable"]["thread_id"]
        conn.execute("DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_id > ?", (thread, cut_id))
        conn.execute("DELETE FROM writes WHERE thread_id = ? AND checkpoint_id > ?", (thread, cut_id))
        assert conn.execute("SELECT count(*) FROM writes WHERE checkpoint_id = ?", (cut_id,)).fetchone()[0]
    again = invoke("draw", "--resume", full["run_dir"], "--json")
    assert again.exit_code == 0, again.output
    resumed = json.loads(again.output)
    assert resumed["iterations"] == 3 and resumed["stop_reason"] == "max_iters"


@pytest.mark.slow
def test_loop_with_pixel_recognizer_and_gallery_scorer_puts_their_scores_in_the_trace(fake_server, tmp_path):
    """Offline pixel judgement in the loop: the recognizer votes over the human-drawn gallery and
    the critic adds the gallery concept score and the structure score (real gallery, cached)."""
    FakeOpenAI.concept = "a red apple"
    result = invoke("draw", "a red apple", "--model", "openai:fake", "--base-url", fake_server, "--max-iters", "2",
                    "--recognizer", "pixels", "--critic", "pixels", "--out", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in (Path(json.loads(result.output)["run_dir"]) / "trace.jsonl").open()]
    recognized = [e["recognition"] for e in events if e["node"] == "recognize" and e["phase"] == "end"]
    critiques = [e for e in events if e["node"] == "critique" and e["phase"] == "end"]
    assert len(recognized) == len(critiques) == 2
    assert all(r["source"] == "pixels" and r["label"] and 0 < r["confidence"] <= 1 for r in recognized)
    for event in critiques:
        assert {"sanity", "recognition", "llm", "concept", "structure"} <= set(event["scores"])
        assert all(0 <= v <= 1 for v in event["scores"].values())
    assert not any(r["source"] == "code" for r in recognized)   # the code-reading recognizer never ran


def test_ctrl_c_stops_a_draw_blocked_on_the_model_at_once_and_says_how_to_resume(tmp_path, stuck_server):
    import signal
    import subprocess
    import sys
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "drawloop", "draw", "a red apple", "--model", "openai:slow", "--base-url",
         stuck_server, "--out", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("*/trace.jsonl")) or not next(tmp_path.glob("*/trace.jsonl")).read_text():
            assert time.monotonic() < deadline and process.poll() is None, process.stdout.read()
            time.sleep(0.2)                    # drawing has started and waits on the model
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)   # far less than the model's 60 s
    finally:
        process.kill()
    run_dir = next(tmp_path.iterdir())
    assert process.returncode == 130, output
    assert "interrupted" in output and f"drawloop draw --resume {run_dir}" in " ".join(output.split())


@pytest.mark.parametrize("args, env, says", [
    (["--language", "ruby"], {}, "--language 'ruby' has no renderer; known languages: svg, python"),
    (["--min-delta", "nan"], {}, "--min-delta must be a number >= 0, not nan"),
    (["--temperature", "-7"], {}, "--temperature must be in [0, 2]"),
    ([], {"DRAWLOOP_TIMEOUT": "-1"}, "DRAWLOOP_TIMEOUT"),
    ([], {"DRAWLOOP_THREADS": "lots"}, "DRAWLOOP_THREADS='lots' is not a whole number"),
])
def test_bad_settings_name_the_option_or_variable(fake_server, tmp_path, monkeypatch, args, env, says):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = invoke("draw", "a cat", "--model", "openai:x", "--base-url", fake_server, "--out", str(tmp_path), *args)
    assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("concept", ["\u200b\u200d", "\x01\x02", "\u202e\u2066"])
def test_concepts_of_invisible_characters_are_refused(concept):
    result = invoke("draw", concept, "--model", "openai:x", "--base-url", "http://127.0.0.1:9/v1")
    assert result.exit_code == 2 and "no visible characters" in result.output


def test_resume_of_a_run_json_with_an_unknown_setting_says_so(fake_server, tmp_path):
    FakeOpenAI.concept = "a red apple"
    result = invoke("draw", "a red apple", "--model", "openai:fake", "--base-url", fake_server, "--max-iters", "1",
                    "--out", str(tmp_path), "--json")
    run_dir = Path(json.loads(result.output)["run_dir"])
    meta = json.loads((run_dir / "run.json").read_text())
    meta["settings"]["brushes"] = 3
    (run_dir / "run.json").write_text(json.dumps(meta))
    result = invoke("draw", "--resume", str(run_dir))
    assert result.exit_code == 2 and "unknown setting(s) brushes" in result.output
    assert "Traceback" not in result.output


def test_a_model_that_never_draws_exits_non_zero_and_says_why(fake_server, tmp_path):
    FakeOpenAI.answers = [(200, "I am sorry, I cannot draw.")] * 20
    result = invoke("draw", "a cat", "--model", "openai:fake", "--base-url", fake_server, "--max-iters", "2",
                    "--patience", "1", "--out", str(tmp_path), "--json")
    assert result.exit_code == 1
    assert "no drawing of 'a cat'" in result.output and "contained no <svg> element" in result.output


def test_an_out_that_is_a_file_is_a_clear_error(fake_server, tmp_path):
    target = tmp_path / "runs.txt"
    target.write_text("not a folder")
    result = invoke("draw", "a cat", "--model", "openai:x", "--base-url", fake_server, "--out", str(target))
    assert result.exit_code == 2 and "is a file, not a folder" in result.output and "Traceback" not in result.output


def test_storage_errors_read_as_what_they_are():
    import errno
    import sqlite3

    from drawloop.commands import storage_error

    assert "disk is full" in storage_error(OSError(errno.ENOSPC, "No space left on device", "/x/run.json"))
    assert "disk is full" in storage_error(sqlite3.OperationalError("cannot rollback - no transaction is active"))
    assert "Read-only file system" in storage_error(OSError(errno.EROFS, "Read-only file system", "/x"))
    assert storage_error(ValueError("other")) is None


def test_each_revision_request_extends_the_request_that_drew_its_parent(fake_server, tmp_path):
    """The server's prefix cache holds a draft's prompt and answer; the revision must start with
    exactly those, so only its feedback is new prompt work (issue 13)."""
    FakeOpenAI.concept = "a red apple"
    result = invoke("draw", "a red apple", "--model", "openai:fake", "--base-url", fake_server, "--max-iters", "3",
                    "--patience", "5", "--out", str(tmp_path), "--json", "--weights", "sanity=1,llm=1")
    assert result.exit_code == 0, result.output
    drafts = [r for r in FakeOpenAI.requests
              if len(r["messages"]) > 1 and r["messages"][1]["content"] == "Draw a red apple."]
    assert len(drafts) == 3
    answer = f"```svg\n{APPLE}\n```"  # what the fake server answered the first draft
    first = drafts[0]["messages"]
    for revision in drafts[1:]:  # equal scores: the first draft stays best, both revise it
        messages = revision["messages"]
        assert messages[:len(first)] == first
        assert messages[len(first)] == {"role": "assistant", "content": answer}
        assert messages[-1]["role"] == "user" and "Rewrite the code" in messages[-1]["content"]


def test_a_plain_shape_is_drawn_with_a_smaller_token_budget(fake_server, tmp_path):
    """Shape drafts take 72-224 tokens; a loop the guard misses should stop at 600, not 1,200."""
    budgets = {}
    for concept in ("a red circle", "an apple"):
        FakeOpenAI.requests.clear()
        FakeOpenAI.concept = concept
        result = invoke("draw", concept, "--model", "openai:fake", "--base-url", fake_server, "--max-iters", "1",
                        "--out", str(tmp_path), "--json", "--weights", "sanity=1")
        assert result.exit_code == 0, result.output
        drafts = [r for r in FakeOpenAI.requests if len(r["messages"]) > 1
                  and r["messages"][1]["content"] == f"Draw {concept}."]
        budgets[concept] = drafts[0]["max_tokens"]
    assert budgets == {"a red circle": 600, "an apple": 1200}
