"""Replay the drawer's stream guard over real drafts: loops it stops, drawings it would cut, tokens saved.

    .venv/bin/python bench/loop_guard.py          # prints the table, writes bench/results/loop_guard.json

Each draft is streamed again the way ChatLLM streams it (the guard looks every 16 chunks of about
3 characters). Where the guard stops it, the cut answer and the whole answer are both rendered:
the same picture means a loop was caught and nothing was lost; a different picture means a
legitimate drawing was cut. A draft that ran to the token cap without being stopped is a missed
loop when a shorter prefix already renders the same picture: its wasted characters are counted.

Drafts: the committed real drawings (tests/preferences/drawings) and, when
present, the whole answers in the checkpoints of runs on this machine (bench/results/*-runs/,
runs/), with their token counts (a draft at the cap is one that hit it).
"""

from __future__ import annotations

import glob
import json
import sqlite3
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHUNK, EVERY = 3, 16          # as ChatLLM._stream: the guard runs every 16 streamed chunks
CAP = 1200                    # Settings.max_tokens when the drafts were drawn


def drafts() -> list[dict]:
    found = []
    for pattern in ("tests/preferences/drawings/*.svg",):
        for path in sorted(ROOT.glob(pattern)):
            found.append({"source": str(path.relative_to(ROOT)), "text": path.read_text(), "capped": None})
    for db in sorted(glob.glob(str(ROOT / "bench/results/*-runs/*/checkpoints.sqlite"))
                     + glob.glob(str(ROOT / "runs/*/checkpoints.sqlite"))):
        found.extend(_answers_in(Path(db)))
    return found


def _answers_in(db: Path) -> list[dict]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    con = sqlite3.connect(db, check_same_thread=False)
    saver, found = SqliteSaver(con), []
    for (thread,) in con.execute("select distinct thread_id from checkpoints").fetchall():
        state = saver.get_tuple({"configurable": {"thread_id": thread}}).checkpoint["channel_values"]
        for attempt in state.get("attempts") or []:
            if attempt.get("raw"):
                tokens = (attempt.get("usage") or {}).get("tokens_out") or 0
                found.append({"source": f"{db.parent.name}#{attempt.get('iteration')}", "text": attempt["raw"],
                              "capped": tokens >= CAP - 10})
    con.close()
    return found


def replay(text: str, guard) -> int | None:
    """Where the guard would have stopped this answer (characters streamed), or None."""
    for end in range(CHUNK * EVERY, len(text) + 1, CHUNK * EVERY):
        if guard(text[:end]):
            return end
    return None


def picture(text: str) -> bytes | None:
    from drawloop.agents.drawer import NoCodeError, extract_svg
    from drawloop.renderers.svg import render_svg

    try:
        result = render_svg(extract_svg(text), size=256, isolate=False)
    except NoCodeError:
        return None
    return result.png if result.ok else None


def same(a: bytes | None, b: bytes | None) -> bool:
    from drawloop.imaging import no_new_shape

    if a is None or b is None:
        return a is None and b is None
    return no_new_shape(a, b)


def shortest_same_prefix(text: str, full: bytes | None) -> int:
    """The shortest prefix (at guard steps) that already renders the whole answer's picture
    (binary search: a longer prefix only adds shapes)."""
    steps = list(range(CHUNK * EVERY, len(text), CHUNK * EVERY)) + [len(text)]
    low, high = 0, len(steps) - 1
    while low < high:
        mid = (low + high) // 2
        if same(picture(text[:steps[mid]]), full):
            high = mid
        else:
            low = mid + 1
    return steps[high]


def main() -> dict:
    from drawloop.agents.drawer import drawing_loop, svg_answer_done

    rows = []
    for draft in drafts():
        text, full = draft["text"], None
        stop = replay(text, svg_answer_done)
        row = {"source": draft["source"], "chars": len(text), "capped": draft["capped"], "stopped_at": stop}
        if stop is not None and stop < len(text):
            full, cut = picture(text), text[:stop]
            if drawing_loop(cut):   # as Drawer.draw: a loop cut drops its half-written element
                cut = cut[:cut.rfind(">") + 1]
            row["cut_lost_nothing"] = same(picture(cut), full)
        elif draft["capped"]:
            full = picture(text)
            row["needed"] = shortest_same_prefix(text, full)
        rows.append(row)
    cut = [r for r in rows if "cut_lost_nothing" in r]
    caught = [r for r in cut if r["cut_lost_nothing"]]
    harmed = [r for r in cut if not r["cut_lost_nothing"]]
    missed = [r for r in rows if "needed" in r and r["needed"] < r["chars"] * 0.9]
    report = {"drafts": len(rows), "capped": sum(bool(r["capped"]) for r in rows),
              "stopped_early": len(cut), "caught_loops_nothing_lost": len(caught),
              "legitimate_drawings_cut": len(harmed), "capped_not_stopped_with_waste": len(missed),
              "chars_saved": sum(r["chars"] - r["stopped_at"] for r in caught),
              "chars_wasted_by_missed_loops": sum(r["chars"] - r["needed"] for r in missed),
              "harmed": [r["source"] for r in harmed], "missed": [r["source"] for r in missed], "rows": rows}
    print(f"{report['drafts']} real drafts ({report['capped']} known to hit the {CAP}-token cap)")
    print(f"stopped early: {len(cut)}; a loop, nothing lost: {len(caught)}; a drawing cut: {len(harmed)}")
    print(f"capped drafts the guard let run, though a shorter prefix drew the same: {len(missed)} "
          f"({report['chars_wasted_by_missed_loops']} characters wasted)")
    for name in report["harmed"]:
        print("  cut:", name)
    for name in report["missed"]:
        print("  missed:", name)
    out = ROOT / "bench" / "results" / "loop_guard.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
