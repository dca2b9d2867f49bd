"""The FAISS index with its metadata side table: search, dedup, diversity, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import drawloop.vision.index as index_module
from drawloop.vision.features import l2_normalise
from drawloop.vision.index import VectorIndex

LADDERS = Path(__file__).parent / "ladders"


def random_unit(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    return l2_normalise(np.random.default_rng(seed).normal(size=(n, dim)))


def filled(n: int = 200, dim: int = 32) -> VectorIndex:
    index = VectorIndex(dim, embedder="test")
    index.add(random_unit(n, dim), [{"concept": f"c{i % 4}", "score": i / n, "iteration": i, "note": f"n{i}"}
                                    for i in range(n)])
    return index


def test_each_vector_retrieves_itself_first_with_its_metadata():
    index = filled()
    hits = index.search(index.vectors[:5], k=3)
    assert [h[0].id for h in hits] == [0, 1, 2, 3, 4]
    assert hits[3][0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[3][0].meta == {"concept": "c3", "score": 3 / 200, "iteration": 3, "note": "n3"}
    assert hits[0][0].score >= hits[0][1].score >= hits[0][2].score


def test_bad_input_gets_clear_errors():
    index = VectorIndex(8)
    with pytest.raises(ValueError, match="dimension 4"):
        index.add(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="2 vectors but 1 metadata"):
        index.add(random_unit(2, 8), [{}])
    with pytest.raises(ValueError, match="unknown index kind"):
        VectorIndex(8, kind="lsh")
    assert index.search(random_unit(1, 8), k=3) == [[]]          # empty index: no hits, no crash


def test_removal_keeps_ids_stable():
    index = filled(20)
    assert index.remove([3, 5, 999]) == 2
    assert len(index) == 18 and 3 not in index.ids and 5 not in index.ids
    assert index.search(index.vectors[index.ids == 7], k=1)[0][0].id == 7
    assert index.add(random_unit(1, 32, seed=9)) == [20]          # new ids never reuse old ones


def test_save_load_round_trip_keeps_vectors_ids_and_metadata(tmp_path):
    index = filled()
    index.remove([0, 10])
    query = random_unit(3, 32, seed=5)
    before = index.search(query, k=5)
    index.save(tmp_path / "ix")
    loaded = VectorIndex.load(tmp_path / "ix")
    assert len(loaded) == len(index) and loaded.dim == 32 and loaded.embedder == "test"
    assert np.array_equal(loaded.ids, index.ids) and np.allclose(loaded.vectors, index.vectors)
    assert loaded.meta(11) == index.meta(11)                       # extra keys survive in JSON
    assert [[h.id for h in row] for row in loaded.search(query, k=5)] == [[h.id for h in row] for row in before]
    assert loaded.add(random_unit(1, 32, seed=8)) == [200]


def test_open_starts_empty_then_reloads_what_was_saved(tmp_path):
    index = VectorIndex.open(tmp_path / "data" / "index", dim=16)
    assert len(index) == 0
    index.add(random_unit(4, 16), [{"concept": "sun", "path": f"img/{i}.png"} for i in range(4)])
    index.save()
    again = VectorIndex.open(tmp_path / "data" / "index", dim=16)
    assert [m["path"] for m in again.metas()] == [f"img/{i}.png" for i in range(4)]
    with pytest.raises(ValueError, match="16-d"):
        VectorIndex.open(tmp_path / "data" / "index", dim=32)
    with pytest.raises(FileNotFoundError, match="no saved index"):
        VectorIndex.load(tmp_path / "nowhere")


def test_dedup_removes_exact_and_near_copies_and_keeps_distinct():
    base = random_unit(50, 32)
    rng = np.random.default_rng(1)
    near = l2_normalise(base[:5] + 0.01 * rng.normal(size=(5, 32)))
    index = VectorIndex(32)
    index.add(base)
    copies = index.add(np.concatenate([base[:5], near]))
    pairs = index.near_duplicates(threshold=0.97)
    assert {b for _, b, _ in pairs} == set(copies)
    removed = index.dedup(threshold=0.97)
    assert removed == copies
    assert sorted(index.ids.tolist()) == list(range(50))


def test_dedup_can_keep_the_best_scored_copy():
    vector = random_unit(1, 16)
    index = VectorIndex(16)
    index.add(np.repeat(vector, 3, axis=0), [{"score": 0.2}, {"score": 0.9}, {"score": 0.5}])
    index.add(random_unit(1, 16, seed=3), [{"score": 0.1}])
    assert index.dedup(threshold=0.99, prefer="score") == [0, 2]
    assert index.ids.tolist() == [1, 3]


def test_dedup_on_real_drawings_removes_rerenders_and_keeps_the_rest():
    from drawloop.renderers import render
    from drawloop.vision.features import default_embedder

    files = sorted(LADDERS.glob("*/[234]_*.svg"))[:12]        # 12 distinct drawings
    codes = [f.read_text() for f in files]
    pngs = [render(code, "svg", size=256).png for code in codes]
    # Near-exact copies: the same drawing rendered at another size, and nudged by one pixel.
    pngs += [render(codes[0], "svg", size=300).png, render(codes[1].replace('<svg ', '<svg x="1" ', 1), "svg").png]
    pngs += [pngs[2]]                                          # and an exact copy
    index = VectorIndex(1280)
    index.add(default_embedder().embed(pngs), [{"path": str(f)} for f in files] + [{}, {}, {}])
    removed = index.dedup(threshold=0.95)
    assert removed == [12, 13, 14]
    assert len(index) == 12


def test_diversity_is_mean_pairwise_distance_per_concept():
    rng = np.random.default_rng(0)
    centre = random_unit(1, 32)
    tight = l2_normalise(centre + 0.05 * rng.normal(size=(20, 32)))
    spread = random_unit(20, 32, seed=4)
    index = VectorIndex(32)
    index.add(np.concatenate([tight, spread, random_unit(1, 32, seed=6)]),
              [{"concept": "tight"}] * 20 + [{"concept": "spread"}] * 20 + [{"concept": "alone"}])
    diversity = index.diversity()
    assert set(diversity) == {"tight", "spread"}                  # one member: no pairs
    assert diversity["tight"] < 0.1 < 0.8 < diversity["spread"]


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_kinds_find_self_and_survive_save_load(kind, tmp_path):
    index = VectorIndex(32, kind=kind)
    index.add(random_unit(2000, 32))
    assert [h[0].id for h in index.search(index.vectors[:20], k=1)] == list(range(20))
    index.save(tmp_path / kind)
    loaded = VectorIndex.load(tmp_path / kind)
    assert loaded.resolved_kind() == kind
    assert [h[0].id for h in loaded.search(index.vectors[:20], k=1)] == list(range(20))


def test_auto_switches_from_exact_to_ivf_when_large(monkeypatch):
    monkeypatch.setattr(index_module, "FLAT_LIMIT", 1000)
    index = VectorIndex(16)
    index.add(random_unit(500, 16))
    index.search(index.vectors[:1], k=1)
    assert type(index._faiss).__name__ == "IndexFlatIP"
    index.add(random_unit(1500, 16, seed=2))
    hits = index.search(index.vectors[1700:1701], k=1)
    assert index.resolved_kind() == "ivf" and "IVF" in type(index._faiss).__name__
    assert hits[0][0].id == 1700


def test_search_images_refuses_features_of_another_embedder():
    class Other:
        name, dim = "other", 32

        def embed(self, images):
            return random_unit(len(images), 32)

    with pytest.raises(ValueError, match="holds test features, not other"):
        filled().search_images([b"png"], Other())


def test_near_duplicates_finds_every_copy_in_a_group_larger_than_k():
    vector = random_unit(1, 16)
    index = VectorIndex(16)
    index.add(np.repeat(vector, 20, axis=0))          # 20 identical copies, k = 4
    index.add(random_unit(5, 16, seed=9))
    pairs = index.near_duplicates(threshold=0.99, k=4)
    assert len(pairs) == 20 * 19 // 2
    assert index.dedup(threshold=0.99, k=4) == list(range(1, 20))
    assert len(index) == 6
