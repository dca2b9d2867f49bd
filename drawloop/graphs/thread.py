"""Run, resume or read back one thread of a compiled loop graph: the one way every runner does it.

    outcome = run_thread(graph, config, {"concept": "a cat", "language": "svg", "attempts": []},
                         on_event=lambda chunk: print(chunk["node"]))
    outcome.state, outcome.resumed, outcome.computed, outcome.finished

`drawloop.draw` (one run), the batch runner (dataset builds) and the check-up all call it, so
"finished" means the same everywhere: no task left *and* a stop reason recorded. Not
`snapshot.next == ()`: a thread killed right after `decide`'s writes were saved, before the
checkpoint that plans the next step, has no next step but still a task, and would look finished.

`on_token` adds LangGraph's `messages` stream mode: the drawer's answer token by token, as
(text, metadata) with LangGraph's metadata (`langgraph_node`, `langgraph_checkpoint_ns`: one
per drawing task). `trace_config` gives a run's config what LangSmith shows
(LANGSMITH_TRACING=true): a run name, tags (concept, level, model) and metadata, with a
`thread_id` unique to the run, so LangSmith's thread view never mixes two runs' threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

TokenCallback = Callable[[str, dict], None]


@dataclass
class ThreadRun:
    state: dict[str, Any]
    resumed: bool    # the thread had checkpoints before this call
    computed: bool   # this call ran graph steps (False: a finished thread, read back)
    finished: bool   # no task left and the loop recorded why it stopped


def thread_finished(snapshot) -> bool:
    return bool(snapshot.values) and not snapshot.tasks and bool(snapshot.values.get("stop_reason"))


def trace_config(config: dict, *, kind: str, concept: str, model: str | None, thread: str,
                 level: str | None = None, **metadata: Any) -> dict:
    """`config` plus LangSmith's view of the run: run_name "drawloop <kind>", tags
    (drawloop, drawloop:<kind>, concept:..., level:..., model:...), and metadata, whose
    `thread_id` (LangSmith groups runs into threads by it) is `thread`. The checkpoint's own
    thread id in `configurable` is left as it is, so resuming finds its checkpoints."""
    if level is None:
        from drawloop.concepts import get_concept

        known = get_concept(concept)
        level = known.level if known else None
    tags = ["drawloop", f"drawloop:{kind}", f"concept:{concept}"] + ([f"level:{level}"] if level else []) \
        + ([f"model:{model}"] if model else [])
    meta = {"thread_id": thread, "drawloop_kind": kind, "concept": concept, "level": level, "model": model,
            "drawloop_run": (config.get("configurable") or {}).get("run_id"), **metadata}
    return {**config, "run_name": f"drawloop {kind}", "tags": [*(config.get("tags") or []), *tags],
            "metadata": {**(config.get("metadata") or {}), **{k: v for k, v in meta.items() if v is not None}}}


def run_thread(graph, config: dict, first_input: dict, on_event: Callable[[dict], None] | None = None,
               redo: bool = False, on_token: TokenCallback | None = None) -> ThreadRun:
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
        if on_token is None:
            for chunk in graph.stream(None if resumed else first_input, config, stream_mode="custom",
                                      durability="sync"):
                if on_event:
                    on_event(chunk)
        else:
            for mode, chunk in graph.stream(None if resumed else first_input, config,
                                            stream_mode=["custom", "messages"], durability="sync"):
                if mode == "custom":
                    if on_event:
                        on_event(chunk)
                    continue
                message, meta = chunk
                text = message.content if isinstance(message.content, str) else "".join(
                    part.get("text", "") if isinstance(part, dict) else str(part) for part in message.content)
                if text and type(message).__name__.endswith("Chunk"):   # tokens, not whole answers
                    on_token(text, {**meta, "message_id": message.id})   # a new id: a new answer (a retry)
        snapshot = graph.get_state(config)
    return ThreadRun(dict(snapshot.values), resumed, computed, thread_finished(snapshot))
