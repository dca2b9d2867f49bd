"""graphs/batch.py: bounded executor, per-thread seeds and temperatures, retries, abort, resume."""

from __future__ import annotations

import io
import threading
import time

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver
from PIL import Image

from drawloop.agents.base import Draft
from drawloop.agents.critic import Critic, RenderSanityScorer
from drawloop.config import Settings
from drawloop.graphs.batch import (RETRY_SEED_STRIDE, BatchAborted, BatchRunner, GraphCache, ThreadExecutor,
                                   ThreadJob, drawing_error)
from drawloop.renderers.base import RenderResult
from drawloop.runs import ArtifactStore


def svg_for(seed: int) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" fill="#fff"/>'
            f'<circle cx="32" cy="32" r="{8 + seed % 20}" fill="#{seed % 0xFFFFFF:06x}"/></svg>')


class SeedDrawer:
    """Draws a circle sized and coloured by the seed; `failing` maps a concept to how many of its
    first distinct seeds fail (None: all of them)."""

    def __init__(self, failing=None):
        self.calls: list[tuple[str, int]] = []
        self.failing = dict(failing or {})
        self.lock = threading.Lock()

    def draw(self, concept, language, history, seed=None):
        with self.lock:
            self.calls.append((concept, seed))
            first_seeds = sorted({s for c, s in self.calls if c == concept})
        limit = self.failing.get(concept, 0)
        if concept in self.failing and (limit is None or first_seeds.index(seed) < limit):
            return Draft(code="", error="model said nothing useful")
        return Draft(code=svg_for(seed), raw="", usage={"tokens_in": 5, "tokens_out": 7})


class PilRenderer:
    """Renders the circle's colour as a flat PNG: fast, no worker processes."""

    def render(self, code, language="svg", size=64):
        colour = "#" + code.split('fill="#')[2][:6]
        buffer = io.BytesIO()
        Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
        return RenderResult(ok=True, png=buffer.getvalue())


class RightRecognizer:
    def recognize(self, drawing):
        return {"label": drawing.concept, "correct": True, "choices": drawing.choices, "source": "test"}


@pytest.fixture
def saver(tmp_path):
    import sqlite3

    conn = sqlite3.connect(tmp_path / "ck.sqlite", check_same_thread=False)
    yield SqliteSaver(conn)
    conn.close()


def make_cache(tmp_path, saver, drawer, max_iters=2):
    settings = Settings(max_iters=max_iters, patience=5, size=64, n_distractors=2)
    agents = {"drawer": drawer, "renderer": PilRenderer(), "recognizer": RightRecognizer(),
              "critic": Critic([(RenderSanityScorer(), 1.0)])}
    return GraphCache(settings, None, ArtifactStore(tmp_path / "work"), saver, agents=agents)


def jobs(n, concept="a red circle"):
    return [ThreadJob(f"job-{i}", concept, seed=100 + i, temperature=0.5 + 0.1 * (i % 3)) for i in range(n)]


# ---------------------------------------------------------------- executor

def test_executor_bounds_in_flight_and_pulls_lazily():
    lock, state = threading.Lock(), {"running": 0, "peak": 0, "pulled": 0}

    def items():
        for i in range(20):
            state["pulled"] += 1
            yield i

    def work(i):
        with lock:
            state["running"] += 1
            state["peak"] = max(state["peak"], state["running"])
        time.sleep(0.02)
        with lock:
            state["running"] -= 1
        if i == 7:
            raise RuntimeError("boom")
        return i * 2

    seen = {}
    stream = ThreadExecutor().map_unordered(work, items(), concurrency=3)
    first_item, first_result = next(stream)
    time.sleep(0.3)              # a slow consumer: workers fill the result queue, then wait
    # back-pressure: what was taken is what was consumed, plus a queue and a worker's hand each
    assert state["pulled"] <= 1 + 3 + 3
    seen[first_item] = first_result
    seen.update(dict(stream))
    assert state["peak"] <= 3
    assert isinstance(seen.pop(7), RuntimeError)
    assert seen == {i: i * 2 for i in range(20) if i != 7}


def test_executor_stopped_early_leaves_blocked_items_and_join_says_so():
    """An error in the consumer must not wait for an item stuck on the model; join() tells the
    caller (about to exit) whether anything is still running, so it need not wait either."""
    release = threading.Event()

    def work(i):
        if i == 0:
            release.wait(30)               # a model that does not answer
        return i

    executor = ThreadExecutor()
    stream = executor.map_unordered(work, range(3), concurrency=2)
    assert next(stream)[0] in (1, 2)
    stream.close()                         # the consumer stops early (an error, Ctrl-C)
    assert not executor.join(timeout=0.2)  # item 0 is still waiting, and nobody waited for it
    release.set()
    assert executor.join(timeout=30)


def test_commit_error_does_not_wait_for_threads_blocked_on_the_model(tmp_path, saver):
    release, started = threading.Event(), threading.Event()

    class Stuck(SeedDrawer):
        def draw(self, concept, language, history, seed=None):
            if concept == "a stuck kettle":
                started.set()
                release.wait(30)
            return super().draw(concept, language, history, seed)

    def commit(outcome):
        assert started.wait(30)
        raise OSError("disk full")

    executor = ThreadExecutor()
    runner = BatchRunner(make_cache(tmp_path, saver, Stuck()), concurrency=2, executor=executor)
    try:
        with pytest.raises(OSError, match="disk full"):
            runner.run(jobs(1, "a stuck kettle") + [ThreadJob("free", "a red circle", 7, 0.5)], commit)
        assert not release.is_set() and not executor.join(timeout=0.2)   # raised while the kettle waits
    finally:
        release.set()
        executor.join(timeout=30)


# ---------------------------------------------------------------- runner

def test_every_job_commits_once_with_its_own_seed_and_temperature(tmp_path, saver):
    drawer = SeedDrawer()
    graphs = make_cache(tmp_path, saver, drawer)
    committed = []
    runner = BatchRunner(graphs, concurrency=4, max_tries=2)
    stats = runner.run(jobs(9), commit=committed.append)
    assert sorted(o.job.id for o in committed) == [f"job-{i}" for i in range(9)]
    assert stats.done == 9 and stats.failed == 0 and stats.running == 0
    assert stats.tokens_out == 9 * 2 * 7     # two attempts per thread, counted from the trace stream
    # each thread seeds its iterations from its own seed: seed, seed + 1
    assert sorted(s for _, s in drawer.calls) == sorted(s for i in range(9) for s in (100 + i, 101 + i))
    assert len({o.best["image"] for o in committed}) == 9   # samples differ
    assert set(graphs._graphs) == {0.5, 0.6, 0.7}           # one compiled graph per temperature
    assert all(o.state["stop_reason"] == "max_iters" for o in committed)


def test_failed_thread_is_retried_with_a_new_seed_then_given_up(tmp_path, saver):
    drawer = SeedDrawer(failing={"a flaky cat": 1, "a broken dog": None})
    graphs = make_cache(tmp_path, saver, drawer, max_iters=1)
    failures, committed = [], []
    runner = BatchRunner(graphs, concurrency=2, max_tries=2)
    batch = jobs(2) + [ThreadJob("flaky", "a flaky cat", seed=7, temperature=0.7),
                       ThreadJob("broken", "a broken dog", seed=9, temperature=0.7)]
    stats = runner.run(batch, commit=committed.append,
                       on_failure=lambda job, reason, final: failures.append((job.thread_id, final, reason)))
    assert {o.job.thread_id for o in committed} == {"job-0", "job-1", "flaky~1"}
    flaky = next(o for o in committed if o.job.id == "flaky")
    assert flaky.job.thread_seed == 7 + RETRY_SEED_STRIDE
    assert [(t, final) for t, final, _ in sorted(failures)] == [("broken", False), ("broken~1", True),
                                                                ("flaky", False)]
    assert all("model said nothing useful" in reason for _, _, reason in failures)
    assert stats.done == 3 and stats.failed == 1 and stats.retries == 2


def test_batch_aborts_when_everything_fails(tmp_path, saver):
    drawer = SeedDrawer(failing={"a red circle": None})
    runner = BatchRunner(make_cache(tmp_path, saver, drawer, max_iters=1), concurrency=2, max_tries=1,
                         abort_after=3)
    with pytest.raises(BatchAborted, match="model said nothing useful"):
        runner.run(jobs(20), commit=lambda o: None)
    assert len(drawer.calls) < 20   # it stopped starting new threads


def test_finished_thread_is_read_back_not_redrawn(tmp_path, saver):
    drawer = SeedDrawer()
    graphs = make_cache(tmp_path, saver, drawer)
    runner = BatchRunner(graphs, concurrency=1)
    job = jobs(1)[0]
    first = runner.worker(job)                 # no commit, no forget: as if killed before the commit
    calls = len(drawer.calls)
    again = runner.worker(job)
    assert len(drawer.calls) == calls and again.resumed and not first.resumed
    assert again.best["image"] == first.best["image"]
    runner.worker.forget(job)                  # after a commit the checkpoint goes
    assert not graphs.graph(job.temperature).get_state(
        {"configurable": {"thread_id": job.thread_id}}).values


def test_thread_killed_after_decide_wrote_but_before_its_checkpoint_resumes(tmp_path, saver):
    """The trap: decide's writes are saved, the checkpoint that plans the next step is not. Then
    get_state() shows next == () with stop_reason None; the thread must resume, not be committed."""
    drawer = SeedDrawer()
    graphs = make_cache(tmp_path, saver, drawer, max_iters=3)
    runner = BatchRunner(graphs, concurrency=1)
    job = jobs(1)[0]
    full = runner.worker(job)
    graph, config = graphs.graph(job.temperature), {"configurable": {"thread_id": job.thread_id}}
    history = list(reversed(list(graph.get_state_history(config))))
    cut = next(s for s in history if s.next == ("decide",)).config["configurable"]["checkpoint_id"]
    for table in ("checkpoints", "writes"):   # as if killed right after decide's writes were stored
        saver.conn.execute(f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_id > ?", (job.thread_id, cut))
    saver.conn.commit()
    trap = graph.get_state(config)
    assert trap.next == () and len(trap.values["attempts"]) == 1 and trap.values["stop_reason"] is None
    again = runner.worker(job)
    assert again.ok and again.resumed and again.state["stop_reason"] == "max_iters"
    assert [a["image"] for a in again.state["attempts"]] == [a["image"] for a in full.state["attempts"]]


def test_drawing_error_explains_a_thread_without_a_picture():
    assert drawing_error({"attempts": []}) == "the thread finished without any attempt"
    state = {"attempts": [{"draw_error": "no svg"}, {"render_error": "too big"}], "best": 0}
    assert "2 attempt(s)" in drawing_error(state) and "too big" in drawing_error(state)
    assert drawing_error({"attempts": [{"image": "a.png"}], "best": 0}) is None


def test_runner_rejects_bad_limits(tmp_path, saver):
    graphs = make_cache(tmp_path, saver, SeedDrawer())
    with pytest.raises(ValueError, match="concurrency"):
        BatchRunner(graphs, concurrency=0)
    with pytest.raises(ValueError, match="max_tries"):
        BatchRunner(graphs, max_tries=0)


def test_the_runner_reads_its_jobs_as_it_starts_threads(tmp_path, saver):
    """A dataset plan can be millions of jobs: given `total`, the runner takes an iterator and reads
    it as threads start, never all of it up front."""
    graphs = make_cache(tmp_path, saver, SeedDrawer())
    read = []

    def plan():
        for job in jobs(6):
            read.append(job.thread_id)
            yield job

    committed = []
    BatchRunner(graphs, concurrency=2).run(plan(), commit=lambda o: committed.append(len(read)), total=6)
    assert len(committed) == 6 and committed[0] <= 4    # the first drawing came before most jobs were read
