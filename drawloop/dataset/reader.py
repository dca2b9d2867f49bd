"""Reading a built dataset back: its metadata rows, (image, label) pairs, its FAISS index.

    data = DrawingDataset("data/shapes")              # kept drawings; include_duplicates=True for all
    train = DrawingDataset("data/shapes", split="train")   # or "validation": held-out concepts
    len(data), data.classes                           # concept slugs, sorted (ImageFolder's class order)
    for path, label in data.samples(): ...            # label indexes data.classes
    data.rows[0]["concept"], data.rows[0]["score"]    # everything metadata.jsonl records
    image = data.image(0)                             # PIL RGB, transparency on white
    index = data.index()                              # VectorIndex of the kept drawings

    image_folder("some/tree")                         # any ImageFolder tree: [(path, class index)], classes

A dataset also loads with code that has never heard of drawloop: Hugging Face `datasets`
(`load_dataset("imagefolder", data_dir="data/shapes")`, splits train and validation, every metadata
column) or any WebDataset reader (`--format webdataset`); see dataset/formats.py. `image_folder` is
torchvision's ImageFolder for other trees (drawloop's split folders are flat: see export.py why).

Metadata rows name their PNG under `file_name` (Hugging Face's key), relative to the folder of the
metadata file; datasets built before it used `image`, and `row_path` reads either.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drawloop.dataset.splits import SPLITS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class DatasetError(ValueError):
    """The folder is not a (finished) drawloop dataset; the message says what is missing."""


class DatasetBusy(DatasetError):
    """Another process is building or curating the dataset (the CLI exits 1, not 2: nothing in the
    command line is wrong)."""


def row_path(row: dict) -> str:
    """Where a metadata row's PNG is, relative to its metadata file: `file_name`, or `image` (older)."""
    path = row.get("file_name") or row.get("image")
    if not isinstance(path, str):
        raise DatasetError(f"metadata row {row.get('id', '?')} names no image (no file_name)")
    return path


def find_drawing(root: Path, rel: str) -> Path | None:
    """Where a drawing's file (PNG or code) is now, wherever a curation or an older drawloop put it:
    `rel` itself, a split folder, duplicates/, or the per-concept folders of older datasets
    (images/<slug>/, duplicates/<slug>/). None if it is nowhere."""
    root, name = Path(root), rel.rsplit("/", 1)[-1]
    parts = rel.split("/")
    slug = parts[-2] if len(parts) >= 3 else Path(name).stem.rsplit("-", 1)[0]   # ids are <slug>-NNNN
    for candidate in (rel, *(f"{folder}/{name}" for folder in (*SPLITS, "duplicates")),
                      f"images/{slug}/{name}", f"duplicates/{slug}/{name}"):
        if (root / candidate).is_file():
            return root / candidate
    return None


def locate(root: Path, rel: str) -> Path:
    """find_drawing, or `root / rel` when it is nowhere (for the error message of whoever opens it)."""
    return find_drawing(root, rel) or Path(root) / rel


class DrawingDataset:
    def __init__(self, root: str | Path, include_duplicates: bool = False, split: str | None = None):
        self.root = Path(root)
        meta = self.root / "metadata.jsonl"
        if not meta.is_file():
            raise DatasetError(f"{self.root} has no metadata.jsonl: is it a finished `drawloop dataset build`?")
        if split is not None and split not in SPLITS:
            raise DatasetError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
        rows = [json.loads(line) for line in meta.read_text(encoding="utf-8").splitlines() if line.strip()]
        self.rows = [r for r in rows if (include_duplicates or not r.get("duplicate"))
                     and (split is None or r.get("split", "train") == split)]
        self.classes = sorted({r["slug"] for r in self.rows})
        self._class_index = {slug: i for i, slug in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.rows)

    def path(self, i: int) -> Path:
        return self.root / row_path(self.rows[i])

    def label(self, i: int) -> int:
        return self._class_index[self.rows[i]["slug"]]

    def samples(self) -> list[tuple[Path, int]]:
        return [(self.path(i), self.label(i)) for i in range(len(self))]

    def image(self, i: int):
        from PIL import Image

        with Image.open(self.path(i)) as image:
            image = image.convert("RGBA")
            white = Image.new("RGBA", image.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, image).convert("RGB")

    def code(self, i: int) -> str:
        return (self.root / self.rows[i]["code"]).read_text(encoding="utf-8")

    def index(self) -> Any:
        from drawloop.vision.index import VectorIndex

        return VectorIndex.load(self.root / "index")


def image_folder(root: str | Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """ImageFolder semantics: root/<class>/<file>; classes sorted; returns (samples, classes)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    samples = [(path, i) for i, name in enumerate(classes) for path in sorted((root / name).iterdir())
               if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")]
    return samples, classes
