"""Score drawings on disk with the loop's own critic, without running the loop (`drawloop critique`).

    scorer = FileCritic.from_settings(Settings.from_env(), models)   # the configured critic and judge
    report = scorer.score_file("apple.svg", concept="an apple")      # SVG, Python or PNG
    report["score"], report["scores"], report["feedback"]
    pair = scorer.compare("a.svg", "b.png", concept="an apple")
    pair["better"], pair["scores"], pair["reason"]                   # "better" is the path exactly as given

SVG and Python files are rendered through the guarded renderers, exactly as in the loop; a PNG is
decoded, checked and resized to the render size. Code-reading parts (the code recognizer, the
LLM critic) need code, so they abstain on a PNG, and the critic renormalises its weights over the
scorers that answered (the report lists which did). Each (file, concept) is scored once per
process, so many pairs over the same drawings cost one critique per drawing.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

from drawloop.state import Drawing

LANGUAGE_BY_SUFFIX = {".svg": "svg", ".py": "python", ".png": None}
MAX_FILE_BYTES = 4 * 1024 * 1024


class FileCritic:
    def __init__(self, critic, recognizer=None, judge=None, renderer=None, size: int = 256,
                 distractors=None, n_distractors: int = 4):
        from drawloop.agents.judge import ScoreJudge
        from drawloop.agents.renderer import RendererAgent

        self.critic, self.recognizer = critic, recognizer
        self.judge = judge or ScoreJudge()
        self.renderer = renderer or RendererAgent()
        self.size, self.n_distractors = size, n_distractors
        self.distractors = distractors
        self._cache: dict[tuple[str, str], tuple[Drawing, dict[str, Any]]] = {}

    @classmethod
    def from_settings(cls, settings, models=None, use_model: bool = True) -> "FileCritic":
        """The critic, recognizer and judge the loop would use with these settings. Without a model
        (use_model=False) the scorers that need one are left out and the recognizer is skipped."""
        from drawloop.agents.registry import SCORERS_NEEDING_A_MODEL, AgentContext, resolve

        if not use_model:  # a copy: the caller's settings keep their weights
            weights = dict(settings.extra.get("weights") or _default_weights(settings))
            weights = {k: v for k, v in weights.items() if k not in SCORERS_NEEDING_A_MODEL}
            settings = dataclasses.replace(settings, extra={**settings.extra, "weights": weights})
        context = AgentContext(settings=settings, models=models if use_model else None)
        recognizer = resolve("recognizer", settings.recognizer, context) \
            if use_model or settings.recognizer != "code" else None
        return cls(resolve("critic", settings.critic, context), recognizer, resolve("judge", settings.judge, context),
                   size=settings.size, n_distractors=settings.n_distractors)

    def load(self, path: str | Path, concept: str) -> Drawing:
        path = Path(path)
        if path.suffix.lower() not in LANGUAGE_BY_SUFFIX:
            raise ValueError(f"{path}: not a drawing (use .svg, .py or .png)")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ValueError(f"{path}: larger than {MAX_FILE_BYTES // 1024 // 1024} MiB")
        language = LANGUAGE_BY_SUFFIX[path.suffix.lower()]
        choices = self._choices(concept)
        if language is None:
            return Drawing(concept=concept, code="", language="png", png=_normalised_png(path, self.size),
                           choices=choices)
        code = path.read_text(encoding="utf-8", errors="replace")
        result = self.renderer.render(code, language=language, size=self.size)
        return Drawing(concept=concept, code=code, language=language, png=result.png if result.ok else None,
                       render_error=None if result.ok else (result.error or "render failed"), choices=choices)

    def score_file(self, path: str | Path, concept: str) -> dict[str, Any]:
        return self._scored(path, concept)[1]

    def compare(self, a: str | Path, b: str | Path, concept: str) -> dict[str, Any]:
        (drawing_a, report_a), (drawing_b, report_b) = self._scored(a, concept), self._scored(b, concept)
        verdict = self.judge.compare(drawing_a, drawing_b)
        return {"concept": concept, "a": str(a), "b": str(b), "better": str(b if verdict.better == "b" else a),
                "scores": {str(a): report_a["score"], str(b): report_b["score"]}, "reason": verdict.reason,
                "judge": verdict.source, "per_scorer": {str(a): report_a["scores"], str(b): report_b["scores"]}}

    def _scored(self, path: str | Path, concept: str) -> tuple[Drawing, dict[str, Any]]:
        key = (str(Path(path).resolve()), concept)
        if key not in self._cache:
            drawing = self.load(path, concept)
            if self.recognizer is not None and drawing.ok and drawing.code:
                drawing.recognition = self.recognizer.recognize(drawing)
            critique = self.critic.critique(drawing)
            drawing.critique = critique
            report = {"file": str(path), "concept": concept, "language": drawing.language,
                      "score": critique.get("score"), "scores": critique.get("scores") or {},
                      "feedback": critique.get("feedback") or "", "render_error": drawing.render_error,
                      "recognized_as": (drawing.recognition or {}).get("label")}
            if critique.get("notes"):
                report["notes"] = critique["notes"]
            self._cache[key] = (drawing, report)
        return self._cache[key]

    def _choices(self, concept: str) -> list[str]:
        from drawloop.agents.recognizer import make_choices
        from drawloop.graphs.refine import default_distractors

        pick = self.distractors or default_distractors
        return make_choices(concept, pick(concept, self.n_distractors, 0), 0)


def _default_weights(settings) -> dict[str, float]:
    from drawloop.agents.registry import DEFAULT_WEIGHTS, PIXEL_WEIGHTS

    return PIXEL_WEIGHTS if settings.critic == "pixels" else DEFAULT_WEIGHTS


def _normalised_png(path: Path, size: int) -> bytes:
    """Decode fully (a damaged or hostile PNG fails here, not in a scorer), flatten onto white, resize."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = 64_000_000
    try:
        with Image.open(path) as image:
            image.load()
            rgba = image.convert("RGBA")
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds for bad files
        raise ValueError(f"{path}: not a readable PNG ({type(exc).__name__}: {exc})") from None
    canvas = Image.new("RGBA", rgba.size, "white")
    canvas.alpha_composite(rgba)
    out = io.BytesIO()
    canvas.convert("RGB").resize((size, size), Image.LANCZOS).save(out, "PNG")
    return out.getvalue()


# -- agreement with people ---------------------------------------------------------------------

def scorer_table(critic: FileCritic, pairs: list[dict], root: Path, recorded: dict | None = None) -> dict:
    """drawing path -> {"scores": per-scorer scores, "cap": the critic's cap} for every drawing in `pairs`.

    `recorded` (path -> {scorer: score}) supplies scores measured earlier, e.g. what the real LLM
    critic said at build time, so an agreement check need not rerun a language model."""
    table: dict[str, dict] = {}
    for pair in pairs:
        for side in ("a", "b"):
            name = pair[side]
            if name in table:
                continue
            drawing = critic.load(root / name, pair["concept"])
            scores, cap = {}, 1.0
            for scorer, _ in critic.critic.scorers:
                result = scorer.score(drawing) if drawing.ok else None
                if result is not None:
                    scores[scorer.name] = result.score
                    cap = min(cap, float(result.details.get("cap", 1.0)))
            scores.update((recorded or {}).get(name, {}))
            table[name] = {"scores": scores, "cap": cap if drawing.ok else 0.0}
    return table


def combined(entry: dict, weights: dict[str, float]) -> float:
    """The critic's combined score from a table entry, computed as the Critic computes it."""
    from drawloop.agents.critic import weighted_score

    return weighted_score(entry["scores"], weights, entry["cap"])


def agreement(pairs: list[dict], table: dict, weights: dict[str, float], margin: float = 0.01) -> float | None:
    """Fraction of the pairs people preferred one side of ("human": "a" | "b") where the score judge
    (B only when it beats A by `margin`) picks the same side. Ties are left out. None if no pairs."""
    judged = [p for p in pairs if p.get("human") in ("a", "b")]
    if not judged:
        return None
    hits = 0
    for pair in judged:
        a, b = combined(table[pair["a"]], weights), combined(table[pair["b"]], weights)
        hits += ("b" if b >= a + margin - 1e-12 else "a") == pair["human"]
    return hits / len(judged)


def fit_weights(pairs: list[dict], table: dict, names: list[str],
                grid: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 3.0), slack: int = 1) -> tuple[dict[str, float], float]:
    """Grid weights for `pairs`: of all weights within `slack` pairs of the best agreement (with a
    few dozen pairs, one pair is noise: 3,125 grid points will always find one that fits it), the
    ones nearest to equal weights. Returns (weights, their agreement)."""
    import itertools

    judged = sum(p.get("human") in ("a", "b") for p in pairs) or 1
    scored = []
    for values in itertools.product(grid, repeat=len(names)):
        if any(values):
            weights = dict(zip(names, values))
            scored.append((agreement(pairs, table, weights) or 0.0, weights))
    top = max(score for score, _ in scored)
    near = [(score, w) for score, w in scored if score >= top - slack / judged - 1e-12]
    score, weights = min(near, key=lambda sw: (sum(abs(v - 1.0) for v in sw[1].values()), -sw[0]))
    return weights, score


def split_by_concept(pairs: list[dict]) -> tuple[list[dict], list[dict]]:
    """Held-in and held-out halves with no concept in both (alternate concepts in sorted order)."""
    concepts = sorted({p["concept"] for p in pairs})
    held_in = set(concepts[0::2])
    return [p for p in pairs if p["concept"] in held_in], [p for p in pairs if p["concept"] not in held_in]
