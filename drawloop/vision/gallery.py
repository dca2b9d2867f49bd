"""A labelled reference gallery of drawings made by people, embedded and indexed.

    from drawloop.vision.gallery import build_gallery
    gallery = build_gallery()                          # all three sources; minutes the first time, then cached
    gallery = build_gallery(sources=["openclipart"], categories=["food/fruit", "animals/birds"])
    gallery.references("a red apple")                  # rows whose labels match the concept text
    gallery.concept_scores(vectors, ["a red apple", "a bicycle"])   # ConceptScores: raw, z, ...
    gallery.neighbours(vectors, k=8)                   # kNN hits with labels
    gallery.image(row)                                 # re-render one reference as a PIL image

Sources (Debian packages, all offline; see the Makefile), read and drawn by gallery_sources.py:
  openclipart  /usr/share/openclipart/svg: ~8k public-domain SVGs in subject folders. Label from the
               file's own <dc:title> (or its file name when the title is a collection name), plus
               its keywords and folder. Rendered through drawloop.renderers, like LLM drawings.
  emoji        Noto Color Emoji: ~1,300 designer-drawn colour pictures, labelled by Unicode name.
  symbola      Symbola: outline drawings of the same code points.

Every item is rendered, cropped to content and embedded once; vectors are cached in a SQLite file
under ~/.cache/drawloop/gallery (or $DRAWLOOP_CACHE), keyed by the item's file stamp, the render
size and the embedder, so a build only does the work for what changed and an interrupted build
resumes. Concept text reaches labels through the MiniLM text embedder ("a parrot in a jungle"
-> PARROT).

Measured caveat: ImageNet features reward colour and silhouette (a red disc looks half like an
apple). So a concept's similarity is always reported relative to other concepts (z-scores over a
set of anchor labels) and is meant to be combined with structure checks (agents/pixel.py).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from drawloop.vision.gallery_sources import (
    PER_SERIES,
    RENDER_SIZE,
    SOURCES,
    GalleryItem,
    gallery_items,
    render_items,
)
from drawloop.vision.index import Hit, VectorIndex

CACHE_VERSION = "1"         # bump when rendering or cropping changes what an item looks like
BATCH = 64                  # items rendered + embedded + committed together (resume granularity)

REFERENCES = 24             # reference images per concept, best text matches first
TOP_MATCHES = 3             # a drawing's similarity to a concept: mean of its 3 best references
SAME_CONCEPT = 0.6          # MiniLM cosine at which two texts name the same thing ("a cat" ~ "cat face")

Progress = Callable[[int, int], None]


# ---------------------------------------------------------------- building


def build_gallery(sources: Sequence[str] = SOURCES, categories: Sequence[str] | None = None,
                  limit: int | None = None, per_series: int | None = PER_SERIES, embedder=None, text_embedder=None,
                  cache_dir: str | Path | None = None, progress: Progress | None = None,
                  select: Callable[[GalleryItem], bool] | None = None, retry_failed: bool = False) -> "Gallery":
    """Render, embed and index the chosen gallery items (see gallery_items), reusing every cached
    vector. Items that could not be drawn are remembered too, unless `retry_failed`."""
    from drawloop.vision.features import TextEmbedder, default_embedder

    embedder = embedder or default_embedder()
    text_embedder = text_embedder or TextEmbedder()
    items = gallery_items(sources, categories, limit, per_series, select)
    if not items:
        raise ValueError(f"no gallery items for sources={list(sources)} categories={list(categories or [])}: "
                         "are the Debian packages openclipart-svg, fonts-noto-color-emoji and fonts-symbola "
                         "installed (make system)?")
    cache_dir = Path(cache_dir) if cache_dir else cache_root()
    image_cache = VectorCache(cache_dir / f"images-{embedder.name}.sqlite")
    text_cache = VectorCache(cache_dir / f"texts-{text_embedder.name}.sqlite")
    try:
        keys = [_item_key(item, RENDER_SIZE) for item in items]
        cached = image_cache.get(keys)
        if retry_failed:
            cached = {k: v for k, v in cached.items() if v[0] is not None}
        todo = [i for i, key in enumerate(keys) if key not in cached]
        done = len(items) - len(todo)
        if progress:
            progress(done, len(items))
        for start in range(0, len(todo), BATCH):
            batch = todo[start:start + BATCH]
            rendered = render_items([items[i] for i in batch])
            good = [j for j, r in enumerate(rendered) if isinstance(r, Image.Image)]
            vectors = embedder.embed([rendered[j] for j in good]) if good else np.zeros((0, embedder.dim))
            rows = [(keys[batch[j]], None, str(r)[:300]) for j, r in enumerate(rendered) if not isinstance(r, Image.Image)]
            rows += [(keys[batch[j]], v, None) for j, v in zip(good, vectors)]
            image_cache.put(rows)
            cached.update({k: (v, e) for k, v, e in rows})
            done += len(batch)
            if progress:
                progress(done, len(items))
        kept = [(item, cached[key][0]) for item, key in zip(items, keys) if cached[key][0] is not None]
        failed = {item.key: cached[key][1] for item, key in zip(items, keys) if cached[key][0] is None}
        texts = [item.text for item, _ in kept]
        text_vectors = _cached_texts(texts, text_embedder, text_cache)
    finally:
        image_cache.close()
        text_cache.close()
    if not kept:
        raise ValueError(f"none of the {len(items)} gallery items could be drawn (first error: "
                         f"{next(iter(failed.values()), '?')})")
    index = VectorIndex(embedder.dim, kind="flat", embedder=embedder.name)
    index.add(np.stack([v for _, v in kept]), [_meta(item) for item, _ in kept])
    return Gallery(index, [item for item, _ in kept], text_vectors, embedder, text_embedder, failed)


def _cached_texts(texts: list[str], text_embedder, cache: VectorCache) -> np.ndarray:
    keys = [_text_key(t) for t in texts]
    found = cache.get(keys)
    missing = sorted({t for t, k in zip(texts, keys) if k not in found})
    if missing:
        vectors = text_embedder.embed(missing)
        rows = [(_text_key(t), v, None) for t, v in zip(missing, vectors)]
        cache.put(rows)
        found.update({k: (v, None) for k, v, _ in rows})
    return np.stack([found[k][0] for k in keys]).astype(np.float32) if keys else np.zeros((0, text_embedder.dim), np.float32)


def _meta(item: GalleryItem) -> dict:
    return {"concept": item.label, "source": item.source, "path": item.path, "key": item.key,
            "category": item.category, "series": item.series, "text": item.text}


# ---------------------------------------------------------------- the gallery

@dataclass
class ConceptScores:
    """A drawing's similarity to concepts, raw and relative to the gallery's other concepts.

    raw[i, j]: mean cosine similarity of image i to the TOP_MATCHES best references of concept j.
    z[i, j]:   how many standard deviations raw[i, j] lies above image i's similarity to the anchor
               concepts (other labels, minus near-synonyms of concept j).
    """

    concepts: list[str]
    raw: np.ndarray
    z: np.ndarray
    anchor_mean: np.ndarray
    anchor_std: np.ndarray
    references: list[list[str]] = field(default_factory=list)   # labels of each concept's references


class Gallery:
    def __init__(self, index: VectorIndex, items: list[GalleryItem], text_vectors: np.ndarray,
                 embedder, text_embedder, failed: dict[str, str] | None = None):
        self.index, self.items, self.text_vectors = index, items, text_vectors
        self.embedder, self.text_embedder = embedder, text_embedder
        self.failed = failed or {}
        self._anchors: tuple[list[str], np.ndarray, np.ndarray] | None = None
        self._reference_cache: dict[tuple[str, int], np.ndarray] = {}
        self._text_cache: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.items)

    @property
    def vectors(self) -> np.ndarray:
        return self.index.vectors

    def labels(self) -> list[str]:
        return [item.label for item in self.items]

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.source] = counts.get(item.source, 0) + 1
        return counts

    # ------------------------------------------------------------ concepts and references

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Text vectors, remembered per text (the loop asks about the same concepts again and again)."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        if missing:
            self._text_cache.update(zip(missing, self.text_embedder.embed(missing)))
        return np.stack([self._text_cache[t] for t in texts]) if texts else np.zeros((0, self.text_vectors.shape[1]))

    def text_matches(self, concept: str, k: int = REFERENCES) -> list[tuple[int, float]]:
        """(row, text similarity) of the items whose text best matches the concept."""
        sims = self.text_vectors @ self.embed_texts([concept])[0]
        rows = np.argsort(-sims)[:k]
        return [(int(r), float(sims[r])) for r in rows]

    def references(self, concept: str, k: int = REFERENCES) -> np.ndarray:
        """Rows of the concept's reference drawings: the text matches that name the same thing
        (at most k; at least the best match), cached per concept text."""
        if (concept, k) not in self._reference_cache:
            self._reference_cache[concept, k] = _close_matches(self.text_vectors @ self.embed_texts([concept])[0], k)
        return self._reference_cache[concept, k]

    def anchors(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """The "other concepts" a similarity is judged against: one per distinct glyph label
        (emoji names cover everyday concepts evenly), else per openclipart folder.
        Returns (names, reference rows (A, REFERENCES) padded with -1, name text vectors (A, d))."""
        if self._anchors is None:
            names = sorted({i.label for i in self.items if i.source in ("emoji", "symbola")})
            if len(names) < 20:
                names = sorted({i.category.replace("/", " ").replace("_", " ") for i in self.items}
                               | set(names))
            text = self.embed_texts(names)
            rows = np.full((len(names), REFERENCES), -1, dtype=np.int64)
            for a, sims in enumerate(text @ self.text_vectors.T):
                matches = _close_matches(sims, REFERENCES)
                rows[a, :len(matches)] = matches
            self._anchors = (names, rows, text)
        return self._anchors

    def concept_scores(self, vectors: np.ndarray, concepts: Sequence[str]) -> ConceptScores:
        """Similarity of each image (unit vectors) to each concept, raw and as z-scores."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        sims = vectors @ self.vectors.T                                    # (n, items)
        names, anchor_rows, anchor_text = self.anchors()
        anchor_raw = _top_mean(np.where(anchor_rows >= 0, sims[:, anchor_rows], -np.inf))   # (n, A)
        synonyms = self.embed_texts(list(concepts)) @ anchor_text.T >= SAME_CONCEPT    # (concepts, A)
        raw = np.zeros((len(vectors), len(concepts)), np.float32)
        z = np.zeros_like(raw)
        means = np.zeros_like(raw)
        stds = np.zeros_like(raw)
        references = []
        for j, concept in enumerate(concepts):
            rows = self.references(concept)
            references.append([self.items[r].label for r in rows])
            raw[:, j] = _top_mean(sims[:, rows[None, :]])[:, 0]
            others = ~synonyms[j]
            pool = anchor_raw[:, others] if others.sum() >= 5 else anchor_raw
            means[:, j], stds[:, j] = pool.mean(axis=1), pool.std(axis=1) + 1e-6
            z[:, j] = (raw[:, j] - means[:, j]) / stds[:, j]
        return ConceptScores(list(concepts), raw, z, means, stds, references)

    # ------------------------------------------------------------ neighbours

    def embed(self, images: Sequence) -> np.ndarray:
        return self.embedder.embed(list(images))

    def neighbours(self, vectors: np.ndarray, k: int = 8, exclude_series: Sequence[set[str]] | None = None) -> list[list[Hit]]:
        """kNN over the gallery; `exclude_series[i]` hides those series from query i (held-out tests)."""
        if not exclude_series:
            return self.index.search(vectors, k)
        extra = max(len(s) for s in exclude_series) * 8 + k
        results = []
        for hits, hidden in zip(self.index.search(vectors, k + extra), exclude_series):
            results.append([h for h in hits if h.meta.get("series") not in hidden][:k])
        return results

    def subset(self, rows: Sequence[int]) -> "Gallery":
        """A gallery of just these rows (e.g. all but a held-out fold), sharing the embedders."""
        rows = np.asarray(rows, dtype=np.int64)
        index = VectorIndex(self.index.dim, kind="flat", embedder=self.index.embedder)
        index.add(self.vectors[rows], [_meta(self.items[r]) for r in rows])
        part = Gallery(index, [self.items[r] for r in rows], self.text_vectors[rows], self.embedder,
                       self.text_embedder)
        part._text_cache = self._text_cache          # text vectors do not depend on the rows
        return part

    def merged_series(self, threshold: float = 0.92) -> list[str]:
        """Each row's series, with series joined whenever two of their drawings are near-copies
        (cosine >= threshold): what an honest held-out evaluation must keep together."""
        parent = {s: s for s in {i.series for i in self.items}}

        def root(s: str) -> str:
            while parent[s] != s:
                parent[s] = parent[parent[s]]
                s = parent[s]
            return s

        for a, b, _ in self.index.near_duplicates(threshold, k=16):
            parent[root(self.items[a].series)] = root(self.items[b].series)
        return [root(i.series) for i in self.items]

    def image(self, row: int, size: int = RENDER_SIZE) -> Image.Image | None:
        rendered = render_items([self.items[row]], size)[0]
        return rendered if isinstance(rendered, Image.Image) else None


def _top_mean(sims: np.ndarray, top: int = TOP_MATCHES) -> np.ndarray:
    """Mean of the `top` largest finite values along the last axis (-inf marks padding)."""
    best = np.sort(sims, axis=-1)[..., -min(top, sims.shape[-1]):]
    finite = np.isfinite(best)
    return np.where(finite, best, 0.0).sum(axis=-1) / np.maximum(finite.sum(axis=-1), 1)


def _close_matches(text_sims: np.ndarray, k: int) -> np.ndarray:
    """Rows of the best text matches at or above SAME_CONCEPT: at most k, at least one."""
    order = np.argsort(-text_sims)[:k]
    keep = text_sims[order] >= SAME_CONCEPT
    keep[0] = True
    return order[keep].astype(np.int64)


# ---------------------------------------------------------------- cache

def cache_root() -> Path:
    root = os.environ.get("DRAWLOOP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "drawloop")
    return Path(root) / "gallery"


class VectorCache:
    """item key -> vector (or the reason it has none), in one SQLite file per embedder."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, timeout=120, check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB, error TEXT)")
        self.db.commit()
        self.lock = threading.Lock()

    def get(self, keys: Sequence[str]) -> dict[str, tuple[np.ndarray | None, str | None]]:
        found = {}
        with self.lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start:start + 500])
                query = f"SELECT key, vec, error FROM vectors WHERE key IN ({','.join('?' * len(chunk))})"
                for key, blob, error in self.db.execute(query, chunk):
                    found[key] = (np.frombuffer(blob, dtype=np.float32) if blob is not None else None, error)
        return found

    def put(self, rows: Iterable[tuple[str, np.ndarray | None, str | None]]) -> None:
        with self.lock:
            self.db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                                [(k, None if v is None else np.asarray(v, np.float32).tobytes(), e) for k, v, e in rows])
            self.db.commit()

    def close(self) -> None:
        self.db.close()


def _item_key(item: GalleryItem, size: int) -> str:
    return hashlib.sha1(f"{item.key}|{item.stamp}|{size}|{CACHE_VERSION}".encode()).hexdigest()


def _text_key(text: str) -> str:
    return "text:" + hashlib.sha1(text.encode()).hexdigest()
