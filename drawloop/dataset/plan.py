"""What a dataset build draws: concepts from levels or a file, and one job per (concept, sample).

    concepts = select_concepts("shapes,objects")          # levels, "all", or a file of concepts
    concepts = select_concepts("my_concepts.txt", limit=8)  # one per line; JSON/JSONL with "name" too
    jobs = plan_jobs(concepts, samples=20, seed=0, temperature=0.7, spread=0.2)   # iter_jobs: lazily
    jobs[0]  # PlannedJob(id='red-circle-0000', concept=Concept(...), sample=0, seed=..., temperature=0.75)

Everything here is a pure function of its arguments, so the same command always plans the same
jobs with the same ids, seeds and temperatures: that is what lets a killed build resume.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from drawloop.concepts import LEVELS, Concept, distractors_for, get_concept, load_concepts, slugify

MAX_SAMPLES = 100_000
TEMPERATURE_STEP = 0.05   # temperatures are rounded so a batch needs only a few compiled graphs


@dataclass(frozen=True)
class PlannedJob:
    id: str                  # "<slug>-<sample:04d>": the drawing's file name and thread id
    concept: Concept
    slug: str
    sample: int
    seed: int
    temperature: float


def select_concepts(spec: str, limit: int | None = None) -> list[Concept]:
    """Concepts for `--concepts`: comma-separated levels ("shapes,scenes"), "all", or a file.

    With `limit`, keep that many concepts spread evenly over the selection (a representative
    subset: every kind of shape, not just the first few circles)."""
    spec = (spec or "").strip()
    if not spec:
        raise ValueError("--concepts is empty: give levels (e.g. shapes,objects), 'all', or a file")
    path = Path(spec).expanduser()
    if path.is_file():
        concepts = _read_concept_file(path)
    else:
        names = [part.strip() for part in spec.split(",") if part.strip()]
        levels = list(LEVELS) if names == ["all"] else names
        unknown = [name for name in levels if name not in LEVELS]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is neither a level ({', '.join(LEVELS)}, all) nor an existing file")
        concepts = load_concepts(levels)
    if limit is not None:
        if limit < 1:
            raise ValueError("--limit must be at least 1")
        if limit < len(concepts):
            concepts = [concepts[i * len(concepts) // limit] for i in range(limit)]
    return concepts


def _read_concept_file(path: Path) -> list[Concept]:
    """A text file with one concept per line (# comments allowed), a JSON list of names or
    objects with "name", or JSONL of such objects. Known concepts keep their level and
    distractors; free text becomes level "custom"."""
    from drawloop.api import validate_concept

    text = path.read_text(encoding="utf-8")
    if path.suffix in (".json", ".jsonl"):
        try:
            items = json.loads(text) if path.suffix == ".json" else [json.loads(line) for line in text.splitlines()
                                                                     if line.strip()]
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid {path.suffix[1:].upper()}: {exc}") from exc
        names = [item if isinstance(item, str) else (item or {}).get("name") for item in items]
    else:
        names = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    concepts: dict[str, Concept] = {}
    for number, name in enumerate(names, 1):
        if not name:
            if path.suffix in (".json", ".jsonl"):
                raise ValueError(f"{path}: item {number} has no concept name")
            continue
        name = validate_concept(name)
        concepts.setdefault(name.lower(), get_concept(name) or Concept(
            name=name, level="custom", category="custom", distractors=tuple(distractors_for(name, 5))))
    if not concepts:
        raise ValueError(f"{path} lists no concepts")
    return list(concepts.values())


def job_seed(base_seed: int, concept: str, sample: int) -> int:
    """A stable 31-bit seed per (build seed, concept, sample), independent of job order."""
    return zlib.crc32(f"{base_seed}|{concept}|{sample}".encode()) & 0x7FFFFFFF


def job_temperature(seed: int, base: float, spread: float) -> float:
    """base ± spread, drawn from the job's seed and rounded to TEMPERATURE_STEP; never below 0."""
    u = (job_seed(seed, "temperature", 0) % 10_001) / 10_000          # in [0, 1]
    value = base + spread * (2 * u - 1)
    return max(0.0, round(round(value / TEMPERATURE_STEP) * TEMPERATURE_STEP, 2))


def unique_slugs(concepts: list[Concept]) -> dict[str, str]:
    """concept name -> folder slug; two different names never share a folder."""
    slugs: dict[str, str] = {}
    taken: set[str] = set()
    for concept in concepts:
        slug = slugify(concept.name)
        if slug in taken:
            slug = f"{slug}-{hashlib.sha1(concept.name.encode()).hexdigest()[:6]}"
        taken.add(slug)
        slugs[concept.name] = slug
    return slugs


def iter_jobs(concepts: list[Concept], samples: int, seed: int = 0, temperature: float = 0.7,
              spread: float = 0.2) -> Iterator[PlannedJob]:
    """One job per (concept, sample), concept-major, with stable ids, seeds and temperatures:
    checked now, generated as they are consumed (a plan of millions never sits in memory)."""
    if not 1 <= samples <= MAX_SAMPLES:
        raise ValueError(f"--samples must be between 1 and {MAX_SAMPLES}")
    if temperature < 0 or spread < 0:
        raise ValueError("temperature and its spread must be >= 0")
    slugs = unique_slugs(concepts)
    return (_job(concept, slugs[concept.name], sample, seed, temperature, spread)
            for concept in concepts for sample in range(samples))


def plan_jobs(concepts: list[Concept], samples: int, seed: int = 0, temperature: float = 0.7,
              spread: float = 0.2) -> list[PlannedJob]:
    """iter_jobs as a list, for small plans."""
    return list(iter_jobs(concepts, samples, seed, temperature, spread))


def _job(concept: Concept, slug: str, sample: int, seed: int, temperature: float, spread: float) -> PlannedJob:
    s = job_seed(seed, concept.name, sample)
    return PlannedJob(f"{slug}-{sample:04d}", concept, slug, sample, s, job_temperature(s, temperature, spread))
