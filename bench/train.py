"""Training throughput of the small backbone on this machine, and the augmentations' share of a step.

    .venv/bin/python bench/train.py            # prints the figures, writes bench/results/train.json
    .venv/bin/python bench/train.py --steps 20 --size 64

For each thread count (1 and 2) it times full MoCo-v2 and SimCLR steps (two augmented views, forward,
backward, SGD, momentum update, enqueue) on resnet18 width 16, and the augmentation of both views alone,
all in one run so the ratios compare like with like. The load average is recorded: on a shared machine
the numbers move with everyone else's work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from drawloop.vision.augment import augment
from drawloop.vision.backbone import BackboneConfig
from drawloop.vision.contrastive import build_model
from drawloop.vision.procedural import generate
from drawloop.vision.ssl import TrainConfig


def time_steps(method: str, images: torch.Tensor, steps: int, batch: int) -> tuple[float, float]:
    """Median seconds per full training step and per augmentation of its two views."""
    config = TrainConfig(method=method, batch_size=batch, backbone=BackboneConfig("resnet18", 16))
    torch.manual_seed(0)
    model = build_model(config, n_images=len(images)).train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.03, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    step_s, aug_s = [], []
    for i in range(steps + 2):  # two warm-up steps
        x = images[(i * batch) % len(images):][:batch].float().div(255)
        t0 = time.perf_counter()
        a, b = augment(x, config.augment, gen), augment(x, config.augment, gen)
        t1 = time.perf_counter()
        loss, _ = model(a, b, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        t2 = time.perf_counter()
        if i >= 2:
            step_s.append(t2 - t0)
            aug_s.append(t1 - t0)
    return statistics.median(step_s), statistics.median(aug_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()

    images = generate("shapes", 2 * args.batch, args.size, seed=0)
    results = {"backbone": "resnet18 width 16", "size": args.size, "batch": args.batch, "steps": args.steps,
               "cpu_count": os.cpu_count(), "load_average_before": os.getloadavg()[0], "runs": []}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for method in ("moco", "simclr"):
            step, aug = time_steps(method, images, args.steps, args.batch)
            row = {"threads": threads, "method": method, "images_per_s": round(args.batch / step, 1),
                   "step_s": round(step, 4), "augment_s": round(aug, 4), "augment_share": round(aug / step, 3)}
            results["runs"].append(row)
            print(f"{threads} thread(s) {method:6s}: {row['images_per_s']:7.1f} img/s, "
                  f"step {1000 * step:6.0f} ms, augmentation {100 * row['augment_share']:4.1f}% of the step")
    results["load_average_after"] = os.getloadavg()[0]
    print(f"load average {results['load_average_before']:.1f} -> {results['load_average_after']:.1f} "
          f"on {os.cpu_count()} cores")
    out = Path(__file__).parent / "results" / "train.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
