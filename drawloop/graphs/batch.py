"""Many refine threads at once: bounded concurrency, one checkpoint DB, retries, live statistics.

(One file, ~430 lines: the runner and what it schedules (jobs, outcomes, the per-thread worker, graphs
per temperature, the default thread-pool executor) change together; only the Ray executor, which needs
ray, lives apart.)

    graphs = GraphCache(settings, models, store=ArtifactStore(work_dir), checkpointer=saver)
    runner = BatchRunner(graphs, concurrency=8, max_tries=3, run_id="data-llm")
    jobs = [ThreadJob("red-circle-0000", "a red circle", seed=17, temperature=0.7), ...]
    stats = runner.run(jobs, commit=save_drawing, on_failure=record_failure, on_progress=redraw)

Every job is one LangGraph thread (thread_id = job id, plus "~N" for the N-th retry) with its own
seed and temperature, so samples of one concept differ. At most `concurrency` threads run at once
and jobs are pulled from the input lazily, so a million queued jobs cost nothing until they start
(back-pressure). A thread that already finished in an earlier, killed process is not redrawn: its
checkpoint says it is finished and the runner only reads its state back.

Commits happen in the caller's thread (the driver), one at a time, in `commit(outcome)`; a job counts
as done only after commit returns. A thread that ends without a rendered drawing, or raises, goes
to `on_failure(job, reason)` and is retried (fresh thread, new seed) until it has been tried
`max_tries` times. `abort_after` failures in a row with no success stop the batch (BatchAborted):
an unreachable model should not burn every job's tries.

Executors. The local default is a thread pool: the graph's nodes are blocking calls (HTTP to the
model server, the renderer's worker processes), so threads overlap their waiting exactly as an
asyncio loop would, without an async rewrite of every agent. Anything with `map_unordered` can
schedule the work instead. `drawloop.graphs.ray_executor.RayExecutor` runs it on a Ray cluster
(`--executor ray`): an executor with `remote = True` gets the ThreadWorker itself, pickled, not
the runner's bound method. The worker then carries a `PortableGraphs` (settings, agent names, the
artifact folder and where checkpoints live) and each worker process builds its own graphs, model
client and checkpointer from it; the trace events of a thread come back with its outcome
(`ThreadOutcome.events`) and the driver writes them. Commits stay in the driver, so the dataset
manifest keeps a single writer; the executor yields one result per job, so a job retried inside
Ray (a worker that died) is still committed once.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator, Protocol, TypeVar

from drawloop.graphs.thread import run_thread, trace_config
from drawloop.state import DrawState
from drawloop.trace.events import TraceEvent

T = TypeVar("T")
R = TypeVar("R")
logger = logging.getLogger(__name__)

RETRY_SEED_STRIDE = 1000   # a retry's seed; far from the +iteration offsets of earlier tries


class BatchAborted(RuntimeError):
    """Too many threads failed in a row; the message carries the last reason."""


# ---------------------------------------------------------------- jobs and outcomes

@dataclass(frozen=True)
class ThreadJob:
    id: str                    # stable across processes, e.g. "red-circle-0003"
    concept: str
    seed: int
    temperature: float
    tries: int = 0             # failed tries so far; this run is try number tries + 1
    tries_before: int = 0      # failed tries written off before (--retry-failed); ids and seeds count on

    @property
    def thread_id(self) -> str:
        n = self.tries_before + self.tries
        return self.id if n == 0 else f"{self.id}~{n}"

    @property
    def thread_seed(self) -> int:
        return self.seed + RETRY_SEED_STRIDE * (self.tries_before + self.tries)


@dataclass
class ThreadOutcome:
    job: ThreadJob
    state: dict[str, Any] = field(default_factory=dict)   # the thread's final graph state
    error: str | None = None                              # why there is no drawing; None when there is
    resumed: bool = False                                 # the thread had a checkpoint already
    seconds: float = 0.0
    events: list[dict] = field(default_factory=list)      # trace events, when it ran in another process

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def best(self) -> dict | None:
        best = self.state.get("best")
        return self.state["attempts"][best] if best is not None and self.state.get("attempts") else None


def drawing_error(state: DrawState) -> str | None:
    """None when the thread's best attempt has a rendered image, else the reason it has none."""
    attempts = state.get("attempts") or []
    if not attempts:
        return "the thread finished without any attempt"
    best = state.get("best")
    if best is not None and attempts[best].get("image"):
        return None
    last = next((a.get("draw_error") or a.get("render_error") for a in reversed(attempts)
                 if a.get("draw_error") or a.get("render_error")), "nothing rendered")
    return f"no drawing rendered in {len(attempts)} attempt(s); last error: {last}"[:500]


# ---------------------------------------------------------------- executors

class Executor(Protocol):
    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T],
                      concurrency: int) -> Iterator[tuple[T, R | BaseException]]:
        """Run fn over items with at most `concurrency` in flight, pulling items lazily; yield
        (item, result or the exception it raised) as each finishes, in completion order."""


class ThreadExecutor:
    """The local default: `concurrency` worker threads, each pulling its next item from the shared
    input as soon as it is free. Results wait in a queue of at most `concurrency` for the consumer,
    so a slow consumer (commits) holds the workers back instead of piling results up, and a burst
    of finishing threads never leaves the pool idle while the consumer works through it.

    Stopped early, it does not wait for the items in flight. `join(timeout)` says whether they have
    ended: a process about to exit must not wait for them either, since LangGraph runs streamed
    nodes on pool threads that Python joins at exit, and a model call can take minutes."""

    def __init__(self):
        self.workers: list[threading.Thread] = []

    def join(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the workers to end; True when none is left running."""
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        return not any(worker.is_alive() for worker in self.workers)

    def map_unordered(self, fn, items, concurrency):
        source, lock = iter(items), threading.Lock()
        results: queue.Queue = queue.Queue(maxsize=concurrency)
        stop = threading.Event()

        def put(entry) -> None:
            while not stop.is_set():  # once the consumer is gone, drop the entry rather than block
                try:
                    return results.put(entry, timeout=0.1)
                except queue.Full:
                    pass

        def work() -> None:
            try:
                while not stop.is_set():
                    with lock:  # the input may be a generator: one thread advances it at a time
                        item = next(source, _END)
                    if item is _END:
                        return
                    try:
                        result = fn(item)
                    except Exception as exc:
                        result = exc
                    put((item, result))
            finally:
                put(_END)

        workers = [threading.Thread(target=work, name=f"batch-{i}", daemon=True) for i in range(concurrency)]
        self.workers = workers
        for worker in workers:
            worker.start()
        running = len(workers)
        try:
            while running:
                got = results.get()
                if got is _END:
                    running -= 1
                else:
                    yield got
        finally:
            stop.set()  # stopped early (an error, Ctrl-C): in-flight items finish unobserved, nothing new starts


_END = object()


@contextlib.contextmanager
def _closing(results: Iterator) -> Iterator[Iterator]:
    """Close an executor's result stream as soon as the consumer leaves it (also on an error), so
    the executor stops starting work then, not when the garbage collector gets to the generator."""
    try:
        yield results
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


# ---------------------------------------------------------------- graphs per temperature

class GraphCache:
    """Compiled refine graphs sharing one store, checkpointer, renderer, recognizer and critic;
    one graph per (rounded) temperature, since the drawer's temperature is fixed when it is built.

    `agents` may hold instances or registered names for drawer/renderer/recognizer/critic; a
    custom drawer instance is used as-is at every temperature (it decides its own sampling)."""

    def __init__(self, settings, models, store, checkpointer, agents: dict[str, Any] | None = None,
                 review_nodes: list | None = None):
        from drawloop.agents.registry import AgentContext, resolve

        self.settings, self.models, self.store, self.checkpointer = settings, models, store, checkpointer
        self.review_nodes = review_nodes
        agents = dict(agents or {})
        context = AgentContext(settings=settings, models=models)
        self.drawer = agents.get("drawer")
        self.shared = {kind: resolve(kind, agents.get(kind) or default, context)
                       for kind, default in (("renderer", "default"), ("recognizer", settings.recognizer),
                                             ("critic", settings.critic))}
        self._graphs: dict[float, Any] = {}
        self._lock = threading.Lock()

    def __reduce__(self):
        raise TypeError("a GraphCache holds live models and connections and cannot go to another process; "
                        "executors that run threads elsewhere get a PortableGraphs (drawloop.graphs.ray_executor)")

    def _drawer(self, temperature: float):
        if self.drawer is not None and not isinstance(self.drawer, str):
            return self.drawer
        from drawloop.agents.drawer import Drawer
        from drawloop.concepts.shapes import SHAPE_TOKENS

        s = self.settings
        return Drawer(self.models.chat(max_tokens=s.max_tokens, temperature=temperature), size=s.size,
                      feedback=s.feedback, shape_llm=self.models.chat(max_tokens=min(s.max_tokens, SHAPE_TOKENS),
                                                                      temperature=temperature))

    def graph(self, temperature: float):
        from drawloop.graphs.refine import build_refine_graph
        from drawloop.graphs.stopping import StopRule

        key = round(float(temperature), 2)
        with self._lock:
            if key not in self._graphs:
                s = self.settings
                rule = StopRule(max_iters=s.max_iters, patience=s.patience, min_delta=s.min_delta, target=s.target)
                self._graphs[key] = build_refine_graph(
                    self._drawer(key), **self.shared, stop_rule=rule, store=self.store, size=s.size,
                    language=s.language, n_distractors=s.n_distractors, review_nodes=self.review_nodes,
                    candidates=s.candidates,
                    checkpointer=self.checkpointer)
            return self._graphs[key]


# ---------------------------------------------------------------- one thread

class ThreadWorker:
    """Runs (or resumes, or just reads back) one job's thread to the end."""

    def __init__(self, graphs: GraphCache, run_id: str, language: str,
                 on_event: Callable[[TraceEvent], None] | None = None, trace_key: str | None = None):
        self.graphs, self.run_id, self.language, self.on_event = graphs, run_id, language, on_event
        self.trace_key = trace_key or run_id   # LangSmith's thread of a job: "<trace_key>/<thread id>"
        self.keep_events = False   # set in a copy sent to another process: events return with the outcome

    def __getstate__(self) -> dict:
        return {**self.__dict__, "on_event": None, "keep_events": True}

    def __call__(self, job: ThreadJob) -> ThreadOutcome:
        start = time.perf_counter()
        graph = self.graphs.graph(job.temperature)
        config = {"configurable": {"thread_id": job.thread_id, "run_id": self.run_id, "seed": job.thread_seed}}
        config = trace_config(config, kind="batch", concept=job.concept, thread=f"{self.trace_key}/{job.thread_id}",
                              model=getattr(getattr(self.graphs, "models", None), "spec", None) or self.graphs.settings.model,
                              job=job.id, seed=job.thread_seed, temperature=job.temperature)
        first = {"concept": job.concept, "language": self.language, "attempts": []}
        events: list[dict] = []
        emit = (lambda chunk: self.on_event(TraceEvent.from_dict(chunk))) if self.on_event else \
            events.append if self.keep_events else None
        outcome = run_thread(graph, config, first, on_event=emit)
        error = drawing_error(outcome.state)
        if error is None and not outcome.finished:
            error = "the thread stopped before its loop decided to stop"  # never commit half a thread
        return ThreadOutcome(job, outcome.state, error, outcome.resumed, time.perf_counter() - start, events)

    def forget(self, job: ThreadJob) -> None:
        """Drop a committed or failed thread's checkpoints: the manifest holds what matters."""
        saver = self.graphs.checkpointer
        if saver is not None:
            saver.delete_thread(job.thread_id)


# ---------------------------------------------------------------- statistics

@dataclass
class BatchStats:
    total: int = 0             # jobs in the batch, including those done in earlier runs
    done: int = 0              # committed, including earlier runs
    done_before: int = 0       # committed before this run started
    failed: int = 0            # gave up after max_tries
    running: int = 0
    retries: int = 0           # failed tries that were retried in this run
    tokens_in: int = 0
    tokens_out: int = 0
    started: float = field(default_factory=time.monotonic)
    last_error: str | None = None

    @property
    def pending(self) -> int:
        return max(0, self.total - self.done - self.failed - self.running)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def per_minute(self) -> float:
        """Drawings committed per minute in this run."""
        return (self.done - self.done_before) / max(self.elapsed, 1e-9) * 60

    @property
    def eta_seconds(self) -> float | None:
        left = self.total - self.done - self.failed
        return None if self.per_minute <= 0 else left / self.per_minute * 60

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "done": self.done, "failed": self.failed, "running": self.running,
                "pending": self.pending, "retries": self.retries, "tokens_in": self.tokens_in,
                "tokens_out": self.tokens_out, "seconds": round(self.elapsed, 2),
                "per_minute": round(self.per_minute, 3)}


# ---------------------------------------------------------------- the runner

class BatchRunner:
    def __init__(self, graphs: GraphCache, concurrency: int = 4, max_tries: int = 3, run_id: str = "batch",
                 executor: Executor | None = None, abort_after: int | None = None,
                 on_event: Callable[[TraceEvent], None] | None = None, trace_key: str | None = None):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_tries < 1:
            raise ValueError("max_tries must be at least 1")
        self.concurrency, self.max_tries = concurrency, max_tries
        self.executor = executor or ThreadExecutor()
        self.abort_after = abort_after or max(10, 2 * concurrency)
        self.stats = BatchStats()
        self._lock = threading.Lock()
        self._forward = on_event
        self.worker = ThreadWorker(graphs, run_id, graphs.settings.language, on_event=self._event, trace_key=trace_key)

    def _event(self, event: TraceEvent) -> None:
        with self._lock:  # called from worker threads
            self.stats.tokens_in += event.tokens_in or 0
            self.stats.tokens_out += event.tokens_out or 0
            if self._forward:
                self._forward(event)

    def _run_one(self, job: ThreadJob) -> ThreadOutcome:
        with self._lock:
            self.stats.running += 1
        try:
            return self.worker(job)
        finally:
            with self._lock:
                self.stats.running -= 1

    def run(self, jobs: Iterable[ThreadJob], commit: Callable[[ThreadOutcome], None],
            on_failure: Callable[[ThreadJob, str, bool], None] | None = None,
            on_progress: Callable[[BatchStats], None] | None = None, total: int | None = None,
            done_before: int = 0) -> BatchStats:
        """Run every job to a committed drawing or a final failure; returns the statistics.

        `on_failure(job, reason, final)` records each failed try (final: no retry follows)."""
        if total is None:       # an iterator of jobs is consumed as threads start; give `total` with one
            jobs = list(jobs)
            total = len(jobs) + done_before
        stats = self.stats
        stats.total = total
        stats.done = stats.done_before = done_before
        streak = 0
        # An executor that runs jobs in other processes gets the (picklable) worker, not this runner;
        # the driver then counts the jobs in flight and replays each thread's trace events.
        remote = bool(getattr(self.executor, "remote", False))
        round_jobs: Iterable[ThreadJob] | None = jobs
        while round_jobs is not None:
            retry: list[ThreadJob] = []
            fn, feed = self.worker if remote else self._run_one, self._feed(round_jobs, lambda: streak, remote)
            with _closing(self.executor.map_unordered(fn, feed, self.concurrency)) as results:
                for job, outcome in results:   # closed at once on an error: nothing new starts
                    if remote:
                        with self._lock:
                            stats.running -= 1
                        for chunk in getattr(outcome, "events", None) or ():
                            self._event(TraceEvent.from_dict(chunk))
                    if isinstance(outcome, BaseException):
                        if isinstance(outcome, (KeyboardInterrupt, SystemExit)):
                            raise outcome
                        outcome = ThreadOutcome(job, error=f"{type(outcome).__name__}: {outcome}"[:500])
                    if outcome.ok:
                        commit(outcome)                # durable before it counts as done
                        self.worker.forget(job)
                        stats.done += 1
                        streak = 0
                    else:
                        final = job.tries + 1 >= self.max_tries
                        if on_failure:
                            on_failure(job, outcome.error, final)
                        self.worker.forget(job)
                        stats.last_error = outcome.error
                        streak += 1
                        if final:
                            stats.failed += 1
                            logger.info("gave up on %s after %d tries: %s", job.id, job.tries + 1, outcome.error)
                        else:
                            logger.info("%s failed (try %d of %d), retrying: %s", job.id, job.tries + 1,
                                        self.max_tries, outcome.error)
                            stats.retries += 1
                            retry.append(replace(job, tries=job.tries + 1))
                    if on_progress:
                        on_progress(stats)
            if streak >= self.abort_after:
                logger.info("%d threads failed in a row: stopping the batch", streak)
                raise BatchAborted(f"{streak} threads failed in a row; last error: {stats.last_error}")
            round_jobs = retry or None
        return stats

    def _feed(self, jobs: Iterable[ThreadJob], streak: Callable[[], int], count: bool = False) -> Iterator[ThreadJob]:
        for job in jobs:
            if streak() >= self.abort_after:
                return  # stop starting new threads; the ones in flight finish
            if count:
                with self._lock:
                    self.stats.running += 1
            yield job
