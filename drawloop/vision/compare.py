"""Equal-budget comparison: train one backbone per (source, seed), probe each on real photos, tabulate.

    from drawloop.vision.compare import CompareConfig, run_comparison
    cfg = CompareConfig(sources=["procedural:deadleaves", "procedural:shapes", "procedural:spectral"],
                        drawings="data/llm-drawings.jsonl", images=2000, epochs=5, seeds=[0, 1])
    rows = run_comparison(cfg, "runs/compare", report="docs/results")
    # runs/compare: compare.md, compare.png, compare.json, runs/<source>-seed<n>/ (reused when run again)
    # docs/results: vision-from-text.md + vision-from-text.png, the report to commit

    drawloop compare --drawings data/llm-drawings.jsonl --report docs/results/     # the same from the shell
    make vision-from-text                                                         # the same again

Sources: folders, procedural:<kind>, a code-only drawings .jsonl, "llm" (the `drawings` file, rendered
from its code: drawloop/vision/llm_drawings.py) and mixes "A+B" (50/50, exactly half of every batch:
mixed.py). With `drawings`, "llm" joins the sources and `mix="auto"` adds "llm+<best procedural>": once
the procedural sources are trained, the one with the best mean linear-probe accuracy (on the first probe
set) is mixed with the drawings; `mix="deadleaves"` names it up front, `mix="none"` leaves the mix out.

Equal budget: every source gets the same number of images (the smallest folder or drawings file caps it;
a mix of k parts takes budget / k of each, so the budget is rounded down to a multiple of k), the same
resolution, epochs, steps per epoch, batch, method, backbone and augmentations (MoCo-v2's, augment.py),
and the same seeds. Which images a source gives is fixed by `data_seed` across training seeds, so the
seeds measure training variance. Two reference rows need no training: "random init" (the same backbone
untrained, one per seed) and "pixels" (raw pixels). Finished runs are reused, so a killed comparison
picks up where it was; adding a probe set later probes the saved models without training them again.

Probe sets: Fashion-MNIST (Debian dataset-fashion-mnist; `fashion_mnist=False` leaves it out) and any
ImageFolder of real photos (`probe_data`: DIR/<class>/<image>), each a linear probe and a kNN probe.

How long, 2,000 images x 5 epochs on 2 cores (defaults: resnet18 width 16, 32 px, batch 64, MoCo-v2, 1
torch thread; estimated from one epoch of 640 procedural images on this repository's 2-core machine):
training took 3.7 s of CPU per 640 images, so ~57 s a run (9,920 images: 31 steps x 64 x 5 epochs);
probing on 5,000 + 5,000 Fashion-MNIST photos 11 s; generating 2,000 dead-leaves images 11 s. The
default comparison (llm, three procedural sources, the mix: 5 sources x 2 seeds = 10 runs, then 2
random-init probes and pixels) is so about 15 minutes of CPU, plus rendering the drawings once (200 SVGs
in 1.4 s). The machine was shared (load 12-20 on its 2 cores) and the same work took 4x the wall time
(14.7 s per 640 images, 53 s a probe): about an hour for the whole comparison there. One real run
checks the estimate: `drawloop compare --sources procedural:deadleaves --seeds 0 --threads 1` (2,000 x 5)
trained for 348 s and probed for 113 s of wall time, 13.2 min for the whole command at load 13-16, yet
used only 96 s of CPU (80 s user): on an idle machine a run with its probe is about 1.5 minutes.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from drawloop.vision.backbone import BackboneConfig, build_backbone, load_backbone
from drawloop.vision.compare_report import (
    markdown_table,
    plot,
    subtitle,
    summarise,
    write_report,
)
from drawloop.vision.data import (
    PROCEDURAL_PREFIX,
    count_images,
    is_drawings_file,
    load_source,
    save_grid,
)
from drawloop.vision.mixed import SEPARATOR, is_mixed, load_mixed, parse_mix
from drawloop.vision.probe import ProbeSet, probe
from drawloop.vision.ssl import TrainConfig, pick_device, train, use_amp

RANDOM, PIXELS = "random init", "pixels"
LLM = "llm"
DEFAULT_PROCEDURAL = ("procedural:deadleaves", "procedural:shapes", "procedural:spectral")
REPORT_NAME = "vision-from-text"


@dataclass
class CompareConfig:
    sources: list[str] = field(default_factory=list)   # empty: the three procedural sources
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
    drawings: str | None = None      # a code-only drawings JSONL: the source "llm"
    mix: str = "auto"                # auto | none | a procedural kind: the "llm+<procedural>" source
    probe_data: list[str] = field(default_factory=list)   # ImageFolders of real photos, probed as well
    fashion_mnist: bool = True
    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.backbone, dict):
            self.backbone = BackboneConfig(**self.backbone)
        if not self.sources:
            self.sources = list(DEFAULT_PROCEDURAL)
        if self.drawings and LLM not in self.sources:
            self.sources = [LLM, *self.sources]
        if any(LLM in parse_names(s) for s in self.sources) and not self.drawings:
            raise ValueError("the source 'llm' needs a drawings file (--drawings FILE.jsonl)")
        if self.mix not in ("auto", "none") and not self.mix.startswith(PROCEDURAL_PREFIX):
            self.mix = PROCEDURAL_PREFIX + self.mix
        if len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"need distinct seeds, got {self.seeds}")
        if not self.fashion_mnist and not self.probe_data:
            raise ValueError("nothing to probe on: keep Fashion-MNIST or give --probe-data DIR")

    def planned_mix(self) -> str | None:
        """The mixed source to add, or "auto" (decided after the procedural runs), or None."""
        if not self.drawings or self.mix == "none":
            return None
        if self.mix == "auto":
            if not any(s.startswith(PROCEDURAL_PREFIX) for s in self.sources):
                return None
            return "auto"
        return f"{LLM}{SEPARATOR}{self.mix}"


def run_comparison(config: CompareConfig, out_dir: str | Path, progress: bool = True, log=print,
                   probe_set: ProbeSet | list[ProbeSet] | None = None, report: str | Path | None = None) -> list[dict]:
    """Train, probe and tabulate; `probe_set` replaces the configured probe sets (tests use synthetic ones).

    `report`: a folder for vision-from-text.md and .png (the committed report); the run folder always
    gets compare.md, compare.png and compare.json.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    device = pick_device(config.device)
    use_amp(config.precision, device)   # a clear error now, not after the first source has loaded
    planned = config.planned_mix()
    mixes = [s for s in config.sources if is_mixed(s)] + ([planned] if planned else [])
    probe_sets = _as_list(probe_set) or load_probe_sets(config, log)
    drawings, drawings_info = None, None
    if config.drawings:   # rendered once (cached on disk too): the budget counts the drawings that render
        from drawloop.vision.llm_drawings import load_drawings

        log(f"rendering the drawings in {config.drawings} ...")
        drawings = load_drawings(config.drawings, config.size)
        drawings_info = {"file": str(config.drawings), **drawings.describe(),
                         "failed_ids": drawings.failed[:20], "mismatched_ids": drawings.mismatched[:20]}
        if drawings.failed or drawings.mismatched:
            log(f"{len(drawings.failed)} drawings did not render and {len(drawings.mismatched)} rendered other "
                "pixels than at build time (another renderer version or fonts?); the report says so")
    sources = Sources(config, drawings)
    parts = max([len(parse_mix(m)) for m in mixes if m != "auto"] + [2 if mixes else 1])
    if config.batch_size % parts:
        raise ValueError(f"a mixed source needs a batch that splits into {parts} equal shares; "
                         f"give a --batch-size that is a multiple of {parts}")
    budget = equal_budget(config.sources, config.images, count=sources.count, parts=parts)
    if budget < config.images:
        log(f"budget: {budget} images a source (asked for {config.images}; the smallest source holds no more, "
            "or a mix needs equal parts)")
    runs: list[dict] = []

    def run_source(source: str) -> None:
        images, groups = sources.load(source, budget)
        save_grid(images[:64], out / "samples" / f"{slug(source)}.png")
        for seed in config.seeds:
            runs.append(_train_and_probe(source, seed, images, groups, config, probe_sets, out, progress, log,
                                         device))

    for source in config.sources:
        run_source(source)
    chosen = None
    if planned == "auto":
        chosen = best_procedural(summarise(runs))
        log(f"mix: the best procedural source is {chosen} (mean linear probe on {probe_sets[0].name}); "
            f"training {LLM}{SEPARATOR}{chosen}")
        run_source(f"{LLM}{SEPARATOR}{chosen}")
    elif planned:
        run_source(planned)
    for seed in config.seeds:
        torch.manual_seed(seed)
        runs.append(_reference_row(RANDOM, seed, build_backbone(config.backbone).to(device), probe_sets, log))
    runs.append(_reference_row(PIXELS, None, None, probe_sets, log))
    rows = summarise(runs)
    wall = time.perf_counter() - started  # this invocation only: reused runs cost nothing here
    meta = {"config": _config_dict(config, budget), "wall_s": wall, "device": str(device),
            "torch_threads": torch.get_num_threads(), "mix": {"planned": planned, "chosen": chosen},
            "drawings": drawings_info, "probe_sets": [p.describe() for p in probe_sets]}
    (out / "compare.json").write_text(json.dumps({**meta, "runs": runs, "rows": rows}, indent=1))
    (out / "compare.md").write_text(markdown_table(rows, config, budget, probe_sets, wall))
    plot(rows, out / "compare.png", subtitle(config, budget, probe_sets), [p.name for p in probe_sets])
    if report is not None:
        paths = write_report(Path(report), rows, runs, config, budget, probe_sets, meta, out)
        log(f"report: {paths[0]}  chart: {paths[1]}")
    return rows


def parse_names(source: str) -> list[str]:
    """The sources a (possibly mixed) source is made of."""
    return parse_mix(source) if is_mixed(source) else [source]


def equal_budget(sources: list[str], images: int, count=count_images, parts: int = 1) -> int:
    """The image count every source gets: the request, or fewer when a folder or drawings file holds fewer
    (a mix of k parts needs budget / k of each), rounded down to a multiple of `parts` (a mix's part count).
    `count(source)`: how many images a source holds, None for a generator."""
    caps = [images]
    for source in sources:
        pieces = parse_mix(source) if is_mixed(source) else [source]
        for piece in pieces:
            n = count(piece)
            if n is not None:
                caps.append(n * len(pieces))
    budget = min(caps)
    return budget - budget % parts


class Sources:
    """Loads sources by name at a budget: "llm" from the drawings rendered once, mixes part by part."""

    def __init__(self, config: CompareConfig, drawings=None):
        self.config, self.drawings = config, drawings

    def count(self, source: str) -> int | None:
        if source == LLM:
            return len(self.drawings.rows)
        return count_images(source)

    def load_part(self, source: str, size: int, limit: int, seed: int) -> torch.Tensor:
        if source == LLM:
            return _subset(self.drawings.images, limit, seed)
        return load_source(source, size, limit=limit, seed=seed)

    def load(self, source: str, budget: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        cfg = self.config
        if is_mixed(source):
            mix = load_mixed(source, cfg.size, budget, seed=cfg.data_seed, load=self.load_part)
            return mix.images, mix.groups
        return self.load_part(source, cfg.size, budget, cfg.data_seed), None


def _subset(images: torch.Tensor, limit: int, seed: int) -> torch.Tensor:
    """A seeded random `limit` of the images, in their order (as load_source picks from a folder)."""
    if len(images) <= limit:
        return images
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:limit]
    return images[pick.sort().values]


def slug(source: str) -> str:
    if is_mixed(source):
        return SEPARATOR.join(slug(part) for part in parse_mix(source))
    if source.startswith(PROCEDURAL_PREFIX):
        return source[len(PROCEDURAL_PREFIX):]
    if source == LLM:
        return LLM
    path = Path(source)
    if is_drawings_file(source):
        return path.name.split(".")[0] or "drawings"
    return path.resolve().name or "data"


def best_procedural(rows: list[dict]) -> str:
    """The procedural source with the best mean linear-probe accuracy (ties: kNN, then name)."""
    candidates = [r for r in rows if r["source"].startswith(PROCEDURAL_PREFIX)]
    if not candidates:
        raise ValueError("mix auto needs at least one procedural source to pick from")
    return max(candidates, key=lambda r: (r["linear"], r["knn"], r["source"]))["source"]


def load_probe_sets(config: CompareConfig, log=print) -> list[ProbeSet]:
    sets = []
    if config.fashion_mnist:
        sets.append(ProbeSet.load(config.size, config.probe_train, config.probe_test, seed=0))
    for folder in config.probe_data:
        photos = ProbeSet.from_folder(folder, config.size, config.probe_train, config.probe_test, seed=0)
        d = photos.describe()
        log(f"probe set {photos.name}: {d['classes']} classes, {d['train']} train / {d['test']} test photos")
        sets.append(photos)
    return sets


def _as_list(probe_set) -> list[ProbeSet]:
    if probe_set is None:
        return []
    return list(probe_set) if isinstance(probe_set, (list, tuple)) else [probe_set]


def _train_and_probe(source, seed, images, groups, config, probe_sets, out, progress, log, device) -> dict:
    run_dir = out / "runs" / f"{slug(source)}-seed{seed}"
    done = run_dir / "probe.json"
    if done.exists():
        row = _upgrade(json.loads(done.read_text()))
        missing = [p for p in probe_sets if not _probed(row, p)]
        if not missing:
            log(f"{source} seed {seed}: reusing {done}")
            return _with_primary(row, probe_sets)
        log(f"{source} seed {seed}: trained; probing on {', '.join(p.name for p in missing)}")
        backbone, _ = load_backbone(run_dir / "model.pt")
        row["probes"].update(_probe_all(backbone.to(device), missing))
        done.write_text(json.dumps(row, indent=1))
        return _with_primary(row, probe_sets)
    log(f"{source} seed {seed}: training on {len(images)} images" + (" (50/50 in every batch)" if groups is not None
                                                                     else ""))
    train_cfg = TrainConfig(method=config.method, epochs=config.epochs, batch_size=config.batch_size,
                            lr=config.lr, seed=seed, backbone=config.backbone)
    info = {"source": source, **({"drawings": config.drawings} if LLM in parse_names(source) else {})}
    result = train(images, train_cfg, run_dir, device=config.device, progress=progress, info=info, groups=groups,
                   precision=config.precision)
    backbone, _ = load_backbone(result.model_path)
    started = time.perf_counter()
    probes = _probe_all(backbone.to(device), probe_sets)
    row = {"source": source, "seed": seed, "images": result.images, "epochs": result.epochs,
           "train_s": round(result.wall_s, 1), "probe_s": round(time.perf_counter() - started, 1),
           "final_loss": result.epoch_losses[-1], "probes": probes}
    row = _with_primary(row, probe_sets)
    log(f"  linear {row['linear']:.4f}  knn {row['knn']:.4f}  ({row['train_s']:.0f} s training)")
    done.write_text(json.dumps(row, indent=1))
    return row


def _probe_all(backbone, probe_sets: list[ProbeSet]) -> dict:
    return {p.name: probe(backbone, p) for p in probe_sets}


def _upgrade(row: dict) -> dict:
    """A row written before several probe sets holds its one result at the top level: move it under probes."""
    if "probes" not in row and "dataset" in row:
        keep = ("linear", "knn", "l2", "feature_dim", "dataset", "train", "test", "size")
        row["probes"] = {row["dataset"]: {k: row[k] for k in keep if k in row}}
    row.setdefault("probes", {})
    return row


def _probed(row: dict, probe_set: ProbeSet) -> bool:
    """Whether a saved row holds this probe set's result at the same size and photo counts."""
    saved = row["probes"].get(probe_set.name)
    d = probe_set.describe()
    return bool(saved) and all(saved.get(k) == d[k] for k in ("train", "test", "size"))


def _with_primary(row: dict, probe_sets: list[ProbeSet]) -> dict:
    """The first probe set's accuracies also at the top level (linear, knn): what tables sort by."""
    primary = row["probes"][probe_sets[0].name]
    return {**row, **{k: primary[k] for k in ("linear", "knn")}}


def _reference_row(name, seed, backbone, probe_sets, log) -> dict:
    probes = _probe_all(backbone, probe_sets)
    row = _with_primary({"source": name, "seed": seed, "images": 0, "epochs": 0, "train_s": 0.0, "probes": probes},
                        probe_sets)
    log(f"{name}{'' if seed is None else f' seed {seed}'}: linear {row['linear']:.4f}  knn {row['knn']:.4f}")
    return row


def _config_dict(config: CompareConfig, budget: int) -> dict:
    return {**asdict(config), "budget": budget}
