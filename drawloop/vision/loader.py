"""Feeding the training loop: in-memory uint8 tensors, or image files decoded by DataLoader workers.

    from drawloop.vision.loader import FileImages, LoaderConfig
    images = FileImages(list_images("data/big"), size=224)           # decoded on demand, not held in memory
    train(images, config, out, loader=LoaderConfig(workers=12))      # 12 decoding processes, pinned, persistent

    drawloop train --data data/big --stream --workers 12 --size 224 ...   # the same from the shell

Two ways in, one loop (ssl.train asks the Feeder for each epoch's batches, in the order it drew):

- a uint8 tensor (N, 3, H, W) already in memory (load_source: a few thousand images, or 1.3M at
  64 px = 16 GB): batches are indexed out of it. On CUDA the whole tensor moves to the GPU once when
  it takes under half of the free GPU memory (`gpu_resident`), so no batch ever crosses PCIe; else each
  batch is pinned and copied asynchronously.
- FileImages (a list of image files, e.g. a 1.3M-image folder at 224 px, 196 GB as uint8): a
  torch DataLoader decodes them in `workers` processes (centre crop + Lanczos resize, as
  data.load_images), `prefetch` batches ahead per worker, into pinned memory on CUDA, and keeps its
  workers alive between epochs (persistent_workers). The batch sampler hands out exactly the batches
  ssl.train's seeded generator drew, so data order and augmentations are the same as in memory.

Augmentations run on the device, batched (augment.py), so workers only decode: the CPU's work per
image is one PNG/JPEG decode and one resize. Whether a given number of workers keeps a GPU busy is not
measured here (this was written on a CPU-only machine): watch images/s in the progress bar, which counts
the wait for data, and add workers until it stops rising.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class LoaderConfig:
    workers: int = 0                  # DataLoader processes decoding FileImages; 0: in this process
    pin_memory: bool | None = None    # None: on CUDA
    prefetch: int = 4                 # batches in flight per worker
    gpu_resident: bool | None = None  # in-memory images on the GPU once; None: when they fit in half of it

    def __post_init__(self) -> None:
        if self.workers < 0 or self.prefetch < 1:
            raise ValueError("need workers >= 0 and prefetch >= 1")


class FileImages(torch.utils.data.Dataset):
    """Image files as a dataset of uint8 (3, size, size) tensors, decoded when asked for."""

    def __init__(self, paths: list[Path], size: int):
        if len(paths) < 1:
            raise ValueError("no image files")
        self.paths, self.size = [Path(p) for p in paths], size

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), 3, self.size, self.size)

    def __getitem__(self, i: int) -> torch.Tensor:
        from drawloop.vision.data import _load_one

        return torch.from_numpy(_load_one(self.paths[i], self.size).copy()).permute(2, 0, 1).contiguous()

    def fingerprint(self) -> str:
        digest = hashlib.sha256("\n".join(map(str, self.paths)).encode()).hexdigest()[:16]
        return f"files:{len(self.paths)}:{self.size}:{digest}"


class _EpochBatches:
    """A batch sampler whose batches are set from outside before every epoch (ssl.train's order)."""

    def __init__(self):
        self.batches: list[list[int]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class Feeder:
    """Hands ssl.train each step's (ids, uint8 batch on `device`)."""

    def __init__(self, images, device: torch.device, config: LoaderConfig | None = None):
        self.config = config or LoaderConfig()
        self.device = device
        self.pin = self.config.pin_memory if self.config.pin_memory is not None else device.type == "cuda"
        self.loader = None
        if isinstance(images, torch.Tensor):
            self.images = images
            if device.type == "cuda" and self._resident(images):
                self.images = images.to(device)
        else:
            self.images = images
            self.sampler = _EpochBatches()
            workers = self.config.workers
            self.loader = torch.utils.data.DataLoader(
                images, batch_sampler=self.sampler, num_workers=workers, pin_memory=self.pin,
                persistent_workers=workers > 0, prefetch_factor=self.config.prefetch if workers else None)

    def _resident(self, images: torch.Tensor) -> bool:
        if self.config.gpu_resident is not None:
            return self.config.gpu_resident
        free, _ = torch.cuda.mem_get_info(self.device)
        return images.numel() * images.element_size() < free // 2

    def epoch(self, batches: list[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.loader is None:
            for ids in batches:
                x = self.images[ids.to(self.images.device)]
                if x.device != self.device:
                    x = (x.pin_memory() if self.pin else x).to(self.device, non_blocking=self.pin)
                yield ids, x
            return
        self.sampler.batches = [ids.tolist() for ids in batches]
        for ids, x in zip(batches, self.loader):
            yield ids, x.to(self.device, non_blocking=self.pin)


def fingerprint(images) -> str | None:
    """FileImages' fingerprint (paths and size), or None for a tensor (ssl.data_fingerprint reads its pixels)."""
    return images.fingerprint() if isinstance(images, FileImages) else None
