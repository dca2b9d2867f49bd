"""The check-up report: DIR/report.md with tables, matplotlib figures and contact sheets.

    from drawloop.report.checkup import write_report, compare
    write_report("runs/checkup-local")       # report.md, figures/*.png, sheets/<concept>.png
    compare("runs/checkup-a", "runs/checkup-b", "runs/compare-a-b")   # compare.md + compare.png

Reads only DIR/results.json and the drawings in DIR/artifacts, so a report can be rebuilt (or a
finished check-up copied elsewhere and reported on) without a model.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

from drawloop.concepts import slugify
from drawloop.report import metrics as m
from drawloop.runs import label_font

LEVEL_COLOURS = {"shapes": "#4c72b0", "objects": "#dd8452", "scenes": "#55a868", "compositions": "#c44e52",
                 "effects": "#8172b3", "relations": "#937860", "all": "#555555"}
MODE_COLOURS = {"plain": "#dd8452", "critic": "#4c72b0"}
SHOWCASE = 3      # best and worst concepts shown as contact sheets


# ---------------------------------------------------------------- formatting

def fmt(value: Any, pct: bool = False, digits: int = 2) -> str:
    if value is None:
        return "–"
    if pct:
        return f"{100 * value:.0f}%"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fmt_spread(point: dict) -> str:
    if point["mean"] is None:
        return "–"
    return f"{point['mean']:.2f} ± {point['std']:.2f} (n={point['n']})"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def load_results(directory: str | Path) -> dict:
    path = Path(directory) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{directory} holds no check-up (no results.json): run `drawloop checkup` first")
    return json.loads(path.read_text())


# ---------------------------------------------------------------- figures

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bars(ax, groups: list[str], series: dict[str, list[float | None]], colours: list[str]) -> None:
    width = 0.8 / max(1, len(series))
    for k, ((name, values), colour) in enumerate(zip(series.items(), colours)):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(groups))]
        heights = [v if v is not None else 0 for v in values]
        bars = ax.bar(xs, heights, width, label=name, color=colour)
        for bar, v in zip(bars, values):
            ax.annotate("–" if v is None else f"{v:.2f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylim(0, 1.32)  # headroom for the legend above bars that reach 1
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])


def figure_fidelity(rows: list[dict], chance: float | None, path: Path) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    groups = [r["level"] for r in rows]
    colours = ["#bbbbbb", "#8fb0d9", "#2f5f9e"]
    for ax, what, title in ((axes[0], "score", "critic score"), (axes[1], "recognized", "recognized from code")):
        _bars(ax, groups, {f"{d} draft": [r[f"{d}_{what}"] for r in rows] for d in ("first", "last", "best")},
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
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    groups = [f"{r['level']}\n(own {r['n_own']}, people {r['n_human']})" for r in rows]
    _bars(ax, groups, {"own first drafts": [r["own"] for r in rows],
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


def _curve(ax, points: list[dict], label: str, colour: str) -> None:
    points = [p for p in points if p["mean"] is not None]
    if not points:
        return
    xs = [p["iteration"] for p in points]
    ys = [p["mean"] for p in points]
    sd = [p["std"] for p in points]
    ax.plot(xs, ys, marker="o", color=colour, label=label)
    ax.fill_between(xs, [y - s for y, s in zip(ys, sd)], [y + s for y, s in zip(ys, sd)], color=colour, alpha=0.15)


def figure_curves(curves: dict[str, dict[str, list[dict]]], path: Path, labels: dict[str, str] | None = None) -> Path:
    """curves[name][kind] -> points; one line per name, panels raw and best-so-far."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    palette = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
    for ax, kind, title in ((axes[0], "raw", "score at each iteration"), (axes[1], "best", "best score so far")):
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
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    plt = _plt()
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


# ---------------------------------------------------------------- contact sheets

def _attempt_caption(attempt: dict) -> list[str]:
    head = f"it {attempt['iteration']}  score {attempt['score']:.2f}"
    if attempt.get("error") and not attempt.get("image"):
        return [head, "failed: " + attempt["error"]]
    if attempt.get("correct"):
        return [head, "recognized"]
    return [head, f"seen as: {attempt.get('label') or '?'}"]


def concept_sheet(directory: Path, concept: str, rows: list[tuple[str, list[tuple[str | None, list[str], bool]]]],
                  path: Path, tile: int = 150, label_w: int = 92) -> Path:
    """A grid: one labelled row per thread (or people's drawings), one tile per drawing
    (image path, caption lines, framed); the loop's pick is framed in green."""
    import textwrap

    from PIL import Image, ImageDraw

    caption_h, header_h, pad = 32, 30, 8
    cols = max([len(tiles) for _, tiles in rows] + [1])
    width = label_w + cols * (tile + pad) + pad
    height = header_h + len(rows) * (tile + caption_h + pad) + pad
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 6), concept[:100], fill="black", font=label_font(16))
    small = label_font(11)
    for r, (label, tiles) in enumerate(rows):
        y = header_h + r * (tile + caption_h + pad)
        lines = textwrap.wrap(label, max(8, label_w // 8))[:6]
        for j, line in enumerate(lines):
            draw.text((pad, y + tile // 2 - 8 * len(lines) + 16 * j), line, fill="black", font=label_font(12))
        for c, (image, caption, framed) in enumerate(tiles):
            x = label_w + c * (tile + pad)
            if image and (directory / image).exists():
                picture = Image.open(directory / image).convert("RGB").resize((tile, tile))
                sheet.paste(picture, (x, y))
            else:
                draw.rectangle([x, y, x + tile - 1, y + tile - 1], fill=(236, 236, 236))
                draw.line([x, y, x + tile - 1, y + tile - 1], fill=(200, 80, 80), width=2)
            frame = (30, 150, 60) if framed else (190, 190, 190)
            draw.rectangle([x - 2, y - 2, x + tile + 1, y + tile + 1], outline=frame, width=4 if framed else 1)
            for j, line in enumerate(caption[:2]):
                draw.text((x, y + tile + 3 + j * 13), line[:max(12, tile // 6)], fill="black", font=small)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def overview_rows(results: dict) -> list[tuple[str, list]]:
    """One row per concept: each sample's first draft, then the critic loop's pick."""
    rows = []
    for concept in results["concepts"]:
        tiles = []
        for thread in (t for t in results["threads"] if t["concept"] == concept["name"] and t["mode"] == "critic"):
            if not thread["attempts"]:
                continue
            first, pick = thread["attempts"][0], thread["attempts"][thread["best"] or 0]
            tiles.append((first.get("image"), [f"s{thread['sample']} first"] + _attempt_caption(first)[1:], False))
            tiles.append((pick.get("image"), [f"s{thread['sample']} final, it {pick['iteration']}"]
                          + _attempt_caption(pick)[1:], True))
        rows.append((f"{concept['name']} ({concept['level']})", tiles))
    return rows


def concept_rows(results: dict, concept: str) -> list[tuple[str, list]]:
    rows = []
    mine = [t for t in results["threads"] if t["concept"] == concept]
    for thread in sorted(mine, key=lambda t: (t["mode"] != "critic", t["sample"])):
        tiles = [(a.get("image"), _attempt_caption(a), i == thread.get("best"))
                 for i, a in enumerate(thread["attempts"])]
        rows.append((f"{thread['mode']} s{thread['sample']}", tiles))
    people = [h for h in results["human"] if h["concept"] == concept]
    if people:
        rows.append(("people", [(h.get("image"), [h["title"][:26], "recognized" if h["correct"]
                                                  else f"seen as: {h.get('label') or '?'}"], False) for h in people]))
    return rows


# ---------------------------------------------------------------- the report

def _settings_section(results: dict) -> str:
    plan, settings = results["plan"], results["settings"]
    weights = (settings.get("extra") or {}).get("weights") or {"sanity": 1.0, "recognition": 1.0, "llm": 1.0}
    seeds = [plan["seed"] + 1000 * s for s in range(plan["samples"])]
    by_level: dict[str, list[str]] = {}
    for concept in results["concepts"]:
        by_level.setdefault(concept["level"], []).append(concept["name"])
    rows = [("model", f"`{results['model']}`")]
    if results.get("model_details"):
        rows.append(("weights", results["model_details"]))
    rows += [("base URL", settings.get("base_url") or "–"),
            ("levels", ", ".join(plan["levels"])), ("concepts per level", plan["concepts_per_level"]),
            ("samples per concept", plan["samples"]), ("iterations per loop", plan["iters"]),
            ("choices per recognition", f"{settings['n_distractors'] + 1} (concept + {settings['n_distractors']} "
                                        "distractors, same order for own and people's drawings)"),
            ("temperature", settings["temperature"]), ("max tokens per drawing", settings["max_tokens"]),
            ("render size", f"{settings['size']} px, {settings['language']}"),
            ("critic", f"{settings['critic']} · weights {', '.join(f'{k}={v}' for k, v in weights.items())}"),
            ("recognizer", settings["recognizer"]),
            ("seeds", f"plan seed {plan['seed']}; sample k draws with seed {plan['seed']} + 1000·k (+ iteration): "
                      f"{', '.join(map(str, seeds))}"),
            ("concurrency", plan["concurrency"]),
            ("people's drawings", f"up to {plan['human_per_concept']} per concept, SVG ≤ {plan['human_max_chars']} "
                                  "characters after removing metadata"),
            ("embedder (diversity)", results.get("embedder") or "–"),
            ("versions", ", ".join(f"{k} {v}" for k, v in (results.get("versions") or {}).items()) or "–")]
    concept_lines = "\n".join(f"- **{level}**: {', '.join(names)}" for level, names in by_level.items())
    return table(["setting", "value"], rows) + "\n\nConcepts:\n\n" + concept_lines


def _costs_section(results: dict) -> str:
    c = m.costs(results)
    sessions = results.get("sessions") or []
    failed = ", ".join(f"{n} {kind}" for kind, n in c["failures"].items() if n) or "none"
    rows = [("drawing attempts", c["attempts"]), ("failed attempts", failed),
            ("tokens in / out (loops)", f"{c['loop_tokens_in']:,} / {c['loop_tokens_out']:,}"),
            ("tokens in / out (people's drawings)", f"{c['human_tokens_in']:,} / {c['human_tokens_out']:,}"),
            ("tokens in / out (total)", f"{c['tokens_in']:,} / {c['tokens_out']:,}"),
            ("wall time", f"{_duration(c['wall_seconds'])} over {c['sessions']} session(s)"),
            ("time inside loop nodes", f"{_duration(c['node_seconds'])} (summed over concurrent threads)")]
    lines = [f"- session {i + 1}{'' if s.get('finished', True) else ' (interrupted)'}: started {s['started']}, "
             f"{s['seconds']:.0f} s, computed "
             f"{s['computed'].get('threads', 0)} threads, {s['computed'].get('human', 0)} people's drawings, "
             f"{s['computed'].get('embeddings', 0)} embeddings" for i, s in enumerate(sessions)]
    return table(["", ""], rows) + "\n\n" + "\n".join(lines)


def _glance(results: dict) -> str:
    h = m.headline(results)
    named = m.recognition(results["threads"], results["human"])[-1]
    plain, critic = m.gain(results["threads"], "plain"), m.gain(results["threads"], "critic")
    lines = [
        f"- **Generation:** first drafts score {fmt(h['first_score'])} and are recognized "
        f"{fmt(h['first_recognized'], True)} of the time; the loop's final drafts score {fmt(h['best_score'])}, "
        f"recognized {fmt(h['best_recognized'], True)} (chance {fmt(h['chance'], True)}).",
        f"- **Recognition from code:** own first drafts {fmt(h['own_recognized_matched'], True)} vs people's drawings "
        f"{fmt(h['human_recognized'], True)}, on the concepts that have people's drawings; "
        f"{fmt(named['own_named'], True)} of own first drafts name the concept in their code (ids, comments), "
        f"{fmt(named['human_named'], True)} of people's drawings do."
        if h["human_recognized"] is not None else
        "- **Recognition from code:** no concept in this slice has people's drawings to compare with.",
        f"- **Self-correction** (draft 0 → last, paired): plain \"improve your drawing\" "
        f"{fmt(plain['mean'])} (better in {plain['improved']}/{plain['n']}), critic loop {fmt(critic['mean'])} "
        f"(better in {critic['improved']}/{critic['n']}).",
        f"- **Diversity:** mean pairwise distance between samples {fmt(h['diversity'])} (0 = identical drawings).",
    ]
    return "\n".join(lines)


DEFINITIONS = "\n".join(f"- **{term}**: {text}" for term, text in m.DEFINITIONS)


def write_report(directory: str | Path) -> Path:
    """Write DIR/report.md, DIR/figures/*.png and DIR/sheets/*.png from DIR/results.json."""
    directory = Path(directory)
    results = load_results(directory)
    threads, human = results["threads"], results["human"]
    figures = directory / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    chance = m.chance(threads)
    fidelity, recognition = m.fidelity(threads), m.recognition(threads, human)
    curves = {mode: {kind: m.curve(threads, mode, kind, results["plan"]["iters"]) for kind in ("raw", "best")}
              for mode in ("plain", "critic")}
    concepts = m.concepts(threads, results["diversity"])
    figure_fidelity(fidelity, chance, figures / "fidelity.png")
    figure_recognition(recognition, chance, figures / "recognition.png")
    figure_curves(curves, figures / "selfcorrection.png",
                  {"plain": "plain: \"improve your drawing\"", "critic": "critic + recognizer feedback"})
    figure_diversity(concepts, figures / "diversity.png")
    concept_sheet(directory, "every concept: first drafts and the loop's final picks (green frame)",
                  overview_rows(results), figures / "overview.png", tile=120, label_w=150)
    sheets = {c["concept"]: concept_sheet(directory, c["concept"], concept_rows(results, c["concept"]),
                                          directory / "sheets" / f"{slugify(c['concept'])}.png") for c in concepts}

    def sheet_link(name: str) -> str:
        return f"[sheet](sheets/{sheets[name].name})"

    show = min(SHOWCASE, len(concepts) // 2) or len(concepts)
    best, worst = concepts[:show], concepts[len(concepts) - show:] if len(concepts) > 1 else []
    parts = [
        f"# Vision check-up: `{results['model']}`",
        f"> **Every drawing, recognition and critic rating in this report was produced by `{results['model']}`.**  \n"
        "> **The critic is weak.** Scores come from drawloop's offline critic: render sanity checks (blank, tiny, "
        "off-canvas, one colour), whether the same model recognized the concept from the code, and the same model's "
        "0–10 rating of its own code. Nothing judges what the picture actually shows, and the model grades itself, "
        "so read scores as relative (between iterations, levels and models run the same way), never as absolute "
        "drawing quality. Recognition rates are the study's protocol and do not depend on the critic.",
        "## At a glance", _glance(results), "![every concept: first and final drafts](figures/overview.png)",
        "## Settings", _settings_section(results),
        "## 1. Generation fidelity by level",
        "Critic loop threads: the first draft, the last attempt and the attempt the loop returns (its best by "
        "critic score, which is selected using the same model's recognition, so it is biased upwards).",
        table(["level", "drawings", "failed first drafts", "first score", "last score", "best score",
               "first recognized", "last recognized", "best recognized"],
              [(r["level"], r["drawings"], fmt(r["failed_first"], True), fmt(r["first_score"]), fmt(r["last_score"]),
                fmt(r["best_score"]), fmt(r["first_recognized"], True), fmt(r["last_recognized"], True),
                fmt(r["best_recognized"], True)) for r in fidelity]),
        "![fidelity by level](figures/fidelity.png)",
        "## 2. Recognition from code: own drawings vs people's",
        "Multiple choice among the concept and its distractors, reading only the SVG source. People's drawings come "
        "from the openclipart gallery: a drawing counts for a concept when its title contains every content word "
        "of the concept and names no distractor (\"sleeping cat\" → a cat; \"cat and dog\" is left out when \"a dog\" "
        "is a choice). Titles, keywords, descriptions, comments and editor data are removed from the SVG first, "
        "since they state the answer in words. Levels whose concepts have no such drawing (most scenes and "
        f"generated concepts) show –. Chance is {fmt(chance, True)}.",
        table(["level", "own first drafts", "own, concepts with people's drawings", "people's drawings",
               "concepts with people's drawings", "code length own / people (chars)",
               "code names the concept own / people"],
              [(r["level"], f"{fmt(r['own'], True)} (n={r['n_own']})",
                f"{fmt(r['own_matched'], True)} (n={r['n_matched']})",
                f"{fmt(r['human'], True)} (n={r['n_human']})", r["concepts_with_human"],
                f"{fmt(r['own_chars'], digits=0)} / {fmt(r['human_chars'], digits=0)}",
                f"{fmt(r['own_named'], True)} / {fmt(r['human_named'], True)}") for r in recognition]),
        "*Code names the concept*: an id, class, comment or text in the code contains a word of the concept "
        "(e.g. `id=\"waterfallGradient\"`). Models name their parts; people's editors write ids like `path1234`. "
        "The recognizer reads the code with comments, titles and labels removed and ids and classes renamed "
        "(`i1`, `c1`), so only visible `<text>` can still give the answer away.",
        "![recognition own vs people](figures/recognition.png)",
    ]
    if human:
        parts.append(table(["concept", "people's drawing (title)", "code chars", "model's answer"],
                           [(h["concept"], h["title"], h["chars"],
                             ("✓ " if h["correct"] else "✗ ") + (h["label"] or "unparseable"))
                            for h in human]))
    parts += [
        "## 3. Self-correction",
        "Each loop runs all its iterations (no early stop). *plain*: the study's text-only prompt, \"Improve your "
        "drawing\", with the previous code and nothing else. *critic*: drawloop's loop, whose prompt carries the "
        "recognizer's guess and the critic's score and fixes. Both start from the same first draft. Every attempt "
        "is scored by the same critic. Raw = the score at each iteration; best = the best score so far.",
        table(["iteration", "plain raw", "plain best so far", "critic raw", "critic best so far"],
              [(i, fmt_spread(curves["plain"]["raw"][i]) if curves["plain"]["raw"] else "–",
                fmt_spread(curves["plain"]["best"][i]) if curves["plain"]["best"] else "–",
                fmt_spread(curves["critic"]["raw"][i]), fmt_spread(curves["critic"]["best"][i]))
               for i in range(len(curves["critic"]["raw"]))]),
        "![self-correction curves](figures/selfcorrection.png)",
        "Paired change from draft 0 to the last attempt: " + "; ".join(
            f"{mode} {fmt(g['mean'])} ± {fmt(g['std'])} (better {g['improved']}, worse {g['worse']}, n={g['n']})"
            for mode, g in ((mode, m.gain(threads, mode)) for mode in ("plain", "critic"))) + ".",
        "## 4. Diversity",
        "Independent first drafts of one concept (different seeds), embedded; the value is their mean pairwise cosine "
        f"distance ({results.get('embedder') or 'the image embedder'}, which crops each drawing to its content, so "
        "the same shape at another size or place counts as the same drawing). Final drafts (the loop's picks) are "
        "shown as diamonds. Each concept's sheet shows every sample and iteration.",
        table(["concept", "level", "samples", "first-draft diversity", "final diversity", "sheet"],
              [(c["concept"], c["level"], c["samples"], fmt(c["diversity"]), fmt(c["diversity_final"]),
                sheet_link(c["concept"])) for c in concepts]),
        "![diversity](figures/diversity.png)",
        "## Best and worst concepts",
        "Ranked by the mean score of the loop's final drafts.",
        table(["rank", "concept", "level", "first score", "best score", "first recognized", "best recognized"],
              [(i + 1, c["concept"], c["level"], fmt(c["first_score"]), fmt(c["best_score"]),
                fmt(c["first_recognized"], True), fmt(c["best_recognized"], True)) for i, c in enumerate(concepts)]),
        "### Best",
        *[f"**{c['concept']}** ({c['level']}, best score {fmt(c['best_score'])})\n\n"
          f"![{c['concept']}](sheets/{sheets[c['concept']].name})" for c in best],
        "### Worst",
        *[f"**{c['concept']}** ({c['level']}, best score {fmt(c['best_score'])})\n\n"
          f"![{c['concept']}](sheets/{sheets[c['concept']].name})" for c in worst],
        "## Costs", _costs_section(results),
        "## Definitions", DEFINITIONS,
    ]
    path = directory / "report.md"
    path.write_text("\n\n".join(parts) + "\n")
    (directory / "metrics.json").write_text(json.dumps({"model": results["model"], "headline": m.headline(results),
                                                        "fidelity": fidelity, "recognition": recognition,
                                                        "curves": curves, "concepts": concepts,
                                                        "costs": m.costs(results)}, indent=2))
    return path


# ---------------------------------------------------------------- two models side by side

HEADLINE_ROWS = (("first_score", "first-draft score", False), ("best_score", "final-draft score", False),
                 ("first_recognized", "first drafts recognized", True),
                 ("best_recognized", "final drafts recognized", True),
                 ("own_recognized_matched", "own drawings recognized (concepts with people's drawings)", True),
                 ("human_recognized", "people's drawings recognized", True),
                 ("plain_gain", "plain loop gain (draft 0 → last)", False),
                 ("critic_gain", "critic loop gain (draft 0 → last)", False),
                 ("diversity", "diversity (mean pairwise distance)", False))


def _names(a: dict, b: dict, dir_a: Path, dir_b: Path) -> tuple[str, str]:
    if a["model"] != b["model"]:
        return a["model"], b["model"]
    return f"{a['model']} [{dir_a.name}]", f"{b['model']} [{dir_b.name}]"


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

    rows = [(label, fmt(ha[key], pct), fmt(hb[key], pct), delta(key, pct)) for key, label, pct in HEADLINE_ROWS]
    fa, fb = m.fidelity(a["threads"]), m.fidelity(b["threads"])
    levels = list(dict.fromkeys([r["level"] for r in fa] + [r["level"] for r in fb]))
    by_a, by_b = {r["level"]: r for r in fa}, {r["level"]: r for r in fb}
    level_rows = [(lvl, fmt((by_a.get(lvl) or {}).get("first_score")), fmt((by_b.get(lvl) or {}).get("first_score")),
                   fmt((by_a.get(lvl) or {}).get("best_recognized"), True),
                   fmt((by_b.get(lvl) or {}).get("best_recognized"), True)) for lvl in levels]
    figure_compare(a, b, name_a, name_b, out / "compare.png")
    same = {k: (a["plan"].get(k), b["plan"].get(k)) for k in ("levels", "concepts_per_level", "samples", "iters")}
    differing = [f"{k}: {x} vs {y}" for k, (x, y) in same.items() if x != y]
    parts = [f"# Check-up comparison: `{name_a}` vs `{name_b}`",
             f"A = `{dir_a}`, B = `{dir_b}`. "
             + ("Both ran the same plan." if not differing else "**The plans differ** (" + "; ".join(differing)
                + "), so compare with care.")
             + " Scores come from each run's own offline critic (the model grades itself), so score differences "
               "mix drawing skill with self-assessment; recognition rates follow the study's protocol.",
             table(["metric", "A", "B", "B − A"], rows),
             "Per level (first-draft score, final drafts recognized):",
             table(["level", "A first score", "B first score", "A recognized", "B recognized"], level_rows),
             "![comparison](compare.png)"]
    path = out / "compare.md"
    path.write_text("\n\n".join(parts) + "\n")
    return path


def figure_compare(a: dict, b: dict, name_a: str, name_b: str, path: Path) -> Path:
    plt = _plt()
    name_a, name_b = (re.sub(r" \(embedded llama\.cpp[^)]*\)", "", n) for n in (name_a, name_b))  # short legends
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    ha, hb = m.headline(a), m.headline(b)
    keys = [k for k, _, _ in HEADLINE_ROWS if k not in ("plain_gain", "critic_gain")]
    short = {"first_score": "first\nscore", "best_score": "final\nscore", "first_recognized": "first\nrecog.",
             "best_recognized": "final\nrecog.", "own_recognized_matched": "own\nrecog.*",
             "human_recognized": "people\nrecog.", "diversity": "diversity"}
    _bars(axes[0], [short[k] for k in keys], {name_a[:40]: [ha[k] for k in keys], name_b[:40]: [hb[k] for k in keys]},
          ["#4c72b0", "#dd8452"])
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
