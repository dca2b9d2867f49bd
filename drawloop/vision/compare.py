"""Equal-budget comparison: train one backbone per (source, seed), probe each on real photos, tabulate.

    from drawloop.vision.compare import CompareConfig, run_comparison
    cfg = CompareConfig(sources=["data/llm", "procedural:deadleaves", "procedural:spectral"],
                        images=2000, epochs=5, seeds=[0, 1])
    rows = run_comparison(cfg, "runs/compare")   # writes compare.md, compare.png, compare.json

Every source gets the same number of images (the smallest folder caps the budget), size, epochs, method
and backbone. Two reference rows need no training: "random init" (the same backbone untrained, one per
seed) and "pixels" (raw pixels). Finished runs are reused, so a killed comparison picks up where it was.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from drawloop.vision.backbone import BackboneConfig, build_backbone, load_backbone
from drawloop.vision.data import PROCEDURAL_PREFIX, list_images, load_source, save_grid
from drawloop.vision.probe import ProbeSet, probe
from drawloop.vision.ssl import TrainConfig, train

RANDOM, PIXELS = "random init", "pixels"


@dataclass
class CompareConfig:
    sources: list[str]
    images: int = 2000
    epochs: int = 5
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    size: int = 32
    method: str = "moco"
    batch_size: int = 64
    lr: float = 0.06
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    probe_train: int | None = 5000
    probe_test: int | None = 5000
    data_seed: int = 0  # which images: fixed across training seeds, so seeds measure training variance


def run_comparison(config: CompareConfig, out_dir: str | Path, progress: bool = True, log=print,
                   probe_set: ProbeSet | None = None) -> list[dict]:
    """Train, probe and tabulate; `probe_set` replaces Fashion-MNIST (tests use a synthetic one)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    budget = equal_budget(config.sources, config.images)
    if budget < config.images:
        log(f"budget capped at {budget} images: the smallest folder has no more")
    probe_set = probe_set or ProbeSet.load(config.size, config.probe_train, config.probe_test, seed=0)
    runs = []
    for source in config.sources:
        images = load_source(source, config.size, limit=budget, seed=config.data_seed)
        save_grid(images[:64], out / "samples" / f"{slug(source)}.png")
        for seed in config.seeds:
            runs.append(_train_and_probe(source, seed, images, config, probe_set, out, progress, log))
    for seed in config.seeds:
        torch.manual_seed(seed)
        runs.append(_reference_row(RANDOM, seed, build_backbone(config.backbone), probe_set, log))
    runs.append(_reference_row(PIXELS, None, None, probe_set, log))
    rows = summarise(runs)
    wall = time.perf_counter() - started  # this invocation only: reused runs cost nothing here
    (out / "compare.json").write_text(json.dumps({"config": _config_dict(config, budget), "wall_s": wall,
                                                  "runs": runs, "rows": rows}, indent=1))
    (out / "compare.md").write_text(markdown_table(rows, config, budget, probe_set, wall))
    probed = probe_set.describe()
    plot(rows, out / "compare.png",
         f"{config.method}, {budget} images x {config.epochs} epochs, {config.size} px, {config.backbone.arch} "
         f"width {config.backbone.width}, seeds {','.join(map(str, config.seeds))}; probe: {probed['train']} "
         f"train / {probed['test']} test Fashion-MNIST")
    return rows


def equal_budget(sources: list[str], images: int) -> int:
    """The image count every source gets: the request, or fewer when a folder holds fewer."""
    counts = [len(list_images(s)) for s in sources if not s.startswith(PROCEDURAL_PREFIX)]
    return min([images, *counts])


def slug(source: str) -> str:
    if source.startswith(PROCEDURAL_PREFIX):
        return source[len(PROCEDURAL_PREFIX):]
    return Path(source).resolve().name or "data"


def _train_and_probe(source, seed, images, config, probe_set, out, progress, log) -> dict:
    run_dir = out / "runs" / f"{slug(source)}-seed{seed}"
    done = run_dir / "probe.json"
    if done.exists():
        log(f"{source} seed {seed}: reusing {done}")
        return json.loads(done.read_text())
    log(f"{source} seed {seed}: training on {len(images)} images")
    train_cfg = TrainConfig(method=config.method, epochs=config.epochs, batch_size=config.batch_size,
                            lr=config.lr, seed=seed, backbone=config.backbone)
    result = train(images, train_cfg, run_dir, progress=progress, info={"source": source})
    backbone, _ = load_backbone(result.model_path)
    started = time.perf_counter()
    accuracy = probe(backbone, probe_set)
    row = {"source": source, "seed": seed, "images": result.images, "epochs": result.epochs,
           "train_s": round(result.wall_s, 1), "probe_s": round(time.perf_counter() - started, 1),
           "final_loss": result.epoch_losses[-1], **accuracy}
    log(f"  linear {row['linear']:.4f}  knn {row['knn']:.4f}  ({row['train_s']:.0f} s training)")
    done.write_text(json.dumps(row, indent=1))
    return row


def _reference_row(name, seed, backbone, probe_set, log) -> dict:
    accuracy = probe(backbone, probe_set)
    log(f"{name}{'' if seed is None else f' seed {seed}'}: linear {accuracy['linear']:.4f}  knn {accuracy['knn']:.4f}")
    return {"source": name, "seed": seed, "images": 0, "epochs": 0, "train_s": 0.0, **accuracy}


def summarise(runs: list[dict]) -> list[dict]:
    """One row per source: mean and sample standard deviation of each accuracy over its seeds."""
    rows = []
    for source in dict.fromkeys(r["source"] for r in runs):
        group = [r for r in runs if r["source"] == source]
        row = {"source": source, "seeds": len(group), "images": group[0]["images"],
               "epochs": group[0]["epochs"], "train_s": statistics.mean(r["train_s"] for r in group)}
        for metric in ("linear", "knn"):
            values = [r[metric] for r in group]
            row[metric] = statistics.mean(values)
            row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
            row[f"{metric}_runs"] = values
        rows.append(row)
    return rows


def markdown_table(rows: list[dict], config: CompareConfig, budget: int, probe_set: ProbeSet,
                   wall_s: float | None = None) -> str:
    p = probe_set.describe()
    lines = [
        "# Equal-budget comparison: self-supervised training, judged on real photos",
        "",
        f"Method {config.method}, backbone {config.backbone.arch} width {config.backbone.width}, "
        f"{config.size} px, batch {config.batch_size}, lr {config.lr}; probe: Fashion-MNIST, {p['train']} train / "
        f"{p['test']} test photos (class-balanced subsets of the standard split), frozen features. "
        "Accuracy is mean ± sample std over seeds (individual runs in brackets)."
        + (f" Whole comparison: {wall_s / 60:.1f} min." if wall_s else ""),
        "",
        "| source | images | epochs | train time / run | linear probe | kNN (k=20) |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        time_s = f"{r['train_s'] / 60:.1f} min" if r["train_s"] else "–"
        lines.append(f"| {r['source']} | {r['images'] or '–'} | {r['epochs'] or '–'} | {time_s} | "
                     f"{_cell(r, 'linear')} | {_cell(r, 'knn')} |")
    return "\n".join(lines) + "\n"


def _cell(row: dict, metric: str) -> str:
    runs = ", ".join(f"{100 * v:.1f}" for v in row[f"{metric}_runs"])
    if row["seeds"] == 1:
        return f"{100 * row[metric]:.2f}%"
    return f"{100 * row[metric]:.2f} ± {100 * row[f'{metric}_std']:.2f}% [{runs}]"


def plot(rows: list[dict], path: Path, subtitle: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["source"].removeprefix(PROCEDURAL_PREFIX) for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(rows) + 2), 4.4))
    for offset, metric, colour in ((-0.2, "linear", "#3b6fb6"), (0.2, "knn", "#e08a2c")):
        means = [100 * r[metric] for r in rows]
        stds = [100 * r[f"{metric}_std"] for r in rows]
        bars = ax.bar([i + offset for i in x], means, 0.38, yerr=stds, capsize=3, color=colour,
                      label="linear probe" if metric == "linear" else "kNN (k=20)")
        for bar, r in zip(bars, rows):
            if r["source"] in (RANDOM, PIXELS):  # references, not trained sources: hatched and paler
                bar.set_alpha(0.55)
                bar.set_hatch("//")
        for i, r in enumerate(rows):  # each seed as a dot, so two seeds are never hidden in one bar
            ax.scatter([i + offset] * len(r[f"{metric}_runs"]), [100 * v for v in r[f"{metric}_runs"]],
                       s=10, color="black", zorder=3)
        for i, m in enumerate(means):
            ax.text(i + offset, m + stds[i] + 0.15, f"{m:.1f}", ha="center", va="bottom", fontsize=7)
    values = [100 * v for r in rows for m in ("linear", "knn") for v in r[f"{m}_runs"]]
    ax.set_ylim(max(0, min(values) - 5), min(100, max(values) + 3))  # zoomed: the gaps are a few points
    ax.set_xticks(list(x), names, rotation=15)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Self-supervised on synthetic images, judged on real photos (Fashion-MNIST)", fontsize=10)
    fig.text(0.5, 0.005, subtitle + "\ny axis zoomed (does not start at 0); hatched = references, "
             "not trained; dots = single seeds, bars = mean ± sample std", ha="center", fontsize=7, color="#444")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _config_dict(config: CompareConfig, budget: int) -> dict:
    return {**asdict(config), "budget": budget}
