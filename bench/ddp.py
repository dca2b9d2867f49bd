"""DDP on CPU: MoCo-v2 training throughput of 2 gloo processes against 1 process, same global batch.

    .venv/bin/python bench/ddp.py                      # prints the figure, writes bench/results/ddp.json
    .venv/bin/python bench/ddp.py --single-threads 2   # the one process may use both cores instead

Each run is a real `train` (resnet18 width 16, 32 px, the global batch split across the processes, one
checkpoint at the end of the epoch): A is one process, B is `train_in_processes(nproc=2)` with one torch
thread each. Images/s is steps x global batch / train's own wall time, which starts after the processes
are up and the model is built (process start-up and the rendezvous are reported apart, as
start-up seconds). Runs go in ABBA order, repeated, so a drift in machine speed (other people's jobs on a
shared machine) falls on both sides alike; one untimed A run warms up first. The load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from drawloop.vision.backbone import BackboneConfig
from drawloop.vision.distributed import train_in_processes
from drawloop.vision.procedural import generate
from drawloop.vision.ssl import TrainConfig, train


def run(arm: str, images: torch.Tensor, config: TrainConfig, single_threads: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as out:
        t0 = time.perf_counter()
        if arm == "A":
            torch.set_num_threads(single_threads)
            result = train(images, config, out, progress=False)
        else:
            result = train_in_processes(images, config, out, nproc=2, threads=1, progress=False)
        total = time.perf_counter() - t0
    return {"arm": arm, "images_per_s": round(result.images_per_s, 1), "train_s": round(result.wall_s, 2),
            "startup_s": round(total - result.wall_s, 2), "final_loss": result.epoch_losses[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=768)
    parser.add_argument("--batch", type=int, default=64, help="global batch (each of 2 processes takes half)")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="ABBA blocks")
    parser.add_argument("--single-threads", type=int, default=1,
                        help="torch threads of the one process (1: the same per-process budget as B)")
    args = parser.parse_args()

    images = generate("shapes", args.images, args.size, seed=0)
    config = TrainConfig(method="moco", epochs=1, batch_size=args.batch, backbone=BackboneConfig("resnet18", 16))
    steps = args.images // args.batch
    results = {"backbone": "resnet18 width 16", "method": "moco", "size": args.size, "images": args.images,
               "batch": args.batch, "steps": steps, "single_threads": args.single_threads,
               "ddp": "2 processes x 1 thread, gloo", "cpu_count": os.cpu_count(),
               "load_average_before": os.getloadavg()[0], "runs": []}
    print(f"warm-up: one process, {steps} steps ...")
    run("A", images, config, args.single_threads)
    for block in range(args.rounds):
        for arm in ("A", "B", "B", "A"):
            row = run(arm, images, config, args.single_threads)
            results["runs"].append(row)
            label = f"1 process x {args.single_threads} thread(s)" if arm == "A" else "2 processes x 1 thread "
            print(f"block {block + 1} {arm}: {label}  {row['images_per_s']:7.1f} img/s  "
                  f"(train {row['train_s']:.1f} s, start-up {row['startup_s']:.1f} s)")
    one = statistics.median(r["images_per_s"] for r in results["runs"] if r["arm"] == "A")
    two = statistics.median(r["images_per_s"] for r in results["runs"] if r["arm"] == "B")
    # The same blocks paired: each block's B over A, to see the spread a busy machine adds.
    block_ratios = []
    for i in range(0, len(results["runs"]), 4):
        a = [r["images_per_s"] for r in results["runs"][i : i + 4] if r["arm"] == "A"]
        b = [r["images_per_s"] for r in results["runs"][i : i + 4] if r["arm"] == "B"]
        block_ratios.append(round(statistics.mean(b) / statistics.mean(a), 3))
    results.update(one_process_images_per_s=one, two_processes_images_per_s=two, ratio=round(two / one, 3),
                   block_ratios=block_ratios, load_average_after=os.getloadavg()[0])
    print(f"DDP 2 processes: {two:.1f} img/s, 1 process ({args.single_threads} thread(s)): {one:.1f} img/s, "
          f"ratio {two / one:.2f} (per ABBA block: {', '.join(f'{r:.2f}' for r in block_ratios)})")
    print(f"load average {results['load_average_before']:.1f} -> {results['load_average_after']:.1f} "
          f"on {os.cpu_count()} cores")
    out = Path(__file__).parent / "results" / "ddp.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
