"""Judge a frozen backbone on real photos: linear-probe and kNN accuracy on Fashion-MNIST.

    from drawloop.vision.probe import ProbeSet, probe
    data = ProbeSet.load(size=32, train_size=10000, test_size=10000, seed=0)   # None = the full split
    result = probe(backbone, data)          # {"linear": 0.83, "knn": 0.80, ...}
    probe(None, data)                       # raw pixels: the no-learning reference
    photos = ProbeSet.from_folder("~/photos", size=32)   # any ImageFolder of real photos: <class>/<image>

Fashion-MNIST (Debian `dataset-fashion-mnist`) is 70k 28x28 grayscale photos of clothing, 10 classes,
with the standard 60k/10k train/test split. Photos are resized to the backbone's training size with
bilinear interpolation and copied to 3 channels. Subsets (`train_size`, `test_size`) are seeded and
class-balanced, so CPU runs stay short; the sizes go into every result.

- linear: multinomial logistic regression on standardised frozen features, fitted with full-batch L-BFGS;
  the L2 strength is picked from a small grid on a 10% validation split of the training subset.
- knn: cosine similarity, k=20 neighbours voting with weights exp(sim / 0.07) (Wu et al. 2018, as in MoCo).

`ProbeSet.from_folder(DIR)` probes on any photos a user has instead: an ImageFolder (DIR/<class>/<image>,
read with PIL, centre-cropped and resized to the probe size in colour), split into train and test by a
seeded `test_share` of every class, or DIR/train/<class>/... with DIR/test/ (or val/) as given.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
L2_GRID = (1e-5, 1e-4, 1e-3, 1e-2)


class ProbeDataError(ValueError):
    pass


def read_idx(path: Path) -> np.ndarray:
    """An idx file (the MNIST format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ProbeDataError(f"{path} is not an unsigned-byte idx file")
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_fashion_mnist(split: str, root: Path = FASHION_MNIST) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 28, 28) and int64 labels for split "train" (60k) or "test" (10k)."""
    stem = {"train": "train", "test": "t10k"}[split]
    found = {}
    for part in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        candidates = [root / f"{stem}-{part}{ext}" for ext in ("", ".gz")]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise ProbeDataError(f"Fashion-MNIST not found at {root}: install it with "
                                 "`sudo apt-get install dataset-fashion-mnist` (or `make system`)")
        found[part] = read_idx(path)
    images, labels = found["images-idx3-ubyte"], found["labels-idx1-ubyte"]
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


@dataclass
class ProbeSet:
    """Real photos for probing: grayscale uint8 (N, 28, 28) train/test images, labels, and the probe size."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    size: int
    name: str = "fashion-mnist"
    classes: tuple[str, ...] = CLASSES

    @classmethod
    def load(cls, size: int, train_size: int | None = None, test_size: int | None = None, seed: int = 0,
             root: Path = FASHION_MNIST) -> "ProbeSet":
        tr_x, tr_y = load_fashion_mnist("train", root)
        te_x, te_y = load_fashion_mnist("test", root)
        tr = balanced_subset(tr_y, train_size, seed)
        te = balanced_subset(te_y, test_size, seed + 1)
        return cls(tr_x[tr], tr_y[tr], te_x[te], te_y[te], size)

    @classmethod
    def from_folder(cls, root: str | Path, size: int, train_size: int | None = None, test_size: int | None = None,
                    seed: int = 0, test_share: float = 0.2) -> "ProbeSet":
        """Photos in an ImageFolder tree as a probe set (colour, uint8 (N, 3, size, size)); see the module doc."""
        from drawloop.dataset.reader import image_folder
        from drawloop.vision.data import load_images

        root = Path(root).expanduser()
        if not root.is_dir():
            raise ProbeDataError(f"probe folder {root} does not exist")
        given = next((root / n for n in ("test", "val", "validation") if (root / n).is_dir()), None)
        if (root / "train").is_dir() and given is not None:
            train, classes = image_folder(root / "train")
            test, test_classes = image_folder(given)
            if test_classes != classes:
                raise ProbeDataError(f"{root}/train and {given} have different class folders")
        else:
            samples, classes = image_folder(root)
            train, test = _split_per_class(samples, test_share, seed)
        if len(classes) < 2 or not train or not test:
            raise ProbeDataError(f"{root} needs at least 2 class folders with images in both splits "
                                 "(an ImageFolder: DIR/<class>/<image>)")
        labels = {"train": torch.tensor([c for _, c in train]), "test": torch.tensor([c for _, c in test])}
        tr = balanced_subset(labels["train"], train_size, seed)
        te = balanced_subset(labels["test"], test_size, seed + 1)
        train_x = load_images([train[i][0] for i in tr.tolist()], size)
        test_x = load_images([test[i][0] for i in te.tolist()], size)
        return cls(train_x, labels["train"][tr], test_x, labels["test"][te], size, name=f"folder:{root.name}",
                   classes=tuple(classes))

    def describe(self) -> dict:
        return {"dataset": self.name, "train": len(self.train_labels), "test": len(self.test_labels),
                "size": self.size, "classes": len(self.classes)}


def balanced_subset(labels: torch.Tensor, n: int | None, seed: int) -> torch.Tensor:
    """Indices of a seeded subset with (nearly) equal counts per class; all indices when n is None."""
    if n is None or n >= len(labels):
        return torch.arange(len(labels))
    gen = torch.Generator().manual_seed(seed)
    classes = labels.unique()
    per_class = n // len(classes)
    picks = []
    for c in classes:
        idx = (labels == c).nonzero().flatten()
        picks.append(idx[torch.randperm(len(idx), generator=gen)[:per_class]])
    return torch.cat(picks).sort().values


def _split_per_class(samples: list, test_share: float, seed: int) -> tuple[list, list]:
    """A seeded train/test split taking `test_share` of every class (at least one image) for testing."""
    if not 0 < test_share < 1:
        raise ProbeDataError(f"test_share must be in (0, 1), got {test_share}")
    gen = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in sorted({c for _, c in samples}):
        members = [s for s in samples if s[1] == c]
        order = torch.randperm(len(members), generator=gen).tolist()
        n_test = max(1, round(test_share * len(members))) if len(members) > 1 else 0
        test += [members[i] for i in sorted(order[:n_test])]
        train += [members[i] for i in sorted(order[n_test:])]
    return train, test


def to_rgb(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, H, W) grey or (N, 3, H, W) colour photos -> float (N, 3, size, size) in [0, 1], the backbone's input."""
    x = images.float().div(255)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.clamp(0, 1).expand(-1, 3, -1, -1)


@torch.no_grad()
def extract_features(backbone, gray: torch.Tensor, size: int, batch: int = 500) -> torch.Tensor:
    """Frozen features (N, D) in eval mode; `backbone=None` gives raw pixels at the probe size."""
    if backbone is None:
        pixels = to_rgb(gray, size)
        return (pixels[:, 0] if gray.ndim == 3 else pixels).flatten(1)  # grey photos: one channel, not three
    backbone.eval()
    device = next(backbone.parameters()).device
    chunks = [backbone(to_rgb(gray[i : i + batch], size).to(device)).float().cpu()
              for i in range(0, len(gray), batch)]
    return torch.cat(chunks)


def probe(backbone, data: ProbeSet) -> dict:
    """Linear-probe and kNN test accuracy of frozen features; the probe's settings come back with them."""
    train_x = extract_features(backbone, data.train_images, data.size)
    test_x = extract_features(backbone, data.test_images, data.size)
    linear, l2 = linear_probe(train_x, data.train_labels, test_x, data.test_labels)
    knn = knn_accuracy(train_x, data.train_labels, test_x, data.test_labels)
    return {"linear": linear, "knn": knn, "l2": l2, "feature_dim": train_x.shape[1], **data.describe()}


def linear_probe(train_x, train_y, test_x, test_y, l2_grid=L2_GRID) -> tuple[float, float]:
    """Test accuracy of a logistic-regression probe, with L2 chosen on a held-out 10% of the train set."""
    mean, std = train_x.mean(0), train_x.std(0).clamp(min=1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    n_val = max(1, len(train_y) // 10)
    perm = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(0))
    val, fit = perm[:n_val], perm[n_val:]
    # Strongest penalty first, each fit warm-started from the last: the path is cheap to walk.
    scores, w = {}, None
    for l2 in sorted(l2_grid, reverse=True):
        w = _fit_logistic(train_x[fit], train_y[fit], n_classes, l2, init=w)
        scores[l2] = (_accuracy(w, train_x[val], train_y[val]), w)
    best = max(scores, key=lambda l2: (scores[l2][0], l2))  # ties go to the stronger (safer) penalty
    weights = _fit_logistic(train_x, train_y, n_classes, best, init=scores[best][1])
    return _accuracy(weights, test_x, test_y), best


def knn_accuracy(train_x, train_y, test_x, test_y, k: int = 20, temperature: float = 0.07,
                 chunk: int = 1000) -> float:
    train_x, test_x = F.normalize(train_x, dim=1), F.normalize(test_x, dim=1)
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    k = min(k, len(train_y))
    correct = 0
    for i in range(0, len(test_y), chunk):
        sim, idx = (test_x[i : i + chunk] @ train_x.T).topk(k, dim=1)
        votes = torch.zeros(len(sim), n_classes).scatter_add_(1, train_y[idx], (sim / temperature).exp())
        correct += (votes.argmax(1) == test_y[i : i + chunk]).sum().item()
    return correct / len(test_y)


def _fit_logistic(x: torch.Tensor, y: torch.Tensor, n_classes: int, l2: float, steps: int = 100,
                  init: torch.Tensor | None = None) -> torch.Tensor:
    x1 = torch.cat([x, torch.ones(len(x), 1)], dim=1)  # a bias column
    w = torch.zeros(x1.shape[1], n_classes) if init is None else init.clone()
    w.requires_grad_(True)
    # Stop once the loss stops moving: separable data would otherwise spend every step sharpening logits.
    opt = torch.optim.LBFGS([w], lr=1, max_iter=steps, history_size=10, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-5, tolerance_change=1e-6)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x1 @ w, y) + l2 * (w[:-1] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


def _accuracy(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
    logits = torch.cat([x, torch.ones(len(x), 1)], dim=1) @ w
    return (logits.argmax(1) == y).float().mean().item()
