"""`drawloop critique`: single files, pairs and pairs files, as JSON, with the real renderers and pixel scorers."""

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from drawloop.cli import build_app

LADDERS = Path(__file__).parent / "ladders"
SLIVER = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100"><rect width="100" height="100" '
          'fill="white"/><rect x="0" y="10" width="3" height="80" fill="green"/></svg>')


def invoke(*args):
    return CliRunner().invoke(build_app(), ["critique", *map(str, args), "--no-model", "--json"])


def lines(result):
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_single_files_svg_and_png_get_per_scorer_scores(tmp_path):
    shutil.copy(LADDERS / "bicycle" / "4_detailed.svg", tmp_path / "bike.svg")
    from drawloop.renderers import render

    (tmp_path / "bike.png").write_bytes(render((tmp_path / "bike.svg").read_text(), "svg", 256).png)
    svg, png = lines(invoke(tmp_path / "bike.svg", tmp_path / "bike.png", "--concept", "a bicycle"))
    assert svg["language"] == "svg" and png["language"] == "png"
    assert set(svg["scores"]) == {"sanity", "concept", "structure"} and 0 < svg["score"] <= 1
    assert abs(svg["score"] - png["score"]) < 0.1   # the same picture, whichever way it arrives
    assert svg["recognized_as"] is None   # --no-model: no code recognizer, no LLM critic


def test_pair_names_the_better_drawing_exactly_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("sliver.svg").write_text(SLIVER)
    shutil.copy(LADDERS / "bicycle" / "4_detailed.svg", "bike.svg")
    for order in (("sliver.svg", "bike.svg"), ("./bike.svg", "sliver.svg")):
        (result,) = lines(invoke("--pair", order[0], order[1], "--concept", "a bicycle"))
        bike = next(name for name in order if "bike" in name)
        assert result["better"] == bike and set(result["scores"]) == set(order)
        assert result["scores"][bike] > result["scores"][next(n for n in order if n != bike)]
        assert result["reason"]


def test_pairs_file_gives_one_line_per_pair_in_order(tmp_path):
    folder = tmp_path / "prefs"
    (folder / "d").mkdir(parents=True)
    for name in ("0_blank", "2_primitive", "4_detailed"):
        shutil.copy(LADDERS / "apple" / f"{name}.svg", folder / "d" / f"apple_{name}.svg")
    rows = [{"concept": "an apple", "a": "d/apple_0_blank.svg", "b": "d/apple_4_detailed.svg"},
            {"concept": "an apple", "a": "d/apple_4_detailed.svg", "b": "d/apple_2_primitive.svg"}]
    (folder / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = lines(invoke("--pairs", folder / "pairs.jsonl"))
    assert [(o["a"], o["b"]) for o in out] == [(r["a"], r["b"]) for r in rows]
    assert [o["better"] for o in out] == ["d/apple_4_detailed.svg", "d/apple_4_detailed.svg"]


def test_bad_input_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    cases = [(["--pair", tmp_path / "notes.txt", tmp_path / "x.svg", "--concept", "a cat"], "not a drawing"),
             ([tmp_path / "broken.png", "--concept", "a cat"], "not a readable PNG"),
             ([tmp_path / "missing.svg", "--concept", "a cat"], "no such file"),
             ([tmp_path / "broken.png"], "--concept")]
    for args, phrase in cases:
        result = invoke(*args)
        assert result.exit_code == 2 and phrase in result.output, result.output
