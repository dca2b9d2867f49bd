"""The vision check-up: the study's four tests (generation, recognition, self-correction, diversity)
over a slice of the concept set, resumable, and its report.

    from drawloop.checkup import CheckupPlan, compare, run_checkup, write_report
    from drawloop.llm import open_model

    plan = CheckupPlan(levels=("shapes", "objects"), concepts_per_level=3, samples=2, iters=3)
    with open_model(settings) as models:
        results = run_checkup("runs/checkup-local", plan, settings, models)   # also DIR/results.json
    write_report("runs/checkup-local")            # DIR/report.md, metrics.json, figures/, sheets/
    compare("runs/checkup-local", "runs/checkup-4o-mini")   # runs/compare-...-vs-.../compare.md + .png

The same from the shell: `drawloop checkup ...` and `drawloop checkup compare A B`
(drawloop/commands/checkup.py). Rerunning into the same directory resumes.

    plan.py      CheckupPlan (what to run), ThreadSpec (one loop's thread), MODES
    run.py       run_checkup and Checkup: the loops, people's drawings, embeddings -> results.json
    remote.py    RemoteCheckup: the same on an executor's workers (`--executor ray`)
    people.py    people's openclipart drawings: matched by title, cleaned of metadata
    results.py   results.json's thread summaries; the model and versions on record
    metrics.py   the arithmetic: pure functions over results.json
    report.py    write_report: report.md, with figures.py (matplotlib) and sheets.py (contact sheets)
    compare.py   compare: two check-ups side by side
"""

from drawloop.checkup.compare import HEADLINE_ROWS, compare
from drawloop.checkup.people import HumanDrawing, human_drawings
from drawloop.checkup.plan import MODES, CheckupPlan, ThreadSpec
from drawloop.checkup.report import load_results, write_report
from drawloop.checkup.run import Checkup, loops_still_running, run_checkup

__all__ = ["HEADLINE_ROWS", "MODES", "Checkup", "CheckupPlan", "HumanDrawing", "ThreadSpec", "compare",
           "human_drawings", "load_results", "loops_still_running", "run_checkup", "write_report"]
