import json

import pytest
import torch
from PIL import Image

from drawloop.vision.backbone import BackboneConfig
from drawloop.vision.compare import CompareConfig, equal_budget, run_comparison, slug
from drawloop.vision.compare_report import summarise
from drawloop.vision.probe import ProbeSet


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # fixture in conftest.py


def _probe_set():
    """Synthetic 'photos': the class is which half is bright, so every backbone scores near 100%."""
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(2).repeat(40)
    x = (torch.rand(80, 28, 28, generator=gen) * 40).to(torch.uint8)
    x[y == 0, :, :14] += 200
    x[y == 1, :, 14:] += 200
    return ProbeSet(x[:60], y[:60], x[60:], y[60:], size=16)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "llm"
    for i in range(20):
        (root / "images" / "c").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24, 24), (12 * i, 255 - 12 * i, 90)).save(root / "images" / "c" / f"{i}.png")
    return root


def test_equal_budget_is_capped_by_the_smallest_folder(folder):
    assert equal_budget(["procedural:shapes"], 500) == 500
    assert equal_budget([str(folder), "procedural:shapes"], 500) == 20
    assert slug("procedural:deadleaves") == "deadleaves" and slug(str(folder)) == "llm"


def test_summarise_gives_mean_and_sample_std_per_source():
    runs = [{"source": "a", "images": 5, "epochs": 1, "train_s": 2.0, "linear": 0.8, "knn": 0.7},
            {"source": "a", "images": 5, "epochs": 1, "train_s": 4.0, "linear": 0.6, "knn": 0.7},
            {"source": "b", "images": 0, "epochs": 0, "train_s": 0.0, "linear": 0.5, "knn": 0.4}]
    rows = summarise(runs)
    assert [r["source"] for r in rows] == ["a", "b"]
    assert rows[0]["linear"] == pytest.approx(0.7) and rows[0]["linear_std"] == pytest.approx(0.1414, abs=1e-4)
    assert rows[0]["train_s"] == 3.0 and rows[1]["linear_std"] == 0.0


def test_comparison_end_to_end_and_reuses_finished_runs(folder, tmp_path):
    config = CompareConfig(sources=[str(folder), "procedural:spectral"], images=64, epochs=1, seeds=[0, 1],
                           size=16, batch_size=8, backbone=BackboneConfig(arch="resnet10", width=4))
    out = tmp_path / "cmp"
    logs = []
    rows = run_comparison(config, out, progress=False, log=logs.append, probe_set=_probe_set())
    assert [r["source"] for r in rows] == [str(folder), "procedural:spectral", "random init", "pixels"]
    assert rows[0]["images"] == rows[1]["images"] == 20  # the folder's 20 images cap everyone's budget
    assert all(r["seeds"] == 2 for r in rows[:3]) and rows[3]["seeds"] == 1
    assert all(r["linear"] > 0.9 for r in rows)
    table = (out / "compare.md").read_text()
    assert "| procedural:spectral | 20 | 1 |" in table and "random init" in table
    assert Image.open(out / "compare.png").size[0] > 400
    assert (out / "samples" / "spectral.png").exists()
    saved = json.loads((out / "compare.json").read_text())
    assert saved["config"]["budget"] == 20 and len(saved["runs"]) == 2 * 2 + 2 + 1

    logs.clear()
    run_comparison(config, out, progress=False, log=logs.append, probe_set=_probe_set())
    assert sum("reusing" in line for line in logs) == 4


# ---------------------------------------------------------------- LLM drawings, the mix, photo folders, report

def _drawings_file(path, n=24):
    """A code-only drawings file like `drawloop dataset export-code` writes: n rendered SVGs and their hashes."""
    import hashlib
    import random

    from drawloop.renderers import render

    rows = []
    for i in range(n):
        r = random.Random(i)
        code = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" fill="#fff"/>'
                f'<circle cx="{r.randint(14, 50)}" cy="{r.randint(14, 50)}" r="{r.randint(6, 14)}" '
                f'fill="#{r.randrange(1 << 24):06x}"/><rect x="{r.randint(0, 30)}" y="{r.randint(0, 30)}" '
                f'width="{r.randint(8, 30)}" height="{r.randint(8, 30)}" fill="#{r.randrange(1 << 24):06x}"/></svg>')
        png = render(code, "svg", 64).png
        rows.append({"id": f"thing-{i:04d}", "concept": f"thing {i % 6}", "model": "openai:test-drawer",
                     "draft": "refined" if i % 3 else "first", "language": "svg", "size": 64, "code": code,
                     "png_sha256": hashlib.sha256(png).hexdigest()})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _photo_folder(root, per_class=8, size=20):
    """A tiny ImageFolder of 'photos': reddish and bluish noise, the class is the tint."""
    gen = torch.Generator().manual_seed(1)
    for label, tint in (("red", (180, 20, 20)), ("blue", (20, 20, 180))):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = torch.rand(size, size, 3, generator=gen) * 60
            pixels = (noise + torch.tensor(tint)).clamp(0, 255).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(root / label / f"{i}.jpg" if i % 2 else root / label / f"{i}.png")
    return root


def test_llm_source_and_the_best_procedural_mix_at_equal_budget_write_the_report(tmp_path, monkeypatch):
    monkeypatch.setenv("DRAWLOOP_CACHE", str(tmp_path / "cache"))
    drawings = _drawings_file(tmp_path / "drawings.jsonl")
    photos = ProbeSet.from_folder(_photo_folder(tmp_path / "photos"), size=16)
    config = CompareConfig(sources=["procedural:spectral", "procedural:shapes"], drawings=str(drawings), images=64,
                           epochs=1, seeds=[0, 1], size=16, batch_size=8,
                           backbone=BackboneConfig(arch="resnet10", width=4))
    out, docs = tmp_path / "cmp", tmp_path / "docs"
    logs = []
    rows = run_comparison(config, out, progress=False, log=logs.append, probe_set=[_probe_set(), photos], report=docs)
    best = max(rows[1:3], key=lambda r: (r["linear"], r["knn"], r["source"]))["source"]
    assert [r["source"] for r in rows] == ["llm", "procedural:spectral", "procedural:shapes", f"llm+{best}",
                                           "random init", "pixels"]
    assert all(r["images"] == 24 for r in rows[:4])            # the 24 drawings cap every source's budget
    assert all(r["seeds"] == 2 and set(r["probes"]) == {"fashion-mnist", "folder:photos"} for r in rows[:5])
    mix_run = json.loads((out / "runs" / f"llm+{best.split(':')[1]}-seed0" / "train.json").read_text())
    assert mix_run["mix"] == {"parts": 2, "per_batch": 4, "steps_per_epoch": 3} and mix_run["images"] == 24
    assert mix_run["epochs_done"] == 1 and mix_run["batch_size"] == 8  # same budget, steps, batch as the others
    saved = json.loads((out / "compare.json").read_text())
    assert saved["drawings"]["models"] == {"openai:test-drawer": 24} and saved["mix"]["chosen"] == best
    assert saved["drawings"]["mismatched"] == 0 and saved["drawings"]["failed"] == 0
    report = (docs / "vision-from-text.md").read_text()
    for text in ("`openai:test-drawer` (24)", "8 first drafts, 16 refined",
                 "| images per source | 24 ", "### folder:photos", "What this scale can and cannot say",
                 "drawloop compare --drawings", "- linear probe: ", "llm against the best procedural source"):
        assert text in report, text
    assert Image.open(docs / "vision-from-text.png").size[1] > 800   # one panel per probe set
    assert any("best procedural source is" in line for line in logs)


def test_a_photo_folder_is_a_probe_set(tmp_path):
    from drawloop.vision.backbone import build_backbone
    from drawloop.vision.probe import ProbeDataError, probe

    photos = ProbeSet.from_folder(_photo_folder(tmp_path / "p"), size=16)
    assert photos.train_images.shape == (12, 3, 16, 16) and len(photos.test_labels) == 4  # 20% of each class
    assert photos.classes == ("blue", "red") and photos.describe()["classes"] == 2
    torch.manual_seed(0)
    assert probe(build_backbone(BackboneConfig(arch="resnet10", width=4)), photos)["linear"] == 1.0
    assert probe(None, photos)["feature_dim"] == 3 * 16 * 16           # colour pixels, all three channels
    _photo_folder(tmp_path / "q" / "train")
    _photo_folder(tmp_path / "q" / "test", per_class=3)
    given = ProbeSet.from_folder(tmp_path / "q", size=16)
    assert len(given.train_labels) == 16 and len(given.test_labels) == 6
    (tmp_path / "one" / "cat").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "one" / "cat" / "a.png")
    with pytest.raises(ProbeDataError, match="at least 2 class folders"):
        ProbeSet.from_folder(tmp_path / "one", size=16)


def test_compare_command_errors_are_one_clear_line(tmp_path):
    import typer
    from typer.testing import CliRunner

    from drawloop.commands.train import register

    app = typer.Typer()
    register(app)
    cases = [(["--drawings", str(tmp_path / "none.jsonl")], "no drawings file"),
             (["--no-fashion-mnist"], "nothing to probe on"),
             (["--sources", "llm"], "needs a drawings file")]
    if not torch.cuda.is_available():
        cases.append((["--device", "cuda"], "CUDA was asked for"))
    for args, message in cases:
        result = CliRunner().invoke(app, ["compare", *args, "--out", str(tmp_path / "c"), "--threads", "1"])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output


def test_rows_saved_before_several_probe_sets_are_read():
    from drawloop.vision.compare import _upgrade, _with_primary

    old = {"source": "a", "seed": 0, "images": 5, "epochs": 1, "train_s": 1.0, "linear": 0.8, "knn": 0.7,
           "dataset": "fashion-mnist", "train": 60, "test": 20, "size": 16}
    row = _with_primary(_upgrade(dict(old)), [_probe_set()])
    assert row["probes"]["fashion-mnist"]["linear"] == 0.8 and row["linear"] == 0.8


def test_the_report_names_the_winner_and_weighs_the_margin_against_the_seed_spread():
    from drawloop.vision.compare_report import ranking, verdict

    runs = [{"source": s, "images": 8, "epochs": 1, "train_s": 1.0, "linear": lin, "knn": 0.5}
            for s, values in (("llm", (0.80, 0.82)), ("procedural:shapes", (0.70, 0.71)),
                              ("procedural:spectral", (0.79, 0.815)), ("random init", (0.9, 0.9)))
            for lin in values]
    ranked = ranking(summarise(runs), None, "linear")
    assert [r["source"] for r in ranked] == ["llm", "procedural:spectral", "procedural:shapes"]  # references out
    text = verdict(ranked, "linear", 2)
    assert text.startswith("**llm** (81.00%), 0.75 points ahead of procedural:spectral (80.25%)")
    assert "within twice the larger seed spread (1.77 points): 2 seeds do not separate them" in text
    assert "more than twice" in verdict([ranked[0], ranked[2]], "linear", 2)
