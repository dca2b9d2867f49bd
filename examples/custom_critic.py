"""A custom critic: your own scorer next to the built-in ones.

    python examples/custom_critic.py                     # "a red apple" with the offline local model
    python examples/custom_critic.py "a yellow banana" --model openai:gpt-4o-mini

A scorer is any object with a `name` and `score(drawing) -> ScoreResult | None` (None abstains).
This one checks that a concept that names a colour ("a red apple") is drawn mostly in that
colour, and tells the drawer what to fix when it is not. The critic combines it with the
built-in render-sanity and recognition scorers by weighted mean.

To use it by name (`--weights sanity=1,recognition=1,colour=2` on the command line, or from a
plugin package), register it: `@register("scorer", "colour")`, as below.
"""

from __future__ import annotations

import argparse
import colorsys
import io
import json

import numpy as np

import drawloop
from drawloop.agents.base import ScoreResult
from drawloop.agents.critic import Critic, RecognitionScorer, RenderSanityScorer
from drawloop.agents.registry import register
from drawloop.state import Drawing

HUES = {"red": 0.0, "orange": 0.08, "yellow": 0.16, "green": 0.33, "blue": 0.62, "purple": 0.78, "pink": 0.92}


class ColourScorer:
    """Share of the drawn (non-background) pixels whose hue matches the colour the concept names."""

    name = "colour"

    def score(self, drawing: Drawing) -> ScoreResult | None:
        wanted = next((word for word in drawing.concept.lower().split() if word in HUES), None)
        if wanted is None or not drawing.ok:
            return None  # nothing to judge: abstain, the other scorers decide
        from PIL import Image

        rgb = np.asarray(Image.open(io.BytesIO(drawing.png)).convert("RGB").resize((64, 64)), dtype=float) / 255
        hsv = np.array([colorsys.rgb_to_hsv(*px) for px in rgb.reshape(-1, 3)])
        drawn = hsv[(hsv[:, 1] > 0.25) & (hsv[:, 2] > 0.2)]  # saturated pixels: the paint, not the paper
        if len(drawn) == 0:
            return ScoreResult(0.0, f"Nothing {wanted} is drawn; {drawing.concept} should be mostly {wanted}.")
        distance = np.minimum(abs(drawn[:, 0] - HUES[wanted]), 1 - abs(drawn[:, 0] - HUES[wanted]))
        share = float((distance < 0.06).mean())
        feedback = "" if share > 0.5 else f"Only {share:.0%} of the colour is {wanted}; make the subject {wanted}."
        return ScoreResult(min(1.0, share / 0.5), feedback, {"share": share})


@register("scorer", "colour")
def colour_scorer(ctx) -> ColourScorer:
    return ColourScorer()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("concept", nargs="?", default="a red apple")
    parser.add_argument("--model", default="local")
    parser.add_argument("--base-url")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--max-iters", type=int, default=3)
    args = parser.parse_args(argv)

    critic = Critic([(RenderSanityScorer(), 1.0), (RecognitionScorer(), 1.0), (ColourScorer(), 2.0)])
    result = drawloop.draw(args.concept, model=args.model, base_url=args.base_url, runs_dir=args.runs_dir,
                           max_iters=args.max_iters, critic=critic)
    for attempt in result.attempts:
        critique = attempt.get("critique") or {}
        print(f"#{attempt['iteration']}  {critique.get('score', 0):.2f}  {critique.get('scores')}")
    outcome = {"example": "custom_critic", "run_dir": str(result.run_dir), "best_score": result.best_score,
               "scores": [(a.get("critique") or {}).get("scores") for a in result.attempts]}
    print(json.dumps(outcome))
    return outcome


if __name__ == "__main__":
    main()
