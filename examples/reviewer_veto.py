"""A graph with an extra node: a reviewer that can veto an attempt, without copying the graph.

    python examples/reviewer_veto.py                      # "a red apple" with the offline local model
    python examples/reviewer_veto.py "a bicycle" --model openai:gpt-4o-mini

`review_nodes=[(name, fn)]` inserts nodes between the last critique of a round and the judge. A
review node gets the whole state; the round's candidates are `state["candidates"]`, already
drawn, rendered, recognized and scored. It returns a partial update; returning a candidate with a
lower score and new feedback is a veto: the judge sees the vetoed score, and the drawer reads the
reviewer's feedback if that candidate is revised.

This reviewer vetoes an attempt whose code is identical to an earlier one (small models often
answer "improve it" by repeating themselves), so the loop stops paying for copies. `traced`
makes the node emit start/end trace events like the built-in nodes, so the veto shows up in
the live view and in `drawloop trace show`.
"""

from __future__ import annotations

import argparse
import json

import drawloop
from drawloop.trace.events import traced

VETO = "VETO from the reviewer: this code is identical to attempt #{index}. Change the drawing, do not repeat it."


def no_repeats(state: dict) -> dict:
    earlier = [a for a in state.get("attempts") or [] if a.get("code")]
    vetoed = []
    for candidate in state.get("candidates") or []:
        twin = next((a for a in earlier if a["code"].strip() == (candidate.get("code") or "").strip()), None)
        if twin is None:
            continue  # no change: the judge sees the critic's score
        critique = dict(candidate.get("critique") or {})
        critique["scores"] = {**critique.get("scores", {}), "review": 0.0}
        critique["score"] = 0.0
        critique["feedback"] = VETO.format(index=twin["iteration"])
        vetoed.append({**candidate, "critique": critique})
    return {"candidates": vetoed} if vetoed else {}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("concept", nargs="?", default="a red apple")
    parser.add_argument("--model", default="local")
    parser.add_argument("--base-url")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--max-iters", type=int, default=4)
    args = parser.parse_args(argv)

    result = drawloop.draw(args.concept, model=args.model, base_url=args.base_url, runs_dir=args.runs_dir,
                           max_iters=args.max_iters, patience=2,
                           review_nodes=[("review", traced("review")(no_repeats))])
    vetoed = [a["iteration"] for a in result.attempts if (a.get("critique") or {}).get("feedback", "").startswith("VETO")]
    print(f"scores {result.scores}; vetoed attempts: {vetoed or 'none'}; stopped: {result.stop_reason}")
    outcome = {"example": "reviewer_veto", "run_dir": str(result.run_dir), "scores": result.scores,
               "vetoed": vetoed, "stop_reason": result.stop_reason, "best_iteration": result.best_index}
    print(json.dumps(outcome))
    return outcome


if __name__ == "__main__":
    main()
