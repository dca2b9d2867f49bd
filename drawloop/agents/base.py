"""The agent contracts. Anything with the right method plugs into the loop.

    class MyScorer:
        name = "redness"
        def score(self, drawing: Drawing) -> ScoreResult | None:
            if not drawing.ok:
                return None                      # abstain: the critic ignores this scorer
            return ScoreResult(0.7, "add more red to the apple")

    critic = Critic([(MyScorer(), 1.0), (RenderSanityScorer(), 1.0)])
    graph = build_refine_graph(critic=critic)

Four roles: a Drawer writes code, a Renderer turns it into a PNG, a Recognizer says what the
drawing shows, a Critic scores it with feedback. Critics are usually built from Scorers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from drawloop.state import Attempt, Critique, Drawing, Recognition, Usage


@dataclass
class ScoreResult:
    """One scorer's judgement: a score in [0, 1] and feedback the drawer can act on."""

    score: float
    feedback: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    usage: Usage = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.score = min(1.0, max(0.0, float(self.score)))


@runtime_checkable
class Scorer(Protocol):
    name: str

    def score(self, drawing: Drawing) -> ScoreResult | None:
        """Judge one drawing; None means abstain (e.g. a pixel scorer on a failed render)."""


@runtime_checkable
class Recognizer(Protocol):
    def recognize(self, drawing: Drawing) -> Recognition:
        """Choose among drawing.choices; never raise for bad model output, record it."""


@runtime_checkable
class CriticAgent(Protocol):
    def critique(self, drawing: Drawing) -> Critique: ...


@dataclass
class Draft:
    """The drawer's answer: code to render, or the reason there is none."""

    code: str
    raw: str = ""
    error: str | None = None
    usage: Usage = field(default_factory=dict)


@runtime_checkable
class DrawerAgent(Protocol):
    def draw(self, concept: str, language: str, history: list[Attempt], seed: int | None = None) -> Draft:
        """First draft when history is empty, otherwise a revision of history[-1] (or the best)."""
