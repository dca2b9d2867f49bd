"""A dataset in the formats other tools read: Hugging Face imagefolder metadata per split, WebDataset
tar shards, and the YAML header of the dataset card.

    write_split_metadata(root, rows)      # DIR/train/metadata.jsonl, DIR/validation/metadata.jsonl
    write_webdataset(root, rows)          # DIR/webdataset/train-00000.tar, ... (--format webdataset)
    card_header(name, summary, build)     # "---\\nlicense: ...\\nconfigs: ...\\n---\\n"

Then, with nothing of drawloop installed:

    from datasets import load_dataset
    data = load_dataset("imagefolder", data_dir="data/shapes")    # train + validation, every column
    data = load_dataset("data/shapes")                            # the same, through the card's configs
    shards = load_dataset("webdataset", data_dir="data/shapes/webdataset")   # not load_dataset(DIR, ...)
    # or webdataset.WebDataset("data/shapes/webdataset/train-{00000..00003}.tar")

Hugging Face's imagefolder takes a split's rows from `metadata.jsonl` in the split's folder, its image
from `file_name` (relative to that folder), and infers every other column's type with Arrow, one
file at a time; files whose inferred types differ fail to load ("have different features"). JSON
has no typed null, so a column that is null in one split and a number in the other would break a
build at random. The rows are therefore written conformed (`hub_rows`): over all kept drawings a
column's type is inferred the way Arrow would; a null float becomes NaN, a null string "", a missing
key of a nested object is filled in, whole numbers in a float column become floats; a column that
still cannot be typed the same in every row (a null integer next to real ones, an empty list next
to full ones, mixed kinds) is written as JSON text in every row. The WebDataset builder infers types
from the first five samples of the first shard, so the same rows serve it too.

WebDataset layout (https://github.com/webdataset/webdataset): POSIX tar files whose members are
grouped by key, the file name up to its first dot. Each kept drawing is one sample:
`<id>.png` (the drawing), `<id>.svg` or `<id>.py` (its code), `<id>.txt` (the concept, a caption)
and `<id>.json` (its metadata row). Shards hold SHARD_SIZE drawings, sorted by id, so two curations
of the same drawings write the same bytes; members carry no time stamps or owners.
"""

from __future__ import annotations

import io
import json
import math
import os
import tarfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from drawloop.dataset.splits import SPLITS

FORMATS = ("imagefolder", "webdataset")
SHARD_SIZE = 1000          # drawings per WebDataset shard (about 20-40 MB of 256 px PNGs and code)
DROPPED = ("duplicate", "duplicate_of", "duplicate_similarity")   # all the same for kept drawings
LICENSE = "unknown"        # the card's license until the builder says (--license)


def check_format(value: str) -> str:
    if value not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, not {value!r}")
    return value


# ---------------------------------------------------------------- conformed rows

_MIXED = "mixed"


def _kind(value: Any) -> Any:
    """What Arrow's JSON reader would infer for `value`: None (null), a name, ("list", kind), or
    ("struct", {key: kind})."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        kind = None
        for item in value:
            kind = _merge(kind, _kind(item))
        return ("list", kind)
    if isinstance(value, dict):
        return ("struct", {key: _kind(item) for key, item in value.items()})
    return _MIXED


def _merge(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None or a == b:
        return a
    if isinstance(a, str) and isinstance(b, str) and {a, b} == {"int", "float"}:
        return "float"
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0] == "list":
        return ("list", _merge(a[1], b[1]))
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0] == "struct":
        keys = list(a[1]) + [k for k in b[1] if k not in a[1]]
        return ("struct", {k: _merge(a[1].get(k), b[1].get(k)) for k in keys})
    return _MIXED


def _conform(value: Any, kind: Any) -> Any:
    if kind == "float":
        return math.nan if value is None else float(value)
    if kind == "str":
        return "" if value is None else value
    if kind == _MIXED:
        return json.dumps(value, sort_keys=True)
    if isinstance(kind, tuple) and kind[0] == "list":
        return [_conform(item, kind[1]) for item in (value or [])]
    if isinstance(kind, tuple) and kind[0] == "struct":
        value = value or {}
        return {key: _conform(value.get(key), sub) for key, sub in kind[1].items()}
    return value        # int, bool, always null: as they are


def _written(kind: Any) -> Any:
    """The kind a conformed value has: mixed values became JSON text."""
    if kind == _MIXED:
        return "str"
    if isinstance(kind, tuple) and kind[0] == "list":
        return ("list", _written(kind[1]))
    if isinstance(kind, tuple) and kind[0] == "struct":
        return ("struct", {key: _written(sub) for key, sub in kind[1].items()})
    return kind


def hub_rows(rows: Iterable[dict]) -> list[dict]:
    """`rows` (dicts) conformed to one type per column, so Arrow infers the same schema from any
    subset of them (see the module docstring)."""
    rows = list(rows)
    table = None
    for row in rows:
        table = _merge(table, _kind(row))
    if table is None:
        return []
    out = [_conform(row, table) for row in rows]
    for column, kind in table[1].items():
        if any(_kind(row[column]) != _written(kind) for row in out):
            for row, original in zip(out, rows):
                row[column] = json.dumps(original.get(column), sort_keys=True, default=str)
    return out


def split_rows(rows: list[dict]) -> dict[str, list[dict]]:
    """The kept drawings per split, conformed over all splits together, paths relative to the split
    folder (file_name <id>.png, code <id>.svg)."""
    kept = [{k: v for k, v in row.items() if k not in DROPPED} for row in rows if not row.get("duplicate")]
    conformed = hub_rows(kept)
    by_split: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for row in conformed:
        row["file_name"] = row["file_name"].rsplit("/", 1)[-1]
        row["code"] = row["code"].rsplit("/", 1)[-1]
        by_split.setdefault(row.get("split") or "train", []).append(row)
    return by_split


def write_split_metadata(root: Path, rows: list[dict]) -> dict[str, int]:
    """metadata.jsonl in each split folder that has kept drawings (removed from one that has none
    left); returns the rows per split."""
    from drawloop.dataset.export import write_atomic

    counts = {}
    for split, members in split_rows(rows).items():
        meta = root / split / "metadata.jsonl"
        if members:
            write_atomic(meta, "".join(json.dumps(r, sort_keys=True) + "\n" for r in members))
            counts[split] = len(members)
        elif meta.exists():
            meta.unlink()
            if not any((root / split).iterdir()):
                (root / split).rmdir()
    return counts


# ---------------------------------------------------------------- WebDataset shards

def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def write_webdataset(root: Path, rows: list[dict], shard_size: int = SHARD_SIZE) -> list[str]:
    """The kept drawings as WebDataset shards under root/webdataset/ (stale shards removed); returns
    the shard paths relative to root."""
    if shard_size < 1:
        raise ValueError(f"shard size must be at least 1, not {shard_size}")
    folder = root / "webdataset"
    folder.mkdir(parents=True, exist_ok=True)
    by_id = {row["id"]: row for row in rows}
    written = []
    for split, members in split_rows(rows).items():
        members.sort(key=lambda r: r["id"])
        for index, start in enumerate(range(0, len(members), shard_size)):
            name = f"{split}-{index:05d}.tar"
            tmp = folder / f".{name}.tmp-{os.getpid()}-{threading.get_ident()}"
            with open(tmp, "wb") as handle:
                with tarfile.open(fileobj=handle, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                    for row in members[start:start + shard_size]:
                        source, key = by_id[row["id"]], row["id"]
                        code_suffix = Path(source["code"]).suffix or ".txt"
                        meta = {k: v for k, v in row.items() if k not in ("file_name", "code")}
                        _member(tar, f"{key}.json", json.dumps(meta, sort_keys=True).encode())
                        _member(tar, f"{key}.png", (root / source["file_name"]).read_bytes())
                        _member(tar, f"{key}{code_suffix}", (root / source["code"]).read_bytes())
                        _member(tar, f"{key}.txt", str(source["concept"]).encode())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, folder / name)
            written.append(f"webdataset/{name}")
    for stale in folder.glob("*.tar"):
        if f"webdataset/{stale.name}" not in written:
            stale.unlink()
    return written


def remove_webdataset(root: Path) -> None:
    folder = root / "webdataset"
    if folder.is_dir():
        for shard in folder.glob("*.tar"):
            shard.unlink()
        if not any(folder.iterdir()):
            folder.rmdir()


# ---------------------------------------------------------------- the card's YAML header

def _size_category(n: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]
    return next((label for bound, label in bounds if n < bound), "n>1T" if n >= 10 ** 12 else "100M<n<1B")


def card_header(name: str, summary: dict[str, Any], build: dict[str, Any]) -> str:
    """The YAML front matter the Hugging Face Hub reads from README.md: license, tasks, size, and
    `configs` naming each split's files, so `load_dataset(DIR)` (or the Hub) finds the splits. Every
    string is JSON-quoted, which YAML reads as the same string. The WebDataset shards get no config
    of their own: `datasets` picks one builder for all configs of a card, from the first one's files
    (imagefolder here); they load with load_dataset("webdataset", data_dir="DIR/webdataset")."""
    q = json.dumps
    splits = [s for s in SPLITS if (summary.get("splits") or {}).get(s, {}).get("kept")] or ["train"]
    language = str(build.get("language", "svg"))
    lines = [
        "---",
        f"pretty_name: {q(f'{name}: drawings by a language model')}",
        f"license: {q(str(build.get('license') or LICENSE))}",
        "language:", "- en",
        "task_categories:", "- image-classification", "- text-to-image",
        "tags:", "- drawloop", "- synthetic", f"- {q(language)}", "- code",
        "size_categories:", f"- {q(_size_category(int(summary.get('kept') or 0)))}",
        "configs:",
        "- config_name: default",
        "  default: true",
        "  data_files:",
    ]
    for split in splits:
        lines += [f"  - split: {split}", "    path:", f"    - {q(f'{split}/*.png')}",
                  f"    - {q(f'{split}/metadata.jsonl')}"]
    lines += ["---", ""]
    return "\n".join(lines)
