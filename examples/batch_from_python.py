"""A batch driven from Python: several concepts, one model, a results table and a JSON file.

    python examples/batch_from_python.py                          # three concepts, offline local model
    python examples/batch_from_python.py "a cat" "a kite" --model openai:gpt-4o-mini --workers 4

The model backend is opened once and shared by every `draw()` (starting the local llama.cpp
server per concept would cost seconds each). Each concept gets its own run directory, so
`drawloop runs` lists them and `drawloop trace show` replays any of them. `--workers N` draws N
concepts at a time; every part of the loop is safe to share between threads.

For thousands of drawings with retries, resumable checkpoints and back-pressure, use
drawloop.graphs.batch (what `drawloop dataset build` runs on); this is the few-concepts version.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import drawloop
from drawloop.config import Settings
from drawloop.llm import open_model


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("concepts", nargs="*", default=["a red circle", "a red apple", "a bicycle"])
    parser.add_argument("--model", default="local")
    parser.add_argument("--base-url")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--max-iters", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    settings = Settings.from_env(model=args.model, base_url=args.base_url, runs_dir=args.runs_dir,
                                 max_iters=args.max_iters, seed=0)
    with open_model(settings) as models:
        def one(concept: str) -> drawloop.DrawResult:
            return drawloop.draw(concept, settings=settings, models=models)

        with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
            results = list(pool.map(one, args.concepts))

    rows = [{"concept": r.concept, "best_score": r.best_score, "iterations": len(r.attempts),
             "recognized": ((r.best or {}).get("recognition") or {}).get("label"),
             "run_dir": str(r.run_dir)} for r in results]
    for row in rows:
        print(f"{row['concept']:<24} best {row['best_score']:.2f}  seen as {row['recognized']}  {row['run_dir']}")
    summary = Path(args.runs_dir) / "batch_summary.json"
    summary.write_text(json.dumps(rows, indent=2))
    outcome = {"example": "batch_from_python", "summary": str(summary), "rows": rows}
    print(json.dumps(outcome))
    return outcome


if __name__ == "__main__":
    main()
