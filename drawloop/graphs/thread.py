"""Run, resume or read back one thread of a compiled loop graph: the one way every runner does it.

    outcome = run_thread(graph, config, {"concept": "a cat", "language": "svg", "attempts": []},
                         on_event=lambda chunk: print(chunk["node"]))
    outcome.state, outcome.resumed, outcome.computed, outcome.finished

`drawloop.draw` (one run), the batch runner (dataset builds) and the check-up all call it, so
"finished" means the same everywhere: no task left *and* a stop reason recorded. Not
`snapshot.next == ()`: a thread killed right after `decide`'s writes were saved, before the
checkpoint that plans the next step, has no next step but still a task, and would look finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class ThreadRun:
    state: dict[str, Any]
    resumed: bool    # the thread had checkpoints before this call
    computed: bool   # this call ran graph steps (False: a finished thread, read back)
    finished: bool   # no task left and the loop recorded why it stopped


def thread_finished(snapshot) -> bool:
    return bool(snapshot.values) and not snapshot.tasks and bool(snapshot.values.get("stop_reason"))


def run_thread(graph, config: dict, first_input: dict, on_event: Callable[[dict], None] | None = None,
               redo: bool = False) -> ThreadRun:
    """Run the thread in `config` to its end: start it from `first_input`, resume it from its last
    checkpoint, or, when it already finished, just read its state. `redo` drops its checkpoints
    first. Each step's checkpoint is on disk before the next starts (durability "sync"), so a kill
    loses no finished node. `on_event` gets every custom-stream chunk (trace event dicts)."""
    snapshot = graph.get_state(config)
    if redo and (snapshot.values or snapshot.tasks):
        graph.checkpointer.delete_thread(config["configurable"]["thread_id"])
        snapshot = graph.get_state(config)
    resumed = bool(snapshot.values or snapshot.tasks)
    computed = not thread_finished(snapshot)
    if computed:
        for chunk in graph.stream(None if resumed else first_input, config, stream_mode="custom",
                                  durability="sync"):
            if on_event:
                on_event(chunk)
        snapshot = graph.get_state(config)
    return ThreadRun(dict(snapshot.values), resumed, computed, thread_finished(snapshot))
