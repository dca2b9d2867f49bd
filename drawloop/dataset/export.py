"""The dataset on disk: drawing files, metadata.jsonl, curated.txt, contact sheets and the card.

    write_atomic(root / "train/red-circle-0000.png", png)   # tmp file, fsync, rename
    rows = place(root, records, curation, splits)  # copies to duplicates/, concepts to their split
    write_metadata(root, rows, failures)           # metadata.jsonl (+ one per split), curated.txt
    card(...)                                      # README.md: YAML header for the Hub, then the card

Layout (every file here is rewritten whole and atomically, so a kill never leaves half a file):

    DIR/train/<id>.png + <id>.svg          kept drawings of the training concepts (ids: <slug>-NNNN)
    DIR/train/metadata.jsonl               their rows, `file_name` relative to train/ (Hugging Face
                                           imagefolder metadata: see formats.py)
    DIR/validation/...                     the same for the held-out concepts (splits.py)
    DIR/duplicates/<id>.png + .svg         near-copies removed by curation (kept for audit)
    DIR/metadata.jsonl                     one row per drawing, duplicates flagged, `file_name`
                                           relative to DIR, `split`
    DIR/curated.txt                        the kept image paths, one a line
    DIR/webdataset/<split>-NNNNN.tar       with --format webdataset: the kept drawings as tar shards
    DIR/index/                             FAISS index of the kept drawings (vision/index.py)
    DIR/contact_sheets/<level>.png         a look at each level
    DIR/README.md                          the dataset card, with the Hub's YAML header
    DIR/manifest.sqlite, DIR/work/         the build's ledger, checkpoints, artifacts, trace

The split folders are flat, not one folder per concept: `datasets` finds splits by folder names
anywhere under DIR, so a concept folder such as `laboratory-with-test-tubes/` would read as a third
split ("test") and `load_dataset` would fail. The concept is in every metadata row instead (and in
the file name). Datasets built before this layout (images/<slug>/, duplicates/<slug>/) move into
it at their next curation.
"""

from __future__ import annotations

import io
import json
import math
import os
import statistics
import threading
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from drawloop import imaging
from drawloop.dataset.reader import find_drawing, row_path
from drawloop.dataset.splits import SPLITS
from drawloop.imaging import Tile

SHEET_TILE = 112
SHEET_ROWS = 40          # concepts per contact sheet; larger levels show an even spread
SHEET_COLUMNS = 6        # drawings per concept on a sheet


# ---------------------------------------------------------------- files

def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a whole file or nothing: temp file beside it, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    with open(tmp, "wb") as handle:
        handle.write(blob)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _move(root: Path, rel: str, folder: str) -> str:
    """Move one drawing file into `folder` (a split or duplicates/) from wherever it is (idempotent);
    returns its new path relative to root."""
    target = f"{folder}/{rel.rsplit('/', 1)[-1]}"
    if not (root / target).exists():
        source = find_drawing(root, rel)
        if source is not None:
            (root / target).parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, root / target)
    return target


def place(root: Path, records: list[dict], curation, splits: dict[str, str] | None = None) -> list[dict]:
    """Put each drawing where curation says it belongs: duplicates/, or the split of its concept
    (`splits`: concept -> split, default all train). Returns the metadata rows, sorted by id, with
    `file_name` relative to root (records of older builds said `image`)."""
    rows = []
    for record in sorted(records, key=lambda r: r["id"]):
        duplicate = record["id"] in curation.duplicates
        split = (splits or {}).get(record["concept"], "train")
        folder = "duplicates" if duplicate else split
        row = {k: v for k, v in record.items() if k != "image"}
        row.update(file_name=_move(root, row_path(record), folder), code=_move(root, record["code"], folder),
                   split=split, duplicate=duplicate, duplicate_of=curation.duplicates.get(record["id"]),
                   duplicate_similarity=curation.similarity.get(record["id"]))
        rows.append(row)
    for top in ("images", "duplicates"):     # the per-concept folders of older datasets, now empty
        _remove_empty_dirs(root / top)
    return rows


def _remove_empty_dirs(top: Path) -> None:
    if not top.is_dir():
        return
    for folder in sorted(top.iterdir()):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    if not any(top.iterdir()):
        top.rmdir()


def sweep_strays(root: Path, committed: set[str]) -> int:
    """Delete drawing files that no committed drawing owns (a commit killed before its manifest
    row, then given up) and half-written temp files; returns how many went."""
    removed = 0
    for top in ("images", "duplicates", *SPLITS):
        for path in (root / top).rglob("*") if (root / top).is_dir() else ():
            if path.name == "metadata.jsonl" and path.parent.name in SPLITS:
                continue      # a split's metadata, not a drawing
            if path.is_file() and (path.name.startswith(".") or path.stem not in committed):
                path.unlink()
                removed += 1
    return removed


# ---------------------------------------------------------------- metadata

def write_metadata(root: Path, rows: list[dict], failures: list[dict]) -> None:
    """metadata.jsonl (every drawing), one per split folder (its kept drawings, for `datasets`),
    curated.txt and failures.jsonl."""
    from drawloop.dataset import formats

    write_atomic(root / "metadata.jsonl", "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
    formats.write_split_metadata(root, rows)
    write_atomic(root / "curated.txt", "".join(row["file_name"] + "\n" for row in rows if not row["duplicate"]))
    write_atomic(root / "failures.jsonl", "".join(json.dumps(f, sort_keys=True) + "\n" for f in failures))


# ---------------------------------------------------------------- summaries

def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"mean": round(statistics.fmean(values), 4), "median": round(statistics.median(values), 4),
            "min": round(min(values), 4), "max": round(max(values), 4)}


def summarize(rows: list[dict], diversity: dict[str, float], failed: list[dict]) -> dict[str, Any]:
    """Counts, score, recognition and diversity figures, overall and per level."""
    levels: dict[str, dict] = {}
    by_level: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_level[row["level"]].append(row)
    failed_by_level = Counter(f.get("level") for f in failed)
    for level, members in sorted(by_level.items()):
        kept = [r for r in members if not r["duplicate"]]
        concepts = sorted({r["concept"] for r in members})
        div = [diversity[c] for c in concepts if c in diversity]
        levels[level] = {
            "concepts": len(concepts), "drawings": len(members), "kept": len(kept),
            "duplicates": len(members) - len(kept), "failed": failed_by_level.get(level, 0),
            "score": _stats([float(r.get("score") or 0) for r in kept]),
            "recognized": round(sum(bool(r.get("recognized")) for r in kept) / len(kept), 3) if kept else None,
            "iterations": _stats([float(r.get("iterations") or 0) for r in kept]),
            "diversity": _stats(div),
        }
    kept = [r for r in rows if not r["duplicate"]]
    ranked = sorted(diversity.items(), key=lambda kv: kv[1])
    splits = {split: {"concepts": len({r["concept"] for r in kept if r.get("split", "train") == split}),
                      "kept": sum(1 for r in kept if r.get("split", "train") == split)} for split in SPLITS}
    return {
        "drawings": len(rows), "kept": len(kept), "duplicates": len(rows) - len(kept), "failed": len(failed),
        "concepts": len({r["concept"] for r in rows}),
        "score": _stats([float(r.get("score") or 0) for r in kept]),
        "recognized": round(sum(bool(r.get("recognized")) for r in kept) / len(kept), 3) if kept else None,
        "diversity": _stats(list(diversity.values())),
        # up to ten concepts: all of them, least diverse first; more: the five at either end
        "least_diverse": ranked if len(ranked) <= 10 else ranked[:5],
        "most_diverse": [] if len(ranked) <= 10 else ranked[::-1][:5],
        "tokens_in": sum(int(r.get("tokens_in") or 0) for r in rows),
        "tokens_out": sum(int(r.get("tokens_out") or 0) for r in rows),
        "levels": levels,
        "splits": {split: counts for split, counts in splits.items() if counts["kept"]},
    }


# ---------------------------------------------------------------- contact sheets

def contact_sheet(root: Path, level: str, rows: list[dict], path: Path) -> Path:
    """One row per concept (an even spread of at most SHEET_ROWS), its kept drawings side by side,
    each captioned with its score and whether the recognizer got it right."""
    by_concept: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if not row["duplicate"]:
            by_concept[row["concept"]].append(row)
    concepts = sorted(by_concept)
    shown = concepts if len(concepts) <= SHEET_ROWS else [
        concepts[i * len(concepts) // SHEET_ROWS] for i in range(SHEET_ROWS)]
    columns = max(1, min(SHEET_COLUMNS, max((len(by_concept[c]) for c in shown), default=1)))
    kept = sum(len(v) for v in by_concept.values())
    title = f"{level}: {kept} kept drawings of {len(concepts)} concepts"
    if len(shown) < len(concepts):
        title += f" (showing {len(shown)} concepts)"
    grid = [[Tile(root / row_path(row), [f"{float(row.get('score') or 0):.2f} "
                                         + ("right" if row.get("recognized") else "wrong")], line_colours=[(60, 60, 60)])
             for row in sorted(by_concept[concept], key=lambda r: r["id"])[:columns]] for concept in shown]
    sheet = imaging.contact_sheet(grid, title=title, tile=SHEET_TILE, row_labels=shown, label_width=224,
                                  caption_size=11, pad=6)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    write_atomic(path, buffer.getvalue())
    return path


# ---------------------------------------------------------------- the card

def _fmt(stats: dict[str, float]) -> str:
    if not stats:
        return "–"
    return f"{stats['mean']:.2f} (median {stats['median']:.2f}, {stats['min']:.2f}–{stats['max']:.2f})"


def _pct(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.0f}%"


def card(name: str, summary: dict[str, Any], build: dict[str, Any], sheets: dict[str, str],
         failures: list[dict]) -> str:
    """The dataset card (README.md): the Hub's YAML header (formats.card_header), then Markdown."""
    from drawloop.dataset.formats import card_header

    splits = summary.get("splits") or {}
    lines = [
        card_header(name, summary, build),
        f"# {name}: drawings by a language model",
        "",
        f"{summary['kept']} drawings of {summary['concepts']} concepts, each drawn as {build.get('language', 'svg')}"
        f" code by `{build.get('model')}`, rendered at {build.get('size')} px and refined by drawloop's loop "
        f"(draw → render → recognize → critique, up to {build.get('max_iters')} iterations; the best attempt is "
        f"kept). Built with:",
        "",
        f"    {build.get('command', 'drawloop dataset build')}",
        "",
        "## Counts",
        "",
        "Splits by concept (every drawing of a concept is in one split; "
        f"{100 * float(build.get('validation', 0.1)):.0f}% of the concepts held out): "
        + ", ".join(f"{split} {c['kept']} drawings of {c['concepts']} concepts" for split, c in splits.items())
        + ".",
        "",
        "| level | concepts | drawings | kept | near-duplicates removed | failed | mean score (kept) "
        "| recognized | diversity |",
        "|---|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for level, s in summary["levels"].items():
        lines.append(f"| {level} | {s['concepts']} | {s['drawings']} | {s['kept']} | {s['duplicates']} | {s['failed']} "
                     f"| {_fmt(s['score'])} | {_pct(s['recognized'])} | {_fmt(s['diversity'])} |")
    lines.append(f"| **all** | {summary['concepts']} | {summary['drawings']} | {summary['kept']} | "
                 f"{summary['duplicates']} | {summary['failed']} | {_fmt(summary['score'])} | "
                 f"{_pct(summary['recognized'])} | {_fmt(summary['diversity'])} |")
    lines += [
        "",
        "*Score*: the critic's combined score in [0, 1] of the kept attempt. *Recognized*: the share of kept "
        "drawings whose code the model itself mapped to the right concept among distractors. *Diversity*: per "
        f"concept, the mean pairwise cosine distance between its kept drawings' `{build.get('embedder')}` "
        "features (0: all alike; needs two kept drawings), summarised over concepts. "
        f"*Near-duplicates*: identical PNGs, then pairs with cosine similarity ≥ {build.get('dedup')} "
        f"(between drawings of {'the same concept' if build.get('dedup_scope', 'concept') == 'concept' else 'any concepts'}"
        "); the better-scored drawing of each group stays.",
        "",
    ]
    ranked = summary["least_diverse"]
    if ranked and not summary["most_diverse"]:
        lines += ["Diversity per concept: " + ", ".join(f"{c} ({d:.2f})" for c, d in ranked) + ".", ""]
    elif ranked:
        lines += ["Least diverse concepts: " + ", ".join(f"{c} ({d:.2f})" for c, d in ranked) + ". Most diverse: "
                  + ", ".join(f"{c} ({d:.2f})" for c, d in summary["most_diverse"]) + ".", ""]
    lines += ["## Contact sheets", ""]
    lines += [f"![{level}]({path})" for level, path in sheets.items()] + [""]
    if failures:
        reasons = Counter(_reason_kind(f["reason"]) for f in failures)
        lines += ["## Failures", "",
                  f"{len(failures)} failed tries ({summary['failed']} jobs given up); by reason:", ""]
        lines += [f"- {count} × {reason}" for reason, count in reasons.most_common(8)] + [""]
    lines += [
        "## Layout",
        "",
        "    train/<id>.png, <id>.svg        kept drawings of the training concepts (ids: <concept-slug>-NNNN)",
        "    train/metadata.jsonl            their rows; file_name relative to train/ (imagefolder metadata)",
        "    validation/...                  the same for the held-out concepts",
        "    duplicates/<id>.png, .svg       near-copies taken out by curation",
        "    metadata.jsonl    one row per drawing: concept, level, split, score, recognition, iterations, model,",
        "                      seed, temperature, png/code SHA-256, tokens, duplicate flag, file_name and code paths",
        "    curated.txt       kept image paths;  failures.jsonl: every failed try and its reason",
        *([("    webdataset/       <split>-NNNNN.tar shards: <id>.png, <id>.svg (code), <id>.json (row), "
            "<id>.txt (concept)")] if build.get("format") == "webdataset" else []),
        "    index/            FAISS index of the kept drawings (drawloop.vision.index.VectorIndex)",
        "    manifest.sqlite   the build's ledger; work/: checkpoints, every attempt's artifacts, trace.jsonl",
        "",
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset                 # Hugging Face: splits, every metadata column",
        f"data = load_dataset(\"imagefolder\", data_dir=\"{name}\")   # or load_dataset(\"{name}\")",
        "data[\"train\"][0][\"image\"], data[\"train\"][0][\"concept\"]",
        *([f"shards = load_dataset(\"webdataset\", data_dir=\"{name}/webdataset\")   # the tar shards"]
          if build.get("format") == "webdataset" else []),
        "",
        "from drawloop.dataset import DrawingDataset",
        f"data = DrawingDataset(\"{name}\")        # rows of metadata.jsonl, kept drawings by default",
        f"train = DrawingDataset(\"{name}\", split=\"train\")",
        "for path, label in data.samples(): ...",
        "",
        "from drawloop.vision.data import load_source      # uint8 tensors for training",
        f"images = load_source(\"{name}\", size=64)",
        "",
        "from drawloop.vision.index import VectorIndex     # kNN over the kept drawings",
        f"index = VectorIndex.load(\"{name}/index\")",
        "```",
        "",
        f"Tokens: {summary['tokens_in']:,} in, {summary['tokens_out']:,} out.",
        "",
    ]
    return "\n".join(lines)


def _reason_kind(reason: str) -> str:
    return (reason or "unknown").split(";")[-1].strip()[:120]
