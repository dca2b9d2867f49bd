"""Mixed sources: two or more training sources in equal shares, exact in every batch of every epoch.

    from drawloop.vision.mixed import load_mixed
    mix = load_mixed("data/llm-drawings.jsonl+procedural:deadleaves", size=32, images=2000, seed=0)
    mix.images, mix.groups        # uint8 (2000, 3, 32, 32); which part each image came from (1000 each)
    train(mix.images, config, "runs/mix", groups=mix.groups)      # ssl.train keeps the shares exact

    drawloop train --data data/llm-drawings.jsonl+procedural:deadleaves --images 2000 --out runs/mix
    drawloop compare --drawings data/llm-drawings.jsonl ...        # adds "llm+<best procedural>" itself

A mix of k parts and N images takes N // k images from each part (a part's seeded subset, or the first
N // k a generator makes: the same images the part alone would start with). With `groups`, ssl.train
orders every epoch with `epoch_order` instead of one plain permutation:

- each part is permuted on its own (seeded, a fresh order every epoch);
- every batch takes batch / k images of each part, interleaved (A B A B ...), so the batch is exactly
  half and half, and so is every even-sized contiguous slice of it (MoCo's shuffled-BN chunks, a DDP
  rank's share);
- an epoch has as many steps as an unmixed source of N images (N // batch) and uses steps * batch / k
  images of each part, none twice: the ratio is exact per batch and so per epoch.

The batch size must be a multiple of k (an even batch for two parts).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

SEPARATOR = "+"


@dataclass
class Mixed:
    images: torch.Tensor     # uint8 (N, 3, H, W): part 0's images, then part 1's, ...
    groups: torch.Tensor     # int64 (N,): the part of each image
    parts: list[str]


def is_mixed(spec: str) -> bool:
    """A spec of several sources joined by '+' (a path that exists as it is, '+' and all, is not a mix)."""
    return SEPARATOR in spec and not Path(spec).exists()


def parse_mix(spec: str) -> list[str]:
    parts = [p.strip() for p in spec.split(SEPARATOR)]
    if len(parts) < 2 or not all(parts):
        raise ValueError(f"a mixed source is SOURCE+SOURCE (e.g. data/llm-drawings.jsonl+procedural:deadleaves), "
                         f"got {spec!r}")
    return parts


def load_mixed(spec: str | list[str], size: int, images: int, seed: int = 0, load=None) -> Mixed:
    """`images` in equal parts from each source of `spec` ("A+B" or [A, B]); `load(spec, size, limit,
    seed)` loads one part (default: data.load_source)."""
    from drawloop.vision.data import DataError, load_source

    parts = parse_mix(spec) if isinstance(spec, str) else list(spec)
    load = load or load_source
    per_part = images // len(parts)
    if per_part < 1:
        raise DataError(f"{images} images cannot be shared out over {len(parts)} sources")
    loaded = [load(part, size, limit=per_part, seed=seed) for part in parts]
    for part, tensor in zip(parts, loaded):
        if len(tensor) < per_part:
            raise DataError(f"{part} holds {len(tensor)} images; the mix needs {per_part} of each source "
                            f"(ask for --images {len(tensor) * len(parts)} or fewer)")
    groups = torch.cat([torch.full((per_part,), g, dtype=torch.long) for g in range(len(parts))])
    return Mixed(torch.cat([t[:per_part] for t in loaded]), groups, parts)


def epoch_steps(n: int, batch: int, groups: torch.Tensor | None = None) -> int:
    """Steps in one epoch: full batches only (a ragged last batch is dropped), each part's share whole."""
    if groups is None:
        return n // batch
    counts = torch.bincount(groups)
    k = len(counts)
    if batch % k:
        raise ValueError(f"a batch of {batch} does not split into {k} equal shares, one per mixed source; "
                         f"give a --batch-size that is a multiple of {k}")
    return min(n // batch, int(counts.min()) // (batch // k))


def epoch_order(n: int, batch: int, gen: torch.Generator, groups: torch.Tensor | None = None) -> torch.Tensor:
    """This epoch's image order: steps * batch indices, batch after batch (then any unused images).

    Without groups it is torch.randperm(n), as ssl.train always drew it (same seed, same order).
    """
    if groups is None:
        return torch.randperm(n, generator=gen)
    if len(groups) != n:
        raise ValueError(f"{len(groups)} group labels for {n} images")
    steps = epoch_steps(n, batch, groups)
    k = int(groups.max()) + 1
    share = batch // k
    members = [torch.nonzero(groups == g).flatten() for g in range(k)]
    shuffled = [m[torch.randperm(len(m), generator=gen)] for m in members]
    used = torch.empty(steps, share, k, dtype=torch.long)
    for g, order in enumerate(shuffled):
        used[:, :, g] = order[: steps * share].view(steps, share)
    rest = torch.cat([order[steps * share:] for order in shuffled])
    return torch.cat([used.flatten(), rest])
