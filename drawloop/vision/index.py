"""A FAISS index of drawings with a metadata side table that survives restarts.

    from drawloop.vision.index import VectorIndex
    index = VectorIndex(dim=1280, embedder="efficientnet-lite0")    # kind="auto"
    ids = index.add(vectors, [{"concept": "apple", "source": "llm", "run": "r1", "thread": "t3",
                               "iteration": 2, "score": 0.71, "path": "runs/r1/img/ab12.png"}, ...])
    hits = index.search(query_vectors, k=8)          # per query: [Hit(id, score, meta), ...], best first
    hits = index.search_images([png_bytes], embedder, k=8)
    pairs = index.near_duplicates(threshold=0.97)    # [(kept_id, duplicate_id, similarity), ...]
    removed = index.dedup(threshold=0.97, prefer="score")   # drop near-copies, keep the best-scored
    index.remove([3, 17]);  index.meta(5);  index.metas();  len(index)
    index.diversity()                                # {concept: mean pairwise cosine distance}
    index.save("data/llm/index");  index = VectorIndex.load("data/llm/index")
    index = VectorIndex.open("data/llm/index", dim=1280)     # load if present, else empty; save() writes back

Vectors are unit rows (see features.py), so scores are cosine similarities. Ids are stable
integers: removing items never renumbers the others. Metadata fields are FIELDS; any other keys
are kept in an `extra` JSON column. On disk a saved index is a folder: vectors.npy (the truth),
index.faiss (the search structure, so IVF is not retrained on load) and meta.sqlite (the side table).

Search structure: kind="auto" is exact inner product (IndexFlatIP) below FLAT_LIMIT vectors and
an inverted file (IVF, nprobe NPROBE) above; "flat", "ivf" and "hnsw" force one. The numpy
vectors are kept alongside, so removal and a change of kind simply rebuild the FAISS structure.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

FIELDS = ("concept", "level", "source", "run", "thread", "iteration", "score", "path")
KINDS = ("auto", "flat", "ivf", "hnsw")
FLAT_LIMIT = 50_000        # exact search stays fast (< ~10 ms per query) up to here on 2 cores
NPROBE = 16
HNSW_M, HNSW_EF_SEARCH = 32, 64
SEARCH_BLOCK = 4096        # queries per FAISS call in self-search, bounding the result memory


@dataclass
class Hit:
    id: int
    score: float           # cosine similarity
    meta: dict[str, Any] = field(default_factory=dict)


class VectorIndex:
    def __init__(self, dim: int, kind: str = "auto", embedder: str | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self.dim, self.kind, self.embedder = int(dim), kind, embedder
        self.path: Path | None = None
        self._chunks: list[np.ndarray] = []        # appended vectors, consolidated lazily
        self._ids = np.zeros(0, dtype=np.int64)    # row -> id, increasing
        self._meta: dict[int, dict] = {}
        self._next_id = 0
        self._faiss = None                         # derived search structure over rows
        self._faiss_kind: str | None = None

    # ------------------------------------------------------------ contents

    def __len__(self) -> int:
        return int(self._ids.size)

    @property
    def vectors(self) -> np.ndarray:
        """(n, dim) float32, row i belongs to ids[i]."""
        if len(self._chunks) != 1:
            self._chunks = [np.concatenate(self._chunks) if self._chunks else np.zeros((0, self.dim), np.float32)]
        return self._chunks[0]

    @property
    def ids(self) -> np.ndarray:
        return self._ids

    def meta(self, item_id: int) -> dict:
        return self._meta[int(item_id)]

    def metas(self) -> list[dict]:
        """Metadata of every item, in row order."""
        return [self._meta[int(i)] for i in self._ids]

    def add(self, vectors: np.ndarray, metas: Sequence[dict] | None = None) -> list[int]:
        """Append unit vectors (n, dim) with one metadata dict each; returns their new ids."""
        vectors = np.ascontiguousarray(np.atleast_2d(np.asarray(vectors, dtype=np.float32)))
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have dimension {vectors.shape[1]}, the index holds {self.dim}")
        metas = list(metas) if metas is not None else [{} for _ in range(len(vectors))]
        if len(metas) != len(vectors):
            raise ValueError(f"{len(vectors)} vectors but {len(metas)} metadata records")
        new_ids = np.arange(self._next_id, self._next_id + len(vectors), dtype=np.int64)
        self._next_id += len(vectors)
        self._chunks.append(vectors)
        self._ids = np.concatenate([self._ids, new_ids])
        for item_id, meta in zip(new_ids.tolist(), metas):
            self._meta[item_id] = dict(meta)
        return new_ids.tolist()

    def remove(self, ids: Sequence[int]) -> int:
        """Remove items by id; returns how many were present. Other ids do not change."""
        drop = np.isin(self._ids, np.asarray(list(ids), dtype=np.int64))
        if not drop.any():
            return 0
        keep = ~drop
        for item_id in self._ids[drop].tolist():
            self._meta.pop(item_id, None)
        self._chunks = [self.vectors[keep]]
        self._ids = self._ids[keep]
        self._faiss = None                         # rows moved: rebuild on next search
        return int(drop.sum())

    # ------------------------------------------------------------ search

    def resolved_kind(self) -> str:
        if self.kind != "auto":
            return self.kind
        return "flat" if len(self) < FLAT_LIMIT else "ivf"

    def _index(self):
        """The FAISS structure over all rows, built or topped up as needed."""
        kind = self.resolved_kind()
        if self._faiss is None or self._faiss_kind != kind:
            self._faiss, self._faiss_kind = _build_faiss(kind, self.dim, self.vectors), kind
        elif self._faiss.ntotal < len(self):
            self._faiss.add(self.vectors[self._faiss.ntotal:])
        return self._faiss

    def search_rows(self, queries: np.ndarray, k: int, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw kNN: (similarities, rows), each (n_queries, k); missing neighbours have row -1."""
        queries = np.ascontiguousarray(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        if queries.shape[1] != self.dim:
            raise ValueError(f"queries have dimension {queries.shape[1]}, the index holds {self.dim}")
        if len(self) == 0 or k < 1:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        index = self._index()
        if nprobe is not None and hasattr(index, "nprobe"):
            index.nprobe = nprobe
        sims, rows = index.search(queries, min(k, len(self)))
        if nprobe is not None and hasattr(index, "nprobe"):
            index.nprobe = NPROBE
        return sims, rows

    def search(self, queries: np.ndarray, k: int = 8) -> list[list[Hit]]:
        """kNN by vector: for each query, up to k Hits, most similar first."""
        sims, rows = self.search_rows(queries, k)
        return [[Hit(int(self._ids[r]), float(s), self._meta[int(self._ids[r])])
                 for s, r in zip(srow, rrow) if r >= 0] for srow, rrow in zip(sims, rows)]

    def search_images(self, images: Sequence, embedder, k: int = 8) -> list[list[Hit]]:
        """kNN by image (PNG bytes, paths or PIL images), embedded with `embedder`."""
        if self.embedder and getattr(embedder, "name", None) not in (None, self.embedder):
            raise ValueError(f"this index holds {self.embedder} features, not {embedder.name}")
        return self.search(embedder.embed(list(images)), k)

    # ------------------------------------------------------------ duplicates and diversity

    def near_duplicates(self, threshold: float = 0.97, k: int = 8, nprobe: int | None = 4) -> list[tuple[int, int, float]]:
        """Pairs (earlier id, later id, similarity) at or above `threshold`. Each item looks at its
        k nearest neighbours first; an item whose k-th neighbour is still above the threshold (a
        group of more than k near-copies) is searched again with k doubled, so no copy is missed
        (exact for a flat index; approximate for IVF/HNSW)."""
        pairs: list[tuple[int, int, float]] = []
        vectors = self.vectors
        for start in range(0, len(self), SEARCH_BLOCK):
            rows_todo = np.arange(start, min(start + SEARCH_BLOCK, len(self)))
            width = k + 1
            while len(rows_todo):
                sims, rows = self.search_rows(vectors[rows_todo], width, nprobe=nprobe)
                saturated = (sims[:, -1] >= threshold) & (rows.shape[1] < len(self))
                done = ~saturated
                query_rows = rows_todo[done][:, None]
                hit = (sims[done] >= threshold) & (rows[done] > query_rows)   # each pair once, never self
                for q, r, s in zip(np.broadcast_to(query_rows, rows[done].shape)[hit], rows[done][hit], sims[done][hit]):
                    pairs.append((int(self._ids[q]), int(self._ids[r]), float(s)))
                rows_todo, width = rows_todo[saturated], width * 2
        pairs.sort()
        return pairs

    def dedup(self, threshold: float = 0.97, prefer: str | None = None, k: int = 8) -> list[int]:
        """Remove near-duplicates and return the removed ids. Of each group of near-copies the
        earliest item survives, or with `prefer` (a numeric metadata field, e.g. "score") the
        one with the highest value."""
        def rank(item_id: int) -> tuple:
            value = self._meta[item_id].get(prefer) if prefer else None
            return (-(value if isinstance(value, (int, float)) else -math.inf), item_id)

        removed: set[int] = set()
        pairs = sorted(self.near_duplicates(threshold, k=k), key=lambda p: min(rank(p[0]), rank(p[1])))
        for a, b, _ in pairs:
            keeper, loser = sorted((a, b), key=rank)
            if keeper not in removed and loser not in removed:
                removed.add(loser)
        self.remove(removed)
        return sorted(removed)

    def diversity(self, by: str = "concept", sample: int = 1000, seed: int = 0) -> dict[str, float]:
        """Mean pairwise cosine distance (1 - similarity) within each group of `by`, over at most
        `sample` random members; groups with fewer than two members are left out."""
        groups: dict[str, list[int]] = {}
        for row, item_id in enumerate(self._ids.tolist()):
            groups.setdefault(str(self._meta[item_id].get(by)), []).append(row)
        rng = np.random.default_rng(seed)
        result = {}
        for name, rows in sorted(groups.items()):
            if len(rows) < 2:
                continue
            if len(rows) > sample:
                rows = rng.choice(rows, sample, replace=False)
            x = self.vectors[np.asarray(rows)]
            sims = x @ x.T
            n = len(x)
            result[name] = float(1.0 - (sims.sum() - np.trace(sims)) / (n * (n - 1)))
        return result

    # ------------------------------------------------------------ persistence

    def save(self, path: str | Path | None = None) -> Path:
        """Write the index folder atomically (a crash leaves the previous copy intact)."""
        import faiss

        target = Path(path or self.path or "")
        if not str(target):
            raise ValueError("save() needs a path (this index was not opened from one)")
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.save(tmp / "vectors.npy", self.vectors)
        if len(self):
            faiss.write_index(self._index(), str(tmp / "index.faiss"))
        _write_table(tmp / "meta.sqlite", self)
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        self.path = target
        return target

    @classmethod
    def load(cls, path: str | Path) -> "VectorIndex":
        import faiss

        path = Path(path)
        if not (path / "meta.sqlite").exists():
            raise FileNotFoundError(f"no saved index at {path} (expected {path / 'meta.sqlite'})")
        info, ids, metas = _read_table(path / "meta.sqlite")
        index = cls(int(info["dim"]), kind=info.get("kind", "auto"), embedder=info.get("embedder") or None)
        vectors = np.load(path / "vectors.npy")
        if len(vectors) != len(ids):
            raise ValueError(f"corrupt index at {path}: {len(vectors)} vectors but {len(ids)} metadata rows")
        index._chunks, index._ids = [vectors], np.asarray(ids, dtype=np.int64)
        index._meta = dict(zip(ids, metas))
        index._next_id = int(info.get("next_id", (max(ids) + 1) if ids else 0))
        if (path / "index.faiss").exists():
            index._faiss = faiss.read_index(str(path / "index.faiss"))
            index._faiss_kind = info.get("faiss_kind")
            if hasattr(index._faiss, "nprobe"):
                index._faiss.nprobe = NPROBE
        index.path = path
        return index

    @classmethod
    def open(cls, path: str | Path, dim: int, kind: str = "auto", embedder: str | None = None) -> "VectorIndex":
        """Load the index at `path` if there is one, else start an empty one that saves there."""
        path = Path(path)
        if (path / "meta.sqlite").exists():
            index = cls.load(path)
            if index.dim != dim:
                raise ValueError(f"index at {path} holds {index.dim}-d vectors, not {dim}-d")
            return index
        index = cls(dim, kind=kind, embedder=embedder)
        index.path = path
        return index


# ---------------------------------------------------------------- helpers

def _build_faiss(kind: str, dim: int, vectors: np.ndarray):
    import faiss

    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        # ~sqrt(n) lists; train on a sample, since k-means over millions of points buys nothing.
        nlist = max(1, min(4096, int(math.sqrt(max(len(vectors), 1)))))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = vectors
        if len(vectors) > 64 * nlist:
            sample = vectors[np.random.default_rng(0).choice(len(vectors), 64 * nlist, replace=False)]
        if len(sample) < nlist:
            raise ValueError(f"an IVF index needs at least {nlist} vectors to train, got {len(sample)}")
        index.train(np.ascontiguousarray(sample))
        index.nprobe = NPROBE
    if len(vectors):
        index.add(vectors)
    return index


def _write_table(path: Path, index: VectorIndex) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE info (key TEXT PRIMARY KEY, value TEXT)")
        db.execute(f"CREATE TABLE items (id INTEGER PRIMARY KEY, row INTEGER, {', '.join(FIELDS)}, extra TEXT)")
        info = {"dim": index.dim, "kind": index.kind, "embedder": index.embedder or "",
                "next_id": index._next_id, "faiss_kind": index._faiss_kind or "", "version": 1}
        db.executemany("INSERT INTO info VALUES (?, ?)", [(k, str(v)) for k, v in info.items()])
        rows = []
        for row, item_id in enumerate(index.ids.tolist()):
            meta = index.meta(item_id)
            extra = {k: v for k, v in meta.items() if k not in FIELDS}
            rows.append((item_id, row, *[meta.get(f) for f in FIELDS], json.dumps(extra, default=str)))
        db.executemany(f"INSERT INTO items VALUES ({', '.join('?' * (len(FIELDS) + 3))})", rows)
    db.close()


def _read_table(path: Path) -> tuple[dict, list[int], list[dict]]:
    db = sqlite3.connect(path)
    try:
        info = dict(db.execute("SELECT key, value FROM info"))
        ids, metas = [], []
        for record in db.execute(f"SELECT id, {', '.join(FIELDS)}, extra FROM items ORDER BY row"):
            meta = {f: v for f, v in zip(FIELDS, record[1:-1]) if v is not None}
            meta.update(json.loads(record[-1] or "{}"))
            ids.append(int(record[0]))
            metas.append(meta)
    finally:
        db.close()
    return info, ids, metas
