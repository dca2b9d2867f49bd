"""Checkpoint overhead per node: Postgres (langgraph-checkpoint-postgres) vs SQLite, the same run.

    .venv/bin/python bench/checkpoint.py                 # 3 ABBA rounds, 6 threads of 3 iterations each
    .venv/bin/python bench/checkpoint.py --rounds 5 --threads 10

The real refine graph with zero-latency agents (bench/batch.py's instant drawer, flat renderer,
yes-recognizer; the sanity critic), run through drawloop's run_thread with durability "sync" as
builds do, one thread after another, so each figure is the latency a node pays for its checkpoint:

- none: no checkpointer at all, the baseline
- sqlite: drawloop's SqliteSaver (WAL, synchronous=NORMAL; runs.sqlite_checkpointer)
- postgres: drawloop's PostgresSaver (runs.postgres_checkpointer) on a throwaway local server
  (tests/pgserver.py) with Postgres' defaults: fsync on, synchronous_commit on, loopback TCP
- postgres_async: the same with synchronous_commit=off, set in the URL
  (?options=-csynchronous_commit%3Doff): a killed driver still loses nothing, a crash of the
  database server itself may lose its last fraction of a second, as SQLite's NORMAL may on a power cut

Order per round: none, sqlite, postgres, postgres_async, then the reverse (ABBA, so a drift in the
shared machine's load cancels out of each ratio). Per node = elapsed / checkpoints written. A Postgres on
another machine adds the network round trips (a few per checkpoint) to its figure.
Writes bench/results/checkpoint.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))      # pgserver: the throwaway server the tests use


def _graph(saver, store, iters: int):
    from batch import FlatRenderer, InstantDrawer, YesRecognizer

    from drawloop.agents.critic import Critic, RenderSanityScorer
    from drawloop.graphs.refine import build_refine_graph
    from drawloop.graphs.stopping import StopRule

    return build_refine_graph(InstantDrawer(), FlatRenderer(), YesRecognizer(), Critic([(RenderSanityScorer(), 1.0)]),
                              stop_rule=StopRule(max_iters=iters, patience=iters + 1), store=store, size=64,
                              n_distractors=2, distractors=lambda c, n, s: ["a dog", "a car"][:n], checkpointer=saver)


ASYNC = "?options=-csynchronous_commit%3Doff"
ORDER = ("none", "sqlite", "postgres", "postgres_async")


def _one(mode: str, url: str, threads: int, iters: int) -> tuple[float, int]:
    """Seconds for `threads` sequential threads and the checkpoints they wrote."""
    from drawloop.graphs.thread import run_thread
    from drawloop.runs import ArtifactStore, postgres_checkpointer, sqlite_checkpointer
    from drawloop.storage import postgres_place

    work = Path(tempfile.mkdtemp(prefix="drawloop-bench-ck-"))
    try:
        if mode == "sqlite":
            opened = sqlite_checkpointer(work / "checkpoints.sqlite")
        elif mode.startswith("postgres"):
            url = url + ASYNC if mode == "postgres_async" else url
            opened = postgres_checkpointer(postgres_place(work, url, "bench", work / "checkpoints.sqlite"))
        else:
            opened = contextlib.nullcontext(None)
        with opened as saver:
            graph = _graph(saver, ArtifactStore(work), iters)
            configs = [{"configurable": {"thread_id": f"t{i}", "seed": i}} for i in range(threads)]
            start = time.perf_counter()
            for config in configs:
                if saver is None:
                    graph.invoke({"concept": "a shape", "attempts": []}, config)
                else:
                    assert run_thread(graph, config, {"concept": "a shape", "attempts": []}).finished
            elapsed = time.perf_counter() - start
            written = sum(len(list(saver.list(c))) for c in configs) if saver is not None else 0
        return elapsed, written
    finally:
        shutil.rmtree(work, ignore_errors=True)


def postgres_vs_sqlite(rounds: int = 3, threads: int = 6, iters: int = 3) -> dict:
    """The figure: ms per node of each store, their overhead over no checkpointer, the ratio."""
    from pgserver import TempPostgres

    with TempPostgres(fsync=True) as pg:
        _one("postgres", pg.url, 1, 1), _one("sqlite", pg.url, 1, 1)     # warm-up: imports, schema, renderer
        seconds: dict[str, list[float]] = {mode: [] for mode in ORDER}
        nodes = 0
        for _ in range(rounds):
            for mode in ORDER + ORDER[::-1]:
                elapsed, written = _one(mode, pg.url, threads, iters)
                seconds[mode].append(elapsed)
                nodes = written or nodes
    per_node = {mode: statistics.median(values) / nodes * 1000 for mode, values in seconds.items()}
    best = {mode: min(values) / nodes * 1000 for mode, values in seconds.items()}

    def abba(mode: str) -> float:
        """Median over rounds of the round's ratio (two runs each, A B B A: a linear drift cancels)."""
        a, b = seconds[mode], seconds["sqlite"]
        return statistics.median((a[2 * i] + a[2 * i + 1]) / (b[2 * i] + b[2 * i + 1]) for i in range(rounds))

    overhead = {mode: per_node[mode] - per_node["none"] for mode in ORDER[1:]}
    import os

    return {
        "load_average_after": round(os.getloadavg()[0], 2),
        "rounds": rounds, "threads": threads, "iterations": iters, "checkpoints_per_run": nodes,
        "order": ", ".join(ORDER + ORDER[::-1]) + " per round (ABBA); medians",
        "seconds": {mode: [round(v, 4) for v in values] for mode, values in seconds.items()},
        "ms_per_node": {mode: round(v, 3) for mode, v in per_node.items()},
        "best_ms_per_node": {mode: round(v, 3) for mode, v in best.items()},
        "postgres_over_sqlite_abba": round(abba("postgres"), 3),
        "postgres_async_over_sqlite_abba": round(abba("postgres_async"), 3),
        "checkpoint_ms_per_node": {mode: round(v, 3) for mode, v in overhead.items()},
        "postgres_over_sqlite_per_node": round(per_node["postgres"] / per_node["sqlite"], 3),
        "postgres_over_sqlite_checkpoint_cost": round(overhead["postgres"] / overhead["sqlite"], 3)
        if overhead["sqlite"] > 0 else None,
        "postgres_async_over_sqlite_per_node": round(per_node["postgres_async"] / per_node["sqlite"], 3),
        "postgres": "local server, loopback TCP, fsync on, synchronous_commit on (defaults)",
        "postgres_async": "the same, synchronous_commit=off from the URL",
        "sqlite": "WAL, synchronous=NORMAL (drawloop's settings)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=6, help="refine threads per measurement, one after another")
    parser.add_argument("--iters", type=int, default=3, help="iterations per thread")
    args = parser.parse_args()
    from pgserver import find_bindir

    if find_bindir() is None:
        print("skipped: no PostgreSQL server binaries (apt-get install postgresql, or set DRAWLOOP_PG_BIN)")
        return
    r = postgres_vs_sqlite(args.rounds, args.threads, args.iters)
    ms, ck, best = r["ms_per_node"], r["checkpoint_ms_per_node"], r["best_ms_per_node"]
    print(f"refine graph, zero-latency agents, {r['threads']} threads x {r['iterations']} iterations, "
          f"{r['checkpoints_per_run']} checkpoints a run, {r['rounds']} ABBA rounds, load average "
          f"{r['load_average_after']}")
    print("                                  ms/node: median   best   checkpoint (median - none)")
    for mode, label in (("none", "no checkpointer"), ("sqlite", "SQLite"), ("postgres", "Postgres"),
                        ("postgres_async", "Postgres, synchronous_commit=off")):
        extra = f"{ck[mode]:10.3f}" if mode in ck else ""
        print(f"  {label:32s} {ms[mode]:8.3f} {best[mode]:7.3f} {extra}")
    # The headline is the ratio of whole per-node times within each ABBA round; SQLite's own share
    # is a small difference of two noisy figures, so the ratio of differences stays in the JSON only.
    print(f"  Postgres / SQLite per node (ABBA, median of rounds): {r['postgres_over_sqlite_abba']:.2f}x; "
          f"with synchronous_commit=off {r['postgres_async_over_sqlite_abba']:.2f}x")
    out = ROOT / "bench" / "results" / "checkpoint.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(r, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
