"""The check-up on a cluster: `drawloop checkup --executor ray` (see graphs/ray_executor.py).

    results = run_checkup("runs/checkup-qwen", plan, settings, executor=RayExecutor(address="auto"))

`RemoteCheckup` (the driver) sends each unit of work to the executor's workers: a concept and
sample ("unit": its critic loop, then its plain loop from the same first draft) or a person's
drawing to recognize ("human"). A `CheckupWorker` builds, once per worker process, a check-up with
its own model client, agents, graphs and checkpointer, and runs them. What comes back is plain
data: the thread states, their trace events, which threads it computed, the human rows. Every
write stays in the driver (checkup.json, trace.jsonl, human.jsonl, embeddings, results.json) and
so does the progress, exactly as with the local thread pool, so a check-up stopped on Ray resumes
like any other: finished loops are read back from their checkpoints, never recomputed.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from pathlib import Path
from typing import Any, Callable

from drawloop.checkup.plan import MODES, CheckupPlan
from drawloop.checkup.run import Checkup
from drawloop.graphs.ray_executor import _LOCAL, model_label, models_here
from drawloop.runs import Run

ROLES = ("drawer", "plain_drawer", "recognizer", "critic")


class RemoteCheckup(Checkup):
    """A Checkup whose loops and recognitions run on `executor` (remote = True). No agent is built
    in the driver; `agents` may name them or be picklable instances, and travel to the workers."""

    def __init__(self, out, plan: CheckupPlan, settings, models=None, *, executor, agents: dict | None = None,
                 **kwargs: Any):
        self.executor = executor
        self.shipped_agents = {k: v for k, v in (agents or {}).items() if v is not None}
        super().__init__(out, plan, settings, models, agents=agents, **kwargs)

    def _agents(self, given: dict) -> dict:
        return {}                      # built in the workers

    def _graph(self, mode: str, saver):
        return None                    # built in the workers

    @property
    def model_label(self) -> str:
        return model_label(self.settings)

    def _work(self, kind: str, items: list, run: Callable[[Any], Any],
              then: Callable[[Any], Any] | None = None) -> list[Any]:
        if not items:
            return []
        finish = then or (lambda result: result)
        if hasattr(self.executor, "prepare"):
            self.executor.prepare(self.settings, self.shipped_agents)   # e.g. one embedded model per node
        worker = CheckupWorker(self.dir, self.plan, self.settings, self.shipped_agents,
                               checkpoint=getattr(self, "checkpoint", None),
                               trace_key=getattr(self, "trace_key", None))
        out: list[Any] = [None] * len(items)
        jobs = [(i, kind, item) for i, item in enumerate(items)]
        with contextlib.closing(self.executor.map_unordered(worker, jobs, self.plan.concurrency)) as results:
            for (i, _, _), result in results:
                if isinstance(result, BaseException):
                    raise result       # as the local pool does: the check-up stops, a rerun resumes
                if kind == "unit":
                    for chunk in result["events"]:
                        self._write_event(chunk)
                    for thread_id, computed in result["threads"]:
                        self._thread_done(thread_id, computed)
                    result = result["states"]
                out[i] = finish(result)
        return out


class CheckupWorker:
    """What a worker process runs: (index, "unit", (concept, level, sample)) -> {"states", "events",
    "threads"}, or (index, "human", HumanDrawing) -> the row. Picklable: settings, not live objects."""

    def __init__(self, out, plan: CheckupPlan, settings, agents: dict, checkpoint=None,
                 trace_key: str | None = None):
        self.out, self.plan, self.settings, self.agents = str(out), plan, settings, dict(agents)
        self.checkpoint, self.trace_key = checkpoint, trace_key
        self.key = uuid.uuid4().hex    # this check-up session's objects in a worker process

    def __call__(self, job: tuple[int, str, Any]) -> Any:
        _, kind, item = job
        checkup, graphs = _LOCAL.get("checkup:" + self.key, self._build)
        if kind == "human":
            return checkup._human_row(item)
        return checkup.unit(graphs, *item)

    def _build(self, stack: contextlib.ExitStack):
        needs_model = any(self.agents.get(k) is None or isinstance(self.agents.get(k), str) for k in ROLES)
        models = models_here(self.settings) if needs_model else None
        checkup = _WorkerCheckup(self.out, self.plan, self.settings, models, agents=self.agents)
        checkup.trace_key = self.trace_key
        run = Run(Path(self.out), {})
        saver = stack.enter_context(run.checkpointer(self.checkpoint) if self.checkpoint
                                    else run.checkpointer())
        return checkup, {mode: checkup._graph(mode, saver) for mode in MODES}


class _WorkerCheckup(Checkup):
    """A check-up's loops in a worker process: what the driver writes (trace events, finished
    threads) is collected per call, on the calling thread, and returned."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._call = threading.local()

    def unit(self, graphs: dict, concept: str, level: str, sample: int) -> dict:
        self._call.events, self._call.threads = [], []
        states = self._unit(graphs, concept, level, sample)
        return {"states": states, "events": self._call.events, "threads": self._call.threads}

    def _write_event(self, chunk: dict) -> None:
        self._call.events.append(chunk)

    def _thread_done(self, thread_id: str, computed: bool) -> None:
        self._call.threads.append((thread_id, computed))
