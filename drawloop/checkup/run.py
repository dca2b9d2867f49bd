"""The vision check-up's run: the study's four tests over a slice of the concept set, resumable.

    results = run_checkup("runs/checkup-local", plan, settings, models)   # also DIR/results.json

Everything lives in one directory, and every piece of work is checkpointed there, so rerunning
the same command after a crash (or with more concepts or samples) computes only what is missing:

    checkpoints.sqlite   one LangGraph thread per drawing loop (SQLite checkpointer):
                           critic:<slug>:s<k>  the full loop, critic + recognizer feedback, `iters` attempts
                           plain:<slug>:s<k>   the study's text-only "improve your drawing" loop; it starts
                                               from the critic thread's first draft, so both curves are
                                               paired on the same draft 0
    human.jsonl          one line per recognition of a person's openclipart drawing (SVG source as code)
    embeddings.npz       image embeddings of first and final drafts, keyed by artifact path (diversity)
    artifacts/           every drawing's code and PNG, content-addressed (runs.ArtifactStore)
    checkup.json         the plan, settings, model and one record per session (wall time, work done)
    results.json         everything the report needs, as plain data (checkup/report.py reads only this)

The four tests, as the study runs them:
  generation    first drafts (iteration 0) and final drafts of the critic loop, scored by the critic
                and recognized from code, per level;
  recognition   multiple choice among the concept and its distractors, reading only the code:
                the model's own drawings (every attempt is recognized inside the loop) and people's
                drawings from the openclipart gallery, with the same choices in the same order
                (checkup/people.py picks and cleans them);
  correction    the per-iteration scores of the critic and plain threads;
  diversity     `samples` independent first drafts per concept (different seeds), embedded.

Threads are driven here with a small thread pool over one SQLite checkpointer, not through
graphs/batch.py: a check-up needs paired plain/critic threads, fixed-length loops and failures
kept as data (batch.py retries failed threads with new seeds, which would bias the test).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from drawloop.agents.recognizer import make_choices
from drawloop.agents.registry import AgentContext, resolve
from drawloop.checkup.metrics import mean_pairwise_distance
from drawloop.checkup.people import HumanDrawing, human_drawings, names_concept
from drawloop.checkup.plan import IDENTITY_SETTINGS, MODES, SAMPLE_SEED_STRIDE, CheckupPlan, ThreadSpec
from drawloop.checkup.results import model_details, summarise_thread, versions
from drawloop.graphs.refine import build_refine_graph, default_distractors
from drawloop.graphs.stopping import StopRule
from drawloop.graphs.thread import run_thread, thread_finished, trace_config
from drawloop.runs import ArtifactStore, Run
from drawloop.state import Drawing
from drawloop.trace.events import TraceEvent, TraceWriter
from drawloop.vision import features   # features.default_embedder: looked up when called (tests swap it)

Progress = Callable[[int, int, str], None]
POOL_NAME = "checkup-loop"   # the pool's thread names, so an error path can find them
# drawloop.llm's words when retries ran out (timeouts, lost connections)
UNREACHABLE = "gave no usable answer"


def run_checkup(out: str | Path, plan: CheckupPlan, settings, models=None, executor=None,
                **kwargs: Any) -> dict:
    """Run (or resume) a check-up into `out` and return its results (also written to out/results.json).
    `executor`: one that runs work in other processes (remote = True, e.g. graphs/ray_executor.py's
    RayExecutor) runs the loops and recognitions in its workers (checkup/remote.py)."""
    if getattr(executor, "remote", False):
        from drawloop.checkup.remote import RemoteCheckup   # not at the top: remote.py subclasses Checkup

        return RemoteCheckup(out, plan, settings, models, executor=executor, **kwargs).run()
    return Checkup(out, plan, settings, models, **kwargs).run()


class Checkup:
    """Runs a plan into a directory. Agents default to the registered ones built from `models`;
    pass instances (drawer, plain_drawer, recognizer, critic, renderer) to swap any of them."""

    def __init__(self, out: str | Path, plan: CheckupPlan, settings, models=None, *,
                 agents: dict | None = None, embedder=None, human_items: Sequence[Any] | None = None,
                 on_progress: Progress | None = None, on_event: Callable[[TraceEvent], None] | None = None,
                 checkpoint: str | None = None):
        plan.validate()
        self.dir = Path(out)
        # a postgresql:// URL for the checkpoints (None: SQLite, or $DRAWLOOP_CHECKPOINT)
        self.checkpoint = checkpoint
        self.plan, self.settings, self.models = plan, settings, models
        self.agents = self._agents(agents or {})
        self.embedder = embedder
        self.human_items = human_items
        self.on_progress, self.on_event = on_progress, on_event
        self.store = ArtifactStore(self.dir)
        self.concepts = plan.concepts()
        self.choices = {c.name: make_choices(c.name, default_distractors(c.name, settings.n_distractors,
                                                                         plan.seed), plan.seed)
                        for c in self.concepts}
        self._lock = threading.Lock()
        self.computed = {"threads": 0, "human": 0, "embeddings": 0}

    # -- setup -----------------------------------------------------------------------------
    def _agents(self, given: dict) -> dict:
        context = AgentContext(settings=self.settings, models=self.models)
        plain_context = AgentContext(settings=dataclasses.replace(self.settings, feedback="plain"),
                                     models=self.models)
        needs_context = any(k not in given for k in ("drawer", "plain_drawer", "recognizer", "critic"))
        if needs_context and self.models is None:
            raise ValueError("the check-up needs a model (models=...) or agent instances for every role")
        return {
            "drawer": given.get("drawer") or resolve("drawer", "llm", context),
            "plain_drawer": given.get("plain_drawer") or resolve("drawer", "llm", plain_context),
            "recognizer": given.get("recognizer") or resolve("recognizer", self.settings.recognizer, context),
            "critic": given.get("critic") or resolve("critic", self.settings.critic, context),
            "renderer": given.get("renderer") or resolve("renderer", "default", context),
        }

    def specs(self) -> list[ThreadSpec]:
        modes = MODES if self.plan.iters >= 2 else ("critic",)  # one attempt leaves nothing to improve
        return [ThreadSpec(mode, c.name, c.level, s) for c in self.concepts for s in range(self.plan.samples)
                for mode in modes]

    def _identity(self) -> dict:
        """What a finished thread's meaning depends on (the model spec, not its label: a server's
        port may change)."""
        return {"model": self.settings.model, "iters": self.plan.iters, "seed": self.plan.seed,
                **{k: getattr(self.settings, k) for k in IDENTITY_SETTINGS}}

    @property
    def model_label(self) -> str:
        return getattr(self.models, "label", None) or self.settings.model

    def _check_directory(self) -> dict:
        path = self.dir / "checkup.json"
        if not path.exists():
            return {"identity": self._identity(), "sessions": []}
        record = json.loads(path.read_text())
        old, new = record.get("identity", {}), self._identity()
        changed = [k for k in new if old.get(k) != new[k]]
        if changed:
            diffs = ", ".join(f"{k} {old.get(k)!r} -> {new[k]!r}" for k in changed)
            raise ValueError(f"{self.dir} holds a check-up made with other settings ({diffs}); "
                             "rerun with those settings to resume it, or choose another --out")
        return record

    # -- work ------------------------------------------------------------------------------
    def run(self) -> dict:
        self.dir.mkdir(parents=True, exist_ok=True)
        record = self._check_directory()
        self.trace_key = record.setdefault("trace_key", f"{self.dir.name}-{secrets.token_hex(4)}")
        started, start = dt.datetime.now().isoformat(timespec="seconds"), time.perf_counter()
        record.update(identity=self._identity(), plan=dataclasses.asdict(self.plan),
                      settings=self.settings.public(), model=self.model_label,
                      model_details=model_details(self.models), versions=versions())
        # The session is on record from its start and its time is updated as work finishes, so a
        # killed session still counts in the report's costs (up to its last finished item).
        self._record, self._start = record, start
        self._session = {"started": started, "seconds": 0.0, "finished": False, "computed": self.computed}
        record["sessions"].append(self._session)
        self._save_record()
        run = Run(self.dir, {})  # only for its checkpointer: DIR/checkpoints.sqlite, or Postgres
        with run.checkpointer(self.checkpoint) as saver, TraceWriter(self.dir / "trace.jsonl") as trace:
            self.trace = trace
            graphs = {mode: self._graph(mode, saver) for mode in MODES}
            states = self._run_threads(graphs)
            humans = self._run_humans()
        vectors = self._embeddings(states)
        record["embedder"] = getattr(self.embedder, "name", None) or record.get("embedder")
        self._session["finished"] = True
        self._save_record()
        results = self._results(states, humans, vectors, record)
        (self.dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
        return results

    def _graph(self, mode: str, saver):
        a = self.agents
        drawer = a["drawer"] if mode == "critic" else a["plain_drawer"]
        # Fixed-length loops: the curves need every iteration, so only max_iters stops a thread.
        rule = StopRule(max_iters=self.plan.iters, patience=self.plan.iters + 1, target=None)
        return build_refine_graph(drawer, a["renderer"], a["recognizer"], a["critic"], stop_rule=rule,
                                  store=self.store, size=self.settings.size, language=self.settings.language,
                                  n_distractors=self.settings.n_distractors,
                                  candidates=self.settings.candidates, checkpointer=saver)

    def _save_record(self) -> None:
        self._session["seconds"] = round(time.perf_counter() - self._start, 2)
        path = self.dir / "checkup.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self._record, indent=2, default=str))
        tmp.replace(path)  # atomic: a kill never leaves half a record

    def _progress(self, what: str) -> None:
        with self._lock:
            self._done += 1
            self._save_record()
            if self.on_progress:
                self.on_progress(self._done, self._total, what)

    def _write_event(self, chunk: dict) -> None:
        event = TraceEvent.from_dict(chunk)
        with self._lock:
            self.trace.write(event)
        if self.on_event:
            self.on_event(event)

    def _thread(self, graph, spec: ThreadSpec, first_input: dict, redo: bool = False) -> tuple[dict, bool]:
        """Run (or resume, or just read) one thread; a finished thread is never recomputed, unless
        `redo`, or `retry_failed` and the model could not be reached in it. Returns (state, started
        afresh): a thread resumed after a kill keeps its first draft, one started afresh has a new one."""
        config = {"configurable": {"thread_id": spec.thread_id, "run_id": self.dir.name,
                                   "seed": self.plan.seed + SAMPLE_SEED_STRIDE * spec.sample}}
        # LangSmith's thread: "<trace key>/<thread>", unique to this check-up and the same when it resumes
        config = trace_config(config, kind="checkup", concept=spec.concept, level=spec.level,
                              model=self.settings.model,
                              thread=f"{getattr(self, 'trace_key', None) or self.dir.name}/{spec.thread_id}",
                              mode=spec.mode, sample=spec.sample)
        snapshot = graph.get_state(config)
        stale = redo or (thread_finished(snapshot) and self.plan.retry_failed
                         and unreachable(snapshot.values))
        outcome = run_thread(graph, config, first_input, on_event=self._write_event, redo=stale)
        self._thread_done(spec.thread_id, outcome.computed)
        return outcome.state, outcome.computed and not outcome.resumed   # started afresh: a new first draft

    def _thread_done(self, thread_id: str, computed: bool) -> None:
        if computed:
            with self._lock:
                self.computed["threads"] += 1
        self._progress(thread_id)

    def _unit(self, graphs: dict, concept: str, level: str, sample: int) -> dict[str, dict]:
        """One concept and sample: the critic loop, then the plain loop from the same first draft."""
        base = {"concept": concept, "language": self.settings.language, "choices": self.choices[concept]}
        critic, redone = self._thread(graphs["critic"], ThreadSpec("critic", concept, level, sample),
                                      {**base, "attempts": []})
        states = {"critic": critic}
        if self.plan.iters >= 2:
            # a redone critic thread has a new first draft, so its plain twin must start again from it
            states["plain"], _ = self._thread(graphs["plain"], ThreadSpec("plain", concept, level, sample),
                                              {**base, **first_round(critic)}, redo=redone)
        return states

    def _pool(self, jobs: list[Callable[[], Any]]) -> list[Any]:
        pool = ThreadPoolExecutor(max_workers=self.plan.concurrency, thread_name_prefix=POOL_NAME)
        try:
            futures = {pool.submit(job): i for i, job in enumerate(jobs)}
            out: list[Any] = [None] * len(jobs)
            for future in as_completed(futures):
                out[futures[future]] = future.result()
        except BaseException:
            # No waiting for loops still blocked on the model (minutes): checkpoints keep what
            # finished, and the caller decides whether to wait (see loops_still_running).
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return out

    def _work(self, kind: str, items: list, run: Callable[[Any], Any],
              then: Callable[[Any], Any] | None = None) -> list[Any]:
        """`run(item)`, then `then` on its result, for every item, `plan.concurrency` at a time; the
        results in item order. Here on a thread pool; checkup/remote.py sends (kind, item)
        to an executor's workers instead ("unit": a concept and sample, "human": a person's drawing)."""
        finish = then or (lambda result: result)
        return self._pool([lambda item=item: finish(run(item)) for item in items])

    def _run_threads(self, graphs: dict) -> dict[str, dict]:
        units = [(c.name, c.level, s) for c in self.concepts for s in range(self.plan.samples)]
        self._done, self._total = 0, len(self.specs())
        if self.on_progress:   # show the bar before the first loop finishes (minutes with a local model)
            self.on_progress(0, self._total, "loops")
        states: dict[str, dict] = {}
        results = self._work("unit", units, lambda u: self._unit(graphs, *u))
        for (concept, level, sample), result in zip(units, results):
            for mode, state in result.items():
                states[ThreadSpec(mode, concept, level, sample).thread_id] = state
        return states

    def _run_humans(self) -> list[dict]:
        path = self.dir / "human.jsonl"
        done = {}
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    done[row["work_key"]] = row
        drawings = human_drawings(self.concepts, self.choices, self.human_items, self.plan.human_per_concept,
                                  self.plan.human_max_chars)
        todo = [h for h in drawings if h.work_key not in done]
        self._done, self._total = 0, len(todo)

        def record(row: dict) -> dict:
            with self._lock:
                with open(path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")
                self.computed["human"] += 1
            self._progress(f"human:{row['key']}")
            return row

        for row in self._work("human", todo, self._human_row, then=record):
            done[row["work_key"]] = row
        rows = [done[h.work_key] for h in drawings if h.work_key in done]  # selection order, every session
        for row in rows:
            if "names_concept" not in row and row.get("code_path"):  # rows from before the field existed
                code = self.store.read(row["code_path"]).decode()
                row["names_concept"] = names_concept(code, row["concept"])
        return rows

    def _human_row(self, human: HumanDrawing) -> dict:
        """Recognize a person's drawing from its code, as the model's own drawings are."""
        drawing = Drawing(concept=human.concept, code=human.code, language="svg",
                          choices=list(self.choices[human.concept]))
        try:
            rec = dict(self.agents["recognizer"].recognize(drawing))
        except Exception as exc:  # a recognizer that raises costs one item, not the check-up
            rec = {"label": None, "correct": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        return {"work_key": human.work_key, "concept": human.concept, "level": human.level, "key": human.key,
                "title": human.label, "path": human.path, "chars": len(human.code),
                "code_path": self.store.put(human.code, ".svg"), "image": self._render(human.code),
                "names_concept": names_concept(human.code, human.concept),
                "choices": list(self.choices[human.concept]), "label": rec.get("label"),
                "correct": bool(rec.get("correct")), "error": rec.get("error"),
                "usage": rec.get("usage") or {}}

    def _render(self, code: str) -> str | None:
        """A person's drawing as the report shows it (the model never sees this picture)."""
        try:
            result = self.agents["renderer"].render(code, language="svg", size=self.settings.size)
        except Exception:
            return None
        return self.store.put(result.png, ".png") if result.ok else None

    def _embeddings(self, states: dict[str, dict]) -> dict[str, np.ndarray]:
        """Vectors of every first and final drawing, computed once per image and kept on disk."""
        path = self.dir / "embeddings.npz"
        cached = dict(np.load(path)) if path.exists() else {}
        wanted = set()
        for thread_id, state in states.items():
            attempts = state.get("attempts") or []
            picks = [attempts[0]] if attempts else []
            if state.get("best") is not None:
                picks.append(attempts[state["best"]])
            wanted |= {a["image"] for a in picks if a.get("image")}
        missing = sorted(wanted - set(cached))
        if missing:
            embedder = self.embedder
            if embedder is None:
                embedder = self.embedder = features.default_embedder()
            vectors = embedder.embed([self.store.read(p) for p in missing])
            cached.update({p: np.asarray(v, np.float32) for p, v in zip(missing, vectors)})
            np.savez(path, **cached)
            self.computed["embeddings"] += len(missing)
        return {p: cached[p] for p in wanted}

    # -- results ---------------------------------------------------------------------------
    def _results(self, states: dict[str, dict], humans: list[dict], vectors: dict[str, np.ndarray],
                 record: dict) -> dict:
        threads = [summarise_thread(spec, states[spec.thread_id]) for spec in self.specs()]
        diversity = {}
        for concept in self.concepts:
            mine = [t for t in threads if t["concept"] == concept.name and t["mode"] == "critic"]
            firsts = [vectors[t["attempts"][0]["image"]] for t in mine
                      if t["attempts"] and t["attempts"][0]["image"]]
            finals = [vectors[t["attempts"][t["best"]]["image"]] for t in mine
                      if t["best"] is not None and t["attempts"][t["best"]]["image"]]
            diversity[concept.name] = {"level": concept.level, "first": mean_pairwise_distance(firsts),
                                       "final": mean_pairwise_distance(finals), "n_first": len(firsts),
                                       "n_final": len(finals)}
        return {
            "model": record["model"], "model_details": record.get("model_details"),
            "versions": record.get("versions"), "plan": record["plan"], "settings": record["settings"],
            "sessions": record["sessions"], "embedder": record.get("embedder"),
            "concepts": [{"name": c.name, "level": c.level, "category": c.category,
                          "choices": self.choices[c.name]} for c in self.concepts],
            "threads": threads, "human": humans, "diversity": diversity,
        }



def loops_still_running(timeout: float) -> bool:
    """Wait up to `timeout` s for the check-up's loop threads; True if some still wait on the model.
    After an error the process should then exit without joining them (commands/interrupt.exit_now)."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread.name.startswith(POOL_NAME):
            thread.join(max(0.0, deadline - time.monotonic()))
    return any(t.name.startswith(POOL_NAME) and t.is_alive() for t in threading.enumerate())


def unreachable(state: dict) -> bool:
    """Did an attempt fail because the model could not be reached, rather than because of what it wrote?"""
    return any(UNREACHABLE in (a.get("draw_error") or "")
               or UNREACHABLE in ((a.get("recognition") or {}).get("error") or "")
               for a in state.get("attempts") or [])


def first_round(state: dict) -> dict:
    """The state after a thread's first round, to start a twin thread from the same first drafts."""
    rounds = (state.get("rounds") or [])[:1]
    if not rounds:
        return {"attempts": []}
    attempts = [a for a in state.get("attempts") or [] if a.get("round", 0) == 0]
    return {"attempts": attempts, "rounds": rounds, "best": rounds[0]["best"]}
