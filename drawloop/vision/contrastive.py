"""The contrastive models: MoCo-v2 (momentum encoder + queue of old keys) and SimCLR (NT-Xent).

    from drawloop.vision.contrastive import build_model
    model = build_model(TrainConfig(method="moco"), n_images=5000)   # MoCo, or SimCLR for "simclr"
    loss, accuracy = model(view_q, view_k, generator, ids)           # one step's loss; MoCo enqueues

ssl.py trains them (optimiser, schedule, AMP, checkpoints, DDP); this module is only what a step
computes, in the style of facebookresearch/moco's builder.py.

On a small dataset a queue soon holds an older key of the very image being queried, a false negative
that grows more damaging as the encoder learns invariance (we measured the pretext accuracy climb, then
fall). So the queue also remembers which image each key came from, and those entries are masked.

MoCo without several GPUs needs "shuffle BN" emulated: batch-norm statistics over a whole batch let the
query find its key through the batch, not the image. As in the official MoCo CIFAR demo, we run the
encoders on `bn_splits` chunks (keys in a shuffled order), so each chunk has its own statistics. Under
torch.distributed MoCo shuffles keys across ranks and enqueues every rank's keys; SimCLR's negatives
are all ranks' views.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from drawloop.vision import distributed
from drawloop.vision.backbone import BackboneConfig, build_backbone

if TYPE_CHECKING:
    from drawloop.vision.ssl import TrainConfig


class MoCo(nn.Module):
    """MoCo-v2: queries from `encoder`, keys from its slow-moving copy, negatives from a queue of old keys."""

    def __init__(self, config: TrainConfig, queue_size: int):
        super().__init__()
        self.encoder = Encoder(config.backbone, config.proj_dim)
        self.key_encoder = copy.deepcopy(self.encoder)
        for p in self.key_encoder.parameters():
            p.requires_grad = False
        self.m, self.t, self.splits = config.key_momentum, config.temperature, config.bn_splits
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, config.proj_dim), dim=1))
        self.register_buffer("queue_ids", torch.full((queue_size,), -1, dtype=torch.long))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def momentum_update(self) -> None:
        for q, k in zip(self.encoder.parameters(), self.key_encoder.parameters()):
            k.mul_(self.m).add_(q.detach(), alpha=1 - self.m)
        for q, k in zip(self.encoder.buffers(), self.key_encoder.buffers()):
            k.copy_(q)  # BN running stats: not learned, just follow the query encoder

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, ids: torch.Tensor | None = None) -> None:
        """Overwrite the oldest keys (a ring buffer), wrapping around the end; `ids` name their images."""
        n, size = keys.shape[0], self.queue.shape[0]
        idx = (self.queue_ptr + torch.arange(n, device=keys.device)) % size
        self.queue[idx] = keys
        self.queue_ids[idx] = -1 if ids is None else ids.to(keys.device)
        self.queue_ptr.copy_((self.queue_ptr + n) % size)

    def forward(self, view_q: torch.Tensor, view_k: torch.Tensor, gen: torch.Generator,
                ids: torch.Tensor | None = None):
        ranks = distributed.world().size
        splits = self.splits if ranks == 1 else max(1, self.splits // ranks)  # the global batch's BN groups
        q = _split_forward(self.encoder, view_q, splits)
        if ids is not None:
            ids = ids.to(q.device)
        with torch.no_grad():
            self.momentum_update()
            if ranks == 1:
                order = torch.randperm(view_k.shape[0], generator=gen).to(view_k.device)
                k = torch.empty_like(q)
                k[order] = _split_forward(self.key_encoder, view_k[order], splits)
                all_k, all_ids = k, ids
            else:
                k, all_k, all_ids = self._keys_across_ranks(view_k, gen, ids, splits)
        positive = (q * k).sum(dim=1, keepdim=True)
        negative = q @ self.queue.clone().T
        if ids is not None:  # an older key of the same image is not a negative
            negative = negative.masked_fill(ids[:, None] == self.queue_ids[None, :], float("-inf"))
        logits = torch.cat([positive, negative], dim=1) / self.t
        target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)  # the key sits in column 0
        loss = F.cross_entropy(logits, target)
        accuracy = (logits.argmax(dim=1) == 0).float().mean()
        self.enqueue(all_k, all_ids)  # every rank enqueues the whole global batch: the queues stay equal
        return loss, accuracy

    @torch.no_grad()
    def _keys_across_ranks(self, view_k: torch.Tensor, gen: torch.Generator, ids: torch.Tensor | None,
                           splits: int):
        """Shuffle BN across ranks (facebookresearch/moco's batch_shuffle_ddp, with the seeded generator).

        The key views of all ranks are gathered and permuted by one permutation that every rank draws
        alike; each rank encodes its slice of the shuffled batch, the keys are gathered back and unshuffled.
        Returns this rank's keys, the global batch's keys and their image ids, in rank order.
        """
        views = distributed.concat_all_gather(view_k)
        order = torch.randperm(views.shape[0], generator=gen).to(view_k.device)
        b, rank = view_k.shape[0], distributed.world().rank
        shuffled = distributed.concat_all_gather(
            _split_forward(self.key_encoder, views[order[rank * b : (rank + 1) * b]], splits))
        all_k = torch.empty_like(shuffled)
        all_k[order] = shuffled
        all_ids = None if ids is None else distributed.concat_all_gather(ids)
        return all_k[rank * b : (rank + 1) * b], all_k, all_ids


class SimCLR(nn.Module):
    """SimCLR: each view's positive is the other view of its image; the other 2B - 2 views are negatives."""

    def __init__(self, config: TrainConfig):
        super().__init__()
        self.encoder = Encoder(config.backbone, config.proj_dim)
        self.t = config.temperature

    def forward(self, view_a: torch.Tensor, view_b: torch.Tensor, gen: torch.Generator,
                ids: torch.Tensor | None = None):
        z = self.encoder(torch.cat([view_a, view_b]))
        w = distributed.world()
        if w.size == 1:
            return nt_xent(z, self.t)
        # Gather every rank's views (gradient flowing back to ours) into one process's layout, rows i and
        # i + B the two views of image i; this rank's loss is over its own rows, against all 2B.
        b, d = view_a.shape[0], z.shape[1]
        z = distributed.all_gather_with_grad(z).view(w.size, 2, b, d).transpose(0, 1).reshape(-1, d)
        mine = torch.arange(w.rank * b, (w.rank + 1) * b)
        return nt_xent(z, self.t, rows=torch.cat([mine, mine + w.size * b]))


class Encoder(nn.Module):
    """Backbone plus the MoCo-v2 / SimCLR projection MLP; the loss sees the projection, the probe the
    trunk."""

    def __init__(self, backbone: BackboneConfig, proj_dim: int):
        super().__init__()
        self.backbone = build_backbone(backbone)
        d = self.backbone.feature_dim
        self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, proj_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.backbone(x)), dim=1)


def nt_xent(z: torch.Tensor, temperature: float, rows: torch.Tensor | None = None):
    """NT-Xent over 2B normalised projections, where rows i and i + B are two views of one image.

    `rows`: only these rows are queries (a DDP rank's own), still against all 2B views.
    """
    n = z.shape[0] // 2
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    if rows is None:
        sim = z @ z.T / temperature
        sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    else:
        rows = rows.to(z.device)
        sim = z[rows] @ z.T / temperature
        sim = sim.masked_fill(rows[:, None] == torch.arange(2 * n, device=z.device)[None, :], float("-inf"))
        target = target[rows]
    loss = F.cross_entropy(sim, target)
    accuracy = (sim.argmax(dim=1) == target).float().mean()
    return loss, accuracy


def build_model(config: TrainConfig, n_images: int) -> nn.Module:
    if config.method == "simclr":
        return SimCLR(config)
    return MoCo(config, queue_size=queue_size_for(config, n_images))


def queue_size_for(config: TrainConfig, n_images: int) -> int:
    # Keys of a batch's own images from the previous epoch would sit in the queue as false negatives.
    return max(config.batch_size, min(config.queue_size, n_images // 2))


def _split_forward(encoder: nn.Module, x: torch.Tensor, splits: int) -> torch.Tensor:
    splits = max(1, min(splits, x.shape[0] // 2))  # keep >= 2 images per chunk for batch norm
    return torch.cat([encoder(chunk) for chunk in x.chunk(splits)])
