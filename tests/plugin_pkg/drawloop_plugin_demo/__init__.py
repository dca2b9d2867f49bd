"""A drawloop plugin in one file: what a third-party package ships to add agents.

Its pyproject.toml names each factory under the "drawloop.agents" entry-point group as
"<kind>.<name>"; drawloop calls the factory with an AgentContext when the name is used:

    drawloop.draw("a red apple", critic="plugin_fixed")
    drawloop draw "a red apple" --weights sanity=1,plugin_corners=1
"""

FIXED_SCORE = 0.42
FEEDBACK = "The plugin critic looked at it."


class FixedCritic:
    """Always the same verdict: easy to spot in a test."""

    def critique(self, drawing):
        return {"score": FIXED_SCORE, "scores": {"plugin": FIXED_SCORE}, "feedback": FEEDBACK}


class CornersScorer:
    """1.0 when the four corner pixels are the same colour (the drawing has a clean background)."""

    name = "plugin_corners"

    def score(self, drawing):
        if not drawing.ok:
            return None
        import io

        from PIL import Image

        from drawloop.agents.base import ScoreResult

        image = Image.open(io.BytesIO(drawing.png)).convert("RGB")
        w, h = image.size
        corners = {image.getpixel(xy) for xy in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1))}
        return ScoreResult(1.0 if len(corners) == 1 else 0.5, "" if len(corners) == 1 else "Use a plain background.")


def fixed_critic(ctx):
    return FixedCritic()


def corners_scorer(ctx):
    return CornersScorer()
