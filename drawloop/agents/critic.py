"""The critic: a score in [0, 1] plus feedback the drawer can act on, from composable scorers.

    critic = Critic([(RenderSanityScorer(), 1.0),
                     (RecognitionScorer(), 1.0),
                     (LLMCodeCritic(models.chat(max_tokens=200, temperature=0)), 1.0)])
    critique = critic.critique(drawing)      # {"score": 0.61, "scores": {...}, "feedback": "..."}

The combined score is the weighted mean of the scorers that did not abstain, capped by any
scorer that sets `details["cap"]`: a blank canvas cannot earn credit from a recognizer that
guessed right by reading the code. A drawing that
failed to render scores 0 and its feedback is the error, so the drawer fixes that first.
Weights come from the CLI as `--weights sanity=1,recognition=2,llm=1`.
"""

from __future__ import annotations

import hashlib
import re

from drawloop import prompts
from drawloop.agents.base import ScoreResult, Scorer
from drawloop.agents.recognizer import strip_hints
from drawloop.imaging import content_stats
from drawloop.llm.chat import ChatLLM, LLMError, ask_json
from drawloop.state import Critique, Drawing


_SVG = "{http://www.w3.org/2000/svg}"
_SHAPES = {"rect", "circle", "ellipse", "line", "polyline", "polygon", "path", "text", "use", "image"}
_CONTAINERS = {"defs", "pattern", "symbol", "clipPath", "mask", "marker", "linearGradient", "radialGradient",
               "filter"}    # their children paint nothing by themselves


def svg_blank_causes(code: str) -> list[str]:
    """Name the mistakes in SVG code that make it paint nothing, as fixes the drawer can apply.

    A blank render alone says only "nothing visible"; small models make the same few mistakes
    (a <pattern> without width/height, url(#id) pointing nowhere, everything inside <defs>), and
    without being told which they repeat it on every redraft. Returns [] when no cause is found."""
    import defusedxml.ElementTree as SafeET

    try:
        root = SafeET.fromstring(code, forbid_dtd=True)
    except Exception:  # noqa: BLE001 - it rendered, so the renderer's own parse found a way; say nothing
        return []
    local = {el: el.tag.replace(_SVG, "") if isinstance(el.tag, str) else "" for el in root.iter()}
    ids = {el.get("id") for el in root.iter() if el.get("id")}
    causes: list[str] = []
    for el, tag in local.items():
        if tag == "pattern" and not (_positive(el.get("width")) and _positive(el.get("height"))):
            causes.append(f'<pattern id="{el.get("id", "")}"> has no width and height, so it paints nothing: '
                          'give it width and height (e.g. patternUnits="userSpaceOnUse" width="32" height="32").')
    missing = sorted({ref for el in root.iter() for name in ("fill", "stroke")
                      for ref in re.findall(r"url\(\s*#([^)\s]+)\s*\)", el.get(name) or "") if ref not in ids})
    if missing:
        causes.append("fill/stroke url(#" + "), url(#".join(missing) + ") refer to ids that are not defined.")
    visible = [el for el in _painted(root, local) if local[el] in _SHAPES]
    if not visible:
        causes.append("Every shape is inside <defs>, <pattern>, <symbol> or similar, which draw nothing by "
                      "themselves: put shapes directly in <svg> (or <g>), or reference them with <use>.")
    elif all(_paints_nothing(el) for el in visible):
        causes.append('Every shape has fill="none" (or is transparent) and no stroke: give shapes a fill colour.')
    return causes[:3]


def _positive(value: str | None) -> bool:
    match = re.match(r"\s*([0-9.]+)", value or "")
    try:
        return bool(match) and float(match.group(1)) > 0
    except ValueError:
        return False


def _painted(element, local: dict, inside_container: bool = False):
    """Elements that are rendered directly (not only through a reference)."""
    for child in element:
        hidden = inside_container or local.get(child, "") in _CONTAINERS
        if not hidden:
            yield child
        yield from _painted(child, local, hidden)


def _paints_nothing(element) -> bool:
    style = dict(part.split(":", 1) for part in (element.get("style") or "").split(";") if ":" in part)
    style = {k.strip(): v.strip() for k, v in style.items()}
    fill = (style.get("fill") or element.get("fill") or "black").strip().lower()
    stroke = (style.get("stroke") or element.get("stroke") or "none").strip().lower()
    opacity = (style.get("opacity") or element.get("opacity") or "1").strip()
    return opacity in ("0", "0.0") or (fill in ("none", "transparent") and stroke in ("none", "transparent"))


NEAR_EMPTY_CAP = 0.15   # a near-empty canvas scores at most this, whatever code-reading scorers say
EDGE_STRIP = 0.12       # content entirely within this fraction of one side is "only at the edge"


def near_empty(stats: dict) -> str | None:
    """Why a canvas that is not blank still shows (almost) nothing, or None.

    Measured on the local model's drawings: a "bicycle" that was a thin sliver along the left
    edge scored 1.0 on the old blank test. Line drawings cover only 2-6% of the canvas but
    span most of it, so coverage alone is not the test: a small box, or content that lies
    entirely in a strip along one side, is."""
    x0, y0, x1, y1 = stats.get("box") or (0.0, 0.0, 1.0, 1.0)
    if stats["coverage"] < 0.01:
        return "almost nothing is drawn: a few faint marks"
    if stats["bbox_area"] < 0.04:
        return "the drawing is tiny: everything fits in a small corner of the canvas"
    if x1 <= EDGE_STRIP or x0 >= 1 - EDGE_STRIP or y1 <= EDGE_STRIP or y0 >= 1 - EDGE_STRIP:
        return "the only content is a sliver along one edge of the canvas"
    return None


class RenderSanityScorer:
    """Catches drawings that cannot be right whatever they show: blank, near-empty, flat, tiny, off-canvas."""

    name = "sanity"

    def score(self, drawing: Drawing) -> ScoreResult | None:
        if not drawing.ok:
            return None
        stats = content_stats(drawing.png)
        if stats["coverage"] < 0.005:
            what = "blank" if stats["background_light"] else "one flat colour"
            causes = svg_blank_causes(drawing.code) if drawing.language == "svg" else []
            guess = (" " + " ".join(causes)) if causes else (
                " Shapes may be the same colour as the background, have fill=\"none\" and no stroke, or lie "
                "outside the viewBox. Give each part a distinct fill colour and a dark stroke.")
            return ScoreResult(0.0, f"The canvas is {what}: nothing visible was drawn on it.{guess}",
                               {**stats, "cap": 0.05, "causes": causes})
        emptiness = near_empty(stats)
        if emptiness:
            return ScoreResult(0.05, f"The canvas is nearly empty: {emptiness}. Draw the whole subject large, "
                               "centred, filling most of the 256x256 canvas.", {**stats, "cap": NEAR_EMPTY_CAP})
        score, notes = 1.0, []
        if stats["bbox_area"] < 0.1:
            score -= 0.5
            notes.append("The drawing is tiny; scale it up to fill most of the canvas.")
        if stats["edge_touch"] >= 2 and stats["coverage"] < 0.9:
            score -= 0.25
            notes.append("Parts run off the canvas edges; keep the subject inside the canvas.")
        if stats["colours"] <= 1:
            score -= 0.25
            notes.append("Only one colour is used; add the subject's characteristic colours.")
        return ScoreResult(score, " ".join(notes), stats)


class RecognitionScorer:
    """Full credit when the recognizer picked the concept; abstains when nothing was recognized."""

    name = "recognition"

    def score(self, drawing: Drawing) -> ScoreResult | None:
        recognition = drawing.recognition or {}
        if not recognition or recognition.get("label") is None:
            return None
        if recognition.get("correct"):
            confidence = recognition.get("confidence")
            return ScoreResult(1.0 if confidence is None else 0.5 + 0.5 * float(confidence))
        return ScoreResult(0.0, f'It reads as "{recognition["label"]}" rather than "{drawing.concept}".')


def parse_critique(text: str) -> tuple[float | None, str]:
    """SCORE: 7 ... FIXES: - a - b   ->   (0.7, "- a\\n- b"). Tolerates '7/10', '**SCORE**: 7.5'."""
    match = re.search(r"score\W*(\d+(?:\.\d+)?)\s*(?:/\s*(\d+))?", text, re.I)
    score = None
    if match:
        scale = float(match.group(2) or 10) or 10.0
        score = min(1.0, max(0.0, float(match.group(1)) / scale))
    fixes_part = re.split(r"fix(?:es)?\W*:?", text, maxsplit=1, flags=re.I)
    body = fixes_part[1] if len(fixes_part) > 1 else text[match.end():] if match else ""
    lines = [ln.strip(" -*•\t") for ln in body.strip().splitlines()]
    unique = dict.fromkeys(ln for ln in lines if len(ln) > 3 and not ln.lower().startswith("score"))
    fixes = [f"- {ln}" for ln in unique][:3]  # small models repeat one fix three times
    return score, "\n".join(fixes)


class LLMCodeCritic:
    """An LLM reads the code and rates it with concrete fixes (text-only, like the study)."""

    name = "llm"

    def __init__(self, llm: ChatLLM):
        self.llm = llm

    def score(self, drawing: Drawing) -> ScoreResult | None:
        if drawing.draw_error or not drawing.code:
            return None
        note = f"It failed to render: {drawing.render_error}\n" if drawing.render_error else ""
        # Same code text as the recognizer sees, so a local server reuses the cached prompt prefix,
        # and the rating judges the drawing, not the model's comments about it.
        prompt = prompts.CRITIQUE.format(language=drawing.language, code=strip_hints(drawing.code, drawing.language),
                                         concept=drawing.concept, render_note=note)
        try:
            data, answer = ask_json(self.llm, [("user", prompts.critique_json(prompt))], prompts.CRITIQUE_SCHEMA,
                                    "critique")
            if data is not None:
                fixes = [str(f).strip() for f in data.get("fixes") or [] if str(f).strip()]
                return ScoreResult(float(data["score"]) / 10, "\n".join(f"- {f}" for f in dict.fromkeys(fixes)),
                                   {"raw": answer.text[:500], "structured": True}, usage=answer.usage())
            answer = answer or self.llm.complete([("user", prompt)])
        except LLMError:
            return None
        score, fixes = parse_critique(answer.text)
        if score is None:
            return None
        return ScoreResult(score, fixes, {"raw": answer.text[:500]}, usage=answer.usage())


class Critic:
    """Weighted mean of scorers; feedback lists what each scorer wants changed.

    Scorers that abstain (a failed model call, an answer without a score, a code reader shown a
    PNG) are listed in the critique's `notes`, and the mean is taken over the others. A scorer
    that gives the same score to clearly different pictures of one concept (the small local LLM
    critic rated every attempt 0.80) says nothing: once the thread has FLAT_AFTER distinct
    pictures its weight is cut to FLAT_WEIGHT of its own, and the notes say so. The thread's
    earlier pictures come in `drawing.extra["seen"]` ([{"image": id, "scores": {...}}], set by the
    loop), so the verdict depends on the thread alone: resumed or run beside other threads, the
    same drawings get the same scores.
    """

    FLAT_AFTER = 3          # distinct pictures seen before a scorer can be called flat
    FLAT_SPREAD = 0.02      # its scores vary less than this ...
    PICTURES_DIFFER = 0.15  # ... while the pixel scorers' scores of the same pictures vary this much
    FLAT_WEIGHT = 0.25

    def __init__(self, scorers: list[tuple[Scorer, float]]):
        if not scorers:
            raise ValueError("a critic needs at least one scorer")
        self.scorers = scorers

    def critique(self, drawing: Drawing) -> Critique:
        if not drawing.ok:
            reason = drawing.draw_error or drawing.render_error or "nothing was rendered"
            return Critique(score=0.0, scores={}, feedback=f"No picture: {reason}", usage={})
        results: dict[str, tuple[ScoreResult, float]] = {}
        abstained: list[str] = []
        for scorer, weight in self.scorers:
            result = scorer.score(drawing)
            if result is None:
                abstained.append(scorer.name)
            else:
                results[scorer.name] = (result, weight)
        scores = {name: round(result.score, 4) for name, (result, _) in results.items()}
        flat = self._flat_scorers(drawing, scores)
        notes = []
        if abstained:
            notes.append(f"no score from {', '.join(abstained)}; weights renormalised over "
                         f"{', '.join(results) or 'nothing'}")
        if flat:
            notes.append(f"{', '.join(flat)} gave the same score to different pictures of this concept: "
                         f"weight x{self.FLAT_WEIGHT}")
        usage = {"tokens_in": 0, "tokens_out": 0}
        cap = 1.0
        feedback: list[str] = []
        for result, _ in results.values():
            cap = min(cap, float(result.details.get("cap", 1.0)))
            if result.feedback:
                feedback.append(result.feedback)
            for key in usage:
                usage[key] += int(result.usage.get(key, 0))
        weights = {name: weight * (self.FLAT_WEIGHT if name in flat else 1.0) for name, (_, weight) in results.items()}
        score = weighted_score({name: result.score for name, (result, _) in results.items()}, weights, cap)
        critique = Critique(score=round(score, 4), scores=scores, feedback="\n".join(feedback), usage=usage)
        if notes:
            critique["notes"] = notes
        return critique

    def _flat_scorers(self, drawing: Drawing, scores: dict[str, float]) -> list[str]:
        """Scorers whose scores have not moved across the thread's distinct pictures while the
        picture-reading ones did."""
        seen = {row["image"]: row["scores"] for row in drawing.extra.get("seen") or [] if row.get("image")}
        seen[drawing.extra.get("image") or hashlib.sha1(drawing.png).hexdigest()] = scores
        if len(seen) < self.FLAT_AFTER:
            return []
        rows = list(seen.values())
        pixel = [name for name in PICTURE_SCORERS if all(name in row for row in rows)]
        if not pixel:
            return []
        pictures_differ = max(_spread([row[name] for row in rows]) for name in pixel) >= self.PICTURES_DIFFER
        if not pictures_differ:
            return []
        return [name for name in scores if name not in PICTURE_SCORERS and all(name in row for row in rows)
                and _spread([row[name] for row in rows]) < self.FLAT_SPREAD]


def weighted_score(scores: dict[str, float], weights: dict[str, float], cap: float = 1.0) -> float:
    """The combined score: weighted mean of the scorers that answered (the weights renormalise over
    them), 0 when none did. Under a `cap` (a blank or near-empty canvas) the mean is scaled into
    [0, cap] rather than clipped, so such drawings still rank among themselves: in a demo two
    near-empty rows of bicycles both scored 0.15 and the tie kept the emptier one. The critic and
    the agreement check (critique.py) share it."""
    present = {name: weight for name, weight in weights.items() if name in scores}
    total = sum(present.values())
    mean = sum(weight * scores[name] for name, weight in present.items()) / total if total else 0.0
    return mean * cap if cap < 1.0 else mean


PICTURE_SCORERS = ("sanity", "concept", "structure", "vlm", "clip")   # they read the pixels


def _spread(values: list[float]) -> float:
    return max(values) - min(values) if values else 0.0


def parse_weights(text: str | None) -> dict[str, float]:
    """'sanity=1,recognition=2' -> {'sanity': 1.0, 'recognition': 2.0}."""
    weights: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"weight {item!r} must look like name=number")
        try:
            weights[name.strip()] = float(value)
        except ValueError as exc:
            raise ValueError(f"weight {item!r} must look like name=number") from exc
    return weights
