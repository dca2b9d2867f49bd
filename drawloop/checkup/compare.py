"""Two check-ups side by side: `drawloop checkup compare A B` writes compare.md and compare.png.

    from drawloop.checkup import compare
    compare("runs/checkup-a", "runs/checkup-b")              # runs/compare-checkup-a-vs-checkup-b/compare.md
    compare("runs/checkup-a", "runs/checkup-b", "runs/compare-a-b")

Reads only each directory's results.json; the headline rows (HEADLINE_ROWS) are also the table
`drawloop checkup` prints when a run ends.
"""

from __future__ import annotations

import re
from pathlib import Path

from drawloop.checkup import metrics as m
from drawloop.checkup.figures import bars, pyplot
from drawloop.checkup.report import fmt, load_results, table

HEADLINE_ROWS = (("first_score", "first-draft score", False), ("best_score", "final-draft score", False),
                 ("first_recognized", "first drafts recognized", True),
                 ("best_recognized", "final drafts recognized", True),
                 ("own_recognized_matched", "own drawings recognized (concepts with people's drawings)",
                  True),
                 ("human_recognized", "people's drawings recognized", True),
                 ("plain_gain", "plain loop gain (draft 0 → last)", False),
                 ("critic_gain", "critic loop gain (draft 0 → last)", False),
                 ("diversity", "diversity (mean pairwise distance)", False))


def compare(dir_a: str | Path, dir_b: str | Path, out: str | Path | None = None) -> Path:
    """Two check-ups side by side: out/compare.md and out/compare.png. Returns the markdown path."""
    dir_a, dir_b = Path(dir_a), Path(dir_b)
    a, b = load_results(dir_a), load_results(dir_b)
    out = Path(out) if out else dir_a.parent / f"compare-{dir_a.name}-vs-{dir_b.name}"
    out.mkdir(parents=True, exist_ok=True)
    name_a, name_b = _names(a, b, dir_a, dir_b)
    ha, hb = m.headline(a), m.headline(b)

    def delta(key: str, pct: bool) -> str:
        if ha[key] is None or hb[key] is None:
            return "–"
        d = hb[key] - ha[key]
        return f"{100 * d:+.0f} pts" if pct else f"{d:+.2f}"

    rows = [(label, fmt(ha[key], pct), fmt(hb[key], pct), delta(key, pct))
            for key, label, pct in HEADLINE_ROWS]
    fa, fb = m.fidelity(a["threads"]), m.fidelity(b["threads"])
    levels = list(dict.fromkeys([r["level"] for r in fa] + [r["level"] for r in fb]))
    by_a, by_b = {r["level"]: r for r in fa}, {r["level"]: r for r in fb}
    level_rows = [(lvl, fmt((by_a.get(lvl) or {}).get("first_score")),
                   fmt((by_b.get(lvl) or {}).get("first_score")),
                   fmt((by_a.get(lvl) or {}).get("best_recognized"), True),
                   fmt((by_b.get(lvl) or {}).get("best_recognized"), True)) for lvl in levels]
    figure_compare(a, b, name_a, name_b, out / "compare.png")
    same = {k: (a["plan"].get(k), b["plan"].get(k))
            for k in ("levels", "concepts_per_level", "samples", "iters")}
    differing = [f"{k}: {x} vs {y}" for k, (x, y) in same.items() if x != y]
    parts = [f"# Check-up comparison: `{name_a}` vs `{name_b}`",
             f"A = `{dir_a}`, B = `{dir_b}`. "
             + ("Both ran the same plan." if not differing
                else "**The plans differ** (" + "; ".join(differing) + "), so compare with care.")
             + " Scores come from each run's own offline critic (the model grades itself), so score "
               "differences mix drawing skill with self-assessment; recognition rates follow the study's "
               "protocol.",
             table(["metric", "A", "B", "B − A"], rows),
             "Per level (first-draft score, final drafts recognized):",
             table(["level", "A first score", "B first score", "A recognized", "B recognized"], level_rows),
             "![comparison](compare.png)"]
    path = out / "compare.md"
    path.write_text("\n\n".join(parts) + "\n")
    return path


def _names(a: dict, b: dict, dir_a: Path, dir_b: Path) -> tuple[str, str]:
    if a["model"] != b["model"]:
        return a["model"], b["model"]
    return f"{a['model']} [{dir_a.name}]", f"{b['model']} [{dir_b.name}]"



def figure_compare(a: dict, b: dict, name_a: str, name_b: str, path: Path) -> Path:
    plt = pyplot()
    # short legends
    name_a, name_b = (re.sub(r" \(embedded llama\.cpp[^)]*\)", "", n) for n in (name_a, name_b))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    ha, hb = m.headline(a), m.headline(b)
    keys = [k for k, _, _ in HEADLINE_ROWS if k not in ("plain_gain", "critic_gain")]
    short = {"first_score": "first\nscore", "best_score": "final\nscore", "first_recognized": "first\nrecog.",
             "best_recognized": "final\nrecog.", "own_recognized_matched": "own\nrecog.*",
             "human_recognized": "people\nrecog.", "diversity": "diversity"}
    bars(axes[0], [short[k] for k in keys],
         {name_a[:40]: [ha[k] for k in keys], name_b[:40]: [hb[k] for k in keys]}, ["#4c72b0", "#dd8452"])
    axes[0].set_title("Headline metrics (* concepts with people's drawings)")
    axes[0].legend(fontsize=8)
    for results, name, colour in ((a, name_a, "#4c72b0"), (b, name_b, "#dd8452")):
        for mode, style in (("critic", "-"), ("plain", "--")):
            points = [p for p in m.curve(results["threads"], mode, "raw") if p["mean"] is not None]
            if points:
                axes[1].plot([p["iteration"] for p in points], [p["mean"] for p in points], style, marker="o",
                             color=colour, label=f"{name[:30]} · {mode}")
    axes[1].set_title("Self-correction: mean score per iteration")
    axes[1].set_xlabel("iteration (0 = first draft)")
    axes[1].xaxis.get_major_locator().set_params(integer=True)
    axes[1].set_ylim(-0.05, 1.05)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
