"""Train and validation splits, by concept: all drawings of a concept are in one split.

    concept_split("a red circle")                 # "train" or "validation", from a hash of the name
    assign(["a red circle", "a blue dog"], 0.1)   # {concept: split} for a whole dataset

A concept goes to validation when a hash of its name falls below the validation share, so the
split of a concept never depends on which other concepts a dataset has, on the build seed or on
the order of a concept file: add concepts and the old ones stay where they were. Held-out concepts
(not held-out drawings of seen concepts) are what a validation split of generated drawings needs:
a model that saw four drawings of "a red apple" would meet the fifth as an old friend.

Small datasets get the hash rule's corner cases fixed: with two concepts or more and a share above
0 there is at least one concept in each split (the lowest hash goes to validation, the highest to
train), so `datasets.load_dataset` always finds a validation split when one was asked for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

SPLITS = ("train", "validation")
VALIDATION = 0.1     # default share of concepts held out


def check_share(share: float) -> float:
    if not 0 <= share < 1:
        raise ValueError(f"--validation is the share of concepts held out for validation, in [0, 1), "
                         f"not {share}")
    return float(share)


def _unit(concept: str) -> float:
    """A stable number in [0, 1) for a concept name (not Python's hash(): that changes per process)."""
    return int.from_bytes(hashlib.sha256(concept.encode("utf-8")).digest()[:8], "big") / 2 ** 64


def concept_split(concept: str, share: float = VALIDATION) -> str:
    """The split the hash rule gives `concept` on its own (assign() may move it in tiny datasets)."""
    return "validation" if _unit(concept) < share else "train"


def assign(concepts: Iterable[str], share: float = VALIDATION) -> dict[str, str]:
    """{concept: "train" | "validation"} for every concept of a dataset."""
    check_share(share)
    names = sorted(set(concepts), key=lambda c: (_unit(c), c))
    splits = {c: concept_split(c, share) for c in names}
    if share > 0 and len(names) >= 2:
        if "validation" not in splits.values():
            splits[names[0]] = "validation"
        if "train" not in splits.values():
            splits[names[-1]] = "train"
    return splits
