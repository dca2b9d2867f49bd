"""Replay a run from its directory: what happened, in which node, how long, what it cost, what it saw.

    trace = load_run("runs/20261125-140024-a-red-apple-45bd")      # run.json + trace.jsonl + result.json
    trace.threads["main"].iterations[0].steps      # draw, render, recognize, critique, decide
    console.print(render_run(trace, diff=True))                     # drawloop.trace.show: `trace show`
    print(json.dumps(run_to_dict(trace)))                           # the same facts, for scripts

    run_dir = find_run("red-apple", runs_dir="runs")   # a path, a run id, a unique part of one, or "latest"
    row = run_summary(run_dir)                          # one line of `drawloop runs`

The trace is the source of truth: events are grouped by thread, then iteration, then node, in
the order they happened. A run killed mid-node shows that node as interrupted; unreadable
lines are counted, not fatal; artifacts that are gone show as placeholders. This module reads
and summarises (RunTrace, run_to_dict, find_run, run_summary); drawloop.trace.show draws it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drawloop.trace.events import TraceEvent, read_events

STEP_FIELDS = ("seconds", "tokens_in", "tokens_out", "cost_usd", "score", "scores", "recognition", "error",
               "artifact", "message")
UNKNOWN = "?"     # the concept of a trace with no run.json (batches draw many concepts)


class RunNotFound(ValueError):
    """The run named on the command line does not exist or is ambiguous."""


# -- the replayed run ---------------------------------------------------------------------------

@dataclass
class Step:
    """One node's execution: its start and end events folded together."""

    node: str
    started: float | None = None
    ended: float | None = None
    seconds: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    score: float | None = None
    scores: dict[str, float] | None = None
    recognition: dict[str, Any] | None = None
    error: str | None = None
    artifact: str | None = None
    message: str | None = None

    @property
    def interrupted(self) -> bool:
        return self.started is not None and self.ended is None

    def absorb(self, event: TraceEvent) -> None:
        if event.phase == "start":
            self.started = event.ts
            return
        self.ended = event.ts
        for name in STEP_FIELDS:
            value = getattr(event, name)
            if value is not None:
                setattr(self, name, value)


@dataclass
class Iteration:
    index: int
    steps: list[Step] = field(default_factory=list)

    def step(self, node: str) -> Step | None:
        return next((s for s in reversed(self.steps) if s.node == node), None)

    def _field(self, node: str, name: str) -> Any:
        step = self.step(node)
        return getattr(step, name) if step else None

    @property
    def code_path(self) -> str | None:
        return self._field("draw", "artifact")

    @property
    def image_path(self) -> str | None:
        return self._field("render", "artifact")

    @property
    def score(self) -> float | None:
        """The final score: decide's (after any review node), else the critic's."""
        decided = self._field("decide", "score")
        return decided if decided is not None else self._field("critique", "score")

    @property
    def recognition(self) -> dict[str, Any]:
        return self._field("recognize", "recognition") or {}

    @property
    def error(self) -> str | None:
        return self._field("draw", "error") or self._field("render", "error")

    @property
    def decision(self) -> str | None:
        return self._field("decide", "message")

    @property
    def seconds(self) -> float:
        return sum(s.seconds or 0.0 for s in self.steps)

    @property
    def tokens(self) -> tuple[int, int]:
        return sum(s.tokens_in or 0 for s in self.steps), sum(s.tokens_out or 0 for s in self.steps)

    @property
    def cost_usd(self) -> float | None:
        costs = [s.cost_usd for s in self.steps if s.cost_usd is not None]
        return sum(costs) if costs else None


@dataclass
class ThreadTrace:
    name: str
    iterations: list[Iteration] = field(default_factory=list)

    @property
    def scores(self) -> list[float]:
        return [it.score or 0.0 for it in self.iterations if it.score is not None]

    @property
    def best(self) -> int | None:
        """Index of the best-scoring iteration; ties keep the earliest, as the stop rule does."""
        scored = [(it.score, -it.index) for it in self.iterations if it.score is not None]
        return -max(scored)[1] if scored else None

    @property
    def stop_reason(self) -> str | None:
        last = self.iterations[-1].decision if self.iterations else None
        return last if last and last != "continue" else None

    @property
    def seconds(self) -> float:
        return sum(it.seconds for it in self.iterations)

    @property
    def tokens(self) -> tuple[int, int]:
        pairs = [it.tokens for it in self.iterations]
        return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


@dataclass
class RunTrace:
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)      # run.json
    result: dict[str, Any] | None = None                      # result.json, once the run finished
    threads: dict[str, ThreadTrace] = field(default_factory=dict)
    skipped_lines: int = 0
    has_trace: bool = False

    @property
    def concept(self) -> str:
        return self.meta.get("concept") or (self.result or {}).get("concept") or UNKNOWN

    @property
    def model(self) -> str:
        return self.meta.get("model") or (self.result or {}).get("model") or ""

    def artifact(self, rel: str | None) -> Path | None:
        return (self.path / rel) if rel else None

    def code(self, iteration: Iteration) -> str | None:
        path = self.artifact(iteration.code_path)
        return path.read_text(encoding="utf-8", errors="replace") if path and path.is_file() else None

    def missing_artifacts(self) -> list[str]:
        rels = [rel for t in self.threads.values() for it in t.iterations
                for rel in (it.code_path, it.image_path)]
        return [rel for rel in rels if rel and not self.artifact(rel).is_file()]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def group_events(events: list[TraceEvent]) -> dict[str, ThreadTrace]:
    """Fold events into threads -> iterations -> steps, keeping the order things happened in."""
    threads: dict[str, ThreadTrace] = {}
    iterations: dict[tuple[str, int], Iteration] = {}
    for event in events:
        thread = threads.setdefault(event.thread, ThreadTrace(event.thread))
        iteration = iterations.get((event.thread, event.iteration))
        if iteration is None:
            iteration = iterations[event.thread, event.iteration] = Iteration(event.iteration)
            thread.iterations.append(iteration)
        step = iteration.step(event.node)
        if event.phase == "start" or step is None or not step.interrupted:
            step = Step(event.node)  # a new execution (an end with no start, like decide's, is one too)
            iteration.steps.append(step)
        step.absorb(event)
    for thread in threads.values():
        thread.iterations.sort(key=lambda it: it.index)  # a resumed run can write an iteration late
    return threads


def load_run(path: str | Path) -> RunTrace:
    """A run directory (or a bare trace.jsonl) as a RunTrace."""
    path = Path(path)
    trace_path = path if path.is_file() else path / "trace.jsonl"
    run_dir = path.parent if path.is_file() else path
    trace = RunTrace(run_dir, meta=_read_json(run_dir / "run.json") or {},
                     result=_read_json(run_dir / "result.json"))
    if trace_path.is_file():
        events, trace.skipped_lines = read_events(trace_path)
        trace.threads, trace.has_trace = group_events(events), True
    return trace


# -- finding runs -------------------------------------------------------------------------------

def is_run_dir(path: Path) -> bool:
    """A drawing run: what `drawloop draw` makes (run.json), the only kind `drawloop runs` lists or
    deletes."""
    return path.is_dir() and (path / "run.json").is_file()


def has_trace(path: Path) -> bool:
    """Anything with a trace to replay: a run, a batch's work directory, a check-up."""
    return path.is_dir() and ((path / "run.json").is_file() or (path / "trace.jsonl").is_file())


def _created(run_dir: Path) -> float:
    meta = _read_json(run_dir / "run.json") or {}
    try:
        return dt.datetime.fromisoformat(meta["created"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return run_dir.stat().st_mtime


def list_runs(runs_dir: str | Path, traces: bool = False) -> list[Path]:
    """Run directories under runs_dir, oldest first; with traces=True also other directories with a
    trace.jsonl (check-ups). Other folders (training runs, ...) are skipped."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    keep = has_trace if traces else is_run_dir
    return sorted((p for p in root.iterdir() if keep(p)), key=lambda p: (_created(p), p.name))


def find_run(spec: str | Path, runs_dir: str | Path = "runs") -> Path:
    """Resolve what a user typed: a run directory, a trace file, a run id or a unique part of one,
    or "latest"."""
    path = Path(spec)
    if path.is_file() and path.suffix == ".jsonl":
        return path
    if path.is_dir():
        if has_trace(path):
            return path
        raise RunNotFound(f"{path} is not a drawloop run (no run.json or trace.jsonl in it)")
    runs = list_runs(runs_dir, traces=True)
    if str(spec) in ("latest", "last"):
        if not runs:
            raise RunNotFound(f"no runs in {runs_dir}")
        return runs[-1]
    matches = [p for p in runs if str(spec) == p.name] or [p for p in runs if str(spec) in p.name]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        hint = f"; runs in {runs_dir}: {', '.join(p.name for p in runs[-3:])}" if runs else ""
        raise RunNotFound(f"no run matches {str(spec)!r} (looked for a directory, then in {runs_dir}){hint}")
    names = ", ".join(p.name for p in matches[:5]) + (" ..." if len(matches) > 5 else "")
    raise RunNotFound(f"{str(spec)!r} matches {len(matches)} runs: {names}; give more of the id")


def run_summary(run_dir: str | Path) -> dict[str, Any]:
    """One row of `drawloop runs`: result.json where the run finished, the trace where it did not."""
    trace = load_run(run_dir)
    result = trace.result or {}
    threads = list(trace.threads.values())
    scores = [s for t in threads for s in t.scores]
    tokens = [t.tokens for t in threads]
    usage = result.get("usage") or {}
    stops = sorted({t.stop_reason for t in threads if t.stop_reason})
    return {
        "id": trace.path.name,
        "path": str(trace.path),
        "concept": trace.concept,
        "model": trace.model,
        "created": trace.meta.get("created"),
        "created_ts": _created(trace.path),
        "finished": trace.result is not None,
        "threads": len(threads),
        "iterations": result.get("iterations", sum(len(t.iterations) for t in threads)),
        "best_score": result.get("best_score", max(scores) if scores else None),
        "stop_reason": result.get("stop_reason") or (", ".join(stops) if stops else None),
        "seconds": result.get("seconds", round(sum(t.seconds for t in threads), 2)),
        "tokens_in": usage.get("tokens_in", sum(p[0] for p in tokens)),
        "tokens_out": usage.get("tokens_out", sum(p[1] for p in tokens)),
        "bytes": sum(f.stat().st_size for f in trace.path.rglob("*") if f.is_file()),
    }


# -- code diffs ---------------------------------------------------------------------------------

def code_diff(trace: RunTrace, before: Iteration, after: Iteration) -> str | None:
    """Unified diff of the code between two iterations; None when either side's code is gone."""
    old, new = trace.code(before), trace.code(after)
    if old is None or new is None:
        return None
    return "".join(difflib.unified_diff(_lines(old), _lines(new), f"#{before.index}", f"#{after.index}"))


def _lines(code: str) -> list[str]:
    # Models often write a whole SVG on one line; one element per line makes the diff readable.
    if code.count("\n") <= 1 and code.count("><") > 2:
        code = code.replace("><", ">\n<")
    return [line + "\n" for line in code.splitlines()]


# -- JSON ---------------------------------------------------------------------------------------

def _step_dict(step: Step) -> dict[str, Any]:
    data = {"node": step.node, "interrupted": step.interrupted}
    data.update({name: getattr(step, name) for name in STEP_FIELDS if getattr(step, name) is not None})
    return data


def run_to_dict(trace: RunTrace, thread: str | None = None, diff: bool = False) -> dict[str, Any]:
    threads = []
    for t in selected_threads(trace, thread):
        iterations = []
        for i, it in enumerate(t.iterations):
            tokens_in, tokens_out = it.tokens
            entry = {"iteration": it.index, "score": it.score, "recognition": it.recognition or None,
                     "error": it.error, "decision": it.decision, "seconds": round(it.seconds, 3),
                     "tokens_in": tokens_in, "tokens_out": tokens_out, "cost_usd": it.cost_usd,
                     "code": it.code_path, "image": it.image_path, "steps": [_step_dict(s) for s in it.steps]}
            if diff and i > 0:
                entry["diff"] = code_diff(trace, t.iterations[i - 1], it)
            iterations.append(entry)
        threads.append({"thread": t.name, "best_iteration": t.best, "stop_reason": t.stop_reason,
                        "scores": t.scores, "iterations": iterations})
    return {"run": str(trace.path), "concept": trace.concept, "model": trace.model,
            "created": trace.meta.get("created"), "finished": trace.result is not None,
            "has_trace": trace.has_trace, "skipped_lines": trace.skipped_lines,
            "missing_artifacts": trace.missing_artifacts(), "threads": threads}


def selected_threads(trace: RunTrace, thread: str | None) -> list[ThreadTrace]:
    if thread is None:
        return list(trace.threads.values())
    if thread not in trace.threads:
        known = ", ".join(repr(name) for name in trace.threads) or "none"
        raise RunNotFound(f"no thread {thread!r} in {trace.path.name}; threads: {known}")
    return [trace.threads[thread]]
