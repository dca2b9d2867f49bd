"""LLM drawings from a code-only JSONL, rendered at load time: training images like any other source.

    from drawloop.vision.llm_drawings import load_drawings, render_pngs
    loaded = load_drawings("data/llm-drawings.jsonl", size=32)    # renders (cached), checks every hash
    loaded.images          # uint8 (N, 3, 32, 32), the same tensor load_source gives for the dataset's PNGs
    loaded.models          # {"local:qwen2.5-coder-7b-instruct-q4_k_m.gguf": 2000}: what drew them
    loaded.mismatched      # ids whose render is not the build's PNG (another resvg, other fonts)
    pngs = render_pngs(rows)   # the PNG bytes, one per row (None where the render failed)
    paths = render_to_cache(rows)   # or only the cached files, for sets too large to hold (train --stream)

    load_source("data/llm-drawings.jsonl", size=32, limit=1000, seed=0)   # the same, as a training source

The file comes from `drawloop dataset export-code` (drawloop/dataset/code_export.py). Each drawing is
rendered at its own canvas `size` (the build's) through drawloop.renderers.render: the SVG guard, then
resvg in an isolated worker process; Python drawings in the sandbox. So the PNG is byte for byte the one
the build saved (its SHA-256 is checked against `png_sha256`), and it is then centre-cropped and resized
exactly as a dataset folder's PNG is: `load_drawings(f, 32).images` equals `load_source(dataset, 32)` for
the same drawings whenever every hash matches. A render that fails or differs is counted and named in
the result, never silently passed off as the build's picture; `strict=True` makes either an error.

Renders are cached as ~/.cache/drawloop/renders/<code sha256>-<language>-<size>.png (written atomically;
$DRAWLOOP_CACHE or $XDG_CACHE_HOME move the root, as for the gallery): the second load renders nothing.
Rendering is quick next to training: 200 SVGs of 13 shapes each at 256 px took 1.4 s on 2 shared cores
(resvg, one worker process per core).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from drawloop.vision.data import DataError


@dataclass
class LoadedDrawings:
    images: torch.Tensor                     # uint8 (N, 3, size, size), rows in file order
    rows: list[dict]                         # the JSONL rows behind `images`, same order (code included)
    rendered: int = 0                        # rendered now (cache misses)
    cached: int = 0                          # read from the render cache
    failed: list[str] = field(default_factory=list)       # ids that did not render: left out of images
    mismatched: list[str] = field(default_factory=list)   # ids whose PNG hash differs from the build's

    @property
    def models(self) -> dict[str, int]:
        return dict(Counter(r.get("model") or "?" for r in self.rows).most_common())

    def describe(self) -> dict:
        return {"drawings": len(self.rows), "models": self.models,
                "languages": dict(Counter(r.get("language", "svg") for r in self.rows).most_common()),
                "first_drafts": sum(1 for r in self.rows if r.get("draft") == "first"),
                "refined": sum(1 for r in self.rows if r.get("draft") == "refined"),
                "concepts": len({r.get("concept") for r in self.rows}), "rendered": self.rendered,
                "cached": self.cached, "failed": len(self.failed), "mismatched": len(self.mismatched)}


def cache_root() -> Path:
    root = os.environ.get("DRAWLOOP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "drawloop")
    return Path(root) / "renders"


def read_drawings(path: str | Path) -> list[dict]:
    from drawloop.dataset.code_export import read_code_rows

    try:
        return read_code_rows(path)
    except ValueError as err:   # DatasetError: the data source is unusable, said in the vision package's terms
        raise DataError(str(err)) from None


def cache_key(row: dict) -> str:
    code_hash = hashlib.sha256(row["code"].encode("utf-8")).hexdigest()
    return f"{code_hash}-{row.get('language', 'svg')}-{int(row['size'])}.png"


def render_pngs(rows: list[dict], workers: int | None = None, cache: Path | None = None,
                counts: dict | None = None) -> list[bytes | None]:
    """PNG bytes for every row, rendered at the row's language and size (None where it fails), via the cache.

    `counts`, when given, receives how many were "rendered" and how many "cached".
    """
    from drawloop.dataset.export import write_atomic
    from drawloop.renderers import render_many

    cache = cache or cache_root()
    pngs: list[bytes | None] = [None] * len(rows)
    misses: dict[tuple[str, int], list[int]] = {}
    for i, row in enumerate(rows):
        path = cache / cache_key(row)
        if path.is_file():
            pngs[i] = path.read_bytes()
        else:
            misses.setdefault((row.get("language", "svg"), int(row["size"])), []).append(i)
    rendered = 0
    for (language, size), indices in misses.items():
        results = render_many([rows[i]["code"] for i in indices], language=language, size=size, workers=workers)
        for i, result in zip(indices, results):
            if result.ok and result.png:
                pngs[i] = result.png
                write_atomic(cache / cache_key(rows[i]), result.png)
                rendered += 1
            else:
                rows[i]["render_error"] = result.error
    if counts is not None:
        counts.update(rendered=rendered, cached=len(rows) - sum(len(v) for v in misses.values()))
    return pngs


def render_to_cache(rows: list[dict], workers: int | None = None, cache: Path | None = None,
                    chunk: int = 1024) -> list[Path | None]:
    """Render what the cache lacks, `chunk` drawings at a time, holding no PNG in memory: the cached
    file of every row (None where the render failed). For sets too large to load at once (--stream)."""
    cache = cache or cache_root()
    paths: list[Path | None] = [cache / cache_key(row) for row in rows]
    missing = [i for i, path in enumerate(paths) if not path.is_file()]
    for start in range(0, len(missing), chunk):
        part = missing[start : start + chunk]
        pngs = render_pngs([rows[i] for i in part], workers=workers, cache=cache)
        for i, png in zip(part, pngs):
            if png is None:
                paths[i] = None
    return paths


def load_drawings(path: str | Path, size: int, limit: int | None = None, seed: int = 0, strict: bool = False,
                  workers: int | None = None, cache: Path | None = None) -> LoadedDrawings:
    """The drawings of a code-only JSONL as uint8 (N, 3, size, size); a seeded random `limit` of them.

    Only the chosen drawings are rendered. Failed renders are left out (their ids in `failed`),
    mismatching ones kept (ids in `mismatched`); `strict` raises a DataError for either.
    """
    from drawloop.vision.data import decode_image

    rows = read_drawings(path)
    if limit and len(rows) > limit:
        pick = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))[:limit]
        rows = [rows[i] for i in sorted(pick.tolist())]
    counts: dict = {}
    pngs = render_pngs(rows, workers=workers, cache=cache, counts=counts)
    failed = [r["id"] for r, png in zip(rows, pngs) if png is None]
    mismatched = [r["id"] for r, png in zip(rows, pngs)
                  if png is not None and hashlib.sha256(png).hexdigest() != r["png_sha256"]]
    if strict and (failed or mismatched):
        raise DataError(f"{path}: {len(failed)} drawings did not render and {len(mismatched)} rendered other "
                        f"pixels than at build time (e.g. {(failed or mismatched)[0]}); is the renderer the "
                        "build's (resvg version, fonts)?")
    kept = [(r, png) for r, png in zip(rows, pngs) if png is not None]
    if not kept:
        raise DataError(f"none of the {len(rows)} drawings in {path} rendered; first error: "
                        f"{rows[0].get('render_error')}")
    with ThreadPoolExecutor(max_workers=4) as pool:   # PIL releases the GIL while decoding and resizing
        arrays = list(pool.map(lambda item: decode_image(item[1], size), kept))
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return LoadedDrawings(images, [r for r, _ in kept], counts.get("rendered", 0), counts.get("cached", 0),
                          failed, mismatched)
