"""Reports on finished work: the vision check-up's report.md and a side-by-side comparison.

    from drawloop.report import write_report, compare
    write_report("runs/checkup-local")                       # report.md, figures/, sheets/, metrics.json
    compare("runs/checkup-a", "runs/checkup-b")              # runs/compare-checkup-a-vs-checkup-b/compare.md

metrics.py holds the arithmetic (pure functions over results.json); checkup.py the markdown,
matplotlib figures and contact sheets.
"""

from drawloop.report.checkup import compare, write_report

__all__ = ["compare", "write_report"]
