"""Trace records: one schema for every node event, written as JSONL.

    event = TraceEvent(run="r1", thread="main", iteration=0, node="draw", phase="end",
                       seconds=9.1, tokens_out=412)
    with TraceWriter(run_dir / "trace.jsonl") as writer:
        writer.write(event)
    events = load_events(run_dir / "trace.jsonl")   # tolerant of older schema versions

Nodes emit events through LangGraph's custom stream (`emit(...)` below uses
`langgraph.config.get_stream_writer`); the runner writes them to the file and feeds the live view.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

SCHEMA_VERSION = 1


@dataclass
class TraceEvent:
    node: str
    phase: str                       # "start" | "end" | "info"
    iteration: int = 0
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
    v: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TraceEvent":
        known = {f.name for f in fields(cls)}
        upgraded = _upgrade(dict(data))
        return cls(**{k: v for k, v in upgraded.items() if k in known})


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


def iter_events(path: Path) -> Iterator[TraceEvent]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                yield TraceEvent.from_dict(json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue  # a line cut by a kill mid-write; the rest of the trace is still good


def load_events(path: Path) -> list[TraceEvent]:
    return list(iter_events(path))


def emit(event: TraceEvent) -> None:
    """Send an event on LangGraph's custom stream; a no-op outside a streaming graph run."""
    try:
        from langgraph.config import get_stream_writer

        get_stream_writer()(asdict(event))
    except (RuntimeError, LookupError, KeyError):
        pass
