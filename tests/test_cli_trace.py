"""`drawloop trace show` on a recorded run: text, JSON, diffs, and clear errors."""

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from drawloop.cli import build_app

RECORDED = Path(__file__).parent / "recorded_runs" / "20261125-135755-a-bicycle-32f2"
runner = CliRunner()


def invoke(*args):
    return runner.invoke(build_app(), ["trace", "show", *map(str, args)])


def test_show_prints_the_iteration_tree():
    result = invoke(RECORDED, "--no-thumbs")
    assert result.exit_code == 0, result.output
    for needle in ("a bicycle", "#0", "#1", "#2", "draw", "render", "recognize", "critique", "stop: max_iters"):
        assert needle in result.output
    assert "▀" not in result.output


def test_diff_and_json(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(RECORDED, runs / RECORDED.name)
    result = invoke("bicycle", "--dir", runs, "--diff", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    iterations = data["threads"][0]["iterations"]
    assert [it["iteration"] for it in iterations] == [0, 1, 2]
    assert "+<!-- Wheel rim -->" in iterations[2]["diff"]
    text = invoke("latest", "--dir", runs, "--diff", "--no-thumbs").output
    assert "code diff vs #1: +3 −3" in text and "-<!-- Wheel -->" in text


def test_bad_run_and_bad_thread_are_clear_errors(tmp_path):
    result = invoke("no-such-run", "--dir", tmp_path)
    assert result.exit_code == 2 and "no run matches 'no-such-run'" in result.output
    result = invoke(RECORDED, "--thread", "dog")
    assert result.exit_code == 2 and "no thread 'dog'" in result.output
    assert "Traceback" not in result.output
