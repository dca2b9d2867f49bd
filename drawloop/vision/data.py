"""Training images from anywhere: a drawloop dataset, any folder of images, a curated subset, or a generator.

    from drawloop.vision.data import load_source
    images = load_source("data/llm", size=32)                         # uint8 (N, 3, 32, 32)
    images = load_source("procedural:deadleaves", size=32, limit=5000, seed=0)
    images = load_source("data/llm", size=32, subset="curated.txt")    # paths kept by a FAISS curation
    images = load_source("data/llm", size=32, where={"duplicate": False})  # filter metadata.jsonl rows
    images = load_source("data/llm-drawings.jsonl", size=32)          # code-only drawings, rendered on load

A drawloop dataset is `DIR/metadata.jsonl` naming each drawing's PNG (`file_name`, or `image` before
the split folders; `DIR/images/<concept-slug>/` in datasets built then): its kept drawings are the
images. `DIR/train` or any other folder is searched recursively for image files (ImageFolder works). Images are centre-cropped to a square,
resized once with Lanczos and kept in memory as uint8: 5k images at 64 px are 60 MB, and decoding once
beats decoding every epoch on a 2-core machine. Transparent drawings are composited on white.
A `.jsonl` (or `.jsonl.gz`) file is a code-only export (`drawloop dataset export-code`): its drawings are
rendered from their code (drawloop/vision/llm_drawings.py, cached) and then treated exactly like PNGs.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}
PATH_KEYS = ("file_name", "image", "image_path", "path", "file", "png")  # where a metadata row names its image
PROCEDURAL_PREFIX = "procedural:"
DRAWINGS_SUFFIXES = (".jsonl", ".jsonl.gz")  # a code-only export of drawings (llm_drawings.py)


class DataError(ValueError):
    """A data source that cannot be used; the message says why and what to do."""


def load_source(
    spec: str,
    size: int,
    limit: int | None = None,
    seed: int = 0,
    subset: str | Path | None = None,
    where: dict | None = None,
) -> torch.Tensor:
    """Images for `spec` ("procedural:<kind>" or a folder) as uint8 (N, 3, size, size).

    A folder with more than `limit` images gives a seeded random `limit` of them; a generator makes `limit`.
    """
    if spec.startswith(PROCEDURAL_PREFIX):
        from drawloop.vision.procedural import KINDS, generate

        kind = spec[len(PROCEDURAL_PREFIX):]
        if kind not in KINDS:
            raise DataError(f"unknown procedural source {spec!r}; choose one of " + ", ".join(
                PROCEDURAL_PREFIX + k for k in KINDS))
        if not limit:
            raise DataError(f"{spec} needs an image count (--images)")
        return generate(kind, limit, size, seed)
    if is_drawings_file(spec):
        if subset is not None or where:
            raise DataError(f"{spec} is a code-only drawings file: --subset and --where apply to dataset folders")
        from drawloop.vision.llm_drawings import load_drawings

        return load_drawings(spec, size, limit=limit, seed=seed).images
    paths = list_images(spec, subset=subset, where=where)
    if limit and len(paths) > limit:
        pick = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed))[:limit]
        paths = [paths[i] for i in sorted(pick.tolist())]
    return load_images(paths, size)


def is_drawings_file(spec: str | Path) -> bool:
    return str(spec).endswith(DRAWINGS_SUFFIXES)


def count_images(spec: str) -> int | None:
    """How many images a source holds: None for a generator (as many as asked for)."""
    if spec.startswith(PROCEDURAL_PREFIX):
        return None
    if is_drawings_file(spec):
        from drawloop.vision.llm_drawings import read_drawings

        return len(read_drawings(spec))
    return len(list_images(spec))


def list_images(root: str | Path, subset: str | Path | None = None, where: dict | None = None) -> list[Path]:
    """Sorted image paths under `root`, optionally narrowed by a subset file or a metadata filter."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist (or give procedural:<kind>)")
    if subset is not None:
        paths = _read_subset(Path(subset), root)
    elif where:
        paths = _filter_metadata(root, where)
    elif not (root / "images").is_dir() and (root / "metadata.jsonl").is_file():
        paths = _kept(root)     # a drawloop dataset: its kept drawings, not duplicates/ or contact sheets
    else:
        base = root / "images" if (root / "images").is_dir() else root
        paths = sorted(p for p in base.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise DataError(f"no images found under {root}")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{len(missing)} listed images do not exist, e.g. {missing[0]}")
    return paths


def load_images(paths: list[Path], size: int, workers: int = 4) -> torch.Tensor:
    # PIL releases the GIL while decoding and resizing, so a few threads help even on 2 cores.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        arrays = list(pool.map(lambda p: _load_one(p, size), paths))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def save_grid(images: torch.Tensor, path: str | Path, columns: int = 16, scale: int = 2) -> Path:
    """A contact sheet of a batch (uint8 or float in [0, 1], (B, 3, H, W)) as a PNG, for looking at data."""
    if images.is_floating_point():
        images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    b, _, h, w = images.shape
    rows = -(-b // columns)
    sheet = torch.full((3, rows * (h + 2), columns * (w + 2)), 255, dtype=torch.uint8)
    for i in range(b):
        r, c = divmod(i, columns)
        sheet[:, r * (h + 2) + 1 : r * (h + 2) + 1 + h, c * (w + 2) + 1 : c * (w + 2) + 1 + w] = images[i]
    picture = Image.fromarray(sheet.permute(1, 2, 0).numpy())
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path


def decode_image(data: bytes, size: int) -> np.ndarray:
    """PNG (or any image) bytes -> uint8 (size, size, 3), exactly as a file with these bytes would load."""
    import io

    return _load_one(io.BytesIO(data), size, name="rendered image")


def _load_one(path, size: int, name: str | None = None) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA", "P"):
                img = img.convert("RGBA")
                white = Image.new("RGBA", img.size, (255, 255, 255, 255))
                img = Image.alpha_composite(white, img)
            img = img.convert("RGB")
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read image {name or path}: {err}") from err
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS)
    return np.asarray(img, dtype=np.uint8)


def _read_subset(subset: Path, root: Path) -> list[Path]:
    """A curated subset: a text file with one path a line, or a JSONL file whose rows name an image."""
    if not subset.is_file():
        raise DataError(f"subset file {subset} does not exist")
    lines = [line.strip() for line in subset.read_text().splitlines() if line.strip()]
    if subset.suffix == ".jsonl":
        return [_resolve(_row_path(json.loads(line), subset), root) for line in lines]
    return [_resolve(line, root) for line in lines]


def _filter_metadata(root: Path, where: dict) -> list[Path]:
    meta = root / "metadata.jsonl"
    if not meta.is_file():
        raise DataError(f"--where needs {meta}, which does not exist")
    paths = []
    for line in meta.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if all(_matches(row.get(key), want) for key, want in where.items()):
            paths.append(_resolve(_row_path(row, meta), root))
    return sorted(paths)


def _kept(root: Path) -> list[Path]:
    meta = root / "metadata.jsonl"
    rows = [json.loads(line) for line in meta.read_text().splitlines() if line.strip()]
    return sorted(_resolve(_row_path(row, meta), root) for row in rows if not row.get("duplicate"))


def _matches(value, want) -> bool:
    # Filters come from the command line as strings; compare loosely so "true" matches True.
    return value == want or str(value).lower() == str(want).lower()


def _row_path(row: dict, source: Path) -> str:
    for key in PATH_KEYS:
        if isinstance(row.get(key), str):
            return row[key]
    raise DataError(f"a row in {source} names no image (expected one of the keys {', '.join(PATH_KEYS)})")


def _resolve(path: str, root: Path) -> Path:
    p = Path(path)
    if p.is_absolute():
        return p
    return root / p if (root / p).exists() or not (root / "images" / p).exists() else root / "images" / p
