"""Curation: embed every drawing once, index it in FAISS, drop near-duplicates, measure diversity.

    embedder = make_embedder("efficientnet-lite0")           # or "thumbnail": fast, pixel-level
    result = curate(root, records, embedder, threshold=0.97)
    result.duplicates     # {duplicate id: id of the kept drawing it copies}
    result.diversity      # {concept: mean pairwise cosine distance among kept drawings}
    result.index          # VectorIndex of the kept drawings, saved at root/index

Embeddings are cached in root/work/embeddings-<embedder>/ (a VectorIndex of every drawing, saved
after each batch), so a resumed or repeated curation embeds only new drawings and a different
threshold costs no embedding at all. Duplicates are decided in two steps: identical PNGs by hash
(exact, and immune to any kNN window), then near-copies by cosine similarity >= threshold found
with FAISS. By default only drawings of the same concept count as copies of each other (a class
never loses all its drawings); scope="global" dedups across concepts. Of each group the
best-scored drawing stays (ties: the smallest id), so the outcome depends only on the drawings,
not on the order they were finished in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from drawloop.dataset.reader import locate, row_path

EMBEDDERS = ("efficientnet-lite0", "thumbnail")
EMBED_BATCH = 32
DEDUP_NEIGHBOURS = 32       # kNN window per drawing when looking for near-copies in a large group
SCOPES = ("concept", "global")
EXACT_GROUP = 2048           # up to this many drawings, every pair is compared


class ThumbnailEmbedder:
    """Ink per pixel of a content-cropped 32 px thumbnail, as a unit vector: catches copies and
    near-copies (same picture, shifted or rescaled), knows nothing about meaning. No torch, ~1 ms
    an image; blank canvases embed to zero and so never count as copies of anything."""

    name = "thumbnail-32"
    dim = 32 * 32 * 3

    def embed(self, images: Sequence[Any]) -> np.ndarray:
        from drawloop.vision.features import l2_normalise, prepare

        if not images:
            return np.zeros((0, self.dim), np.float32)
        ink = [1.0 - np.asarray(prepare(image, size=32), dtype=np.float32).reshape(-1) / 255.0 for image in images]
        return l2_normalise(np.stack(ink))


def make_embedder(name: str):
    if name == "efficientnet-lite0":
        from drawloop.vision.features import default_embedder

        return default_embedder()
    if name == "thumbnail":
        return ThumbnailEmbedder()
    raise ValueError(f"unknown embedder {name!r}; choose one of {', '.join(EMBEDDERS)}")


@dataclass
class Curation:
    duplicates: dict[str, str] = field(default_factory=dict)      # duplicate id -> kept id
    similarity: dict[str, float] = field(default_factory=dict)    # duplicate id -> cosine to the kept one
    diversity: dict[str, float] = field(default_factory=dict)     # concept -> mean cosine distance
    index: Any = None                                             # VectorIndex of the kept drawings
    embedder: str = ""
    threshold: float = 0.97
    scope: str = "concept"


def _rank(record: dict) -> tuple:
    return (-float(record.get("score") or 0.0), record["id"])




def embed_all(root: Path, records: list[dict], embedder, log: Callable[[str], None] = lambda _: None):
    """The cached VectorIndex holding one vector per record (embedding only the missing ones)."""
    from drawloop.vision.index import VectorIndex

    cache = VectorIndex.open(root / "work" / f"embeddings-{embedder.name}", dim=embedder.dim, kind="flat",
                             embedder=embedder.name)
    have = {(meta.get("id"), meta.get("sha")) for meta in cache.metas()}
    todo = [r for r in records if (r["id"], r["png_sha256"]) not in have]
    redrawn = {r["id"] for r in todo}
    cache.remove([int(i) for i, meta in zip(cache.ids, cache.metas()) if meta.get("id") in redrawn])
    if todo:
        log(f"embedding {len(todo)} drawings with {embedder.name}")
    for start in range(0, len(todo), EMBED_BATCH):
        batch = todo[start:start + EMBED_BATCH]
        cache.add(embedder.embed([locate(root, row_path(r)) for r in batch]),
                  [{"id": r["id"], "sha": r["png_sha256"]} for r in batch])
        cache.save()   # a kill loses at most one batch of embedding work
    return cache


def curate(root: str | Path, records: list[dict], embedder, threshold: float = 0.97, scope: str = "concept",
           log: Callable[[str], None] = lambda _: None) -> Curation:
    """Decide duplicates and diversity for `records` (dicts with id, concept, score, image path,
    png_sha256) and save the kept drawings' FAISS index at root/index. Moves no files.

    scope "concept": a drawing is a duplicate only of drawings of the same concept (every concept
    keeps at least one drawing; exact over all pairs). "global": of any drawing (for label-free
    training; near-copies searched among each drawing's DEDUP_NEIGHBOURS nearest neighbours)."""
    from drawloop.vision.index import VectorIndex

    if not 0 < threshold <= 1:
        raise ValueError(f"the dedup threshold is a cosine similarity in (0, 1], got {threshold}")
    if scope not in SCOPES:
        raise ValueError(f"unknown dedup scope {scope!r}; choose one of {', '.join(SCOPES)}")
    root = Path(root)
    records = sorted(records, key=lambda r: r["id"])
    cache = embed_all(root, records, embedder, log)
    row_of = {meta["id"]: row for row, meta in enumerate(cache.metas())}
    vectors = cache.vectors[[row_of[r["id"]] for r in records]].reshape(len(records), embedder.dim)
    result = Curation(embedder=embedder.name, threshold=threshold, scope=scope)

    # 1. identical pictures, by hash
    best_of_hash: dict[tuple, dict] = {}
    for record in sorted(records, key=_rank):
        key = (record["concept"] if scope == "concept" else "", record["png_sha256"])
        keeper = best_of_hash.setdefault(key, record)
        if keeper is not record:
            result.duplicates[record["id"]], result.similarity[record["id"]] = keeper["id"], 1.0

    # 2. near-copies, by cosine similarity among what is left; the better-ranked of a pair stays
    left = [i for i, r in enumerate(records) if r["id"] not in result.duplicates]
    groups = _groups(records, left, scope)
    pairs = [pair for group in groups for pair in _near_pairs(vectors, group, threshold)]
    rank = {i: _rank(records[i]) for i in left}
    removed: set[int] = set()
    for a, b, sim in sorted(pairs, key=lambda p: (min(rank[p[0]], rank[p[1]]), -p[2])):
        keeper, loser = sorted((a, b), key=rank.get)
        if keeper not in removed and loser not in removed:
            removed.add(loser)
            result.duplicates[records[loser]["id"]] = records[keeper]["id"]
            result.similarity[records[loser]["id"]] = round(float(sim), 4)

    kept = [i for i in left if i not in removed]
    index = VectorIndex(embedder.dim, embedder=embedder.name)
    index.add(vectors[kept], [_index_meta(records[i]) for i in kept])
    log(f"{len(result.duplicates)} duplicates removed at similarity >= {threshold} ({scope} scope)")
    result.diversity = index.diversity(by="concept")
    result.index = index
    index.save(root / "index")
    return result


def _groups(records: list[dict], rows: list[int], scope: str) -> list[list[int]]:
    if scope == "global":
        return [rows]
    by_concept: dict[str, list[int]] = {}
    for i in rows:
        by_concept.setdefault(records[i]["concept"], []).append(i)
    return list(by_concept.values())


def _near_pairs(vectors: np.ndarray, rows: list[int], threshold: float) -> list[tuple[int, int, float]]:
    """Pairs of rows (of `vectors`) at or above threshold, found with a FAISS index over `rows`."""
    from drawloop.vision.index import VectorIndex

    if len(rows) < 2:
        return []
    index = VectorIndex(vectors.shape[1])
    index.add(vectors[rows])
    k = len(rows) - 1 if len(rows) <= EXACT_GROUP else DEDUP_NEIGHBOURS   # all pairs while that is cheap
    return [(rows[a], rows[b], sim) for a, b, sim in index.near_duplicates(threshold, k=k)]


def _index_meta(record: dict) -> dict:
    return {"id": record["id"], "concept": record["concept"], "level": record["level"], "source": "llm",
            "thread": record.get("thread_id"), "iteration": record.get("best_iteration"),
            "score": record.get("score"), "path": row_path(record), "sample": record.get("sample"),
            "model": record.get("model"), "seed": record.get("seed")}
