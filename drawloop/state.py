"""The LangGraph state of one drawing thread, and the records it accumulates.

A thread draws one concept in rounds. Each round drafts N candidates side by side in
`candidates` (draw -> render -> recognize -> critique, one LangGraph task per candidate and
step); the judge appends the whole round to `attempts`, keeps the best so far in `best` and
records its verdict in `rounds`, so the checkpointed state always says exactly which
candidates are finished:

    state = {"concept": "a red apple", "language": "svg", "choices": [...],
             "attempts": [Attempt, ...],          # every finished candidate, round by round
             "candidates": [Attempt, ...],        # the round in progress (empty between rounds)
             "rounds": [RoundOutcome, ...], "best": 0, "stop_reason": None}

With N = 1 (the study's single chain) round r is attempt r.

Records are plain dicts (TypedDicts) so they checkpoint, serialise to JSON and diff cleanly.
Images live in the run's artifact store; state holds their paths, never raw bytes.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, Any

from typing_extensions import TypedDict  # LangGraph reads schemas of typing_extensions TypedDicts on py<3.12


class Usage(TypedDict, total=False):
    tokens_in: int
    tokens_out: int
    seconds: float
    calls: int


class Recognition(TypedDict, total=False):
    label: str | None          # what the recognizer chose (one of the choices), None if it failed
    correct: bool              # label == concept
    confidence: float | None   # in [0, 1] when the recognizer can tell
    choices: list[str]
    source: str                # "code" (LLM reads the code), "pixels" (kNN gallery), ...
    error: str | None
    usage: Usage


class Critique(TypedDict, total=False):
    score: float               # combined, in [0, 1]
    scores: dict[str, float]   # per scorer, in [0, 1]
    feedback: str              # concrete, actionable text for the drawer
    notes: list[str]           # for people, not the drawer: scorers that abstained or were down-weighted
    usage: Usage


class Attempt(TypedDict, total=False):
    iteration: int             # the attempt's index in `attempts` (unique across rounds)
    round: int                 # the round that drew it
    candidate: int             # its slot in that round, 0..N-1
    parent: int | None         # the attempt it revises (the best so far when drawn); None: a first draft
    code: str
    language: str
    raw: str                   # the model's whole answer, before extraction
    image: str | None          # artifact path of the PNG (relative to the run dir)
    code_path: str | None      # artifact path of the code
    render_error: str | None   # renderer refused or failed: the reason, fed back to the drawer
    draw_error: str | None     # the model failed to answer usable code
    recognition: Recognition | None
    critique: Critique | None
    usage: Usage               # the drawer's tokens and seconds
    seconds: dict[str, float]  # wall time per node


class RoundOutcome(TypedDict, total=False):
    round: int
    winner: int                # attempt index of the round's top-scoring candidate
    replaced: bool             # the judge preferred it to the best so far (round 0: always)
    best: int                  # attempt index of the best so far after this round
    best_score: float
    reason: str                # the judge's one-line why
    failed: bool               # every candidate failed to produce code


def merge_candidates(old: list[Attempt] | None, new: list[Attempt] | None) -> list[Attempt]:
    """Reducer for the round in progress: each write replaces its candidate's slot; an empty
    write (the judge closing the round) clears the round."""
    if not new:
        return []
    slots = {c["candidate"]: c for c in old or []}
    slots.update({c["candidate"]: c for c in new})
    return [slots[k] for k in sorted(slots)]


class DrawState(TypedDict, total=False):
    concept: str
    language: str
    choices: list[str]         # concept + distractors, in the order shown to the recognizer
    attempts: Annotated[list[Attempt], operator.add]
    candidates: Annotated[list[Attempt], merge_candidates]
    rounds: Annotated[list[RoundOutcome], operator.add]
    best: int | None           # index into attempts
    stop_reason: str | None


def attempt_score(attempt: Attempt) -> float:
    """Score of a finished attempt; failed or unscored attempts count as 0."""
    critique = attempt.get("critique") or {}
    return float(critique.get("score") or 0.0)


def failed(attempt: Attempt) -> bool:
    return bool(attempt.get("draw_error") or attempt.get("render_error"))


@dataclass
class Drawing:
    """What recognizers and critics look at: one rendered (or failed) attempt.

    `png` is None when rendering failed; `render_error` then says why.
    """

    concept: str
    code: str
    language: str = "svg"
    png: bytes | None = None
    render_error: str | None = None
    draw_error: str | None = None
    choices: list[str] = field(default_factory=list)
    recognition: Recognition | None = None
    iteration: int = 0
    critique: Critique | None = None   # set once critiqued (what a pairwise judge compares)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.png is not None and not self.render_error and not self.draw_error
