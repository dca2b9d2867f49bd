"""How often the offline critic agrees with a person on pairs of real drawings; the default weights.

    .venv/bin/python bench/agreement.py       # prints the table, writes bench/results/agreement.json

The preference set (tests/preferences/) holds real drawings by the offline model (Qwen2.5-Coder-1.5B)
and one person's verdict on each pair, given looking at the two pictures before any score existed.
Pixel scorers (sanity, concept, structure) are computed here; the code-reading ones (llm,
recognition) are what the real model said at build time (drawings.json). Weights are fitted on
the held-in half of the concepts and reported on both halves; no concept is in both.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PREFS = ROOT / "tests" / "preferences"
SCORERS = ["sanity", "recognition", "llm", "concept", "structure"]


def load():
    from drawloop.config import Settings
    from drawloop.critique import FileCritic, scorer_table

    pairs = [json.loads(line) for line in (PREFS / "pairs.jsonl").read_text().splitlines() if line.strip()]
    recorded = {f"drawings/{name}": meta["recorded"]
                for name, meta in json.loads((PREFS / "drawings.json").read_text()).items()}
    settings = Settings(extra={"weights": {name: 1.0 for name in SCORERS}})
    critic = FileCritic.from_settings(settings, use_model=False)
    return pairs, scorer_table(critic, pairs, PREFS, recorded)


def main() -> dict:
    from drawloop.agents.registry import DEFAULT_WEIGHTS
    from drawloop.critique import agreement, fit_weights, split_by_concept

    pairs, table = load()
    held_in, held_out = split_by_concept(pairs)
    judged = [p for p in pairs if p.get("human") in ("a", "b")]
    report = {"pairs": len(pairs), "judged": len(judged), "ties": len(pairs) - len(judged),
              "concepts": len({p["concept"] for p in pairs}),
              "held_in_judged": sum(p.get("human") in ("a", "b") for p in held_in),
              "held_out_judged": sum(p.get("human") in ("a", "b") for p in held_out), "per_scorer": {}}
    for name in SCORERS:
        report["per_scorer"][name] = {"held_in": agreement(held_in, table, {name: 1.0}),
                                      "held_out": agreement(held_out, table, {name: 1.0})}
    fitted, _ = fit_weights(held_in, table, SCORERS)
    report["fitted_weights"] = fitted
    # Both directions (fit on one half of the concepts, test on the other), then the weights for
    # everyone fitted on all pairs: with ~90 decisive pairs one split is too noisy to pick from.
    folds = []
    for fit_on, test_on in ((held_in, held_out), (held_out, held_in)):
        weights, _ = fit_weights(fit_on, table, SCORERS)
        folds.append({"weights": weights, "fit": agreement(fit_on, table, weights),
                      "held_out": agreement(test_on, table, weights)})
    report["cross_validated"] = {"folds": folds, "mean_held_out": sum(f["held_out"] for f in folds) / 2,
                                 "fit_on_all": fit_weights(pairs, table, SCORERS)[0]}
    for label, weights in (("fitted", fitted), ("default", DEFAULT_WEIGHTS),
                           ("equal", {n: 1.0 for n in SCORERS}),
                           ("old_default", {"sanity": 1.0, "recognition": 1.0, "llm": 1.0})):
        report[label] = {"held_in": agreement(held_in, table, weights),
                         "held_out": agreement(held_out, table, weights), "all": agreement(pairs, table, weights)}
    print(f"{report['judged']} judged pairs ({report['ties']} ties left out) over {report['concepts']} concepts; "
          f"held-in {report['held_in_judged']}, held-out {report['held_out_judged']}")
    print(f"{'':14}{'held-in':>9}{'held-out':>10}")
    for name, row in report["per_scorer"].items():
        print(f"{name:14}{_pct(row['held_in']):>9}{_pct(row['held_out']):>10}")
    for label in ("fitted", "default", "equal", "old_default"):
        print(f"{label:14}{_pct(report[label]['held_in']):>9}{_pct(report[label]['held_out']):>10}")
    print("fitted weights:", ", ".join(f"{k}={v:g}" for k, v in fitted.items()))
    cv = report["cross_validated"]
    for number, fold in enumerate(cv["folds"], 1):
        print(f"fold {number}: fit {_pct(fold['fit'])}, held-out {_pct(fold['held_out'])} with "
              + ", ".join(f"{k}={v:g}" for k, v in fold["weights"].items()))
    print(f"cross-validated held-out agreement: {cv['mean_held_out']:.2f}; fitted on all pairs: "
          + ", ".join(f"{k}={v:g}" for k, v in cv["fit_on_all"].items())
          + f"; default on all pairs: {_pct(report['default']['all'])}")
    out = ROOT / "bench" / "results" / "agreement.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return report


def _pct(value):
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
