"""The pairwise judge: is drawing B better than drawing A, and why?

    judge = ScoreJudge(margin=0.01)                 # offline: the critic's scores, compared side by side
    verdict = judge.compare(best_so_far, candidate)  # Drawings with .critique set
    verdict.better, verdict.reason                   # "b", "B scores 0.62 vs 0.48 (concept +0.20, structure +0.05)"
    judge = VLMJudge.from_model("openai:gpt-4o-mini")   # a vision-language model sees both pictures

The loop asks the judge once per round: the round's top candidate (B) against the best so far (A).
Only a "b" verdict replaces the best, so the best never regresses. Single-image scores drift and
small differences are noise; a pairwise question ("which of these two?") is what people, and
vision models, answer most reliably (SVGFaith; production illustration workflows).

  ScoreJudge  B wins when its combined critic score beats A's by at least `margin`; the reason
              names the scorers that moved most.
              Offline and deterministic: it is exactly as good as the critic (measured against
              people's judgements in tests/preferences).
  VLMJudge    shows both PNGs to an image-input chat model and asks which one shows the concept
              better; when the model fails or answers nothing readable it falls back to ScoreJudge
              and says so in the reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from drawloop import prompts
from drawloop.state import Drawing


@dataclass(frozen=True)
class Verdict:
    better: str          # "a" (keep the best so far) or "b" (the candidate replaces it)
    reason: str
    source: str = "score"


class ScoreJudge:
    """B replaces A when its critic score is higher by at least `margin` (ties keep A)."""

    source = "score"

    def __init__(self, margin: float = 0.01):
        self.margin = margin

    def compare(self, a: Drawing, b: Drawing) -> Verdict:
        sa, sb = _score(a), _score(b)
        if not b.ok:
            return Verdict("a", f"B has no picture ({b.draw_error or b.render_error or 'not rendered'})", self.source)
        if not a.ok:
            return Verdict("b", "A has no picture", self.source)
        moved = _score_changes(a, b)
        if sb >= sa + self.margin - 1e-12:
            return Verdict("b", f"B scores {sb:.2f} vs {sa:.2f}{moved}", self.source)
        gap = "no better than" if abs(sb - sa) < self.margin else "below"
        return Verdict("a", f"B scores {sb:.2f}, {gap} A's {sa:.2f}{moved}", self.source)


class VLMJudge:
    """A vision-language model compares the two pictures; the score judge is its fallback."""

    source = "vlm"

    def __init__(self, llm, fallback: ScoreJudge | None = None):
        from drawloop.llm.chat import ChatLLM

        self.llm = llm if isinstance(llm, ChatLLM) else ChatLLM(llm, retries=1, backoff=0.5)
        self.fallback = fallback or ScoreJudge()

    @classmethod
    def from_model(cls, model: str, base_url: str | None = None, api_key: str | None = None,
                   timeout: float = 60.0, margin: float = 0.01) -> "VLMJudge":
        from drawloop.agents.pixel import VLMCriticScorer

        scorer = VLMCriticScorer.from_model(model, base_url=base_url, api_key=api_key, timeout=timeout,
                                            max_tokens=200)
        return cls(scorer.llm, ScoreJudge(margin))

    def compare(self, a: Drawing, b: Drawing) -> Verdict:
        from langchain_core.messages import HumanMessage

        from drawloop.agents.pixel import png_data_url
        from drawloop.llm.chat import LLMError

        if not (a.ok and b.ok) or a.png == b.png:
            return self.fallback.compare(a, b)
        message = HumanMessage(content=[
            {"type": "text", "text": prompts.PAIRWISE_JUDGE.format(concept=b.concept)},
            {"type": "text", "text": "Drawing A:"},
            {"type": "image_url", "image_url": {"url": png_data_url(a.png)}},
            {"type": "text", "text": "Drawing B:"},
            {"type": "image_url", "image_url": {"url": png_data_url(b.png)}},
        ])
        try:
            answer = self.llm.complete([message])
        except LLMError as exc:
            fallback = self.fallback.compare(a, b)
            return Verdict(fallback.better, f"{fallback.reason} (the vision judge failed: {str(exc)[:80]})",
                           fallback.source)
        better, reason = parse_pairwise(answer.text)
        if better is None:
            fallback = self.fallback.compare(a, b)
            return Verdict(fallback.better, f"{fallback.reason} (the vision judge's answer had no verdict)",
                           fallback.source)
        return Verdict(better, reason or f"the vision judge prefers {better.upper()}", self.source)


def parse_pairwise(text: str) -> tuple[str | None, str]:
    """'{"better": "B", "reason": "..."}', fenced JSON, or 'B is better because ...' -> ("b", reason)."""
    text = (text or "").strip()
    for blob in re.findall(r"\{.*?\}", text, re.S)[:2]:
        try:
            data = json.loads(blob)
        except json.JSONDecodeError:
            continue
        choice = str(data.get("better", data.get("winner", ""))).strip().lower() if isinstance(data, dict) else ""
        if choice in ("a", "b"):
            return choice, str(data.get("reason", "")).strip()[:300]
    match = re.search(r"\b(?:drawing\s+)?([AB])\b\s+(?:is\s+)?better", text, re.I) or \
        re.search(r"better\W{0,3}(?:drawing\s+)?\b([AB])\b", text, re.I)
    if match:
        return match.group(1).lower(), text[:300]
    return None, text[:300]


def _score(drawing: Drawing) -> float:
    return float((drawing.critique or {}).get("score") or 0.0)


def _score_changes(a: Drawing, b: Drawing, top: int = 3) -> str:
    """' (concept +0.20, structure -0.05)': the scorers that moved most from A to B."""
    sa, sb = (a.critique or {}).get("scores") or {}, (b.critique or {}).get("scores") or {}
    deltas = {k: sb[k] - sa[k] for k in sb if k in sa and abs(sb[k] - sa[k]) >= 0.01}
    if not deltas:
        return ""
    moved = sorted(deltas.items(), key=lambda kv: -abs(kv[1]))[:top]
    return " (" + ", ".join(f"{k} {v:+.2f}" for k, v in moved) + ")"

