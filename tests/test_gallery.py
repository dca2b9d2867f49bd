"""The reference gallery, built from the real Debian packages (openclipart-svg, Noto Color Emoji,
Symbola). Small slices keep these fast; the vector cache makes reruns instant."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import drawloop.vision.gallery as gallery_module
from drawloop.renderers import render
from drawloop.vision.gallery import build_gallery
from drawloop.vision.gallery_sources import (OPENCLIPART_DIR, _readable_svg, emoji_items, gallery_items,
                                             openclipart_items, symbola_items)

pytestmark = pytest.mark.skipif(not OPENCLIPART_DIR.is_dir(), reason="Debian openclipart-svg is not installed")

EVERYDAY = {"red apple", "bicycle", "house building", "sun with face", "deciduous tree", "fish", "tulip",
            "automobile", "umbrella", "cat face", "electric light bulb", "birthday cake", "parrot"}


def test_sources_give_labels_categories_and_series():
    emoji = {i.key: i for i in emoji_items()}
    assert len(emoji) > 1000
    assert emoji["emoji:1F34E"].label == "red apple" and emoji["emoji:1F6B2"].label == "bicycle"
    outline = {i.key: i for i in symbola_items()}
    assert outline["symbola:1F34E"].series == emoji["emoji:1F34E"].series     # one glyph, two drawings
    clipart = {Path(i.path).name: i for i in openclipart_items()}
    assert len(clipart) > 5000
    assert clipart["apple.svg"].category == "food/fruit"
    assert clipart["jigsaw_blue_01.svg"].series == clipart["jigsaw_blue_05.svg"].series
    assert clipart["jigsaw_blue_01.svg"].series != clipart["apple.svg"].series
    assert "apple" in clipart["apple.svg"].text.lower() or "fruit" in clipart["apple.svg"].text.lower()


def test_selection_caps_near_copies_and_filters_categories():
    stars = gallery_items(["openclipart"], categories=["shapes/stars"])
    numbered = [i for i in stars if i.series == "shapes/stars/star pt step"]   # 1,375 numbered stars
    assert len(numbered) == 8 and len(stars) < 30
    assert len(gallery_items(["openclipart"], categories=["shapes/stars"], per_series=None)) > 1000
    fruit = gallery_items(["openclipart"], categories=["food/fruit"], limit=5)
    assert len(fruit) == 5 and all(i.category == "food/fruit" for i in fruit)
    with pytest.raises(ValueError, match="unknown gallery source"):
        gallery_items(["clipart"])


def test_editor_doctypes_are_removed_so_the_guarded_renderer_accepts_the_file():
    path = next(p for p in sorted(OPENCLIPART_DIR.rglob("*.svg")) if "<!ENTITY" in p.read_text("utf-8", "replace"))
    assert not render(path.read_text("utf-8", "replace"), "svg").ok          # the guard refuses DTDs
    cleaned = _readable_svg(path)
    assert "<!DOCTYPE" not in cleaned and "&ns_" not in cleaned and "<foreignObject" not in cleaned
    assert render(cleaned, "svg").ok


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    cache = tmp_path_factory.mktemp("gallery-cache")
    gallery = build_gallery(["emoji", "openclipart"], categories=["food/fruit", "emoji"], limit=6,
                            cache_dir=cache, select=lambda i: i.source != "emoji" or i.label in EVERYDAY)
    return gallery, cache


def test_gallery_builds_from_both_kinds_of_source(small):
    gallery, _ = small
    assert gallery.summary()["openclipart"] >= 5 and gallery.summary()["emoji"] == 6
    assert gallery.vectors.shape == (len(gallery), 1280)
    assert len(gallery.text_vectors) == len(gallery)


def test_a_fresh_render_of_each_drawing_retrieves_itself_first(small):
    gallery, _ = small
    images = [gallery.image(row) for row in range(len(gallery))]     # rendered and embedded anew
    hits = gallery.neighbours(gallery.embed(images), k=1)
    assert [h[0].id for h in hits] == list(range(len(gallery)))
    assert min(h[0].score for h in hits) > 0.99


def test_rebuild_reuses_the_cache_without_rendering(small, monkeypatch):
    gallery, cache = small

    def no_rendering(*args, **kwargs):
        raise AssertionError("a cached build must not render")

    monkeypatch.setattr(gallery_module, "render_items", no_rendering)
    again = build_gallery(["emoji", "openclipart"], categories=["food/fruit", "emoji"], limit=6, cache_dir=cache,
                          select=lambda i: i.source != "emoji" or i.label in EVERYDAY)
    assert np.array_equal(again.vectors, gallery.vectors)
    assert again.labels() == gallery.labels()


def test_concept_text_finds_its_references(small):
    gallery, _ = small
    rows = gallery.references("a shiny red apple", k=3)
    labels = [gallery.items[r].label for r in rows]
    assert "red apple" in labels or any("apple" in label for label in labels)


def test_subset_and_merged_series(small):
    gallery, _ = small
    part = gallery.subset([0, 2, 4])
    assert len(part) == 3 and np.array_equal(part.vectors, gallery.vectors[[0, 2, 4]])
    series = gallery.merged_series(threshold=0.999)
    assert len(series) == len(gallery)
    assert len(set(series)) <= len({i.series for i in gallery.items})


def test_unknown_selection_gets_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no gallery items"):
        build_gallery(["openclipart"], categories=["no/such/folder"], cache_dir=tmp_path)
