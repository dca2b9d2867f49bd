"""The stop rule: "quality stopped improving".

    rule = StopRule(max_iters=6, patience=2, min_delta=0.01, target=0.9)
    best, reason = rule.evaluate([0.2, 0.5, 0.5, 0.49])   # -> (1, "patience")

- best is the highest score; on ties the earliest attempt wins (a later copy is no improvement).
- an attempt improves only when it beats the best so far by at least `min_delta`; the loop stops
  when `patience` attempts in a row have not improved.
- `target`: stop as soon as the best score reaches it. `max_iters`: hard cap on attempts.
- `max_failures`: stop when the model failed to produce code that many times in a row (an
  unreachable or broken model should not burn the whole budget).

The loop counts in rounds of N candidates, where a pairwise judge (not the score alone) says
whether a round's best replaces the best so far:

    reason = rule.evaluate_rounds(outcomes)     # outcomes: state["rounds"] (RoundOutcome dicts)

There `patience` counts rounds since the judge last replaced the best (the score judge asks for
a gain of at least `min_delta`, so with N = 1 this is the rule above), `target` looks at the
best's score and `max_iters` caps rounds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StopRule:
    max_iters: int = 5
    patience: int = 2
    min_delta: float = 0.01
    target: float | None = None
    max_failures: int = 3

    def best_index(self, scores: list[float]) -> int | None:
        if not scores:
            return None
        best = 0
        for i, score in enumerate(scores):
            if score > scores[best]:
                best = i
        return best

    def evaluate(self, scores: list[float], draw_failures: list[bool] | None = None) -> tuple[int | None, str | None]:
        """(index of the best attempt, why to stop or None to continue)."""
        best = self.best_index(scores)
        if best is None:
            return None, None
        if self.target is not None and scores[best] >= self.target:
            return best, "target"
        if len(scores) >= self.max_iters:
            return best, "max_iters"
        failures = draw_failures or []
        if len(failures) >= self.max_failures and all(failures[-self.max_failures:]):
            return best, "model_failing"
        if self._stale_for(scores) >= self.patience:
            return best, "patience"
        return best, None

    def _stale_for(self, scores: list[float]) -> int:
        """How many attempts since the best last improved by at least min_delta."""
        running_best, last_improvement = scores[0], 0
        for i in range(1, len(scores)):
            gain = scores[i] - running_best
            if gain > 0 and gain >= self.min_delta - 1e-12:
                running_best, last_improvement = scores[i], i
        return len(scores) - 1 - last_improvement

    def evaluate_rounds(self, rounds: list[dict]) -> str | None:
        """Why to stop after these rounds (RoundOutcome dicts, oldest first), or None to go on."""
        if not rounds:
            return None
        if self.target is not None and rounds[-1]["best_score"] >= self.target:
            return "target"
        if len(rounds) >= self.max_iters:
            return "max_iters"
        if len(rounds) >= self.max_failures and all(r.get("failed") for r in rounds[-self.max_failures:]):
            return "model_failing"
        last_replaced = max(i for i, r in enumerate(rounds) if r.get("replaced") or i == 0)
        if len(rounds) - 1 - last_replaced >= self.patience:
            return "patience"
        return None
