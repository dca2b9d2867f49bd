"""Code-only storage of a dataset: one JSON line per kept drawing, small enough to commit.

    drawloop dataset export-code data/llm data/llm-drawings.jsonl        # or .jsonl.gz (gzip, deterministic)

    from drawloop.dataset.code_export import export_code, read_code_rows
    summary = export_code("data/llm", "data/llm-drawings.jsonl")   # {"drawings": 2000, "models": {...}, ...}
    rows = read_code_rows("data/llm-drawings.jsonl")

A built dataset keeps a PNG and the code of every drawing (train/<id>.png + train/<id>.svg, rows in
metadata.jsonl). The PNG is a function of the code, the canvas size and the renderer, so the code is
all that needs storing: the 37 best.svg of the drawing runs on the machine this was written on average
0.9 kB of text against 12.8 kB for their 256 px PNGs, and text diffs in git.
drawloop.vision.llm_drawings renders the drawings again at load time (guarded renderer, cached) and
checks every render against `png_sha256`, the hash of the PNG the build saved: a drawing that renders
differently (another resvg, other fonts) is counted and reported, not silently used as if it matched.

One row per kept drawing (near-duplicates set aside by curation are left out), sorted by id, keys:

    id, concept, level, category, slug, split     which drawing (ids: <concept-slug>-NNNN), its split
    sample, seed, temperature, model              how it was drawn: sample index, the thread's seed,
                                                  sampling temperature, provider:model that drew it
    draft                                         "first" (the kept attempt is the first one drawn)
                                                  or "refined" (a later attempt of the loop won)
    iterations, best_iteration                    attempts drawn, index of the kept one (0 = first)
    language, size                                the drawing language (svg, python) and canvas px
    score, recognized                             the critic's score, whether the model recognized it
    png_sha256, code_sha256                       the build-time PNG's and the code's SHA-256
    code                                          the drawing's code, verbatim
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections import Counter
from pathlib import Path

from drawloop.dataset.reader import DatasetError, find_drawing

FIELDS = ("id", "concept", "level", "category", "slug", "split", "sample", "seed", "temperature", "model",
          "draft", "iterations", "best_iteration", "language", "size", "score", "recognized", "png_sha256",
          "code_sha256", "code")
REQUIRED = ("id", "language", "size", "code", "png_sha256")   # what a loader needs to render and check


def code_row(row: dict, code: str) -> dict:
    """The code-only row of one metadata.jsonl row and its code."""
    best = row.get("best_iteration")
    out = {key: row.get(key) for key in FIELDS}
    out.update(draft="first" if not best else "refined", code=code,
               code_sha256=hashlib.sha256(code.encode("utf-8")).hexdigest(),
               split=row.get("split", "train"), language=row.get("language", "svg"))
    return out


def export_code(root: str | Path, out: str | Path) -> dict:
    """Write the code-only JSONL of the kept drawings of the dataset at `root`; returns a summary.

    Refuses a dataset whose code files are missing or do not match the hash the build recorded.
    """
    root, out = Path(root), Path(out)
    meta = root / "metadata.jsonl"
    if not meta.is_file():
        raise DatasetError(f"{root} has no metadata.jsonl: is it a finished `drawloop dataset build`?")
    rows = [json.loads(line) for line in meta.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = sorted((r for r in rows if not r.get("duplicate")), key=lambda r: r["id"])
    if not kept:
        raise DatasetError(f"{root} has no kept drawings to export")
    lines = []
    for row in kept:
        if "code" not in row:
            raise DatasetError(f"metadata row {row.get('id', '?')} names no code file")
        path = find_drawing(root, row["code"])
        if path is None:
            raise DatasetError(f"the code of {row['id']} is missing ({root / row['code']})")
        code = path.read_text(encoding="utf-8")
        line = code_row(row, code)
        if row.get("code_sha256") and row["code_sha256"] != line["code_sha256"]:
            raise DatasetError(f"{path} is not the code the build recorded for {row['id']} (SHA-256 differs)")
        lines.append(json.dumps(line, ensure_ascii=False) + "\n")
    write_rows(out, "".join(lines))
    return summarize(kept) | {"out": str(out), "bytes": out.stat().st_size}


def summarize(rows: list[dict]) -> dict:
    best = [r.get("best_iteration") for r in rows]
    return {"drawings": len(rows), "concepts": len({r.get("concept") for r in rows}),
            "models": dict(Counter(r.get("model") or "?" for r in rows).most_common()),
            "languages": dict(Counter(r.get("language", "svg") for r in rows).most_common()),
            "sizes": sorted({r.get("size") for r in rows if r.get("size") is not None}),
            "first_drafts": sum(1 for b in best if not b), "refined": sum(1 for b in best if b)}


def write_rows(out: Path, text: str) -> None:
    """Atomically; gzipped (mtime 0, so the same rows give the same bytes) when the name ends in .gz."""
    from drawloop.dataset.export import write_atomic

    data = text.encode("utf-8")
    if out.name.endswith(".gz"):
        buffer = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as handle:
            handle.write(data)
        data = buffer.getvalue()
    write_atomic(out, data)


def read_code_rows(path: str | Path) -> list[dict]:
    """The rows of a code-only JSONL (plain or .gz), checked for the keys a loader needs."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"drawings file {path} does not exist (make one with `drawloop dataset export-code`)")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    rows = []
    for n, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DatasetError(f"{path} line {n} is not JSON: {err}") from None
        missing = [key for key in REQUIRED if key not in row]
        if missing:
            raise DatasetError(f"{path} line {n} lacks {', '.join(missing)}: not a `drawloop dataset export-code` file")
        rows.append(row)
    if not rows:
        raise DatasetError(f"{path} holds no drawings")
    return rows
