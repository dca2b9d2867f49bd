"""What a comparison's rows become: its tables and chart, and the committed report.

    rows = summarise(runs)                          # one row per source: mean ± sample std over seeds
    markdown_table(rows, config, budget, probe_sets)                   # the run folder's compare.md
    plot(rows, Path("compare.png"), subtitle(config, budget, probe_sets), ["fashion-mnist"])

    drawloop compare --drawings data/llm-drawings.jsonl --report docs/results/
    # docs/results/vision-from-text.md: setup, results, the winner and by how much, a stub to fill in
    # docs/results/vision-from-text.png: mean ± sample std per source and probe set, a dot per seed

Written by compare.run_comparison(report=DIR). Everything in it is measured in that run or read from
its inputs (the drawings file's `model` field names what drew the drawings); the one exception is the
"What this scale can and cannot say" section, a stub for the writer with the figures it needs filled in.
compare.py trains and probes; this module only turns its rows into text and figures.
"""

from __future__ import annotations

import shlex
import statistics
from pathlib import Path

from drawloop.vision.data import PROCEDURAL_PREFIX
from drawloop.vision.mixed import SEPARATOR

REFERENCES = ("random init", "pixels")


def summarise(runs: list[dict]) -> list[dict]:
    """One row per source: mean and sample standard deviation of each accuracy over its seeds, for the
    first probe set at the top level and for every probe set under row["probes"][name]."""
    rows = []
    for source in dict.fromkeys(r["source"] for r in runs):
        group = [r for r in runs if r["source"] == source]
        row = {"source": source, "seeds": len(group), "images": group[0]["images"],
               "epochs": group[0]["epochs"], "train_s": statistics.mean(r["train_s"] for r in group)}
        row.update(_stats([r["linear"] for r in group], [r["knn"] for r in group]))
        names = [n for n in (group[0].get("probes") or {})
                 if all(n in (r.get("probes") or {}) for r in group)]
        row["probes"] = {n: _stats([r["probes"][n]["linear"] for r in group],
                                   [r["probes"][n]["knn"] for r in group])
                         for n in names}
        rows.append(row)
    return rows


def _stats(linear: list[float], knn: list[float]) -> dict:
    out = {}
    for metric, values in (("linear", linear), ("knn", knn)):
        out[metric] = statistics.mean(values)
        out[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        out[f"{metric}_runs"] = values
    return out


def subtitle(config, budget: int, probe_sets: list) -> str:
    probed = "; ".join(f"{p.name} {p.describe()['train']} train / {p.describe()['test']} test"
                       for p in probe_sets)
    return (f"{config.method}, {budget} images x {config.epochs} epochs, {config.size} px, "
            f"{config.backbone.arch} width {config.backbone.width}, seeds {','.join(map(str, config.seeds))}; probe: {probed}")


def markdown_table(rows: list[dict], config, budget: int, probe_set, wall_s: float | None = None) -> str:
    probe_sets = (list(probe_set) if isinstance(probe_set, (list, tuple))
                  else [] if probe_set is None else [probe_set])
    described = "; ".join(f"{p.name}, {p.describe()['train']} train / {p.describe()['test']} test photos"
                          for p in probe_sets)
    lines = [
        "# Equal-budget comparison: self-supervised training, judged on real photos",
        "",
        f"Method {config.method}, backbone {config.backbone.arch} width {config.backbone.width}, "
        f"{config.size} px, batch {config.batch_size}, lr {config.lr}; probe: {described} "
        "(class-balanced subsets), frozen features. "
        "Accuracy is mean ± sample std over seeds (individual runs in brackets)."
        + (f" Whole comparison: {wall_s / 60:.1f} min." if wall_s else ""),
        "",
    ]
    for i, p in enumerate(probe_sets):
        if len(probe_sets) > 1:
            lines += [f"## {p.name}", ""]
        lines += ["| source | images | epochs | train time / run | linear probe | kNN (k=20) |",
                  "|---|---:|---:|---:|---|---|"]
        for r in rows:
            stats = r if i == 0 else r["probes"].get(p.name)
            if stats is None:
                continue
            time_s = f"{r['train_s'] / 60:.1f} min" if r["train_s"] else "–"
            lines.append(f"| {r['source']} | {r['images'] or '–'} | {r['epochs'] or '–'} | {time_s} | "
                         f"{_seeds_cell(stats, 'linear', r['seeds'])} | "
                         f"{_seeds_cell(stats, 'knn', r['seeds'])} |")
        lines.append("")
    return "\n".join(lines)


def _seeds_cell(stats: dict, metric: str, seeds: int) -> str:
    runs = ", ".join(f"{100 * v:.1f}" for v in stats[f"{metric}_runs"])
    if seeds == 1:
        return f"{100 * stats[metric]:.2f}%"
    return f"{100 * stats[metric]:.2f} ± {100 * stats[f'{metric}_std']:.2f}% [{runs}]"


def plot(rows: list[dict], path: Path, subtitle: str, probe_names: list[str] | None = None) -> Path:
    """Bars (mean) with error bars (sample std) and a dot per seed, one panel per probe set."""
    import matplotlib   # a slow import, and its backend must be chosen first: only when plotting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probe_names = probe_names or [None]
    names = [r["source"].removeprefix(PROCEDURAL_PREFIX).replace(SEPARATOR + PROCEDURAL_PREFIX, SEPARATOR)
             for r in rows]
    x = range(len(rows))
    fig, axes = plt.subplots(len(probe_names), 1,
                             figsize=(max(6, 1.4 * len(rows) + 2), 4.4 * len(probe_names)), squeeze=False)
    for j, (ax, probe_name) in enumerate(zip(axes[:, 0], probe_names)):
        stats = [r if j == 0 else r["probes"][probe_name] for r in rows]
        for offset, metric, colour in ((-0.2, "linear", "#3b6fb6"), (0.2, "knn", "#e08a2c")):
            means = [100 * s[metric] for s in stats]
            stds = [100 * s[f"{metric}_std"] for s in stats]
            bars = ax.bar([i + offset for i in x], means, 0.38, yerr=stds, capsize=3, color=colour,
                          label="linear probe" if metric == "linear" else "kNN (k=20)")
            for bar, r in zip(bars, rows):
                if r["source"] in REFERENCES:  # references, not trained sources: hatched and paler
                    bar.set_alpha(0.55)
                    bar.set_hatch("//")
            for i, s in enumerate(stats):  # each seed as a dot, so two seeds are never hidden in one bar
                ax.scatter([i + offset] * len(s[f"{metric}_runs"]), [100 * v for v in s[f"{metric}_runs"]],
                           s=10, color="black", zorder=3)
            for i, m in enumerate(means):
                ax.text(i + offset, m + stds[i] + 0.15, f"{m:.1f}", ha="center", va="bottom", fontsize=7,
                        clip_on=True)
        values = [100 * v for s in stats for m in ("linear", "knn") for v in s[f"{m}_runs"]]
        # zoomed: the gaps are a few points; room for labels
        ax.set_ylim(max(0, min(values) - 5), max(values) + 3)
        ax.set_xticks(list(x), names, rotation=15)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title("Self-supervised on synthetic images, judged on real photos"
                     f" ({probe_name or 'Fashion-MNIST'})", fontsize=10, pad=10)
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.text(0.5, 0.005, subtitle + "\ny axis zoomed (does not start at 0); hatched = references, "
             "not trained; dots = single seeds, bars = mean ± sample std", ha="center", fontsize=7,
             color="#444")
    fig.tight_layout(rect=(0, 0.06 / len(probe_names), 1, 1))
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def write_report(folder: Path, rows: list[dict], runs: list[dict], config, budget: int, probe_sets: list,
                 meta: dict, run_dir: Path) -> tuple[Path, Path]:
    from drawloop.vision.compare import REPORT_NAME

    folder.mkdir(parents=True, exist_ok=True)
    md, png = folder / f"{REPORT_NAME}.md", folder / f"{REPORT_NAME}.png"
    plot(rows, png, subtitle(config, budget, probe_sets), [p.name for p in probe_sets])
    md.write_text(report_markdown(rows, runs, config, budget, probe_sets, meta, run_dir, png.name, folder))
    return md, png


def command_line(config, report: Path | str | None, run_dir: Path | str) -> str:
    """The `drawloop compare` command that reproduces this comparison."""
    from drawloop.vision.compare import DEFAULT_PROCEDURAL, LLM

    args = ["drawloop", "compare"]
    if config.drawings:
        args += ["--drawings", str(config.drawings)]
    sources = [s for s in config.sources if s != LLM or not config.drawings]
    if sources != list(DEFAULT_PROCEDURAL):
        args += ["--sources", ",".join(sources)]
    defaults = {"images": 2000, "epochs": 5, "size": 32, "method": "moco", "batch_size": 64, "lr": 0.06,
                "mix": "auto", "device": "auto", "precision": "auto"}
    for key, default in defaults.items():
        value = getattr(config, key)
        if value != default:
            args += [f"--{key.replace('_', '-')}", str(value).removeprefix("procedural:") if key == "mix" else str(value)]
    if config.seeds != [0, 1]:
        args += ["--seeds", ",".join(map(str, config.seeds))]
    if (config.backbone.arch, config.backbone.width) != ("resnet18", 16):
        args += ["--arch", config.backbone.arch, "--width", str(config.backbone.width)]
    if (config.probe_train, config.probe_test) != (5000, 5000):
        args += ["--probe-train", str(config.probe_train or 0), "--probe-test", str(config.probe_test or 0)]
    for folder in config.probe_data:
        args += ["--probe-data", str(folder)]
    if not config.fashion_mnist:
        args.append("--no-fashion-mnist")
    args += ["--out", str(run_dir)]
    if report is not None:
        args += ["--report", str(report)]
    return shlex.join(args)


def ranking(rows: list[dict], probe: str | None, metric: str) -> list[dict]:
    """Trained sources (not the references), best first, with this probe set's mean, std and runs."""
    trained = [r for r in rows if r["source"] not in REFERENCES]
    stats = [{"source": r["source"], **(r if probe is None else r["probes"][probe])} for r in trained]
    return sorted(stats, key=lambda s: s[metric], reverse=True)


def verdict(ranked: list[dict], metric: str, seeds: int) -> str:
    """Who won and by how much, and whether the margin is larger than the seeds' spread."""
    if not ranked:
        return "no trained sources"
    best = ranked[0]
    if len(ranked) == 1:
        return f"only {best['source']} was trained ({100 * best[metric]:.2f}%)"
    second = ranked[1]
    margin = 100 * (best[metric] - second[metric])
    spread = 100 * max(best[f"{metric}_std"], second[f"{metric}_std"])
    if margin < 0.005:
        tied = [s["source"] for s in ranked if 100 * (best[metric] - s[metric]) < 0.005]
        return f"a tie at {100 * best[metric]:.2f}% between {', '.join(tied)}"
    text = (f"**{best['source']}** ({100 * best[metric]:.2f}%), {margin:.2f} points ahead of {second['source']} "
            f"({100 * second[metric]:.2f}%)")
    if seeds < 2:
        return text + "; one seed, so no spread to weigh the margin against"
    if margin > 2 * spread:
        return text + f"; the margin is more than twice the larger seed spread ({spread:.2f} points)"
    return text + (f"; the margin is within twice the larger seed spread ({spread:.2f} points): "
                   f"{seeds} seeds do not separate them")


def report_markdown(rows, runs, config, budget, probe_sets, meta, run_dir, chart: str, folder: Path) -> str:
    from drawloop.vision.compare import LLM

    drawings = meta.get("drawings") or {}
    models = drawings.get("models") or {}
    trained_runs = [r for r in runs if r["source"] not in REFERENCES]
    train_total = sum(r["train_s"] for r in trained_runs)
    probe_total = sum(r.get("probe_s", 0) for r in trained_runs)
    steps = budget // min(config.batch_size, budget)
    chosen = (meta.get("mix") or {}).get("chosen")
    mixed = [r["source"] for r in rows if SEPARATOR in r["source"]]
    lines = [
        "# Vision from text, measured: LLM drawings against procedural images",
        "",
        f"![results]({chart})",
        "",
        "Reproduce (from the committed drawings; finished runs in the run folder are reused):",
        "",
        "```bash",
        command_line(config, _relative(folder), _relative(run_dir)),
        "```",
        "",
        "## Setup",
        "",
        "| | |",
        "|---|---|",
    ]
    if drawings:
        model_text = ", ".join(f"`{m}` ({n})" for m, n in models.items())
        lines += [
            f"| drawings | `{drawings.get('file')}`: {drawings.get('drawings')} drawings of "
            f"{drawings.get('concepts')} concepts, drawn by {model_text} |",
            f"| drafts | {drawings.get('first_drafts')} first drafts, {drawings.get('refined')} refined by the "
            "critic loop (the kept attempt was a later one) |",
            f"| languages | {', '.join(f'{k} ({v})' for k, v in (drawings.get('languages') or {}).items())} |",
            f"| rendering | from code at load time: {drawings.get('rendered')} rendered, {drawings.get('cached')} "
            f"from the cache; {drawings.get('failed')} failed, {drawings.get('mismatched')} differ from the "
            "build's PNG (SHA-256) |",
        ]
    lines += [
        f"| images per source | {budget} (equal budget: same count for every source; a mix takes "
        f"{budget // 2} of each part) |",
        f"| training | {config.method} (MoCo-v2 augmentations), {config.backbone.arch} width {config.backbone.width}, "
        f"{config.size} px, {_plural(config.epochs, 'epoch')} × {steps} steps, batch {config.batch_size}, lr {config.lr} |",
        f"| seeds | {', '.join(map(str, config.seeds))} per source (the images are fixed by data seed "
        f"{config.data_seed}; the seeds vary init, order and augmentations) |",
        "| probes | " + "; ".join(f"{p.name}: {p.describe()['train']} train / {p.describe()['test']} test photos, "
                                  f"{p.describe()['classes']} classes" for p in probe_sets)
        + " — linear (L-BFGS logistic regression) and kNN (k=20) on frozen features |",
        f"| device | {meta.get('device')}, {meta.get('torch_threads')} torch threads |",
        f"| time | training {train_total / 60:.1f} min in all ({train_total / max(1, len(trained_runs)) / 60:.1f} "
        f"min a run), probing {probe_total / 60:.1f} min; this invocation {meta.get('wall_s', 0) / 60:.1f} min "
        "(reused runs cost it nothing) |",
    ]
    if mixed:
        how = (f"picked after the procedural runs as the best mean linear probe on {probe_sets[0].name}"
               if chosen else "named on the command line")
        lines.append(f"| mix | {', '.join(mixed)}: exactly half of every batch from each part ({how}) |")
    lines += [""]

    lines += ["## Results", "", "Mean ± sample std over seeds, single runs in brackets; references are not trained.", ""]
    for i, p in enumerate(probe_sets):
        name = None if i == 0 else p.name
        lines += [f"### {p.name}", "", "| source | linear probe | kNN (k=20) | linear vs best procedural |",
                  "|---|---|---|---:|"]
        procedural = [s for s in ranking(rows, name, "linear") if s["source"].startswith(PROCEDURAL_PREFIX)]
        base = procedural[0]["linear"] if procedural else None
        for r in rows:
            s = r if name is None else r["probes"][p.name]
            delta = "–" if base is None or r["source"] in REFERENCES else f"{100 * (s['linear'] - base):+.2f}"
            lines.append(f"| {r['source']} | {_cell(s, 'linear')} | {_cell(s, 'knn')} | {delta} |")
        lines += ["", f"- linear probe: {verdict(ranking(rows, name, 'linear'), 'linear', len(config.seeds))}",
                  f"- kNN: {verdict(ranking(rows, name, 'knn'), 'knn', len(config.seeds))}"]
        ranked = ranking(rows, name, "linear")
        llm = next((s for s in ranked if s["source"] == LLM), None)
        if llm and procedural:
            lines.append(f"- {LLM} against the best procedural source ({procedural[0]['source']}): "
                         f"{100 * (llm['linear'] - base):+.2f} points (linear), "
                         f"{100 * (llm['knn'] - procedural[0]['knn']):+.2f} (kNN)")
        for mix in (s for s in ranked if SEPARATOR in s["source"]):
            if procedural:
                lines.append(f"- {mix['source']} against {procedural[0]['source']}: "
                             f"{100 * (mix['linear'] - base):+.2f} points (linear), "
                             f"{100 * (mix['knn'] - procedural[0]['knn']):+.2f} (kNN)")
        lines.append("")

    spread = max([100 * r[f"{m}_std"] for r in rows if r["source"] not in REFERENCES for m in ("linear", "knn")]
                 or [0.0])
    lines += [
        "## What this scale can and cannot say",
        "",
        "<!-- Stub for the writer: replace the bracketed parts with the real figures and judgement, then",
        "     delete this comment. The measured facts around them are filled in by `drawloop compare`. -->",
        "",
        f"This is {budget} images a source at {config.size} px, {_plural(config.epochs, 'epoch')} of a "
        f"{config.backbone.arch} of width {config.backbone.width}, {len(config.seeds)} seeds; the largest "
        f"seed spread among the trained sources is {spread:.2f} points. The study's setting is a ResNet-50 "
        "trained with MoCo-v2 on 1.3M images (README: Vision from text, the GPU recipe).",
        "",
        "- It can say: [which ranking held across both probes and both seeds; which margins exceed twice "
        "the seed spread].",
        "- It cannot say: [whether the ranking holds at the study's scale; anything within the seed spread; "
        "anything about photos unlike the probe sets].",
        "- The drawings: [how many distinct concepts, how much of the set is first drafts; "
        f"drawn by {', '.join(models) or '?'}].",
        "",
        f"Raw numbers: `{_relative(run_dir)}/compare.json` (every run, every probe set); per-run training "
        f"curves in `{_relative(run_dir)}/runs/<source>-seed<n>/train.json`.",
        "",
    ]
    return "\n".join(lines)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _cell(stats: dict, metric: str) -> str:
    runs = ", ".join(f"{100 * v:.1f}" for v in stats[f"{metric}_runs"])
    if len(stats[f"{metric}_runs"]) == 1:
        return f"{100 * stats[metric]:.2f}%"
    return f"{100 * stats[metric]:.2f} ± {100 * stats[f'{metric}_std']:.2f}% [{runs}]"


def _relative(path) -> str:
    """A path as typed from the repository root when it is inside the current folder, else as it is."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
