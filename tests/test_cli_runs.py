"""`drawloop runs`: the table, rm and prune (dry run by default), and what they refuse."""

import datetime as dt
import json
import shutil
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from drawloop.cli import build_app
from drawloop.commands.runs import fitting_columns, parse_age, select_for_prune

RECORDED = Path(__file__).parent / "recorded_runs" / "20261125-135755-a-bicycle-32f2"
runner = CliRunner()


def invoke(*args):
    return runner.invoke(build_app(), ["runs", *map(str, args)])


def days_ago(days: float) -> str:
    return dt.datetime.fromtimestamp(time.time() - days * 86400).isoformat(timespec="seconds")


@pytest.fixture
def runs(tmp_path):
    """Three runs: an unfinished one 20 days old, the recorded one 10 days old, and one with no
    creation time (its directory's mtime, now, counts)."""
    root = tmp_path / "runs"
    for name, created, finished in (("20261101-090000-a-red-apple-1a2b", days_ago(20), False),
                                    (RECORDED.name, days_ago(10), True),
                                    ("20990101-000000-a-kite-ffff", None, True)):
        shutil.copytree(RECORDED, root / name)
        meta = json.loads((root / name / "run.json").read_text())
        meta.update(concept=name.split("-", 2)[2][:-5].replace("-", " "), created=created)
        (root / name / "run.json").write_text(json.dumps(meta))
        if not finished:
            (root / name / "result.json").unlink()
    (root / "train-moco").mkdir()  # a training run, not a drawing run: never listed or deleted
    (root / "train-moco" / "train.json").write_text("{}")
    (root / "checkup-local").mkdir()  # a check-up: a trace to replay, but not a run to list or prune
    shutil.copy(RECORDED / "trace.jsonl", root / "checkup-local" / "trace.jsonl")
    return root


def test_list_shows_every_run_with_its_numbers(runs):
    result = invoke("--dir", runs, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["concept"] for r in rows] == ["a red apple", "a bicycle", "a kite"]  # oldest first
    assert rows[1]["best_score"] == 0.05 and rows[1]["tokens_in"] == 3336 and rows[1]["stop_reason"] == "max_iters"
    assert rows[0]["finished"] is False and rows[0]["iterations"] == 3  # from the trace
    table = invoke("--dir", runs).output
    assert RECORDED.name in table and "train-moco" not in table and "checkup" not in table


def test_list_of_an_empty_or_missing_dir_says_so(tmp_path):
    result = invoke("--dir", tmp_path / "nope")
    assert result.exit_code == 0 and "no runs in" in result.output and "no such directory" in result.output


def test_messages_are_not_wrapped_at_a_long_path(tmp_path):
    """Output that is not a terminal keeps each message on one line, whatever the checkout's path."""
    missing = tmp_path / ("a-rather-long-folder-name-" * 5) / "nope"
    result = invoke("--dir", missing)
    line = next(line for line in result.output.splitlines() if "no runs in" in line)
    assert str(missing) in line and "no such directory" in line


def test_rm_is_a_dry_run_until_yes(runs):
    result = invoke("rm", "red-apple", "--dir", runs)
    assert result.exit_code == 0 and "would delete" in result.output and "--yes" in result.output
    assert (runs / "20261101-090000-a-red-apple-1a2b").exists()
    result = invoke("rm", "red-apple", "kite", "--dir", runs, "--yes")
    assert result.exit_code == 0 and "deleted 2 run(s)" in result.output
    assert sorted(p.name for p in runs.iterdir()) == [RECORDED.name, "checkup-local", "train-moco"]


def test_rm_refuses_what_is_not_a_run(runs):
    result = invoke("rm", runs / "train-moco", "--dir", runs, "--yes")
    assert result.exit_code == 2 and "not a drawloop run" in result.output
    result = invoke("rm", "checkup-local", "--dir", runs, "--yes")
    assert result.exit_code == 2 and "not drawing runs (no run.json), so not deleted" in result.output
    shown = runner.invoke(build_app(), ["trace", "show", "checkup-local", "--dir", str(runs), "--no-thumbs"])
    assert shown.exit_code == 0 and "trace of" in shown.output  # ... but it replays
    result = invoke("rm", "2026", "--dir", runs, "--yes")  # ambiguous: deletes nothing
    assert result.exit_code == 2 and "matches 2 runs" in result.output
    assert len(list(runs.iterdir())) == 5


def test_prune_keep_and_older_than(runs):
    result = invoke("prune", "--keep", "1", "--dir", runs)
    assert "would delete" in result.output and "2 run(s)" in result.output and len(list(runs.iterdir())) == 5
    result = invoke("prune", "--keep", "0", "--older-than", "15d", "--dir", runs, "--yes")
    assert result.exit_code == 0 and "deleted 1 run(s)" in result.output
    assert sorted(p.name for p in runs.iterdir()) == [RECORDED.name, "20990101-000000-a-kite-ffff", "checkup-local",
                                                      "train-moco"]
    assert "deleted 1 run(s)" in invoke("prune", "--keep", "1", "--dir", runs, "--yes").output
    assert sorted(p.name for p in runs.iterdir()) == ["20990101-000000-a-kite-ffff", "checkup-local", "train-moco"]
    assert "nothing to prune" in invoke("prune", "--older-than", "1d", "--dir", runs, "--yes").output


def test_prune_needs_a_rule_and_a_readable_age(runs):
    result = invoke("prune", "--dir", runs)
    assert result.exit_code == 2 and "--older-than 7d, --keep N" in result.output
    result = invoke("prune", "--older-than", "soon", "--dir", runs)
    assert result.exit_code == 2 and "not an age" in result.output


def test_age_parsing_and_selection_rules():
    assert parse_age("90m") == 5400 and parse_age("2w") == 14 * 86400 and parse_age(" 1.5h ") == 5400
    with pytest.raises(typer.BadParameter):
        parse_age("7 days")
    now = time.time()
    rows = [{"id": str(i), "created_ts": now - days * 86400} for i, days in enumerate([30, 10, 5, 1])]
    ids = lambda chosen: [r["id"] for r in chosen]  # noqa: E731
    assert ids(select_for_prune(rows, 7 * 86400, None, now)) == ["0", "1"]
    assert ids(select_for_prune(rows, None, 3, now)) == ["0"]
    assert ids(select_for_prune(rows, None, 10, now)) == []
    assert ids(select_for_prune(rows, 20 * 86400, 1, now)) == ["0"]  # both rules must agree
    assert ids(select_for_prune(rows, None, 0, now)) == ["0", "1", "2", "3"]


def test_narrow_terminals_drop_columns_but_never_the_run_id():
    row = {"id": "20261125-135755-a-bicycle-32f2", "concept": "a bicycle", "model": "local:qwen" * 3,
           "best_score": 0.5, "iterations": 3, "stop_reason": "patience", "finished": True, "created_ts": 0,
           "seconds": 12, "tokens_in": 1, "tokens_out": 2}
    assert "model" in fitting_columns([row], 200)
    narrow = fitting_columns([row], 80)
    assert narrow[0] == "run" and "model" not in narrow and "best" in narrow
