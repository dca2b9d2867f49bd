"""Self-supervised training: MoCo-v2 (momentum encoder + queue) and SimCLR (NT-Xent), in plain torch.

    from drawloop.vision.ssl import TrainConfig, train
    images = load_source("procedural:deadleaves", size=32, limit=5000)     # uint8 (N, 3, 32, 32)
    result = train(images, TrainConfig(method="moco", epochs=20, seed=0), out_dir="runs/dl")
    result.model_path        # runs/dl/model.pt: the backbone, ready for `drawloop probe`

Every epoch writes `out_dir/checkpoint.pt` (model, key encoder, queue, optimizer, RNG states, losses);
calling `train` again with the same settings resumes from it and continues bit-identically, so a killed
run loses at most one epoch. All randomness (init, batch order, augmentations, shuffled-BN splits) comes
from the seed. Runs on CUDA when present, else CPU (`device`: auto, cpu, cuda, cuda:N).

On CUDA the step runs in mixed precision (torch.autocast float16 + GradScaler; `precision="fp32"` turns it
off); on CPU autocast is present but disabled, so the same code path runs in float32 and a CPU run is
bit-identical to one without AMP. Images come from an in-memory uint8 tensor or from FileImages decoded
by DataLoader workers (pinned, persistent, prefetching): see loader.py. `groups` (mixed.py) makes every
batch take equal shares of several sources.

The models themselves (MoCo's queue with image ids, shuffle BN; SimCLR's NT-Xent) are in
contrastive.py; this module is the training around them.

Under torch.distributed (`drawloop train --nproc N`, or torchrun) the same function trains with DDP: the
global batch stays `batch_size`, split across ranks; MoCo shuffles keys across ranks and enqueues every
rank's keys, SimCLR's negatives are all ranks' views; rank 0 alone writes checkpoints, model and report.
See drawloop/vision/distributed.py for what matches one process and what does not.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from drawloop.vision import distributed
from drawloop.vision.augment import AugmentConfig, augment
from drawloop.vision.backbone import BackboneConfig, save_backbone
from drawloop.vision.contrastive import build_model
from drawloop.vision.loader import Feeder, FileImages, LoaderConfig
from drawloop.vision.mixed import epoch_order, epoch_steps

METHODS = ("moco", "simclr")
PRECISIONS = ("auto", "amp", "fp32")   # auto: AMP (float16 autocast + GradScaler) on CUDA, float32 on CPU


@dataclass
class TrainConfig:
    method: str = "moco"
    epochs: int = 20
    batch_size: int = 256
    lr: float = 0.06  # SGD with momentum 0.9, cosine decay per step (MoCo's CIFAR demo: 0.06)
    weight_decay: float = 5e-4
    temperature: float | None = None  # None: 0.1 for MoCo-v2 (CIFAR demo), 0.2 for SimCLR
    queue_size: int = 4096  # capped at half the dataset: keys from many epochs ago are stale
    key_momentum: float = 0.99
    proj_dim: int = 128
    bn_splits: int = 4
    seed: int = 0
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if isinstance(self.backbone, dict):
            self.backbone = BackboneConfig(**self.backbone)
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v
                                            for k, v in self.augment.items()})
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError("need epochs >= 1 and batch_size >= 2")
        if self.temperature is None:
            self.temperature = 0.1 if self.method == "moco" else 0.2

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    model_path: Path
    epochs: int
    images: int
    wall_s: float
    images_per_s: float
    epoch_losses: list[float]
    step_losses: list[float]
    epoch_accuracies: list[float]  # how often the positive beats every negative: the pretext task's score


def pick_device(preference: str = "auto") -> torch.device:
    """auto: CUDA when torch sees a GPU, else CPU; cpu; cuda or cuda:N (a clear error without CUDA)."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        why = "this torch is a CPU-only build" if torch.version.cuda is None else "no GPU is visible"
        raise ValueError(f"CUDA was asked for but torch sees no GPU ({why}); use --device auto or cpu")
    try:
        dev = torch.device(preference)
    except RuntimeError:
        raise ValueError(f"unknown device {preference!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"{preference} asked for, but torch sees {torch.cuda.device_count()} GPUs")
    return dev


def use_amp(precision: str, dev: torch.device) -> bool:
    """Whether the step runs under float16 autocast with a GradScaler: on CUDA unless fp32 is asked for."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "amp" and dev.type != "cuda":
        raise ValueError(f"mixed precision (amp) needs CUDA, and this run is on {dev}; use --precision auto")
    return precision != "fp32" and dev.type == "cuda"


def train(
    images: torch.Tensor,
    config: TrainConfig,
    out_dir: str | Path,
    device: str = "auto",
    progress: bool = True,
    stop_after_epoch: int | None = None,
    info: dict | None = None,
    groups: torch.Tensor | None = None,
    precision: str = "auto",
    loader: LoaderConfig | None = None,
) -> TrainResult:
    """Train on uint8 images (N, 3, H, W) or FileImages; resume from out_dir/checkpoint.pt when its
    settings match.

    Writes out_dir/model.pt (the backbone) and out_dir/train.json (settings, `info` such as the data
    source, image count, wall time, loss curves). `stop_after_epoch` ends the run early, after that
    epoch's checkpoint, as a kill would: for tests. `groups` (int per image, mixed.py): every batch takes
    batch / k images of each of the k groups. `precision`: auto | amp | fp32 (see use_amp). `loader`:
    DataLoader workers, pinning, GPU residency (loader.py).

    Inside an initialised process group every rank calls this with the same arguments; `batch_size` is the
    global batch and each rank trains on its share (DDP). Rank 0 writes the files and shows progress.
    """
    _check_images(images)
    w = distributed.world()
    out = Path(out_dir)
    if w.main:
        out.mkdir(parents=True, exist_ok=True)
    dev = distributed.rank_device(pick_device(device), w)
    amp = use_amp(precision, dev)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels once
    n = images.shape[0]
    batch = min(config.batch_size, n)
    share = distributed.local_batch(batch, w.size)  # this rank's rows of every global batch
    steps_per_epoch = epoch_steps(n, batch, groups)  # drop the ragged last batch: BN on a handful is noise
    total_steps = steps_per_epoch * config.epochs

    torch.manual_seed(config.seed)
    model = build_model(config, n).to(dev)
    if w.size > 1 and dev.type == "cuda" and config.method == "simclr":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # SimCLR's global BN (torch's is GPU-only)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    # disabled: scale() and step() are plain pass-throughs
    scaler = torch.amp.GradScaler(dev.type, enabled=amp)
    gen = torch.Generator().manual_seed(config.seed)
    state = {"epoch": 0, "step": 0, "epoch_losses": [], "epoch_accuracies": [], "step_losses": [],
             "wall_s": 0.0}

    ckpt_path = out / "checkpoint.pt"
    fingerprint = data_fingerprint(images, groups)
    if distributed.all_agree(ckpt_path.exists()):
        state = _resume(ckpt_path, config, fingerprint, model, optimizer, gen, scaler)
    net = model
    if w.size > 1:  # after resuming: DDP starts from rank 0's weights; the queue is kept equal by enqueue
        net = distributed.wrap(model, dev)

    bar = _Bar(progress and w.main, total_steps, state["step"])
    started = time.perf_counter() - state["wall_s"]
    net.train()
    rows = slice(w.rank * share, (w.rank + 1) * share)
    feeder = Feeder(images, dev, loader)
    with bar:
        for epoch in range(state["epoch"], config.epochs):
            order = epoch_order(n, batch, gen, groups)  # the same on every rank: one seed
            epoch_loss = epoch_accuracy = 0.0
            t0 = time.perf_counter()
            rank_batches = [order[i * batch : (i + 1) * batch][rows] for i in range(steps_per_epoch)]
            for ids, pixels in feeder.epoch(rank_batches):
                x = pixels.float().div_(255)
                part = None if w.size == 1 else (rows.start, batch)
                view_a, view_b = augment(x, config.augment, gen, part), augment(x, config.augment, gen, part)
                for group in optimizer.param_groups:
                    group["lr"] = cosine_lr(config.lr, state["step"], total_steps)
                with torch.autocast(dev.type, dtype=torch.float16, enabled=amp):
                    loss, accuracy = net(view_a, view_b, gen, ids)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                loss_value, accuracy_value = distributed.mean_over_ranks(loss, accuracy)  # one sync per step
                state["step"] += 1
                state["step_losses"].append(loss_value)
                epoch_loss += loss_value
                epoch_accuracy += accuracy_value
                bar.advance(epoch + 1, loss_value, accuracy_value, batch / (time.perf_counter() - t0))
                t0 = time.perf_counter()  # images/s counts the wait for data too
            state["epoch"] = epoch + 1
            state["epoch_losses"].append(epoch_loss / steps_per_epoch)
            state["epoch_accuracies"].append(epoch_accuracy / steps_per_epoch)
            state["wall_s"] = time.perf_counter() - started
            if w.main:
                _save_checkpoint(ckpt_path, config, fingerprint, model, optimizer, gen, state, scaler)
            if stop_after_epoch is not None and state["epoch"] >= stop_after_epoch:
                break

    wall = state["wall_s"]
    model_path = out / "model.pt"
    result = TrainResult(model_path, state["epoch"], n, wall,
                         state["step"] * batch / wall if wall else 0.0, state["epoch_losses"],
                         state["step_losses"], state["epoch_accuracies"])
    meta = {**(info or {}), "settings": config.to_dict(), "epochs_done": result.epochs,
            "images": result.images, "size": images.shape[-1], "batch_size": batch, "device": str(dev),
            "wall_s": round(wall, 2),
            "images_per_s": round(result.images_per_s, 1), "epoch_losses": result.epoch_losses,
            "epoch_accuracies": result.epoch_accuracies, "world_size": w.size, "amp": amp,
            "precision": "float16 autocast + GradScaler" if amp else "float32"}
    if groups is not None:
        meta["mix"] = {"parts": int(groups.max()) + 1, "per_batch": batch // (int(groups.max()) + 1),
                       "steps_per_epoch": steps_per_epoch}
    if config.method == "moco":
        meta["queue_size"] = model.queue.shape[0]
    if w.main:
        save_backbone(model_path, model.encoder.backbone, meta)
        (out / "train.json").write_text(json.dumps({**meta, "step_losses": result.step_losses}, indent=1))
    distributed.barrier()  # every rank returns once rank 0's files are written
    return result


def cosine_lr(base: float, step: int, total: int) -> float:
    return base * 0.5 * (1 + math.cos(math.pi * step / max(1, total)))


def data_fingerprint(images, groups: torch.Tensor | None = None) -> str:
    """Cheap identity of a dataset (count, size, a weighted pixel sum; FileImages: paths and size; a mix's
    groups), to refuse resuming on other data."""
    if isinstance(images, FileImages):
        text = images.fingerprint()
    else:
        weights = torch.arange(1, images.shape[0] + 1, dtype=torch.float64)
        total = (images.flatten(1).double().mean(dim=1) * weights).sum().item()
        text = f"{tuple(images.shape)}:{total:.6f}"
    if groups is not None:
        text += f":mix{torch.bincount(groups).tolist()}:{int((groups * torch.arange(len(groups))).sum())}"
    return text


def _save_checkpoint(path, config, fingerprint, model, optimizer, gen, state, scaler=None) -> None:
    blob = {
        "config": config.to_dict(), "data": fingerprint, "model": model.state_dict(),
        "optimizer": optimizer.state_dict(), "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None, **state,
    }
    if scaler is not None and scaler.is_enabled():
        blob["scaler"] = scaler.state_dict()
    tmp = path.with_suffix(".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)  # atomic: a kill mid-write leaves the previous checkpoint intact


def _resume(path, config, fingerprint, model, optimizer, gen, scaler=None) -> dict:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    saved = dict(blob["config"], epochs=config.epochs)  # more epochs may be asked for on resume
    if saved != dict(config.to_dict(), epochs=config.epochs):
        raise ValueError(f"{path} was made with other settings; use a fresh --out or delete it")
    if blob["data"] != fingerprint:
        raise ValueError(f"{path} was made from other images; use a fresh --out or delete it")
    model.load_state_dict(blob["model"])
    optimizer.load_state_dict(blob["optimizer"])
    gen.set_state(blob["generator"])
    if scaler is not None and scaler.is_enabled() and blob.get("scaler"):
        scaler.load_state_dict(blob["scaler"])
    torch.set_rng_state(blob["torch_rng"])
    if blob["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(blob["cuda_rng"])
    return {k: blob[k] for k in ("epoch", "step", "epoch_losses", "epoch_accuracies", "step_losses",
                                 "wall_s")}


def _check_images(images) -> None:
    if isinstance(images, FileImages):
        if len(images) < 2:
            raise ValueError("need at least 2 images to train")
        return
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected uint8 images (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    if images.shape[0] < 2:
        raise ValueError("need at least 2 images to train")


class _Bar:
    """A rich progress bar showing epoch, loss, instance-discrimination accuracy and images/s (or nothing)."""

    def __init__(self, enabled: bool, total: int, done: int):
        self.progress = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.3f}  acc {task.fields[acc]:.2f}  "
                           "{task.fields[ips]:.0f} img/s"),
                TimeRemainingColumn(),
            )
            self.task = self.progress.add_task("train", total=total, completed=done, epoch=0, loss=0.0,
                                               acc=0.0, ips=0.0)

    def __enter__(self):
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress:
            self.progress.stop()

    def advance(self, epoch: int, loss: float, acc: float, ips: float) -> None:
        if self.progress:
            self.progress.update(self.task, advance=1, epoch=epoch, loss=loss, acc=acc, ips=ips)

