"""RayExecutor on a real local Ray cluster that this module starts (2 CPUs, no dashboard, its own
temp folder) and shuts down, with two worker processes, against test_dataset's deterministic
loopback model: a build on Ray makes the same dataset as the thread executor, a worker killed
mid-build loses nothing and duplicates nothing, and a check-up on Ray resumes after an interruption."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter

import pytest
from test_dataset import DeterministicModel, _dataset, concept_file
from typer.testing import CliRunner

from drawloop.config import Settings
from drawloop.dataset import build_dataset
from drawloop.dataset.manifest import Manifest

ray = pytest.importorskip("ray", reason="the cluster extra: pip install 'drawloop[cluster]'")

from drawloop.graphs.ray_executor import RayExecutor, RayUnavailable, make_executor


class Model(DeterministicModel):
    delay = 0.03


class SlowModel(DeterministicModel):
    delay = 0.25      # a build of 12 drawings takes long enough to kill a worker in the middle of it


def _serve(handler) -> tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


@pytest.fixture(scope="module")
def cluster():
    """One Ray for the module: starting one costs seconds, so the tests share it."""
    saved = {k: os.environ.pop(k) for k in ("RAY_ADDRESS",) if k in os.environ}
    temp = tempfile.mkdtemp(prefix="dlray-")   # short: Ray's socket paths live under it
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp,
             object_store_memory=100 * 1024 * 1024)
    yield
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)
    os.environ.update(saved)


@pytest.fixture(scope="module")
def model():
    server, url = _serve(Model)
    yield url
    server.shutdown()


@pytest.fixture(scope="module")
def slow_model():
    server, url = _serve(SlowModel)
    yield url
    server.shutdown()


@pytest.fixture(scope="module")
def executor(cluster):
    """Two worker processes on the one node; reused by the tests, like a cluster that stays up."""
    executor = RayExecutor(workers_per_node=2)
    yield executor
    executor.close()


def settings(url: str) -> Settings:
    # no pixel critic that loads torch in every process: seconds per worker on a 2-core machine
    return Settings(model="openai:fake", base_url=url, api_key="sk-test", max_iters=3, patience=3, size=64,
                    extra={"weights": {"sanity": 0.5, "llm": 1.0, "structure": 1.0}})


def build(concepts: str, out, url: str, **kwargs):
    return build_dataset(concepts, 3, out, settings(url), concurrency=4, embedder="thumbnail", **kwargs)


def manifest_rows(out) -> tuple[list, list]:
    with Manifest(out / "manifest.sqlite") as manifest:
        records = [{k: v for k, v in r.items() if k != "seconds"} for r in manifest.records()]
        jobs = sorted((j.id, j.status, j.tries, j.seed, j.temperature) for j in manifest.jobs())
    return records, jobs


def test_a_build_on_ray_makes_the_same_dataset_as_the_thread_executor(tmp_path, model, executor):
    concepts = concept_file(tmp_path, "a red circle", "a blue square", "a cat")
    reference = build(concepts, tmp_path / "threads", model)
    result = build(concepts, tmp_path / "ray", model, executor=executor)
    assert result.counts == reference.counts == {"pending": 0, "done": 9, "failed": 0}
    assert _dataset(tmp_path / "ray") == _dataset(tmp_path / "threads")       # same ids, rows, files
    assert manifest_rows(tmp_path / "ray") == manifest_rows(tmp_path / "threads")
    # the threads ran in the two worker processes, and their trace came back to the driver
    workers = executor.worker_pids()
    assert len({pid for _, pid in workers}) == 2 and os.getpid() not in {pid for _, pid in workers}
    trace = (tmp_path / "ray" / "work" / "trace.jsonl").read_text().splitlines()
    assert len(trace) == len((tmp_path / "threads" / "work" / "trace.jsonl").read_text().splitlines()) > 0
    assert (result.stats.tokens_in, result.stats.tokens_out) == (reference.stats.tokens_in, reference.stats.tokens_out)


def test_a_worker_killed_mid_build_loses_nothing_and_duplicates_nothing(tmp_path, slow_model, executor):
    concepts = concept_file(tmp_path, "a red circle", "a blue square", "a green triangle", "a cat")
    reference = build(concepts, tmp_path / "threads", slow_model)
    committed: list[str] = []
    killed: list[int] = []

    def on_drawing(record: dict) -> None:   # in the driver, while the other jobs are in flight
        committed.append(record["id"])
        if len(committed) == 3:
            pid = executor.worker_pids()[0][1]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    result = build(concepts, tmp_path / "ray", slow_model, executor=executor, on_drawing=on_drawing)
    assert killed and killed[0] not in {pid for _, pid in executor.worker_pids()}   # Ray restarted it
    assert Counter(committed) == Counter(r["id"] for r in _dataset(tmp_path / "threads")[0])   # each once
    assert result.counts == {"pending": 0, "done": 12, "failed": 0}
    with Manifest(tmp_path / "ray" / "manifest.sqlite") as manifest:
        assert manifest.failures() == []      # the killed jobs were retried by Ray and resumed, not failed
    assert _dataset(tmp_path / "ray") == _dataset(tmp_path / "threads")
    assert manifest_rows(tmp_path / "ray") == manifest_rows(tmp_path / "threads")
    assert reference.counts == result.counts


def test_a_build_on_ray_with_its_checkpoints_in_postgres(tmp_path, model, executor, monkeypatch):
    from pgserver import TempPostgres

    monkeypatch.delenv("DRAWLOOP_CHECKPOINT", raising=False)
    try:
        server = TempPostgres()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    concepts = concept_file(tmp_path, "a red circle", "a cat")
    reference = build(concepts, tmp_path / "threads", model)
    with server:
        result = build(concepts, tmp_path / "ray", model, executor=executor, checkpoint=server.url)
    assert result.counts == reference.counts == {"pending": 0, "done": 6, "failed": 0}
    assert _dataset(tmp_path / "ray") == _dataset(tmp_path / "threads")
    assert (tmp_path / "ray" / "postgres.json").exists()           # the workers' checkpoints went there
    assert not (tmp_path / "ray" / "work" / "checkpoints.sqlite").exists()


def test_jobs_are_pulled_lazily_with_a_bounded_number_in_flight(executor):
    pulled: list[float] = []

    def jobs():
        for _ in range(10):
            pulled.append(0.2)
            yield 0.2

    pulled_at_each_result = [len(pulled) for _ in executor.map_unordered(time.sleep, jobs(), concurrency=3)]
    assert len(pulled_at_each_result) == 10 and pulled_at_each_result[0] <= 3 + 1   # refilled before it is handed on
    results = dict(executor.map_unordered(int, ["1", "x"], concurrency=2))
    assert results["1"] == 1 and isinstance(results["x"], ValueError)               # an error is a result, not a crash


def test_without_ray_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)     # what `import ray` does when it is not installed
    with pytest.raises(RayUnavailable, match=r"pip install 'drawloop\[cluster\]'"):
        make_executor("ray").connect()
    with pytest.raises(ValueError, match="--ray-address needs --executor ray"):
        make_executor("thread", "auto")


def test_cli_build_on_ray(tmp_path, model, cluster):
    from drawloop.cli import build_app

    concepts = concept_file(tmp_path, "a red circle")
    args = ["dataset", "build", "--concepts", concepts, "--samples", "2", "--out", str(tmp_path / "data"),
            "--model", "openai:fake", "--base-url", model, "--max-iters", "2", "--size", "64",
            "--embedder", "thumbnail", "--json", "--executor", "ray"]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{"):])["counts"]["done"] == 2
    assert ray.is_initialized()     # joined the running Ray; left it running for whoever started it
    bad = CliRunner().invoke(build_app(), args[:-2] + ["--ray-address", "auto"])
    assert bad.exit_code == 2 and "--ray-address needs --executor ray" in bad.output


def _untimed(value):
    """`value` without wall times (the one thing two runs may not share)."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _comparable(results: dict) -> dict:
    return _untimed({k: results[k] for k in ("model", "threads", "human", "diversity")})


def test_a_checkup_on_ray_resumes_after_an_interruption(tmp_path, model, executor):
    from test_checkup import ColourEmbedder, cat_gallery

    from drawloop.agents.recognizer import make_choices
    from drawloop.checkup import CheckupPlan, run_checkup
    from drawloop.graphs.refine import default_distractors
    from drawloop.llm import open_model

    items = cat_gallery(tmp_path, make_choices("a cat", default_distractors("a cat", 4, 0), 0))
    plan = CheckupPlan(levels=("shapes", "objects"), concepts_per_level=1, samples=2, iters=2, concurrency=4,
                       human_per_concept=2, human_max_chars=2000)
    with open_model(settings(model)) as models:
        reference = run_checkup(tmp_path / "threads", plan, settings(model), models, embedder=ColourEmbedder(),
                                human_items=items)

    class Interrupted(Exception):
        pass

    def interrupt(done: int, total: int, what: str) -> None:
        if what != "loops" and done >= 2:      # the first unit's two loops are in; the others are in flight
            raise Interrupted

    with pytest.raises(Interrupted):
        run_checkup(tmp_path / "ray", plan, settings(model), executor=executor, embedder=ColourEmbedder(),
                    human_items=items, on_progress=interrupt)
    results = run_checkup(tmp_path / "ray", plan, settings(model), executor=executor, embedder=ColourEmbedder(),
                          human_items=items)
    assert _comparable(results) == _comparable(reference)
    first, second = results["sessions"]
    assert not first["finished"] and second["finished"]
    # 8 loops: the 2 the first session reported, and any its workers finished after, are read back
    assert first["computed"]["threads"] == 2 and second["computed"]["threads"] <= 6
    assert second["computed"]["human"] == len(results["human"]) == 2
