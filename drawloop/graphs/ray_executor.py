"""Dataset builds and check-ups on a Ray cluster: `--executor ray` (`pip install 'drawloop[cluster]'`).

(One file, ~475 lines: the driver's executor and what a worker process builds from what it ships
(PortableGraphs, models_here, the per-process cache) are the two ends of one protocol; they change
together.)

    ray start --head                                  # on each machine; the others: ray start --address HEAD:6379
    drawloop dataset build -c all -n 20 -o /shared/data --executor ray --ray-address auto \\
        --model openai:qwen2.5-coder --base-url http://gpu-box:8000/v1 --concurrency 64
    drawloop checkup --executor ray --ray-address auto --model openai:qwen2.5-coder --base-url ...

    executor = RayExecutor(address="auto")            # from Python: build_dataset(..., executor=executor)
    try:
        build_dataset("shapes", 2, "/shared/data", settings, executor=executor, concurrency=32)
    finally:
        executor.close()

Ray is the engine: it places the workers, restarts a worker that dies and retries the calls it
had in flight. drawloop only does what the thread executor does: at most `concurrency` jobs in
flight, pulled lazily from the input (back-pressure), results in completion order.

- Workers are threaded Ray actors, `workers_per_node` on every node (default 1), each running up
  to ceil(concurrency / workers) jobs on threads; a job goes to the worker with the fewest in
  flight. A loop thread spends its time waiting on the model and on the renderer's worker
  processes, so threads overlap that waiting as they do locally; a Ray task per job would instead
  hold a whole worker process per job in flight (32 processes, each importing LangGraph, for
  --concurrency 32).
- What travels is settings, not live objects: the BatchRunner ships its ThreadWorker, whose graphs
  are a `PortableGraphs` (settings, agent names, the artifact folder, where checkpoints live).
  Each worker process builds its graphs, model client and checkpointer once, on first use, and
  renders there (`_LOCAL`, a per-process cache).
- The model is a shared OpenAI-compatible endpoint (--base-url, e.g. vLLM), or the embedded
  llama.cpp server, then one per node: `prepare()` starts a `ModelServer` actor on each node,
  owned by the driver (so a worker that dies does not take its node's model with it), and the
  workers of that node talk to it over loopback. Never one per job or per worker process.
- A worker that dies (killed, out of memory, its node lost) loses only its jobs in flight: Ray
  restarts it and retries those calls (`max_task_retries`), and each resumes its LangGraph thread
  from the last checkpoint, with the same thread id and seed, so nothing is drawn twice. A job
  whose retries ran out comes back as an error, and the BatchRunner retries it as a fresh thread
  like any failed try. Every job yields exactly one result, so it is committed exactly once.
- Commits stay in the driver (the dataset manifest has one writer). Trace events come back with
  each job's outcome and the driver writes them to trace.jsonl.
- Checkpoints: with SQLite (the default) every worker process opens its own connection to the
  dataset's work/checkpoints.sqlite (WAL, 60 s busy timeout), which is right for workers on one
  machine; SQLite over a network file system is not, so across machines use Postgres
  (--checkpoint postgresql://...). The folder (--out) must be on storage that every node mounts
  at the same path: workers write the artifacts, the driver reads the best drawing from there.
- Stopped early (an error, Ctrl-C), the executor kills its workers: no job keeps running
  unobserved, and a rerun never races a leftover call on the same thread.

Ray's own knobs apply as usual (RAY_ADDRESS, `ray start --num-cpus`); worker logs are in Ray's
session folder (/tmp/ray/session_latest/logs), not on the driver's console.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import math
import os
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

INSTALL_HINT = "pip install 'drawloop[cluster]'"
EXECUTORS = ("thread", "ray")


class RayUnavailable(ValueError):
    """Ray is not installed, or the cluster cannot be reached; str() says what to do."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailable(f"--executor ray needs Ray, which is not installed here: {INSTALL_HINT}") from None
    return ray


def make_executor(name: str, ray_address: str | None = None):
    """The executor a command's --executor names. Ray is imported and joined on first use."""
    if name == "thread":
        if ray_address:
            raise ValueError("--ray-address needs --executor ray")
        from drawloop.graphs.batch import ThreadExecutor

        return ThreadExecutor()
    if name == "ray":
        return RayExecutor(address=ray_address)
    raise ValueError(f"--executor must be one of {', '.join(EXECUTORS)}, not {name!r}")


def embedded_model(settings) -> bool:
    """Does this run use the embedded llama.cpp server (no shared endpoint)?"""
    from drawloop.llm import parse_model_spec

    return parse_model_spec(settings.model)[0] == "local" and not settings.base_url


def needs_model(agents: dict | None) -> bool:
    """False when every agent that would use a model came as an instance (as build.py decides)."""
    agents = agents or {}
    return not all(agents.get(k) is not None and not isinstance(agents.get(k), str)
                   for k in ("drawer", "recognizer", "critic"))


def model_label(settings) -> str:
    """What reports say about the model when it runs on the cluster's nodes, not in this process."""
    from drawloop.llm import parse_model_spec

    provider, name = parse_model_spec(settings.model)
    if embedded_model(settings):
        return f"local:{Path(name).name} (embedded llama.cpp, one per Ray node)"
    return f"{provider}:{name} ({settings.base_url or 'api.openai.com'})"


# ---------------------------------------------------------------- the executor

class RayExecutor:
    """`map_unordered` on a Ray cluster; see the module docstring. `address`: None starts Ray on
    this machine unless one is running (or RAY_ADDRESS is set), "auto" joins the local cluster,
    "ray://HOST:10001" a remote one through Ray Client."""

    remote = True   # BatchRunner ships its (picklable) ThreadWorker, not itself

    def __init__(self, address: str | None = None, workers_per_node: int = 1, max_task_retries: int = 3,
                 init_kwargs: dict | None = None):
        if workers_per_node < 1:
            raise ValueError("workers_per_node must be at least 1")
        self.address, self.workers_per_node, self.max_task_retries = address, workers_per_node, max_task_retries
        self.init_kwargs = dict(init_kwargs or {})
        self._ray = None
        self._started_here = False
        self._workers: list = []
        self._slots = 0                            # jobs each worker runs at once
        self._model_servers: dict[str, Any] = {}   # actor name -> handle, owned by this driver

    # -- the cluster -----------------------------------------------------------------------
    def connect(self):
        if self._ray is not None:
            return self._ray
        ray = import_ray()
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"log_to_driver": False, **self.init_kwargs}
            if self.address is None and not os.environ.get("RAY_ADDRESS"):
                kwargs.setdefault("include_dashboard", False)   # may start a local Ray: no dashboard
            try:
                ray.init(address=self.address, **kwargs)
            except ConnectionError as exc:
                raise RayUnavailable(f"cannot reach the Ray cluster at {self.address or os.environ.get('RAY_ADDRESS')} "
                                     f"({str(exc).splitlines()[0]}); start it with `ray start --head`, or leave "
                                     "out --ray-address to start Ray on this machine") from None
            self._started_here = True
        self._ray = ray
        return ray

    def _nodes(self) -> list[str]:
        ray = self.connect()
        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
        if not nodes:
            raise RayUnavailable("the Ray cluster has no live node with CPUs")
        return nodes

    def prepare(self, settings, agents: dict | None = None) -> None:
        """Start the embedded model once on every node, when the settings use it and some agent
        needs a model (idempotent)."""
        if not (embedded_model(settings) and needs_model(agents)):
            return
        self.connect()
        for node in self._nodes():
            name = _model_server_name(node, settings)
            if name not in self._model_servers:
                self._model_servers[name] = _model_server(node, settings)

    def _pool(self, concurrency: int) -> list:
        nodes = self._nodes()
        slots = math.ceil(concurrency / (len(nodes) * self.workers_per_node))
        if self._workers and self._slots >= slots:
            return self._workers
        self._stop_workers()
        worker = _actor_classes()[0]
        self._workers = [worker.options(**_actor_options(node, soft=True, max_concurrency=slots, max_restarts=-1,
                                                         max_task_retries=self.max_task_retries)).remote()
                         for node in nodes for _ in range(self.workers_per_node)]
        self._slots = slots
        return self._workers

    # -- the work --------------------------------------------------------------------------
    def map_unordered(self, fn: Callable, items: Iterable, concurrency: int) -> Iterator[tuple[Any, Any]]:
        ray = self.connect()
        workers = self._pool(concurrency)
        try:
            fn_ref = ray.put(fn)   # once, not with every job
        except Exception as exc:   # noqa: BLE001 - whatever pickling raised: say what cannot travel
            raise RayUnavailable(f"the work cannot be sent to Ray workers ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:300]}); agents must be names or picklable") from None
        source = iter(items)
        pending: dict[Any, tuple[Any, int]] = {}   # ref -> (item, worker)
        load = [0] * len(workers)
        exhausted = finished = False

        def submit() -> None:
            nonlocal exhausted
            while not exhausted and len(pending) < concurrency:
                i = min(range(len(workers)), key=load.__getitem__)
                if load[i] >= self._slots:
                    return
                item = next(source, _END)
                if item is _END:
                    exhausted = True
                    return
                pending[workers[i].run.remote(fn_ref, item)] = (item, i)
                load[i] += 1

        try:
            submit()
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)   # wakes for Ctrl-C
                for ref in done:
                    item, i = pending.pop(ref)
                    load[i] -= 1
                    try:
                        result = ray.get(ref)
                    except Exception as exc:   # noqa: BLE001 - the worker died and Ray's retries ran out
                        result = _lost(exc)
                    submit()                   # refill the slot before the consumer works through this one
                    yield item, result
            finished = True
        finally:
            if not finished and pending:
                self._stop_workers()           # stopped early: nothing may go on running unobserved

    def worker_pids(self) -> list[tuple[str, int]]:
        """(node id, pid) of every worker process, e.g. to watch or kill one."""
        ray = self.connect()
        return ray.get([w.where.remote() for w in self._workers], timeout=120)

    def join(self, timeout: float) -> bool:
        """Like ThreadExecutor.join after an error: the workers are stopped, so nothing is left running."""
        self._stop_workers()
        return True

    def close(self) -> None:
        """Stop the workers and the model servers; leave Ray if this executor joined or started it."""
        if self._ray is None:
            return
        self._stop_workers()
        for server in self._model_servers.values():
            with contextlib.suppress(Exception):
                self._ray.kill(server, no_restart=True)
        self._model_servers.clear()
        if self._started_here:
            self._ray.shutdown()
            self._started_here = False
        self._ray = None

    def _stop_workers(self) -> None:
        workers, self._workers, self._slots = self._workers, [], 0
        if not workers:
            return
        ray = self._ray
        try:
            here = ray.get_runtime_context().get_node_id()
        except Exception:   # noqa: BLE001 - e.g. through Ray Client: no node here to wait on
            here = None
        refs = [w.where.remote() for w in workers]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=2.0)
        pids = []
        for ref in ready:
            with contextlib.suppress(Exception):
                node, pid = ray.get(ref)
                if here is not None and node == here:
                    pids.append(pid)
        for w in workers:
            with contextlib.suppress(Exception):
                ray.kill(w, no_restart=True)
        deadline = time.monotonic() + 10
        for pid in pids:   # on this machine: wait until they are gone, so a rerun starts clean
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)


_END = object()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _lost(exc: BaseException) -> Exception:
    """A short error for a job Ray could not finish (the traceback of a dead worker says nothing)."""
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return RuntimeError(f"the Ray worker running this job was lost and Ray's retries ran out "
                        f"({type(exc).__name__}: {first})")


def _shippable(exc: Exception) -> Exception:
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:   # noqa: BLE001 - an exception type that does not pickle: keep its words
        return RuntimeError(f"{type(exc).__name__}: {exc}")


@functools.cache
def _actor_classes():
    ray = import_ray()

    @ray.remote(concurrency_groups={"control": 1})
    class Worker:
        """Runs jobs on threads; `where` answers even while every job thread is busy."""

        def run(self, fn, item):
            try:
                return fn(item)
            except Exception as exc:   # noqa: BLE001 - returned, not raised: the driver decides
                return _shippable(exc)

        @ray.method(concurrency_group="control")
        def where(self):
            return ray.get_runtime_context().get_node_id(), os.getpid()

    @ray.remote
    class ModelServer:
        """The embedded llama.cpp server of one node (calls are serialised: it starts once)."""

        def __init__(self, settings):
            self.settings, self.handle = settings, None

        def url(self) -> str:
            if self.handle is None:
                from drawloop.llm import ModelHandle

                self.handle = ModelHandle(self.settings).open()
            return self.handle.base_url

    return Worker, ModelServer


def _model_server_name(node: str, settings) -> str:
    what = repr((settings.model, settings.parallel, settings.candidates, settings.threads, settings.speculation))
    return f"drawloop-model-{node[:16]}-{hashlib.sha1(what.encode()).hexdigest()[:8]}"


def _model_server(node: str, settings):
    server = _actor_classes()[1]
    return server.options(**_actor_options(node, soft=False, name=_model_server_name(node, settings),
                                           get_if_exists=True)).remote(settings)


def _actor_options(node: str, soft: bool, **options) -> dict:
    """On `node` (soft: elsewhere if it is gone), with this driver's DRAWLOOP_* environment.

    OMP_NUM_THREADS as the driver has it, where Ray would set 1 for a worker that reserves no CPU:
    numpy's BLAS and torch (the pixel critics) would then sum in another order than a local run
    and scores would differ in the 4th decimal. An empty value means "unset" to both."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    env = {k: v for k, v in os.environ.items() if k.startswith("DRAWLOOP_")}
    env["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", "")
    return {"num_cpus": 0, "scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=soft),
            "runtime_env": {"env_vars": env}, **options}


# ---------------------------------------------------------------- inside a worker process

class _ProcessLocal:
    """What one worker process builds once and keeps (graphs, model clients, checkpointers), by key;
    the least recently used goes when more than `size` are kept (one process, many builds)."""

    def __init__(self, size: int = 4):
        self.size = size
        self._lock = threading.RLock()
        self._entries: OrderedDict[str, tuple[Any, contextlib.ExitStack]] = OrderedDict()

    def get(self, key: str, build: Callable[[contextlib.ExitStack], Any]) -> Any:
        with self._lock:   # held while building: the first job of a process builds, the others wait
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
            stack = contextlib.ExitStack()
            try:
                value = build(stack)
            except BaseException:
                stack.close()
                raise
            self._entries[key] = (value, stack)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)[1][1].close()
            return value


_LOCAL = _ProcessLocal()


def models_here(settings):
    """This process's model client for `settings`: the shared endpoint, or this node's embedded
    server (started by the driver's `prepare`; started here only on a node that joined later)."""

    def build(stack: contextlib.ExitStack):
        from drawloop.llm import ModelHandle

        here = settings
        if embedded_model(settings):
            ray = import_ray()
            node = ray.get_runtime_context().get_node_id()
            try:
                server = ray.get_actor(_model_server_name(node, settings))
            except ValueError:
                server = _model_server(node, settings)
            here = dataclasses.replace(settings, base_url=ray.get(server.url.remote()), api_key="sk-local")
        handle = ModelHandle(here).open()
        stack.callback(handle.close)
        return handle

    return _LOCAL.get("models:" + repr(settings), build)


def open_checkpointer(checkpoint):
    """The checkpointer a worker process opens: a SQLite file (its own connection), or a Postgres
    place (drawloop.storage.PostgresPlace) that every machine reaches."""
    from drawloop.runs import sqlite_checkpointer

    if isinstance(checkpoint, (str, Path)):
        return sqlite_checkpointer(Path(checkpoint))
    from drawloop.runs import postgres_checkpointer

    return postgres_checkpointer(checkpoint)


class PortableGraphs:
    """A GraphCache that travels: in the driver it is only a recipe (settings, agents as names or
    picklable instances, the artifact folder, the checkpoint location) plus the driver's own
    checkpointer, which the BatchRunner uses to forget finished threads; in a worker process,
    `graph()` builds that process's GraphCache (models, checkpointer, renderer) once and reuses it."""

    def __init__(self, settings, store_dir: str | Path, checkpoint, agents: dict | None = None,
                 review_nodes: list | None = None, checkpointer=None):
        self.settings, self.store_dir, self.checkpoint = settings, str(store_dir), checkpoint
        self.agents = {k: v for k, v in (agents or {}).items() if v is not None}
        self.review_nodes = review_nodes
        self.key = uuid.uuid4().hex        # one build's graphs in a worker process
        self._checkpointer = checkpointer  # the driver's; never pickled

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_checkpointer": None}

    @property
    def checkpointer(self):
        return self._checkpointer if self._checkpointer is not None else self.here().checkpointer

    def graph(self, temperature: float):
        return self.here().graph(temperature)

    def here(self):
        """This process's GraphCache."""
        return _LOCAL.get("graphs:" + self.key, self._build)

    def _build(self, stack: contextlib.ExitStack):
        from drawloop.graphs.batch import GraphCache
        from drawloop.runs import ArtifactStore

        saver = stack.enter_context(open_checkpointer(self.checkpoint))
        models = models_here(self.settings) if needs_model(self.agents) else None
        return GraphCache(self.settings, models, ArtifactStore(Path(self.store_dir)), saver,
                          agents=self.agents, review_nodes=self.review_nodes)
