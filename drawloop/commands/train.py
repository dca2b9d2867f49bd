"""`drawloop train`, `drawloop probe`, `drawloop compare`: self-supervised vision from drawings, judged on photos.

    drawloop train --data data/llm --method moco --epochs 30 --out runs/llm
    drawloop train --data procedural:deadleaves --images 5000 --epochs 30 --out runs/dl
    drawloop train --data data/llm --nproc 2 --out runs/llm-ddp    # DDP: 2 processes, same global batch
    drawloop train --data data/llm-drawings.jsonl --out runs/llm    # code-only drawings, rendered on load
    drawloop train --data data/llm-drawings.jsonl+procedural:deadleaves --images 2000 --out runs/mix  # 50/50
    torchrun --standalone --nproc-per-node 4 --no-python drawloop train --data data/llm --out runs/llm-ddp
    drawloop probe --checkpoint runs/llm/model.pt            # Fashion-MNIST linear + kNN accuracy
    drawloop probe --random-init                             # the floor: the same backbone, untrained
    drawloop compare --sources data/llm,procedural:deadleaves,procedural:shapes,procedural:spectral \\
        --images 2000 --epochs 5 --seeds 0,1 --out runs/compare
    drawloop compare --drawings data/llm-drawings.jsonl --report docs/results/    # llm, 3 procedural, llm+best
    drawloop compare --drawings data/llm-drawings.jsonl --probe-data ~/photos --report docs/results/
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from drawloop.commands import console


DATA_HELP = ("a folder of images (a drawloop dataset or any image folder), a code-only drawings .jsonl "
             "(drawloop dataset export-code), procedural:deadleaves|shapes|spectral, or A+B: two of these "
             "50/50, exactly half of every batch")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("probe")(probe_command)
    app.command("compare")(compare_command)


def train_command(
    data: str = typer.Option(..., "--data", help=DATA_HELP),
    out: Path = typer.Option(..., "--out", help="run folder: model.pt, train.json, checkpoint.pt (resumes)"),
    method: str = typer.Option("moco", help="moco (MoCo-v2) or simclr"),
    epochs: int = typer.Option(20, min=1),
    images: Optional[int] = typer.Option(None, help="how many images (required for procedural; a folder "
                                         "gives a seeded random subset)"),
    size: int = typer.Option(32, min=8, help="training resolution in pixels"),
    arch: str = typer.Option("resnet18", help="resnet10, resnet18, resnet34 or resnet50"),
    width: int = typer.Option(16, min=1, help="first-stage channels (64 = the standard ResNet)"),
    imagenet_stem: bool = typer.Option(False, "--imagenet-stem", help="the ImageNet stem (7x7 stride 2 + "
                                       "max-pool) for 128-224 px; default: the 3x3 stride-1 stem for 32-64 px"),
    batch_size: int = typer.Option(256, min=2),
    lr: float = typer.Option(0.06, help="SGD learning rate (cosine decay)"),
    weight_decay: float = typer.Option(5e-4, help="SGD weight decay (MoCo-v2 on ImageNet: 1e-4)"),
    temperature: Optional[float] = typer.Option(None, help="contrastive temperature (default: 0.1 MoCo, 0.2 SimCLR; "
                                                "MoCo-v2 on ImageNet: 0.2)"),
    queue_size: int = typer.Option(4096, help="MoCo negatives (capped at half the images; ImageNet: 65536)"),
    key_momentum: float = typer.Option(0.99, help="MoCo key-encoder momentum (ImageNet: 0.999)"),
    seed: int = typer.Option(0),
    subset: Optional[Path] = typer.Option(None, help="only these images: a text file of paths or a JSONL "
                                          "of rows naming them (e.g. a FAISS-curated list)"),
    where: list[str] = typer.Option([], help="keep metadata.jsonl rows where KEY=VALUE (repeatable)"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1"),
    precision: str = typer.Option("auto", help="auto: mixed precision (float16 autocast + GradScaler) on CUDA, "
                                  "float32 on CPU; amp: insist on it; fp32: never"),
    stream: bool = typer.Option(False, "--stream", help="decode image files while training (DataLoader workers) "
                                "instead of loading them all into memory first: for sets larger than RAM"),
    workers: int = typer.Option(0, min=0, help="with --stream: decoding processes (pinned memory on CUDA, "
                                "persistent across epochs); about one per core left over"),
    threads: Optional[int] = typer.Option(None, help="CPU threads for torch, per process (default: all, "
                                          "shared out over --nproc, or 1 when the machine is already busy)"),
    nproc: Optional[int] = typer.Option(None, "--nproc", min=1, help="training processes on this machine "
                                        "(DDP; --batch-size stays the global batch, split across them; gloo "
                                        "on CPU, one GPU each on CUDA). Under torchrun, leave it out"),
) -> None:
    """Self-supervised training (MoCo-v2 or SimCLR) on a folder of drawings or a procedural baseline."""
    _set_threads(threads)
    import torch

    from drawloop.vision import distributed
    from drawloop.vision.backbone import BackboneConfig
    from drawloop.vision.ssl import TrainConfig, pick_device, train, use_amp

    torchrun = distributed.launched_by_torchrun()
    say = console.print if not torchrun or distributed.env_world().main else (lambda *a, **k: None)
    with _clear_errors():
        if torchrun and nproc not in (None, distributed.env_world().local_size):
            _fail(f"torchrun started {distributed.env_world().local_size} processes on this machine but "
                  f"--nproc is {nproc}; leave --nproc out under torchrun")
        config = TrainConfig(method=method, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                             weight_decay=weight_decay, temperature=temperature, queue_size=queue_size,
                             key_momentum=key_momentum,
                             backbone=BackboneConfig(arch=arch, width=width, small_input=not imagenet_stem))
        pick_device(device)  # a clear error before any data is loaded
        use_amp(precision, pick_device(device))
        say(f"loading [bold]{data}[/] at {size} px ...")
        pixels, groups, loader = _training_data(data, size, images, seed, subset, _parse_where(where), stream,
                                                workers)
        info = {"source": data}
        run = {"groups": groups, "precision": precision, "loader": loader}
        if torchrun:  # one of the launcher's processes: join its group, train our share
            w = distributed.env_world()
            say(f"{len(pixels)} images -> {out} ({w.size} processes, torchrun)")
            distributed.setup(device)
            try:
                result = train(pixels, config, out, device=device, progress=w.main, info=info, **run)
            finally:
                distributed.teardown()
        elif nproc and nproc > 1:
            say(f"{len(pixels)} images -> {out} ({nproc} processes)")
            result = distributed.train_in_processes(pixels, config, out, nproc, device=device, info=info,
                                                    threads=threads or max(1, torch.get_num_threads() // nproc),
                                                    **run)
        else:
            say(f"{len(pixels)} images -> {out}")
            result = train(pixels, config, out, device=device, info=info, **run)
    say(f"[green]done[/]: {result.epochs} epochs, {result.wall_s:.0f} s, "
                  f"{result.images_per_s:.0f} img/s, final loss {result.epoch_losses[-1]:.3f} -> {result.model_path}")


def probe_command(
    checkpoint: Optional[Path] = typer.Option(None, help="RUN/model.pt (or RUN/checkpoint.pt)"),
    random_init: bool = typer.Option(False, "--random-init", help="probe an untrained backbone: the floor"),
    pixels: bool = typer.Option(False, "--pixels", help="probe raw pixels: the no-network reference"),
    arch: str = typer.Option("resnet18", help="for --random-init"),
    width: int = typer.Option(16, help="for --random-init"),
    size: Optional[int] = typer.Option(None, help="probe resolution (default: the checkpoint's, else 32)"),
    train_size: Optional[int] = typer.Option(None, help="photos to fit the probe on (default: all 60k)"),
    test_size: Optional[int] = typer.Option(None, help="photos to test on (default: all 10k)"),
    seed: int = typer.Option(0, help="random init and subset seed"),
    out: Optional[Path] = typer.Option(None, help="where to write the accuracy JSON (default: beside the "
                                       "checkpoint as probe.json)"),
    threads: Optional[int] = typer.Option(None),
) -> None:
    """Linear-probe and kNN accuracy of frozen features on real photos (Fashion-MNIST)."""
    if sum([checkpoint is not None, random_init, pixels]) != 1:
        _fail("give exactly one of --checkpoint, --random-init, --pixels")
    _set_threads(threads)
    import torch

    from drawloop.vision.backbone import BackboneConfig, build_backbone, load_backbone
    from drawloop.vision.probe import ProbeSet, probe

    with _clear_errors():
        backbone, meta, subject = None, {}, "pixels"
        if checkpoint is not None:
            if not checkpoint.is_file():
                _fail(f"no checkpoint at {checkpoint}")
            backbone, meta = load_backbone(checkpoint)
            subject = str(checkpoint)
        elif random_init:
            torch.manual_seed(seed)
            backbone = build_backbone(BackboneConfig(arch=arch, width=width))
            subject = f"random init ({arch}, width {width}, seed {seed})"
        size = size or meta.get("size", 32)
        console.print(f"probing {subject} on Fashion-MNIST at {size} px ...")
        result = {"subject": subject, **probe(backbone, ProbeSet.load(size, train_size, test_size, seed))}
    console.print(f"linear probe [bold]{100 * result['linear']:.2f}%[/]   kNN [bold]{100 * result['knn']:.2f}%[/]"
                  f"   ({result['train']} train / {result['test']} test photos)")
    path = out or (checkpoint.parent / "probe.json" if checkpoint else None)
    if path:
        path.write_text(json.dumps(result, indent=1))
        console.print(f"wrote {path}")
    else:
        console.print_json(json.dumps(result))


def compare_command(
    sources: Optional[str] = typer.Option(None, help="comma-separated: folders, drawings .jsonl files, "
                                          "procedural:<kind>, llm (the --drawings file), A+B mixes (50/50); "
                                          "default: procedural:deadleaves,procedural:shapes,procedural:spectral"),
    drawings: Optional[Path] = typer.Option(None, help="code-only LLM drawings (drawloop dataset export-code), "
                                            "rendered on load: the source 'llm', added to the sources"),
    mix: str = typer.Option("auto", help="with --drawings: auto = also train llm+<the best procedural source> "
                            "(picked after they are trained), a kind (deadleaves) to name it, none = no mix"),
    out: Path = typer.Option(Path("runs/compare"), help="folder for compare.md, compare.png, compare.json and "
                             "the runs (finished runs are reused)"),
    report: Optional[Path] = typer.Option(None, help="also write vision-from-text.md and .png here "
                                          "(e.g. docs/results/), the report to commit"),
    images: int = typer.Option(2000, min=2, help="images per source (equal budget)"),
    epochs: int = typer.Option(5, min=1),
    seeds: str = typer.Option("0,1", help="comma-separated training seeds"),
    method: str = typer.Option("moco"),
    size: int = typer.Option(32, min=8),
    arch: str = typer.Option("resnet18"),
    width: int = typer.Option(16, min=1),
    batch_size: int = typer.Option(64, min=2, help="small batches: more steps for the same CPU time"),
    lr: float = typer.Option(0.06),
    probe_train: Optional[int] = typer.Option(5000, help="probe fit photos (0 = all 60k)"),
    probe_test: Optional[int] = typer.Option(5000, help="probe test photos (0 = all 10k)"),
    probe_data: list[Path] = typer.Option([], "--probe-data", help="an ImageFolder of real photos "
                                          "(DIR/<class>/<image>; or DIR/train + DIR/test) to probe on as "
                                          "well (repeatable)"),
    no_fashion_mnist: bool = typer.Option(False, "--no-fashion-mnist", help="probe only on --probe-data"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1"),
    precision: str = typer.Option("auto", help="auto: mixed precision on CUDA, float32 on CPU; amp; fp32"),
    threads: Optional[int] = typer.Option(None),
) -> None:
    """Train every source on an equal budget, probe each on real photos, write a table and a bar chart."""
    _set_threads(threads)
    from drawloop.vision.backbone import BackboneConfig
    from drawloop.vision.compare import CompareConfig, run_comparison

    with _clear_errors():
        if drawings is not None and not drawings.is_file():
            _fail(f"no drawings file at {drawings} (make one with `drawloop dataset export-code DATASET OUT.jsonl`)")
        config = CompareConfig(
            sources=[s.strip() for s in (sources or "").split(",") if s.strip()], images=images, epochs=epochs,
            seeds=_parse_ints(seeds), size=size, method=method, batch_size=batch_size, lr=lr,
            backbone=BackboneConfig(arch=arch, width=width),
            probe_train=probe_train or None, probe_test=probe_test or None,
            drawings=str(drawings) if drawings else None, mix=mix, probe_data=[str(p) for p in probe_data],
            fashion_mnist=not no_fashion_mnist, device=device, precision=precision,
        )
        run_comparison(config, out, log=console.print, report=report)
    console.print((out / "compare.md").read_text())
    console.print(f"chart: {out / 'compare.png'}")


def _training_data(data: str, size: int, images: int | None, seed: int, subset, where: dict, stream: bool,
                   workers: int):
    """(images, groups, loader config) for train(): a tensor in memory, a 50/50 mix, or files to stream."""
    from drawloop.vision.data import is_drawings_file, list_images, load_source
    from drawloop.vision.loader import FileImages, LoaderConfig
    from drawloop.vision.mixed import is_mixed, load_mixed

    if is_mixed(data):
        if images is None:
            _fail("a mixed source needs --images (the total, shared out equally)")
        if stream or subset or where:
            _fail("--stream, --subset and --where apply to one folder, not to a mixed source")
        mix = load_mixed(data, size, images, seed)
        return mix.images, mix.groups, None
    if stream and is_drawings_file(data):   # render once into the cache, then stream the cached PNGs
        from drawloop.vision.llm_drawings import read_drawings, render_to_cache

        paths = [p for p in render_to_cache(read_drawings(data)) if p is not None]
    elif stream:
        paths = list_images(data, subset=subset, where=where)
    if stream:
        if images and len(paths) > images:
            import torch

            pick = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed))[:images]
            paths = [paths[i] for i in sorted(pick.tolist())]
        return FileImages(paths, size), None, LoaderConfig(workers=workers)
    return load_source(data, size, limit=images, seed=seed, subset=subset, where=where), None, None


def _parse_where(items: list[str]) -> dict:
    where = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--where wants KEY=VALUE, got {item!r}")
        where[key] = value
    return where


def _parse_ints(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        _fail(f"expected comma-separated integers, got {text!r}")


def _set_threads(threads: Optional[int]) -> None:
    """Use `threads`; when not given and the machine is already busy, one thread.

    Measured on a 2-core machine at load ~9: one thread trained 20x faster than two, because OpenMP
    threads spin waiting for each other while other jobs hold the cores.
    """
    import os

    import torch

    if threads:
        torch.set_num_threads(threads)
    elif os.getloadavg()[0] >= (os.cpu_count() or 1):
        torch.set_num_threads(1)
        console.print(f"[dim]machine busy (load {os.getloadavg()[0]:.1f}): using 1 torch thread; "
                      "set --threads to override[/]")


class _clear_errors:
    """Turn the library's expected errors (bad data, bad settings) into one red line and exit code 2."""

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if err is not None and isinstance(err, (ValueError, FileNotFoundError)):
            _fail(str(err))
        return False


def _fail(message: str) -> None:
    console.print(f"[red]error:[/] {message}")
    raise typer.Exit(2)
