"""Trace records: one schema for every node event, written as JSONL.

    event = TraceEvent(run="r1", thread="main", iteration=0, node="draw", phase="end",
                       seconds=9.1, tokens_out=412)
    with TraceWriter(run_dir / "trace.jsonl") as writer:
        writer.write(event)
    events = load_events(run_dir / "trace.jsonl")   # tolerant of older schema versions
    events, skipped = read_events(run_dir / "trace.jsonl")   # ... and says how many lines were unreadable

Nodes emit events through LangGraph's custom stream (`emit(...)` below uses
`langgraph.config.get_stream_writer`); the runner writes them to the file and feeds the live view.
Your own graph nodes get the same start/end records by wrapping them in `traced`:

    graph = build_refine_graph(..., review_nodes=[("review", traced("review")(my_reviewer))])

Schema history: v0 (pre-release) wrote "event" for the phase and "duration" for seconds; v1 is
the dataclass below. Readers upgrade old records and ignore fields they do not know, so a trace
from a newer version still loads.
"""

from __future__ import annotations

import inspect
import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator

from langchain_core.runnables import RunnableConfig

from drawloop.state import merge_candidates
from drawloop.text import clean_text

SCHEMA_VERSION = 1


@dataclass
class TraceEvent:
    node: str
    phase: str                       # "start" | "end" | "info"
    iteration: int = 0               # the attempt's index in the thread (unique across rounds)
    run: str = ""
    thread: str = ""
    ts: float = field(default_factory=time.time)
    seconds: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    score: float | None = None
    scores: dict[str, float] | None = None
    recognition: dict[str, Any] | None = None
    error: str | None = None
    artifact: str | None = None
    message: str | None = None       # feedback text, stop reason, or a note
    round: int | None = None         # the round of candidates (None in traces before rounds)
    candidate: int | None = None     # the candidate's slot in its round
    notes: list[str] | None = None   # the critic's notes: scorers that abstained or were down-weighted
    v: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        # Text in an event can come from untrusted places (a drawing's error message, a model's
        # feedback, a trace file someone sent): none of it may drive the terminal it is shown on.
        for name in ("node", "phase", "run", "thread", "error", "artifact", "message"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, clean_text(value))
        if self.notes:
            self.notes = [clean_text(str(note)) for note in self.notes]
        if isinstance(self.recognition, dict):
            self.recognition = {k: clean_text(v) if isinstance(v, str) else v for k, v in self.recognition.items()}

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TraceEvent":
        if not isinstance(data, dict) or not isinstance(data.get("node"), str):
            raise ValueError(f"not a trace record: {str(data)[:80]}")
        upgraded = _upgrade(dict(data))
        return cls(**{k: v for k, v in upgraded.items() if k in _FIELDS})


_FIELDS = frozenset(f.name for f in fields(TraceEvent))


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """Bring older records up to the current schema; unknown future fields are ignored."""
    data.setdefault("v", 0)
    if data["v"] == 0:  # v0 (pre-release) used "event" for the phase and "duration" for seconds
        if "event" in data and "phase" not in data:
            data["phase"] = data.pop("event")
        if "duration" in data and "seconds" not in data:
            data["seconds"] = data.pop("duration")
        data["v"] = 1
    data.setdefault("phase", "info")
    return data


class TraceWriter:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a", encoding="utf-8")

    def write(self, event: TraceEvent) -> None:
        self._handle.write(event.to_json() + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "TraceWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _parse_lines(path: Path) -> Iterator[TraceEvent | None]:
    """Each non-empty line as an event, or None where it cannot be read."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                yield TraceEvent.from_dict(json.loads(line))
            except (ValueError, TypeError):
                yield None  # a line cut by a kill mid-write; the rest of the trace is still good


def iter_events(path: Path) -> Iterator[TraceEvent]:
    return (event for event in _parse_lines(path) if event is not None)


def load_events(path: Path) -> list[TraceEvent]:
    return list(iter_events(path))


def read_events(path: Path) -> tuple[list[TraceEvent], int]:
    """All readable events and the number of lines skipped as unreadable."""
    parsed = list(_parse_lines(path))
    events = [event for event in parsed if event is not None]
    return events, len(parsed) - len(events)


def emit(event: TraceEvent) -> None:
    """Send an event on LangGraph's custom stream; a no-op outside a streaming graph run."""
    try:
        from langgraph.config import get_stream_writer

        get_stream_writer()(asdict(event))
    except (RuntimeError, LookupError, KeyError):
        pass


def node_event(node: str, phase: str, state: dict, config: dict | None, **fields: Any) -> TraceEvent:
    """An event for `node` in the state's current iteration, labelled with the run and thread."""
    conf = (config or {}).get("configurable", {})
    return TraceEvent(node=node, phase=phase, iteration=len(state.get("attempts") or []),
                      run=str(conf.get("run_id", "")), thread=str(conf.get("thread_id", "")), **fields)


def _critique_of(state: dict) -> dict:
    """The critique a review node is most likely to amend: the round's top-scoring candidate's."""
    critiques = [c.get("critique") or {} for c in state.get("candidates") or []]
    return max(critiques, key=lambda c: c.get("score") or 0.0, default={})


def traced(name: str) -> Callable[[Callable], Callable]:
    """Wrap a custom graph node so it emits start/end events like the built-in nodes.

    The end event carries the node's wall time, any exception it raised, and the current
    attempt's score after the node ran (with its feedback when the node changed it), so a
    reviewer that vetoes a drawing shows up in `drawloop trace show`.
    """

    def decorate(fn: Callable) -> Callable:
        wants_config = len(inspect.signature(fn).parameters) >= 2

        def node(state: dict, config: RunnableConfig = None) -> Any:
            emit(node_event(name, "start", state, config))
            start = time.perf_counter()
            try:
                update = fn(state, config) if wants_config else fn(state)
            except Exception as exc:
                emit(node_event(name, "end", state, config, seconds=round(time.perf_counter() - start, 3),
                                error=f"{type(exc).__name__}: {exc}"[:400]))
                raise
            amended = (update or {}).get("candidates")
            after_state = {**state, "candidates": merge_candidates(state.get("candidates"), amended)} if amended \
                else state
            before, after = _critique_of(state), _critique_of(after_state)
            changed = after.get("feedback") != before.get("feedback")
            emit(node_event(name, "end", state, config, seconds=round(time.perf_counter() - start, 3),
                            score=after.get("score"), message=after.get("feedback") if changed else None))
            return update

        # Not functools.wraps: LangGraph reads the signature to decide whether to pass `config`,
        # and wraps would make it see the wrapped function's.
        node.__name__, node.__doc__ = getattr(fn, "__name__", name), fn.__doc__
        node.traced = True   # it reports its own errors (the loop's review guard then does not)
        return node

    return decorate
