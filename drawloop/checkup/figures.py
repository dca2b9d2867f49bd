"""The check-up report's matplotlib figures: fidelity, recognition, self-correction curves, diversity.

    figure_fidelity(m.fidelity(threads), m.chance(threads), Path("figures/fidelity.png"))
    figure_curves({"plain": {"raw": [...], "best": [...]}, "critic": {...}}, Path("figures/curves.png"))

Each takes rows from checkup/metrics.py and writes one PNG; `pyplot` and `bars` are shared with
checkup/compare.py's figure.
"""

from __future__ import annotations

from pathlib import Path

LEVEL_COLOURS = {"shapes": "#4c72b0", "objects": "#dd8452", "scenes": "#55a868", "compositions": "#c44e52",
                 "effects": "#8172b3", "relations": "#937860", "all": "#555555"}
MODE_COLOURS = {"plain": "#dd8452", "critic": "#4c72b0"}


def figure_fidelity(rows: list[dict], chance: float | None, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    groups = [r["level"] for r in rows]
    colours = ["#bbbbbb", "#8fb0d9", "#2f5f9e"]
    for ax, what, title in ((axes[0], "score", "critic score"),
                            (axes[1], "recognized", "recognized from code")):
        bars(ax, groups, {f"{d} draft": [r[f"{d}_{what}"] for r in rows] for d in ("first", "last", "best")},
              colours)
        ax.set_title(f"Generation: {title}, by level")
        if what == "recognized" and chance:
            ax.axhline(chance, ls="--", color="grey", lw=1, label=f"chance ({chance:.2f})")
        ax.legend(fontsize=8, loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def figure_recognition(rows: list[dict], chance: float | None, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    groups = [f"{r['level']}\n(own {r['n_own']}, people {r['n_human']})" for r in rows]
    bars(ax, groups, {"own first drafts": [r["own"] for r in rows],
                       "own, concepts with people's drawings": [r["own_matched"] for r in rows],
                       "people's drawings": [r["human"] for r in rows]}, ["#2f5f9e", "#8fb0d9", "#c44e52"])
    if chance:
        ax.axhline(chance, ls="--", color="grey", lw=1, label=f"chance ({chance:.2f})")
    ax.set_title("Recognition from code (multiple choice): own drawings vs people's")
    ax.set_ylabel("recognized")
    ax.legend(fontsize=8, loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def figure_curves(curves: dict[str, dict[str, list[dict]]], path: Path,
                  labels: dict[str, str] | None = None) -> Path:
    """curves[name][kind] -> points; one line per name, panels raw and best-so-far."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    palette = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
    for ax, kind, title in ((axes[0], "raw", "score at each iteration"),
                            (axes[1], "best", "best score so far")):
        for k, (name, by_kind) in enumerate(curves.items()):
            _curve(ax, by_kind[kind], (labels or {}).get(name, name), MODE_COLOURS.get(name, palette[k % 6]))
        ax.set_title(f"Self-correction: {title} (mean ± std)")
        ax.set_xlabel("iteration (0 = first draft)")
        ax.set_ylim(-0.05, 1.05)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("critic score")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def figure_diversity(rows: list[dict], path: Path) -> Path:
    from matplotlib.lines import Line2D     # matplotlib: heavy, imported when a figure is drawn
    from matplotlib.patches import Patch

    plt = pyplot()
    rows = sorted([r for r in rows if r["diversity"] is not None], key=lambda r: r["diversity"])
    fig, ax = plt.subplots(figsize=(9.5, max(2.8, 1.2 + 0.32 * len(rows))))
    names = [r["concept"] for r in rows]
    bars = ax.barh(names, [r["diversity"] for r in rows], height=0.6,
                   color=[LEVEL_COLOURS.get(r["level"], "#777") for r in rows])
    for bar, row in zip(bars, rows):
        ax.annotate(f"{row['diversity']:.2f}", (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                    xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    finals = [(i, r["diversity_final"]) for i, r in enumerate(rows) if r["diversity_final"] is not None]
    if finals:
        ax.scatter([v for _, v in finals], [i for i, _ in finals], marker="D", facecolor="white",
                   edgecolor="black", zorder=3)
    handles = [Patch(color=LEVEL_COLOURS.get(level, "#777"), label=f"{level}: first drafts")
               for level in dict.fromkeys(r["level"] for r in rows)]
    handles.append(Line2D([], [], marker="D", ls="", markerfacecolor="white", markeredgecolor="black",
                          label="final drafts"))
    ax.set_xlabel("mean pairwise cosine distance between samples (0 = identical)")
    ax.set_title("Diversity: how differently the model draws one concept")
    if not rows:
        ax.text(0.5, 0.5, "fewer than two rendered samples per concept", ha="center", transform=ax.transAxes)
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- helpers

def pyplot():
    """matplotlib.pyplot on the Agg backend; imported here, when a figure is drawn (matplotlib is heavy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bars(ax, groups: list[str], series: dict[str, list[float | None]], colours: list[str]) -> None:
    width = 0.8 / max(1, len(series))
    for k, ((name, values), colour) in enumerate(zip(series.items(), colours)):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(groups))]
        heights = [v if v is not None else 0 for v in values]
        bars = ax.bar(xs, heights, width, label=name, color=colour)
        for bar, v in zip(bars, values):
            ax.annotate("–" if v is None else f"{v:.2f}",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylim(0, 1.32)  # headroom for the legend above bars that reach 1
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])


def _curve(ax, points: list[dict], label: str, colour: str) -> None:
    points = [p for p in points if p["mean"] is not None]
    if not points:
        return
    xs = [p["iteration"] for p in points]
    ys = [p["mean"] for p in points]
    sd = [p["std"] for p in points]
    ax.plot(xs, ys, marker="o", color=colour, label=label)
    ax.fill_between(xs, [y - s for y, s in zip(ys, sd)], [y + s for y, s in zip(ys, sd)], color=colour,
                    alpha=0.15)
