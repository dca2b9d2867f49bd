"""The check-up's arithmetic: pure functions over results.json (checkup/run.py writes it).

    from drawloop.checkup.metrics import fidelity, curve, recognition, headline
    results = json.loads(Path("runs/checkup-local/results.json").read_text())
    fidelity(results["threads"])                     # per level: first / last / best draft score, recognized
    curve(results["threads"], "plain", kind="best")  # per iteration: mean, std, n
    headline(results)                                # the dozen numbers `checkup compare` sets side by side

Every metric is defined in DEFINITIONS below; the report prints them.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

DEFINITIONS = (
    ("score", "the critic's combined score of an attempt, in [0, 1]; a failed draw or render scores 0."),
    ("recognized", "the recognizer, reading only the code, picked the concept among the choices. A "
                   "failed render or an unparseable answer counts as not recognized: the denominator is "
                   "every drawing asked for. Chance is 1 / number of choices."),
    ("first draft", "iteration 0 of a critic thread (the plain thread starts from the same draft and "
                    "does not count it again)."),
    ("last / best", "the critic thread's last attempt / the attempt the loop returns (its best critic "
                    "score; ties go to the earliest)."),
    ("curve, raw", "mean and standard deviation (population, ddof=0) over threads of the score at "
                   "iteration i; a thread that stopped early drops out of later iterations (n says so)."),
    ("curve, best", "the same over best-so-far scores, max(score[0..i]); a thread that stopped early "
                    "carries its best forward."),
    ("gain", "per thread, the last attempt's score minus draft 0's, averaged (paired)."),
    ("diversity", "mean pairwise cosine distance (1 - cosine similarity) between the image embeddings of "
                  "one concept's independent samples; needs at least two rendered samples. 0 = identical "
                  "drawings."),
)


def rate(flags: Iterable[bool | None]) -> float | None:
    """Share of true flags; None flags (not measured) are left out."""
    flags = [bool(f) for f in flags if f is not None]
    return sum(flags) / len(flags) if flags else None


def mean(values: Iterable[float | None]) -> float | None:
    values = [float(v) for v in values if v is not None]
    return sum(values) / len(values) if values else None


def spread(values: Iterable[float | None]) -> dict:
    """mean, population std (ddof=0) and count of the values that exist."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}


def mean_pairwise_distance(vectors: Sequence[Sequence[float]]) -> float | None:
    """Mean cosine distance over all unordered pairs of vectors; None with fewer than two."""
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        return None
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms > 0, norms, 1.0)
    sims = x @ x.T
    n = len(x)
    return float(1.0 - (sims.sum() - np.trace(sims)) / (n * (n - 1)))


# ---------------------------------------------------------------- per thread

def critic_threads(threads: list[dict]) -> list[dict]:
    return [t for t in threads if t["mode"] == "critic" and t["attempts"]]


def first(thread: dict) -> dict:
    return thread["attempts"][0]


def last(thread: dict) -> dict:
    return thread["attempts"][-1]


def best(thread: dict) -> dict:
    index = thread.get("best")
    return thread["attempts"][index if index is not None else 0]


def levels_of(threads: list[dict]) -> list[str]:
    return list(dict.fromkeys(t["level"] for t in threads))


# ---------------------------------------------------------------- the four tests

def fidelity(threads: list[dict]) -> list[dict]:
    """Generation fidelity per level (and 'all'): first, last and best drafts of the critic loop."""
    rows = []
    groups = [(level, [t for t in critic_threads(threads) if t["level"] == level])
              for level in levels_of(threads)]
    groups.append(("all", critic_threads(threads)))
    for level, group in groups:
        row = {"level": level, "drawings": len(group),
               "failed_first": rate(first(t)["error"] is not None for t in group)}
        for name, pick in (("first", first), ("last", last), ("best", best)):
            row[f"{name}_score"] = mean(pick(t)["score"] for t in group)
            row[f"{name}_recognized"] = rate(pick(t)["correct"] for t in group)
        rows.append(row)
    return rows


def curve(threads: list[dict], mode: str, kind: str = "raw", iters: int | None = None) -> list[dict]:
    """Per iteration: {"iteration", "mean", "std", "n"} over the threads of `mode`."""
    if kind not in ("raw", "best"):
        raise ValueError("kind must be 'raw' or 'best'")
    series = [[a["score"] for a in t["attempts"]] for t in threads if t["mode"] == mode and t["attempts"]]
    length = iters or max((len(s) for s in series), default=0)
    points = []
    for i in range(length):
        if kind == "raw":
            values = [s[i] for s in series if i < len(s)]
        else:
            values = [max(s[:i + 1]) for s in series]
        points.append({"iteration": i, **spread(values)})
    return points


def gain(threads: list[dict], mode: str) -> dict:
    """Paired change from draft 0 to the last attempt, per thread: mean, std, n, and how many improved."""
    deltas = [t["attempts"][-1]["score"] - t["attempts"][0]["score"]
              for t in threads if t["mode"] == mode and len(t["attempts"]) >= 2]
    return {**spread(deltas), "improved": sum(d > 0 for d in deltas), "worse": sum(d < 0 for d in deltas)}


def chance(threads: list[dict]) -> float | None:
    sizes = [len(t["choices"]) for t in threads if t.get("choices")]
    return 1.0 / mean(sizes) if sizes else None


def recognition(threads: list[dict], human: list[dict]) -> list[dict]:
    """Recognition from code per level (and 'all'): the model's own first drafts, the same restricted
    to concepts that have people's drawings (the like-for-like comparison), and people's drawings."""
    with_human = {h["concept"] for h in human}
    rows = []
    levels = levels_of(threads)
    for level in levels + ["all"]:
        own = [t for t in critic_threads(threads) if level in ("all", t["level"])]
        matched = [t for t in own if t["concept"] in with_human]
        people = [h for h in human if level in ("all", h["level"])]
        rows.append({"level": level, "own": rate(first(t)["correct"] for t in own), "n_own": len(own),
                     "own_matched": rate(first(t)["correct"] for t in matched), "n_matched": len(matched),
                     "human": rate(h["correct"] for h in people), "n_human": len(people),
                     "own_named": rate(first(t).get("names_concept") for t in own),
                     "human_named": rate(h.get("names_concept") for h in people),
                     "own_chars": mean(first(t).get("chars") for t in own),
                     "human_chars": mean(h.get("chars") for h in people),
                     "concepts_with_human": len({h["concept"] for h in people})})
    return rows


def concepts(threads: list[dict], diversity: dict) -> list[dict]:
    """One row per concept, best first: mean first/best score and recognition, diversity."""
    rows = []
    for name in dict.fromkeys(t["concept"] for t in threads):
        group = [t for t in critic_threads(threads) if t["concept"] == name]
        div = diversity.get(name) or {}
        rows.append({"concept": name, "level": (group or [{"level": "?"}])[0]["level"], "samples": len(group),
                     "first_score": mean(first(t)["score"] for t in group),
                     "best_score": mean(best(t)["score"] for t in group),
                     "first_recognized": rate(first(t)["correct"] for t in group),
                     "best_recognized": rate(best(t)["correct"] for t in group),
                     "diversity": div.get("first"), "diversity_final": div.get("final")})
    return sorted(rows, key=lambda r: (-(r["best_score"] or 0), -(r["first_score"] or 0), r["concept"]))


def costs(results: dict) -> dict:
    """Tokens and time. A plain thread's draft 0 belongs to its critic thread and is counted once."""
    tokens_in = tokens_out = attempts = 0
    node_seconds = 0.0
    failures = {"model unreachable": 0, "no code": 0, "render failed": 0}
    for thread in results["threads"]:
        counted = thread["attempts"][1:] if thread["mode"] == "plain" else thread["attempts"]
        for attempt in counted:
            error = attempt.get("error")
            if error:
                kind = ("model unreachable" if "gave no usable answer" in error
                        else "render failed" if attempt.get("code_path") or attempt.get("chars")
                        else "no code")
                failures[kind] += 1
            tokens_in += attempt["usage"].get("tokens_in", 0)
            tokens_out += attempt["usage"].get("tokens_out", 0)
            node_seconds += attempt.get("seconds") or 0.0
            attempts += 1
    human_in = sum((h.get("usage") or {}).get("tokens_in", 0) for h in results["human"])
    human_out = sum((h.get("usage") or {}).get("tokens_out", 0) for h in results["human"])
    sessions = results.get("sessions") or []
    return {"attempts": attempts, "tokens_in": tokens_in + human_in, "tokens_out": tokens_out + human_out,
            "loop_tokens_in": tokens_in, "loop_tokens_out": tokens_out, "human_tokens_in": human_in,
            "human_tokens_out": human_out, "node_seconds": round(node_seconds, 1),
            "wall_seconds": round(sum(s.get("seconds", 0.0) for s in sessions), 1), "sessions": len(sessions),
            "failures": failures}


def headline(results: dict) -> dict:
    """The numbers two check-ups are compared on."""
    threads = results["threads"]
    everything = fidelity(threads)[-1]
    recog = recognition(threads, results["human"])[-1]
    plain, critic = curve(threads, "plain", "raw"), curve(threads, "critic", "raw")
    return {
        "first_score": everything["first_score"], "best_score": everything["best_score"],
        "last_score": everything["last_score"], "first_recognized": everything["first_recognized"],
        "best_recognized": everything["best_recognized"], "own_recognized_matched": recog["own_matched"],
        "human_recognized": recog["human"], "chance": chance(threads),
        "plain_gain": gain(threads, "plain")["mean"], "critic_gain": gain(threads, "critic")["mean"],
        "plain_last": plain[-1]["mean"] if plain else None,
        "critic_last": critic[-1]["mean"] if critic else None,
        "diversity": mean(d.get("first") for d in results["diversity"].values()),
    }
