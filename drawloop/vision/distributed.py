"""Training across processes and GPUs: the process group, the collectives MoCo and SimCLR need, a launcher.

    from drawloop.vision.distributed import train_in_processes
    result = train_in_processes(images, TrainConfig(batch_size=256), "runs/ddp", nproc=2)  # 2 local processes

    drawloop train --data procedural:deadleaves --images 5000 --nproc 2 --out runs/ddp         # the same
    torchrun --standalone --nproc-per-node 4 --no-python drawloop train --data data/llm --out runs/ddp

`train_in_processes` starts `nproc` fresh processes (torch.multiprocessing spawn, a file rendezvous in a
private temp folder, so no port can collide); under torchrun the process group comes from its RANK,
WORLD_SIZE, LOCAL_RANK and MASTER_ADDR/PORT instead. gloo on CPU, nccl on CUDA, one GPU per process
(cuda:LOCAL_RANK).

What stays the same as one process, so runs with any process count compare:
- the global batch is `batch_size`; each of N ranks takes a contiguous 1/N share of it;
- the data order and every augmentation parameter come from the one seeded generator, which every
  rank advances identically (augment(part=...) draws for the whole batch and keeps the rank's rows),
  so a rank's views are the views one process would make for those images;
- DDP averages gradients over ranks, which is the gradient of the global-batch mean loss;
- MoCo's queue receives the keys of the whole global batch (all-gathered) and its shuffled-BN groups
  are the same images as in one process when bn_splits is a multiple of N (each rank runs
  bn_splits / N of them); SimCLR's negatives are all 2B views, all-gathered with their gradient.
What differs: on CPU, SimCLR's batch norm sees each rank's 2B/N views, not all 2B (on CUDA it becomes
SyncBatchNorm, global as in the SimCLR paper; torch's is GPU-only), and BN running statistics (used only
in eval mode, by the probe) are rank 0's.

A plain DistributedSampler is not used: it deals rank r every N-th index, so a rank's images, its
shuffled-BN groups and its augmentation draws would differ from one process's. The loop slices each
epoch's one permutation instead, which reshuffles every epoch as set_epoch would.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def world() -> World:
    """This process's place in the initialised process group; rank 0 of 1 when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    size = dist.get_world_size()
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(size)))
    return World(dist.get_rank(), size, int(os.environ.get("LOCAL_RANK", "0")), local_size)


def launched_by_torchrun() -> bool:
    """True inside a process that torchrun (or any launcher setting RANK/WORLD_SIZE/LOCAL_RANK) started."""
    return all(key in os.environ for key in ENV_KEYS)


def env_world() -> World:
    """The world a launcher described in the environment (before the process group exists)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    return World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")),
                 int(os.environ.get("LOCAL_WORLD_SIZE", str(size))))


def setup(device: str = "auto", init_method: str = "env://") -> torch.device:
    """Join the process group the environment describes; return this rank's device (cuda:LOCAL_RANK on GPU)."""
    from drawloop.vision.ssl import pick_device

    w = env_world()
    dev = rank_device(pick_device(device), w)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", init_method=init_method,
                            rank=w.rank, world_size=w.size)
    return dev


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_device(dev: torch.device, w: World | None = None) -> torch.device:
    """One GPU per process: plain `cuda` becomes cuda:LOCAL_RANK when several processes share a machine."""
    w = w or world()
    if dev.type != "cuda" or w.size == 1:
        return dev
    if dev.index is not None:
        raise ValueError(f"with several processes give --device cuda (each takes cuda:LOCAL_RANK), not {dev}")
    if w.local_size > torch.cuda.device_count():
        raise ValueError(f"{w.local_size} processes on this machine but torch sees {torch.cuda.device_count()} GPUs")
    return torch.device("cuda", w.local_rank)


def local_batch(batch: int, world_size: int) -> int:
    """Each rank's share of the global batch; the global batch must split evenly, at least 2 images a rank."""
    if batch % world_size or batch // world_size < 2:
        raise ValueError(f"a batch of {batch} does not split into equal shares of at least 2 images for "
                         f"{world_size} processes; give a --batch-size that is a multiple of {world_size}")
    return batch // world_size


def wrap(model: torch.nn.Module, dev: torch.device) -> torch.nn.Module:
    """DDP around the whole MoCo / SimCLR module (the key encoder has no gradients, so DDP leaves it alone).

    Buffers are not broadcast every step: the queue is already equal on every rank, and BN running
    statistics do not enter a training step.
    """
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [dev.index] if dev.type == "cuda" else None
    if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters:  # torch >= 2.13's name
        return DDP(model, device_ids=ids, forward_sync_buffers=False)
    return DDP(model, device_ids=ids, broadcast_buffers=False)


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


@torch.no_grad()
def concat_all_gather(x: torch.Tensor) -> torch.Tensor:
    """Every rank's `x` stacked along dim 0 in rank order, with no gradient (facebookresearch/moco's)."""
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient for each part and hands each rank its own.

    Rank r's loss depends on every rank's rows; the all-reduce brings rank s the gradient of all ranks'
    losses with respect to its rows, so after DDP's averaging the step is that of the mean loss. (Taking
    only the local slice of the local gradient, as some GatherLayer copies do, drops the other ranks' terms.)
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.rows = x.shape[0]
        return concat_all_gather(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start : start + ctx.rows]


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Every rank's `x` stacked in rank order; gradients flow back to this rank's part."""
    return _GatherWithGrad.apply(x)


def mean_over_ranks(*values: torch.Tensor) -> list[float]:
    """Scalars averaged over ranks (the global-batch figure when shares are equal), in one device sync."""
    stacked = torch.stack([v.detach().float().reshape(()) for v in values])
    if world().size > 1:
        stacked = stacked.to(_collective_device())
        dist.all_reduce(stacked)
        stacked /= dist.get_world_size()
    return stacked.tolist()


def all_agree(flag: bool) -> bool:
    """Raise unless every rank has the same `flag` (say, whether it sees the checkpoint); return it."""
    if world().size == 1:
        return flag
    t = torch.tensor([float(flag), -float(flag)], device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    if t[0].item() != -t[1].item():
        raise ValueError("some processes see a checkpoint in --out and others do not: every node needs the "
                         "same --out (a shared folder), or delete the checkpoint")
    return flag


def barrier() -> None:
    if world().size > 1:
        dist.barrier()


def launch(fn, nproc: int, args: tuple = (), device: str = "auto", threads: int | None = None) -> None:
    """Run fn(*args) in `nproc` fresh local processes forming one process group, and wait for them.

    `fn` must be importable (a module-level function). A ValueError or FileNotFoundError in any process
    is raised here as a ValueError with its message; anything else as torch's ProcessRaisedException.
    `threads` is torch's thread count in each process (default: this machine's cores shared out).
    """
    import torch.multiprocessing as mp

    threads = threads or max(1, (os.cpu_count() or 1) // nproc)
    scratch = Path(tempfile.mkdtemp(prefix="drawloop-ddp-"))
    try:
        mp.spawn(_worker, args=(nproc, str(scratch), device, threads, fn, args), nprocs=nproc, join=True)
    except (mp.ProcessRaisedException, mp.ProcessExitedException):
        errors = sorted(scratch.glob("error-*.txt"))
        if errors:
            raise ValueError(errors[0].read_text()) from None
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _worker(rank: int, nproc: int, scratch: str, device: str, threads: int, fn, args: tuple) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(nproc), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(nproc))
    torch.set_num_threads(threads)
    try:
        setup(device, init_method=f"file://{scratch}/rendezvous")
        fn(*args)
    except (ValueError, FileNotFoundError) as err:
        Path(scratch, f"error-{rank}.txt").write_text(str(err))
        raise
    finally:
        teardown()


def train_in_processes(images: torch.Tensor, config, out_dir: str | Path, nproc: int, device: str = "auto",
                       threads: int | None = None, progress: bool = True, info: dict | None = None,
                       stop_after_epoch: int | None = None, groups: torch.Tensor | None = None,
                       precision: str = "auto", loader=None):
    """`ssl.train` in `nproc` local processes (DDP); returns rank 0's TrainResult, read from its train.json.

    The images go to the processes through shared memory, not a copy each. `groups`, `precision` and
    `loader` are ssl.train's (a mixed source's parts, AMP, the DataLoader settings).
    """
    from drawloop.vision.ssl import TrainResult

    local_batch(min(config.batch_size, images.shape[0]), nproc)  # fail here, before starting processes
    if isinstance(images, torch.Tensor):
        images.share_memory_()
    launch(_train_rank, nproc, (images, config, str(out_dir), device, progress, info, stop_after_epoch, groups,
                                precision, loader),
           device=device, threads=threads)
    report = json.loads((Path(out_dir) / "train.json").read_text())
    return TrainResult(Path(out_dir) / "model.pt", report["epochs_done"], report["images"], report["wall_s"],
                       report["images_per_s"], report["epoch_losses"], report["step_losses"],
                       report["epoch_accuracies"])


def _train_rank(images, config, out_dir, device, progress, info, stop_after_epoch, groups=None, precision="auto",
                loader=None) -> None:
    from drawloop.vision.ssl import train

    train(images, config, out_dir, device=device, progress=progress, info=info, stop_after_epoch=stop_after_epoch,
          groups=groups, precision=precision, loader=loader)
