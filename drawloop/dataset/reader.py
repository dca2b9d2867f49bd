"""Reading a built dataset back: its metadata rows, (image, label) pairs, its FAISS index.

    data = DrawingDataset("data/shapes")              # kept drawings; include_duplicates=True for all
    len(data), data.classes                           # concept slugs, sorted (ImageFolder's class order)
    for path, label in data.samples(): ...            # label indexes data.classes
    data.rows[0]["concept"], data.rows[0]["score"]    # everything metadata.jsonl records
    image = data.image(0)                             # PIL RGB, transparency on white
    index = data.index()                              # VectorIndex of the kept drawings

    image_folder("data/shapes/images")                # any ImageFolder tree: [(path, class index)], classes

`image_folder` needs nothing from drawloop's metadata: it is what torchvision's ImageFolder does,
so a dataset can be checked (or used) by code that has never heard of drawloop.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class DatasetError(ValueError):
    """The folder is not a (finished) drawloop dataset; the message says what is missing."""


class DrawingDataset:
    def __init__(self, root: str | Path, include_duplicates: bool = False):
        self.root = Path(root)
        meta = self.root / "metadata.jsonl"
        if not meta.is_file():
            raise DatasetError(f"{self.root} has no metadata.jsonl: is it a finished `drawloop dataset build`?")
        rows = [json.loads(line) for line in meta.read_text(encoding="utf-8").splitlines() if line.strip()]
        self.rows = [r for r in rows if include_duplicates or not r.get("duplicate")]
        self.classes = sorted({r["slug"] for r in self.rows})
        self._class_index = {slug: i for i, slug in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.rows)

    def path(self, i: int) -> Path:
        return self.root / self.rows[i]["image"]

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
