"""Does the loop's search pay? First draft vs the loop's pick, one candidate a round vs N, at about equal model time.

    .venv/bin/python bench/search.py                           # 10 concepts, the offline model
    .venv/bin/python bench/search.py --concepts "an apple,a house" --n 2 --rounds-single 3 --rounds-multi 2
    .venv/bin/python bench/search.py --sheet-only              # redraw the blind sheet from the last JSON
    .venv/bin/python bench/search.py --resume                  # keep the rows of a killed run, draw the rest

For each concept, in ABBA order over concepts (single, multi / multi, single / ...) to cancel drift in
machine speed: a run with 1 candidate a round for R1 rounds and a run with N candidates a round for R2
rounds (R2 < R1 so both spend about the same model time; the wall time of each is reported). Prints
mean critic score of the first draft (round 0, candidate 0 of the single chain) and of each pick, wall
times, and how often the pick replaced the first draft; writes bench/results/search.json and a blind
contact sheet (first draft | single pick | multi pick, no scores, columns shuffled per row, the key in
the JSON) for a person to judge whether the pick is better than the first draft.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "results"

CONCEPTS = ["an apple", "a house", "a tree", "the sun", "a fish", "a flower", "a car", "a cat", "a sailboat",
            "a snowman"]


def run_one(concept: str, candidates: int, rounds: int, models, runs_dir: Path, seed: int) -> dict:
    import drawloop
    from drawloop.config import Settings

    settings = Settings.from_env(candidates=candidates, max_iters=rounds, patience=rounds, seed=seed,
                                 runs_dir=str(runs_dir))
    start = time.perf_counter()
    result = drawloop.draw(concept, settings=settings, models=models)
    wall = time.perf_counter() - start
    first = result.attempts[0]
    return {"concept": concept, "candidates": candidates, "rounds": rounds, "wall_s": round(wall, 1),
            "run_dir": str(result.run_dir), "first_score": (first.get("critique") or {}).get("score", 0.0),
            "first_image": first.get("image"), "pick_score": result.best_score, "pick_index": result.best_index,
            "pick_image": (result.best or {}).get("image"), "replaced_first": result.best_index != 0,
            "drafts": len(result.attempts), "model": result.model}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concepts", default=",".join(CONCEPTS))
    parser.add_argument("--n", type=int, default=2, help="candidates a round in the multi run")
    parser.add_argument("--rounds-single", type=int, default=3)
    parser.add_argument("--rounds-multi", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sheet-only", action="store_true")
    parser.add_argument("--resume", action="store_true", help="keep the concepts search.json already has")
    args = parser.parse_args()
    out = OUT / "search.json"
    if args.sheet_only:
        report = json.loads(out.read_text())
        sheet(report)
        return report

    from drawloop.config import Settings
    from drawloop.llm import open_model

    concepts = [c.strip() for c in args.concepts.split(",") if c.strip()]
    runs_dir = OUT / "search-runs"
    rows = []
    if args.resume and out.exists():
        saved = json.loads(out.read_text())
        if (saved["n"], saved["rounds_single"], saved["rounds_multi"]) != (args.n, args.rounds_single,
                                                                             args.rounds_multi):
            raise SystemExit("--resume: search.json was measured with other --n/--rounds settings")
        rows = [row for row in saved["rows"] if row["concept"] in concepts]
    done = {row["concept"] for row in rows}
    with open_model(Settings.from_env(candidates=args.n)) as models:   # args.n slots: the multi run drafts at once
        for i, concept in enumerate(concepts):
            if concept in done:
                continue
            order = [(1, args.rounds_single), (args.n, args.rounds_multi)]
            if i % 2:
                order.reverse()  # ABBA over concepts: machine-speed drift hits both arms alike
            pair = {c: run_one(concept, c, r, models, runs_dir, args.seed + i) for c, r in order}
            rows.append({"concept": concept, "single": pair[1], "multi": pair[args.n]})
            print(f"{concept:16} first {pair[1]['first_score']:.2f}  single pick {pair[1]['pick_score']:.2f} "
                  f"({pair[1]['wall_s']:.0f}s)  N={args.n} pick {pair[args.n]['pick_score']:.2f} "
                  f"({pair[args.n]['wall_s']:.0f}s)", flush=True)
            report = summarise(rows, args, models.label)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=2))   # after every concept: a killed bench keeps its rows
        report = summarise(rows, args, models.label)
    sheet(report)
    print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=2))
    return report


def summarise(rows: list[dict], args, model: str) -> dict:
    def mean(values):
        return round(sum(values) / len(values), 4) if values else None

    single, multi = [r["single"] for r in rows], [r["multi"] for r in rows]
    return {"model": model, "n": args.n, "rounds_single": args.rounds_single, "rounds_multi": args.rounds_multi,
            "concepts": len(rows),
            "mean_first_score": mean([r["first_score"] for r in single]),
            "mean_single_pick": mean([r["pick_score"] for r in single]),
            "mean_multi_pick": mean([r["pick_score"] for r in multi]),
            "wall_single_s": round(sum(r["wall_s"] for r in single), 1),
            "wall_multi_s": round(sum(r["wall_s"] for r in multi), 1),
            "single_replaced_first": sum(r["replaced_first"] for r in single),
            "multi_replaced_first": sum(r["replaced_first"] for r in multi),
            "rows": rows}


def sheet(report: dict, tile: int = 180) -> Path:
    """first draft | single pick | multi pick, shuffled per row with a fixed seed; the key goes in the JSON."""
    import io

    from PIL import Image, ImageDraw

    from drawloop.imaging import label_font

    rng = random.Random(7)
    rows = report["rows"]
    image = Image.new("RGB", (3 * (tile + 20) + 160, len(rows) * (tile + 10) + 10), "white")
    draw = ImageDraw.Draw(image)
    font = label_font(14)
    keys = []
    for y, row in enumerate(rows):
        cells = [("first", row["single"]["run_dir"], row["single"]["first_image"]),
                 ("single", row["single"]["run_dir"], row["single"]["pick_image"]),
                 ("multi", row["multi"]["run_dir"], row["multi"]["pick_image"])]
        rng.shuffle(cells)
        keys.append([c[0] for c in cells])
        top = 10 + y * (tile + 10)
        draw.text((6, top + 4), row["concept"], fill="black", font=font)
        for x, (_, run_dir, rel) in enumerate(cells):
            left = 160 + x * (tile + 20)
            if rel:
                png = (Path(run_dir) / rel).read_bytes()
                image.paste(Image.open(io.BytesIO(png)).convert("RGB").resize((tile, tile)), (left, top))
            draw.rectangle([left - 1, top - 1, left + tile, top + tile], outline=(160, 160, 160))
            draw.text((left + 2, top + 2), "XYZ"[x], fill=(200, 0, 0), font=font)
    path = OUT / "search-sheet.png"
    image.save(path)
    report["sheet_key"] = keys   # columns X, Y, Z of each row: which is first / single / multi
    (OUT / "search.json").write_text(json.dumps(report, indent=2))
    print(f"blind sheet: {path}")
    return path


if __name__ == "__main__":
    main()
