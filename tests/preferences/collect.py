"""Collect real drawings from a dataset build's trace into the preference set, and draw blind pair sheets.

    python tests/preferences/collect.py data/prefs          # adds drawings + unlabelled pairs
    python tests/preferences/collect.py --sheets /tmp/sheets   # pair sheets without any score, to judge
    python tests/preferences/collect.py --search bench/results/search.json   # bench/search.py's verdicts

Each drawing the build rendered (first drafts and revisions alike) is copied as SVG into
drawings/, with the scores the *real* model gave it at build time for the code-reading scorers
(`llm`, `recognition`) in drawings.json: those need the LLM, so the agreement test reads them
back instead of rerunning a 1.5B model over every drawing. Pairs are every two drawings of one
concept. A person labels pairs.jsonl ("human": "a" | "b" | "tie", "reason": ...) looking at the
sheets, which show the two pictures and nothing else.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sqlite3
from pathlib import Path

HERE = Path(__file__).parent
DRAWINGS = HERE / "drawings"
RECORDED = ("llm", "recognition")


def collect(dataset: Path) -> None:
    work = dataset / "work"
    concepts = dict(sqlite3.connect(dataset / "manifest.sqlite").execute("select id, concept from jobs"))
    found: dict[tuple[str, int], dict] = {}
    for line in (work / "trace.jsonl").read_text().splitlines():
        event = json.loads(line)
        key = (event["thread"], event.get("iteration", 0))
        item = found.setdefault(key, {"concept": concepts.get(event["thread"])})
        if event.get("phase") != "end":
            continue
        if event["node"] == "draw" and event.get("artifact"):
            item["code"] = work / event["artifact"]
        if event["node"] == "critique" and event.get("scores") is not None:
            item["recorded"] = {k: v for k, v in event["scores"].items() if k in RECORDED}
    index = json.loads((HERE / "drawings.json").read_text()) if (HERE / "drawings.json").exists() else {}
    DRAWINGS.mkdir(exist_ok=True)
    for (thread, iteration), item in sorted(found.items()):
        if not item.get("code") or "recorded" not in item or not item["concept"]:
            continue  # still being drawn, or never rendered
        name = f"{thread}-{iteration}.svg"
        shutil.copy(item["code"], DRAWINGS / name)
        index[name] = {"concept": item["concept"], "thread": thread, "iteration": iteration,
                       "recorded": item["recorded"], "model": "local:qwen2.5-coder-1.5b"}
    (HERE / "drawings.json").write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    pairs_path = HERE / "pairs.jsonl"
    pairs = [json.loads(line) for line in pairs_path.read_text().splitlines()] if pairs_path.exists() else []
    have = {(p["a"], p["b"]) for p in pairs}
    by_concept: dict[str, list[str]] = {}
    for name, meta in sorted(index.items()):
        by_concept.setdefault(meta["concept"], []).append(name)
    for concept, names in by_concept.items():
        for a, b in itertools.combinations(names, 2):
            if (f"drawings/{a}", f"drawings/{b}") not in have:
                pairs.append({"concept": concept, "a": f"drawings/{a}", "b": f"drawings/{b}"})
    pairs_path.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    print(f"{len(index)} drawings, {len(pairs)} pairs over {len(by_concept)} concepts")


# bench/search.py's blind sheet (docs/search-sheet.png), judged before the key was read: per concept,
# the ranking of the first draft (F), the one-a-round pick (S) and the two-a-round pick (M), best first;
# "=" joins ties. docs/measurements.md has the reason for each row.
SEARCH_VERDICTS = {
    "an apple": ("S", "M", "F"), "a house": ("M", "S", "F"), "a tree": ("S", "F", "M"),
    "the sun": ("F=S", "M"), "a fish": ("F=S", "M"), "a flower": ("F=S=M",), "a car": ("M", "F=S"),
    "a cat": ("F=S", "M"), "a sailboat": ("S", "F", "M"), "a snowman": ("M", "F=S"),
}
SEARCH_REASONS = {
    "an apple": "S a red disc; M a pink disc with a stem-like squiggle; F the same disc, yellow",
    "a house": "M a grey building with a roof band and a door; S a pale panel with squares; F almost empty",
    "a tree": "S jagged dark masses, foliage at best; F one black kite; M a black bar",
    "the sun": "F and S a yellow disc; M an orange gradient disc half covered by a black blob",
    "a fish": "F and S a grey disc with a fin-like triangle; M blank",
    "a flower": "orange discs with triangles; none reads as a flower",
    "a car": "M a blocky black silhouette; F and S gradient discs with a rectangle",
    "a cat": "F and S a round head with one ear-like tab; M a plain black disc",
    "a sailboat": "S several sail-like curved shapes; F one of them; M rectangle outlines",
    "a snowman": "M stacked round parts, head, hands, buttons; F and S ellipses with a yellow triangle",
}


def from_search(report_path: Path) -> None:
    """Add bench/search.py's judged drawings: three pairs a concept (F-S, F-M, S-M) with the verdicts
    above, the drawings' code from the runs' checkpoints, the real model's code-reading scores."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    report = json.loads(report_path.read_text())
    index = json.loads((HERE / "drawings.json").read_text())
    pairs_path = HERE / "pairs.jsonl"
    pairs = [json.loads(line) for line in pairs_path.read_text().splitlines() if line.strip()]
    have = {(p["a"], p["b"]) for p in pairs}
    for row in report["rows"]:
        concept, names = row["concept"], {}
        for arm, label, which in (("single", "F", "first"), ("single", "S", "pick"), ("multi", "M", "pick")):
            run = Path(row[arm]["run_dir"])
            con = sqlite3.connect(run / "checkpoints.sqlite", check_same_thread=False)
            state = SqliteSaver(con).get_tuple({"configurable": {"thread_id": "main"}}).checkpoint["channel_values"]
            con.close()
            attempt = state["attempts"][0 if which == "first" else row[arm]["pick_index"]]
            thread = f"search-{run.name.split('-', 2)[-1]}"
            name = f"{thread}-{attempt['iteration']}.svg"
            (DRAWINGS / name).write_text(attempt["code"])
            scores = (attempt.get("critique") or {}).get("scores") or {}
            index[name] = {"concept": concept, "thread": thread, "iteration": attempt["iteration"],
                           "recorded": {k: v for k, v in scores.items() if k in RECORDED},
                           "model": "local:qwen2.5-coder-1.5b"}
            names[label] = f"drawings/{name}"
        rank = {label: place for place, group in enumerate(SEARCH_VERDICTS[concept]) for label in group.split("=")}
        for a, b in (("F", "S"), ("F", "M"), ("S", "M")):
            if names[a] == names[b] or (names[a], names[b]) in have:
                continue   # the pick was the first draft itself
            human = "tie" if rank[a] == rank[b] else ("a" if rank[a] < rank[b] else "b")
            pairs.append({"concept": concept, "a": names[a], "b": names[b], "human": human,
                          "reason": SEARCH_REASONS[concept], "source": "bench/search.py blind sheet"})
            have.add((names[a], names[b]))
    (HERE / "drawings.json").write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    pairs_path.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    print(f"{len(index)} drawings, {len(pairs)} pairs")


def sheets(out: Path, per_sheet: int = 6, tile: int = 200, unlabelled: bool = False) -> None:
    """Blind sheets: pair number, concept, A and B. No scores anywhere. `unlabelled`: only pairs
    nobody has judged yet (numbers stay those of pairs.jsonl)."""
    from PIL import Image, ImageDraw

    from drawloop.renderers import render
    from drawloop.imaging import label_font

    pairs = [json.loads(line) for line in (HERE / "pairs.jsonl").read_text().splitlines()]
    numbered = [(i, p) for i, p in enumerate(pairs) if not (unlabelled and "human" in p)]
    out.mkdir(parents=True, exist_ok=True)
    font = label_font(16)
    for start in range(0, len(numbered), per_sheet):
        chunk = numbered[start:start + per_sheet]
        sheet = Image.new("RGB", (2 * tile + 60, len(chunk) * (tile + 30)), "white")
        draw = ImageDraw.Draw(sheet)
        for row, (number, pair) in enumerate(chunk):
            y = row * (tile + 30)
            draw.text((6, y + 4), f"#{number}  {pair['concept']}", fill="black", font=font)
            for col, side in enumerate(("a", "b")):
                result = render((HERE / pair[side]).read_text(), "svg", tile)
                x = 10 + col * (tile + 40)
                if result.ok:
                    import io

                    sheet.paste(Image.open(io.BytesIO(result.png)).convert("RGB"), (x, y + 26))
                draw.rectangle([x - 1, y + 25, x + tile, y + 26 + tile], outline=(150, 150, 150))
                draw.text((x + tile + 4, y + 26), side.upper(), fill="black", font=font)
        sheet.save(out / f"pairs-{chunk[0][0]:03d}.png")
    print(f"{len(numbered)} pairs on {(len(numbered) + per_sheet - 1) // per_sheet} sheets in {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", type=Path)
    parser.add_argument("--sheets", type=Path)
    parser.add_argument("--unlabelled", action="store_true", help="sheets only for pairs not judged yet")
    parser.add_argument("--search", type=Path, help="bench/search.py's report: add its judged drawings")
    args = parser.parse_args()
    if args.search:
        from_search(args.search)
    if args.dataset:
        collect(args.dataset)
    if args.sheets:
        sheets(args.sheets, unlabelled=args.unlabelled)
