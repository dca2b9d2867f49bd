"""The check-up report: DIR/report.md with tables, matplotlib figures and contact sheets.

    from drawloop.checkup import write_report
    write_report("runs/checkup-local")       # report.md, metrics.json, figures/*.png, sheets/<concept>.png

Reads only DIR/results.json and the drawings in DIR/artifacts, so a report can be rebuilt (or a
finished check-up copied elsewhere and reported on) without a model. The arithmetic is in
metrics.py, the figures in figures.py, the contact sheets in sheets.py; compare.py puts two
check-ups side by side.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from drawloop.checkup import metrics as m
from drawloop.checkup.figures import figure_curves, figure_diversity, figure_fidelity, figure_recognition
from drawloop.checkup.sheets import concept_rows, concept_sheet, overview_rows
from drawloop.concepts import slugify

SHOWCASE = 3      # best and worst concepts shown as contact sheets
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
                                          directory / "sheets" / f"{slugify(c['concept'])}.png")
              for c in concepts}

    def sheet_link(name: str) -> str:
        return f"[sheet](sheets/{sheets[name].name})"

    show = min(SHOWCASE, len(concepts) // 2) or len(concepts)
    best, worst = concepts[:show], concepts[len(concepts) - show:] if len(concepts) > 1 else []
    parts = [
        f"# Vision check-up: `{results['model']}`",
        "> **Every drawing, recognition and critic rating in this report was produced by "
        f"`{results['model']}`.**  \n"
        "> **The critic is weak.** Scores come from drawloop's offline critic: render sanity checks (blank, "
        "tiny, off-canvas, one colour), whether the same model recognized the concept from the code, and the "
        "same model's 0–10 rating of its own code. Nothing judges what the picture actually shows, and the "
        "model grades itself, so read scores as relative (between iterations, levels and models run the same "
        "way), never as absolute drawing quality. Recognition rates are the study's protocol and do not "
        "depend on the critic.",
        "## At a glance", _glance(results), "![every concept: first and final drafts](figures/overview.png)",
        "## Settings", _settings_section(results),
        "## 1. Generation fidelity by level",
        "Critic loop threads: the first draft, the last attempt and the attempt the loop returns (its best "
        "by critic score, which is selected using the same model's recognition, so it is biased upwards).",
        table(["level", "drawings", "failed first drafts", "first score", "last score", "best score",
               "first recognized", "last recognized", "best recognized"],
              [(r["level"], r["drawings"], fmt(r["failed_first"], True), fmt(r["first_score"]),
                fmt(r["last_score"]), fmt(r["best_score"]), fmt(r["first_recognized"], True),
                fmt(r["last_recognized"], True), fmt(r["best_recognized"], True)) for r in fidelity]),
        "![fidelity by level](figures/fidelity.png)",
        "## 2. Recognition from code: own drawings vs people's",
        "Multiple choice among the concept and its distractors, reading only the SVG source. People's "
        "drawings come from the openclipart gallery: a drawing counts for a concept when its title contains "
        "every content word of the concept and names no distractor (\"sleeping cat\" → a cat; \"cat and "
        "dog\" is left out when \"a dog\" is a choice). Titles, keywords, descriptions, comments and editor "
        "data are removed from the SVG first, since they state the answer in words. Levels whose concepts "
        f"have no such drawing (most scenes and generated concepts) show –. Chance is {fmt(chance, True)}.",
        table(["level", "own first drafts", "own, concepts with people's drawings", "people's drawings",
               "concepts with people's drawings", "code length own / people (chars)",
               "code names the concept own / people"],
              [(r["level"], f"{fmt(r['own'], True)} (n={r['n_own']})",
                f"{fmt(r['own_matched'], True)} (n={r['n_matched']})",
                f"{fmt(r['human'], True)} (n={r['n_human']})", r["concepts_with_human"],
                f"{fmt(r['own_chars'], digits=0)} / {fmt(r['human_chars'], digits=0)}",
                f"{fmt(r['own_named'], True)} / {fmt(r['human_named'], True)}") for r in recognition]),
        "*Code names the concept*: an id, class, comment or text in the code contains a word of the concept "
        "(e.g. `id=\"waterfallGradient\"`). Models name their parts; people's editors write ids like "
        "`path1234`. The recognizer reads the code with comments, titles and labels removed and ids and "
        "classes renamed (`i1`, `c1`), so only visible `<text>` can still give the answer away.",
        "![recognition own vs people](figures/recognition.png)",
    ]
    if human:
        parts.append(table(["concept", "people's drawing (title)", "code chars", "model's answer"],
                           [(h["concept"], h["title"], h["chars"],
                             ("✓ " if h["correct"] else "✗ ") + (h["label"] or "unparseable"))
                            for h in human]))
    parts += [
        "## 3. Self-correction",
        "Each loop runs all its iterations (no early stop). *plain*: the study's text-only prompt, \"Improve "
        "your drawing\", with the previous code and nothing else. *critic*: drawloop's loop, whose prompt "
        "carries the recognizer's guess and the critic's score and fixes. Both start from the same first "
        "draft. Every attempt is scored by the same critic. Raw = the score at each iteration; best = the "
        "best score so far.",
        table(["iteration", "plain raw", "plain best so far", "critic raw", "critic best so far"],
              [(i, fmt_spread(curves["plain"]["raw"][i]) if curves["plain"]["raw"] else "–",
                fmt_spread(curves["plain"]["best"][i]) if curves["plain"]["best"] else "–",
                fmt_spread(curves["critic"]["raw"][i]), fmt_spread(curves["critic"]["best"][i]))
               for i in range(len(curves["critic"]["raw"]))]),
        "![self-correction curves](figures/selfcorrection.png)",
        "Paired change from draft 0 to the last attempt: " + "; ".join(
            f"{mode} {fmt(g['mean'])} ± {fmt(g['std'])} (better {g['improved']}, worse {g['worse']}, "
            f"n={g['n']})"
            for mode, g in ((mode, m.gain(threads, mode)) for mode in ("plain", "critic"))) + ".",
        "## 4. Diversity",
        "Independent first drafts of one concept (different seeds), embedded; the value is their mean "
        f"pairwise cosine distance ({results.get('embedder') or 'the image embedder'}, which crops each "
        "drawing to its content, so the same shape at another size or place counts as the same drawing). "
        "Final drafts (the loop's picks) are shown as diamonds. Each concept's sheet shows every sample and "
        "iteration.",
        table(["concept", "level", "samples", "first-draft diversity", "final diversity", "sheet"],
              [(c["concept"], c["level"], c["samples"], fmt(c["diversity"]), fmt(c["diversity_final"]),
                sheet_link(c["concept"])) for c in concepts]),
        "![diversity](figures/diversity.png)",
        "## Best and worst concepts",
        "Ranked by the mean score of the loop's final drafts.",
        table(["rank", "concept", "level", "first score", "best score", "first recognized",
               "best recognized"],
              [(i + 1, c["concept"], c["level"], fmt(c["first_score"]), fmt(c["best_score"]),
                fmt(c["first_recognized"], True), fmt(c["best_recognized"], True))
               for i, c in enumerate(concepts)]),
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
    (directory / "metrics.json").write_text(json.dumps({"model": results["model"],
                                                        "headline": m.headline(results),
                                                        "fidelity": fidelity, "recognition": recognition,
                                                        "curves": curves, "concepts": concepts,
                                                        "costs": m.costs(results)}, indent=2))
    return path


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
            ("choices per recognition", f"{settings['n_distractors'] + 1} (concept + "
                                        f"{settings['n_distractors']} distractors, same order for own and "
                                        "people's drawings)"),
            ("temperature", settings["temperature"]), ("max tokens per drawing", settings["max_tokens"]),
            ("render size", f"{settings['size']} px, {settings['language']}"),
            ("critic", f"{settings['critic']} · weights "
                       f"{', '.join(f'{k}={v}' for k, v in weights.items())}"),
            ("recognizer", settings["recognizer"]),
            ("seeds", f"plan seed {plan['seed']}; sample k draws with seed {plan['seed']} + 1000·k "
                      f"(+ iteration): {', '.join(map(str, seeds))}"),
            ("concurrency", plan["concurrency"]),
            ("people's drawings", f"up to {plan['human_per_concept']} per concept, SVG ≤ "
                                  f"{plan['human_max_chars']} characters after removing metadata"),
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
    lines = [f"- session {i + 1}{'' if s.get('finished', True) else ' (interrupted)'}: "
             f"started {s['started']}, {s['seconds']:.0f} s, computed "
             f"{s['computed'].get('threads', 0)} threads, {s['computed'].get('human', 0)} people's drawings, "
             f"{s['computed'].get('embeddings', 0)} embeddings" for i, s in enumerate(sessions)]
    return table(["", ""], rows) + "\n\n" + "\n".join(lines)


def _glance(results: dict) -> str:
    h = m.headline(results)
    named = m.recognition(results["threads"], results["human"])[-1]
    plain, critic = m.gain(results["threads"], "plain"), m.gain(results["threads"], "critic")
    lines = [
        f"- **Generation:** first drafts score {fmt(h['first_score'])} and are recognized "
        f"{fmt(h['first_recognized'], True)} of the time; the loop's final drafts score "
        f"{fmt(h['best_score'])}, recognized {fmt(h['best_recognized'], True)} (chance "
        f"{fmt(h['chance'], True)}).",
        f"- **Recognition from code:** own first drafts {fmt(h['own_recognized_matched'], True)} vs people's "
        f"drawings {fmt(h['human_recognized'], True)}, on the concepts that have people's drawings; "
        f"{fmt(named['own_named'], True)} of own first drafts name the concept in their code (ids, "
        f"comments), {fmt(named['human_named'], True)} of people's drawings do."
        if h["human_recognized"] is not None else
        "- **Recognition from code:** no concept in this slice has people's drawings to compare with.",
        "- **Self-correction** (draft 0 → last, paired): plain \"improve your drawing\" "
        f"{fmt(plain['mean'])} (better in {plain['improved']}/{plain['n']}), critic loop "
        f"{fmt(critic['mean'])} (better in {critic['improved']}/{critic['n']}).",
        f"- **Diversity:** mean pairwise distance between samples {fmt(h['diversity'])} (0 = identical "
        "drawings).",
    ]
    return "\n".join(lines)



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
        raise FileNotFoundError(f"{directory} holds no check-up (no results.json): "
                                "run `drawloop checkup` first")
    return json.loads(path.read_text())
