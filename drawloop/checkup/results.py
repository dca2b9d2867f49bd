"""What a check-up writes down: results.json's thread summaries, and the model and versions in checkup.json.

    summarise_thread(ThreadSpec("critic", "a cat", "objects", 0), state)   # plain data for results.json
    round_winners(state)          # one attempt per round (each round's top candidate) and the best's index
    model_details(models)         # "<file>.gguf, SHA-256 ..." for a packaged local model, else None
    versions()                    # {"drawloop": "0.1.0", "langgraph": ..., "drawloop commit": "abc1234"}
"""

from __future__ import annotations

import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from drawloop.checkup.people import names_concept
from drawloop.checkup.plan import ThreadSpec
from drawloop.local_model import MODELS
from drawloop.state import Attempt, attempt_score


def summarise_thread(spec: ThreadSpec, state: dict) -> dict:
    attempts, best = round_winners(state)
    return {"thread": spec.thread_id, "mode": spec.mode, "concept": spec.concept, "level": spec.level,
            "sample": spec.sample, "choices": list(state.get("choices") or []), "best": best,
            "stop_reason": state.get("stop_reason"),
            "attempts": [summarise_attempt(a, spec.concept) for a in attempts]}


def summarise_attempt(attempt: Attempt, concept: str = "") -> dict:
    recognition = attempt.get("recognition") or {}
    critique = attempt.get("critique") or {}
    usage = {"tokens_in": 0, "tokens_out": 0}
    for part in (attempt.get("usage") or {}, recognition.get("usage") or {}, critique.get("usage") or {}):
        for key in usage:
            usage[key] += int(part.get(key) or 0)
    return {"iteration": attempt.get("iteration"), "score": attempt_score(attempt),
            "scores": critique.get("scores") or {}, "label": recognition.get("label"),
            "correct": bool(recognition.get("correct")), "image": attempt.get("image"),
            "code_path": attempt.get("code_path"), "chars": len(attempt.get("code") or ""),
            "names_concept": names_concept(attempt.get("code") or "", concept),
            "error": attempt.get("draw_error") or attempt.get("render_error"),
            "usage": usage, "seconds": round(sum((attempt.get("seconds") or {}).values()), 3)}


def round_winners(state: dict) -> tuple[list[dict], int | None]:
    """One attempt per round for the curves: the round's top candidate (with one candidate a round,
    simply every attempt), and the index of the round that holds the best."""
    attempts, rounds, best = state.get("attempts") or [], state.get("rounds") or [], state.get("best")
    if not rounds or all(a.get("candidate", 0) == 0 for a in attempts):
        return attempts, best
    winners = [attempts[r["winner"]] for r in rounds]
    return winners, next((i for i, r in enumerate(rounds) if r["winner"] == best), None)


def model_details(models) -> str | None:
    """The exact weights behind a packaged local model: file name and SHA-256."""
    if getattr(models, "provider", None) != "local":
        return None
    spec = MODELS.get(models.model_name)
    return f"{spec.filename}, SHA-256 {spec.sha256}" if spec else str(models.model_name)


def versions() -> dict:
    found = {}
    for package in ("drawloop", "langgraph", "langchain-openai", "xllamacpp"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    if commit:
        found["drawloop commit"] = commit
    return found
