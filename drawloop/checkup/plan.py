"""What a check-up runs: the plan (levels, concepts, samples, iterations) and its threads' names.

    plan = CheckupPlan(levels=("shapes", "objects"), concepts_per_level=3, samples=2, iters=3)
    plan.validate()                                   # ValueError naming the bad field
    plan.concepts()                                   # 3 concepts per level, spread over its categories
    ThreadSpec("critic", "a red circle", "shapes", 1).thread_id   # 'critic:red-circle:s1'

Each concept and sample runs two loops (MODES): the critic loop, and the study's plain "improve
your drawing" loop from the same first draft (none when iters is 1: nothing to improve).
"""

from __future__ import annotations

from dataclasses import dataclass

from drawloop.concepts import LEVELS, Concept, load_concepts, slugify

MODES = ("critic", "plain")
SAMPLE_SEED_STRIDE = 1000     # sample k draws with seeds seed + 1000k, seed + 1000k + 1, ...
# Settings that change what a finished thread means; a rerun into the same directory must match them.
IDENTITY_SETTINGS = ("temperature", "max_tokens", "size", "language", "n_distractors")


@dataclass(frozen=True)
class CheckupPlan:
    levels: tuple[str, ...] = ("shapes", "objects", "scenes")
    concepts_per_level: int = 10
    samples: int = 2
    iters: int = 4
    concurrency: int = 2
    human_per_concept: int = 2
    human_max_chars: int = 12000   # a person's SVG longer than this (cleaned) is not shown (~5k tokens)
    seed: int = 0
    retry_failed: bool = False     # redo finished threads in which the model could not be reached (timeouts)

    def validate(self) -> None:
        unknown = [level for level in self.levels if level not in LEVELS]
        if unknown or not self.levels:
            raise ValueError(f"unknown level(s) {', '.join(unknown) or '(none given)'}; "
                             f"choose from {', '.join(LEVELS)}")
        for name, least in (("concepts_per_level", 1), ("samples", 1), ("iters", 1), ("concurrency", 1),
                            ("human_per_concept", 0), ("human_max_chars", 200)):
            if getattr(self, name) < least:
                raise ValueError(f"{name.replace('_', ' ')} must be at least {least}, "
                                 f"got {getattr(self, name)}")

    def concepts(self) -> list[Concept]:
        """`concepts_per_level` concepts of each level, evenly spaced through the level's list so
        the slice spans its categories (the lists are grouped by category). Deterministic."""
        chosen = []
        for level in self.levels:
            pool = load_concepts([level])
            step = max(1, len(pool) // self.concepts_per_level)
            chosen += pool[::step][:self.concepts_per_level]
        return chosen


@dataclass(frozen=True)
class ThreadSpec:
    mode: str
    concept: str
    level: str
    sample: int

    @property
    def thread_id(self) -> str:
        return f"{self.mode}:{slugify(self.concept)}:s{self.sample}"
