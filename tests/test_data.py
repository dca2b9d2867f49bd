import json

import numpy as np
import pytest
import torch
from PIL import Image

from drawloop.vision.data import DataError, list_images, load_images, load_source, save_grid


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # fixture in conftest.py


def _png(path, colour, size=(40, 40), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)
    return path


@pytest.fixture
def dataset(tmp_path):
    """The dataset builder's layout: images/<concept>/<id>.png (+ code) and metadata.jsonl."""
    root = tmp_path / "llm"
    rows = []
    for i, (concept, colour) in enumerate([("apple", (255, 0, 0)), ("apple", (200, 0, 0)), ("sky", (0, 0, 255))]):
        _png(root / "images" / concept / f"{i}.png", colour)
        (root / "images" / concept / f"{i}.svg").write_text("<svg/>")
        rows.append({"image": f"images/{concept}/{i}.png", "concept": concept, "duplicate": i == 1})
    (root / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


def test_lists_only_images_in_a_dataset(dataset):
    paths = list_images(dataset)
    assert [p.name for p in paths] == ["0.png", "1.png", "2.png"]


def test_any_image_folder_works(tmp_path):
    _png(tmp_path / "cats" / "a.jpg", (10, 10, 10))
    _png(tmp_path / "dogs" / "deep" / "b.png", (20, 20, 20))
    (tmp_path / "notes.txt").write_text("x")
    assert len(list_images(tmp_path)) == 2


def test_metadata_filter_and_subset_file(dataset, tmp_path):
    kept = list_images(dataset, where={"duplicate": "false"})
    assert [p.name for p in kept] == ["0.png", "2.png"]
    assert [p.name for p in list_images(dataset, where={"concept": "sky"})] == ["2.png"]
    subset = tmp_path / "curated.txt"
    subset.write_text("images/sky/2.png\n" + str(dataset / "images/apple/0.png") + "\n")
    assert [p.name for p in list_images(dataset, subset=subset)] == ["2.png", "0.png"]
    jsonl = tmp_path / "curated.jsonl"
    jsonl.write_text(json.dumps({"path": "images/apple/1.png", "score": 0.9}) + "\n")
    assert [p.name for p in list_images(dataset, subset=jsonl)] == ["1.png"]


def test_loads_resized_uint8_and_composites_transparency_on_white(tmp_path):
    _png(tmp_path / "wide.png", (0, 255, 0), size=(80, 40))
    _png(tmp_path / "clear.png", (0, 0, 0, 0), mode="RGBA")
    images = load_images([tmp_path / "wide.png", tmp_path / "clear.png"], size=16)
    assert images.shape == (2, 3, 16, 16) and images.dtype == torch.uint8
    assert images[0, :, 8, 8].tolist() == [0, 255, 0]
    assert images[1].min() == 255  # a fully transparent drawing is a white page


def test_load_source_limits_folders_with_a_seed(dataset):
    a = load_source(str(dataset), 8, limit=2, seed=0)
    assert a.shape == (2, 3, 8, 8)
    assert torch.equal(a, load_source(str(dataset), 8, limit=2, seed=0))


def test_load_source_procedural():
    images = load_source("procedural:shapes", 16, limit=5, seed=1)
    assert images.shape == (5, 3, 16, 16)


@pytest.mark.parametrize(
    "spec, kwargs, message",
    [
        ("procedural:fractal", {"limit": 4}, "unknown procedural source"),
        ("procedural:shapes", {}, "needs an image count"),
        ("/no/such/folder", {}, "does not exist"),
    ],
)
def test_bad_sources_are_clear_errors(spec, kwargs, message):
    with pytest.raises(DataError, match=message):
        load_source(spec, 16, **kwargs)


def test_empty_folder_and_broken_image_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no images"):
        list_images(tmp_path)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read image"):
        load_source(str(tmp_path), 8)


def test_where_without_metadata_is_a_clear_error(tmp_path):
    _png(tmp_path / "a.png", (0, 0, 0))
    with pytest.raises(DataError, match="metadata.jsonl"):
        list_images(tmp_path, where={"concept": "x"})


def test_save_grid_lays_out_a_contact_sheet(tmp_path):
    images = torch.zeros(5, 3, 4, 4, dtype=torch.uint8)
    path = save_grid(images, tmp_path / "grid.png", columns=3, scale=1)
    sheet = np.asarray(Image.open(path))
    assert sheet.shape == (2 * 6, 3 * 6, 3)
    assert sheet[1, 1].tolist() == [0, 0, 0] and sheet[0, 0].tolist() == [255, 255, 255]
