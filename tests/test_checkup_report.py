"""drawloop/checkup's report: every metric's arithmetic on hand-made results, the report and the
comparison."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drawloop.checkup import compare, write_report
from drawloop.checkup import metrics as m

CHOICES_A = ["a red circle", "a blue circle", "a red square", "a yellow circle", "a red triangle"]
CHOICES_B = ["a crown", "a cat", "a zebra", "a koala", "a rotary telephone"]


def attempt(i, score, correct, image="artifacts/red.png", error=None, tokens=(10, 1)):
    return {"iteration": i, "score": score, "scores": {}, "label": "x" if correct else "y", "correct": correct,
            "image": None if error else image, "code_path": None, "chars": 1000 + 100 * i, "error": error,
            "names_concept": correct,
            "usage": {"tokens_in": tokens[0], "tokens_out": tokens[1]}, "seconds": 1.0}


def thread(mode, concept, level, sample, scores, correct, best=None, image="artifacts/red.png", errors=()):
    attempts = [attempt(i, s, c, image, "render failed" if i in errors else None)
                for i, (s, c) in enumerate(zip(scores, correct))]
    choices = CHOICES_A if concept == "a red circle" else CHOICES_B
    return {"thread": f"{mode}:{concept}:s{sample}", "mode": mode, "concept": concept, "level": level,
            "sample": sample, "choices": choices, "best": best, "stop_reason": "max_iters", "attempts": attempts}


def results(model="fake-a", shift=0.0):
    """Critic curves: [.2 .5 .8], [.4 .3 .6] (shapes) and [0 .5 .4] (objects, draft 0 failed to render).
    Plain threads share draft 0; one plain thread stopped after two attempts."""
    critic = [thread("critic", "a red circle", "shapes", 0, [0.2 + shift, 0.5, 0.8], [False, True, True], 2,
                     "artifacts/red.png"),
              thread("critic", "a red circle", "shapes", 1, [0.4 + shift, 0.3, 0.6], [True, False, True], 2,
                     "artifacts/green.png"),
              thread("critic", "a cat", "objects", 0, [0.0 + shift, 0.5, 0.4], [False, True, False], 1,
                     "artifacts/blue.png", errors=(0,))]
    plain = [thread("plain", "a red circle", "shapes", 0, [0.2 + shift, 0.1, 0.3], [False, False, False], 2),
             thread("plain", "a red circle", "shapes", 1, [0.4 + shift, 0.6, 0.5], [True, True, True], 1),
             thread("plain", "a cat", "objects", 0, [0.0 + shift, 0.2], [False, False], 1)]
    human = [{"work_key": f"a red circle|k{i}", "concept": "a red circle", "level": "shapes", "key": f"openclipart:k{i}",
              "title": f"red circle {i}", "path": "/x.svg", "chars": 300, "code_path": None,
              "image": "artifacts/green.png", "choices": CHOICES_A, "label": "a red circle" if i == 0 else "a red square",
              "correct": i == 0, "error": None, "usage": {"tokens_in": 1000, "tokens_out": 1}} for i in range(2)]
    return {"model": model, "plan": {"levels": ["shapes", "objects"], "concepts_per_level": 1, "samples": 2,
                                     "iters": 3, "concurrency": 2, "human_per_concept": 2, "human_max_chars": 6000,
                                     "seed": 0},
            "settings": {"base_url": None, "n_distractors": 4, "temperature": 0.7, "max_tokens": 1200, "size": 256,
                         "language": "svg", "critic": "default", "recognizer": "code", "extra": {}},
            "sessions": [{"started": "2026-01-01T00:00:00", "seconds": 100.0, "computed": {"threads": 6}},
                         {"started": "2026-01-01T01:00:00", "seconds": 20.0, "computed": {"threads": 0}}],
            "embedder": "fake",
            "concepts": [{"name": "a red circle", "level": "shapes", "category": "single", "choices": CHOICES_A},
                         {"name": "a cat", "level": "objects", "category": "animal", "choices": CHOICES_B}],
            "threads": critic + plain, "human": human,
            "diversity": {"a red circle": {"level": "shapes", "first": 0.5, "final": 0.25, "n_first": 2, "n_final": 2},
                          "a cat": {"level": "objects", "first": None, "final": None, "n_first": 1, "n_final": 1}}}


def write_checkup(directory: Path, data: dict) -> Path:
    (directory / "artifacts").mkdir(parents=True)
    for name, colour in (("red", "red"), ("green", "green"), ("blue", "blue")):
        Image.new("RGB", (64, 64), colour).save(directory / "artifacts" / f"{name}.png")
    (directory / "results.json").write_text(json.dumps(data))
    return directory


# ---------------------------------------------------------------- arithmetic

def test_mean_pairwise_distance_on_known_vectors():
    assert m.mean_pairwise_distance([[1, 0], [0, 1]]) == pytest.approx(1.0)
    assert m.mean_pairwise_distance([[1, 0], [1, 0]]) == pytest.approx(0.0)
    assert m.mean_pairwise_distance([[1, 0], [-1, 0]]) == pytest.approx(2.0)
    assert m.mean_pairwise_distance([[2, 0], [0, 3]]) == pytest.approx(1.0)       # unnormalised input
    assert m.mean_pairwise_distance([[1, 0, 0], [0, 1, 0], [1, 1, 0]]) == pytest.approx((1 + 2 * (1 - 2 ** -0.5)) / 3)
    assert m.mean_pairwise_distance([[1, 0]]) is None and m.mean_pairwise_distance([]) is None


def test_fidelity_first_last_best_per_level():
    rows = {r["level"]: r for r in m.fidelity(results()["threads"])}
    shapes, objects, everything = rows["shapes"], rows["objects"], rows["all"]
    assert shapes["drawings"] == 2 and shapes["failed_first"] == 0
    assert shapes["first_score"] == pytest.approx(0.3) and shapes["first_recognized"] == 0.5
    assert shapes["last_score"] == pytest.approx(0.7) and shapes["last_recognized"] == 1.0
    assert shapes["best_score"] == pytest.approx(0.7) and shapes["best_recognized"] == 1.0
    assert objects["failed_first"] == 1.0 and objects["first_score"] == 0.0
    assert objects["last_recognized"] == 0.0 and objects["best_score"] == 0.5 and objects["best_recognized"] == 1.0
    assert everything["first_score"] == pytest.approx(0.2) and everything["best_score"] == pytest.approx(1.9 / 3)
    assert everything["first_recognized"] == pytest.approx(1 / 3)


def test_curves_raw_and_best_so_far_with_an_early_stop():
    threads = results()["threads"]
    raw = m.curve(threads, "critic", "raw")
    assert [p["mean"] for p in raw] == pytest.approx([0.2, 1.3 / 3, 0.6])
    assert raw[0]["std"] == pytest.approx(np.std([0.2, 0.4, 0.0])) and [p["n"] for p in raw] == [3, 3, 3]
    best = m.curve(threads, "critic", "best")
    assert [p["mean"] for p in best] == pytest.approx([0.2, 1.4 / 3, 1.9 / 3])
    plain_raw = m.curve(threads, "plain", "raw")
    assert [p["n"] for p in plain_raw] == [3, 3, 2]                    # the stopped thread drops out
    assert plain_raw[2]["mean"] == pytest.approx(0.4) and plain_raw[2]["std"] == pytest.approx(0.1)
    plain_best = m.curve(threads, "plain", "best")
    assert [p["n"] for p in plain_best] == [3, 3, 3]                   # ... and carries its best forward
    assert plain_best[2]["mean"] == pytest.approx((0.3 + 0.6 + 0.2) / 3)
    with pytest.raises(ValueError):
        m.curve(threads, "critic", "median")


def test_gain_is_paired_per_thread():
    gain = m.gain(results()["threads"], "critic")
    assert gain["mean"] == pytest.approx(0.4) and gain["improved"] == 3 and gain["worse"] == 0
    plain = m.gain(results()["threads"], "plain")
    assert plain["mean"] == pytest.approx((0.1 + 0.1 + 0.2) / 3) and plain["improved"] == 3


def test_recognition_own_vs_people_on_the_same_concepts():
    data = results()
    rows = {r["level"]: r for r in m.recognition(data["threads"], data["human"])}
    assert rows["shapes"]["own"] == 0.5 and rows["shapes"]["own_matched"] == 0.5 and rows["shapes"]["n_matched"] == 2
    assert rows["shapes"]["human"] == 0.5 and rows["shapes"]["n_human"] == 2
    assert rows["objects"]["own"] == 0.0 and rows["objects"]["own_matched"] is None and rows["objects"]["human"] is None
    assert rows["all"]["own"] == pytest.approx(1 / 3) and rows["all"]["own_matched"] == 0.5
    assert rows["shapes"]["own_chars"] == 1000 and rows["shapes"]["human_chars"] == 300
    assert rows["shapes"]["own_named"] == 0.5 and rows["shapes"]["human_named"] is None   # old rows lack the field
    assert rows["all"]["own_named"] == pytest.approx(1 / 3)
    assert m.chance(data["threads"]) == pytest.approx(0.2)


def test_costs_count_the_shared_first_draft_once():
    costs = m.costs(results())
    assert costs["attempts"] == 9 + 5                    # 3 critic x 3, plain 2 + 2 + 1 beyond draft 0
    assert costs["loop_tokens_in"] == 14 * 10 and costs["human_tokens_in"] == 2000
    assert costs["tokens_in"] == 2140 and costs["tokens_out"] == 16
    assert costs["wall_seconds"] == 120.0 and costs["sessions"] == 2
    assert costs["failures"] == {"model unreachable": 0, "no code": 0, "render failed": 1}


def test_concepts_ranked_best_first():
    rows = m.concepts(results()["threads"], results()["diversity"])
    assert [r["concept"] for r in rows] == ["a red circle", "a cat"]
    assert rows[0]["best_score"] == pytest.approx(0.7) and rows[0]["diversity"] == 0.5
    assert rows[1]["diversity"] is None


def test_empty_inputs_give_none_not_errors():
    assert m.rate([]) is None and m.mean([None]) is None and m.spread([])["n"] == 0
    assert m.curve([], "plain") == []


# ---------------------------------------------------------------- the report

SECTIONS = ["# Vision check-up", "## At a glance", "## Settings", "## 1. Generation fidelity by level",
            "## 2. Recognition from code", "## 3. Self-correction", "## 4. Diversity", "## Best and worst concepts",
            "## Costs", "## Definitions"]


def test_report_renders_every_section_figure_and_sheet(tmp_path):
    directory = write_checkup(tmp_path / "a", results())
    text = write_report(directory).read_text()
    positions = [text.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    assert "produced by `fake-a`" in text and "The critic is weak" in text
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        path = directory / link
        assert path.exists() and path.read_bytes()[:4] == b"\x89PNG", link
    for name in ("fidelity", "recognition", "selfcorrection", "diversity"):
        assert Image.open(directory / "figures" / f"{name}.png").size[0] > 500
    assert (directory / "sheets" / "red-circle.png").exists() and (directory / "sheets" / "cat.png").exists()
    # numbers from the hand-made case reach the tables
    assert "| shapes | 2 | 0% | 0.30 | 0.70 | 0.70 | 50% | 100% | 100% |" in text
    assert "| 2 | 0.40 ± 0.10 (n=2) | 0.37 ± 0.17 (n=3) | 0.60 ± 0.16 (n=3) | 0.63 ± 0.12 (n=3) |" in text
    assert "2,140 / 16" in text and "2.0 min over 2 session(s)" in text
    assert "| 1000 / 300 |" in text and "| 1000 / – |" in text
    assert "✓ a red circle" in text and "✗ a red square" in text
    headline = json.loads((directory / "metrics.json").read_text())["headline"]
    assert headline["human_recognized"] == 0.5 and headline["critic_gain"] == pytest.approx(0.4)


def test_sheet_has_one_row_per_thread_and_people(tmp_path):
    directory = write_checkup(tmp_path / "a", results())
    write_report(directory)
    red = Image.open(directory / "sheets" / "red-circle.png")
    cat = Image.open(directory / "sheets" / "cat.png")
    assert red.height > cat.height        # red circle: 4 threads + people; cat: 2 threads


def test_missing_results_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results.json"):
        write_report(tmp_path)


def test_compare_two_models_side_by_side(tmp_path):
    a = write_checkup(tmp_path / "a", results("model-a"))
    b = write_checkup(tmp_path / "b", results("model-b", shift=0.1))
    path = compare(a, b, tmp_path / "cmp")
    text = path.read_text()
    assert "`model-a` vs `model-b`" in text and "Both ran the same plan." in text
    assert "| first-draft score | 0.20 | 0.30 | +0.10 |" in text
    assert "| people's drawings recognized | 50% | 50% | +0 pts |" in text
    assert Image.open(tmp_path / "cmp" / "compare.png").size[0] > 800


def test_compare_same_model_names_the_directories(tmp_path):
    a = write_checkup(tmp_path / "a", results())
    data = results()
    data["plan"]["iters"] = 4
    b = write_checkup(tmp_path / "b", data)
    text = compare(a, b).read_text()
    assert "`fake-a [a]` vs `fake-a [b]`" in text and "The plans differ" in text
    assert (tmp_path / "compare-a-vs-b" / "compare.md").exists()
