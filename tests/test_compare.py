import json

import pytest
import torch
from PIL import Image

from drawloop.vision.backbone import BackboneConfig
from drawloop.vision.compare import CompareConfig, equal_budget, run_comparison, slug, summarise
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
