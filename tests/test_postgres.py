"""Checkpoints and the dataset manifest in a real PostgreSQL server (tests/pgserver.py starts one
on loopback for the session), against fake models only: a refine thread's round trip, draw with
$DRAWLOOP_CHECKPOINT, a dataset build whose driver is SIGKILLed and resumed by a second driver
process, one driver per dataset across machines, clear errors, and SQLite still the default."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import APPLE, BLANK, RED_CIRCLE, FakeOpenAI, fake_llm
from pgserver import TempPostgres
from test_dataset import _cli_args, _dataset, concept_file, deterministic_server  # noqa: F401 (a fixture)
from typer.testing import CliRunner

from drawloop.agents.base import Draft
from drawloop.agents.critic import Critic, RecognitionScorer, RenderSanityScorer
from drawloop.agents.recognizer import CodeRecognizer, make_choices
from drawloop.agents.renderer import RendererAgent
from drawloop.cli import build_app
from drawloop.dataset.manifest import Manifest, open_manifest
from drawloop.graphs.refine import build_refine_graph
from drawloop.graphs.stopping import StopRule
from drawloop.graphs.thread import run_thread
from drawloop.runs import ArtifactStore, open_checkpointer
from drawloop.state import attempt_score
from drawloop.storage import (
    CHECKPOINT_ENV,
    POSTGRES_MARKER,
    DamagedStorage,
    StorageUnavailable,
    checkpoint_url,
)

CONCEPTS = ("a red circle", "a blue square", "a green triangle", "a cat")
DISTRACTORS = ["a dog", "a tree", "a car", "a house"]


@pytest.fixture(scope="session")
def postgres():
    """One throwaway server for the whole session; every folder gets a schema of its own in it."""
    try:
        server = TempPostgres()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def no_checkpoint_env(monkeypatch):
    monkeypatch.delenv(CHECKPOINT_ENV, raising=False)


def _schema_conn(out: Path, url: str):
    import psycopg
    from psycopg import sql

    schema = json.loads((out / POSTGRES_MARKER).read_text())["schema"]
    conn = psycopg.connect(url, autocommit=True)
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    return conn


# ---------------------------------------------------------------- a refine thread

class CrashOnce(RendererAgent):
    """Raises inside iteration 2's render, as a kill mid-node would end the process."""

    crashed = False

    def render(self, code, language="svg", size=256):
        if code == APPLE and not CrashOnce.crashed:
            CrashOnce.crashed = True
            raise KeyboardInterrupt
        return super().render(code, language, size)


class ByRound:
    """The same answer for the same round in every process (a resumed thread skips finished draws)."""

    def draw(self, concept, language, history, seed=None):
        return Draft(code=[BLANK, RED_CIRCLE, APPLE, APPLE][len(history)], usage={"tokens_in": 3, "tokens_out": 5})


def _graph(folder: Path, saver, renderer=None):
    letter = "ABCDE"[make_choices("a red apple", DISTRACTORS, None).index("a red apple")]
    return build_refine_graph(
        drawer=ByRound(), renderer=renderer or RendererAgent(),
        recognizer=CodeRecognizer(fake_llm(letter, cycle=True)),
        critic=Critic([(RenderSanityScorer(), 1.0), (RecognitionScorer(), 1.0)]),
        stop_rule=StopRule(max_iters=4, patience=3), store=ArtifactStore(folder),
        distractors=lambda c, n, s: DISTRACTORS, checkpointer=saver)


def _essence(state: dict) -> list[tuple]:
    return [(a["iteration"], a["code"], a["image"], attempt_score(a)) for a in state["attempts"]] + \
        [(state["best"], state["stop_reason"])]


def test_a_refine_thread_round_trips_through_postgres_checkpoints(postgres, tmp_path):
    config = {"configurable": {"thread_id": "t1"}}
    first = {"concept": "a red apple"}
    with open_checkpointer(tmp_path / "sqlite" / "checkpoints.sqlite") as saver:   # the reference, in SQLite
        want = run_thread(_graph(tmp_path / "sqlite", saver), config, first).state

    folder = tmp_path / "pg"
    path = folder / "checkpoints.sqlite"
    CrashOnce.crashed = False
    with open_checkpointer(path, postgres.url) as saver:
        with pytest.raises(KeyboardInterrupt):
            run_thread(_graph(folder, saver, CrashOnce()), config, first)
        assert [a["iteration"] for a in _graph(folder, saver).get_state(config).values["attempts"]] == [0, 1]
    (folder / "trace.jsonl").write_text('{"node": "draw"}\n')     # work recorded next to the checkpoints
    assert not path.exists() and (folder / POSTGRES_MARKER).is_file()

    with open_checkpointer(path, postgres.url) as saver:       # a new connection, as a new process has
        resumed = run_thread(_graph(folder, saver), config, first)
    assert resumed.resumed and resumed.computed and resumed.finished
    assert _essence(resumed.state) == _essence(want)           # the same thread as in SQLite, each attempt once
    with open_checkpointer(path, postgres.url) as saver:
        again = run_thread(_graph(folder, saver), config, first)
    assert again.finished and not again.computed and _essence(again.state) == _essence(want)   # read back

    with pytest.raises(ValueError, match=f"in Postgres .*{CHECKPOINT_ENV}"), open_checkpointer(path):
        pass                                                    # never a silent SQLite restart
    (folder / POSTGRES_MARKER).unlink()
    with pytest.raises(DamagedStorage, match="no postgres.json"), open_checkpointer(path, postgres.url):
        pass


def test_draw_and_resume_with_checkpoints_in_postgres(postgres, fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv(CHECKPOINT_ENV, postgres.url)
    FakeOpenAI.concept = "a red apple"
    args = ["--model", "openai:fake", "--base-url", fake_server, "--max-iters", "2", "--patience", "5", "--json"]
    runner = CliRunner()
    done = runner.invoke(build_app(), ["draw", "a red apple", *args, "--out", str(tmp_path)])
    assert done.exit_code == 0, done.output
    result = json.loads(done.output)
    run_dir = Path(result["run_dir"])
    assert (run_dir / POSTGRES_MARKER).is_file() and not (run_dir / "checkpoints.sqlite").exists()
    assert "postgresql://" not in (run_dir / "run.json").read_text()
    again = runner.invoke(build_app(), ["draw", "--resume", str(run_dir), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["iterations"] == result["iterations"] == 2
    monkeypatch.delenv(CHECKPOINT_ENV)
    lost = runner.invoke(build_app(), ["draw", "--resume", str(run_dir), "--json"])
    assert lost.exit_code == 2 and CHECKPOINT_ENV in lost.output and "Traceback" not in lost.output


# ---------------------------------------------------------------- a dataset build, killed and resumed

def _committed(out: Path, url: str) -> dict[str, str]:
    """Committed drawings (id -> PNG hash), read while a driver may be writing."""
    return _progress(out, url)[0]


def _progress(out: Path, url: str) -> tuple[dict[str, str], set[str]]:
    """Committed drawings, and the threads that have checkpoints but no committed drawing yet."""
    import psycopg

    try:
        with _schema_conn(out, url) as conn:
            done = {i: json.loads(r)["png_sha256"] for i, r in conn.execute("SELECT id, record FROM drawings")}
            threads = {row[0] for row in conn.execute("SELECT DISTINCT thread_id FROM checkpoints")}
    except (psycopg.Error, FileNotFoundError, ValueError):   # not made yet
        return {}, set()
    return done, threads - set(done)


@pytest.mark.slow
def test_a_killed_postgres_build_resumes_from_a_second_driver_with_the_same_ids(postgres, tmp_path,
                                                                               deterministic_server):  # noqa: F811
    concepts = concept_file(tmp_path, *CONCEPTS)
    reference = subprocess.run([sys.executable, "-m", "drawloop", *_cli_args(concepts, tmp_path / "ref",
                                deterministic_server)], capture_output=True, text=True, timeout=300, check=False)
    assert reference.returncode == 0, reference.stderr[-2000:]     # SQLite, the default
    want_rows, want_files = _dataset(tmp_path / "ref")
    assert len(want_rows) == 12

    out = tmp_path / "shared" / "data"          # what every machine mounts
    command = [sys.executable, "-m", "drawloop", *_cli_args(concepts, out, deterministic_server),
               "--checkpoint", postgres.url]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    start = time.monotonic()
    while first.poll() is None and time.monotonic() - start < 180:
        done, half_done = _progress(out, postgres.url)
        if len(done) >= 4 and half_done:        # mid-build: drawings committed, threads half-way
            break
        time.sleep(0.05)
    assert first.poll() is None, first.stderr.read().decode()[-2000:]
    first.send_signal(signal.SIGKILL)                           # the driver's machine dies mid-build
    first.wait(timeout=60)
    first.stderr.close()
    before, half_done = _progress(out, postgres.url)
    assert 4 <= len(before) < 12 and half_done     # threads half-way, left for the next driver to resume

    # The second driver: another process and working directory, only the folder and the URL shared.
    elsewhere = tmp_path / "machine-b"
    elsewhere.mkdir()
    second = subprocess.run(command, capture_output=True, text=True, cwd=elsewhere, timeout=300, check=False,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert second.returncode == 0, second.stderr[-2000:]
    summary = json.loads(second.stdout)
    assert summary["counts"] == {"pending": 0, "done": 12, "failed": 0}

    rows, files = _dataset(out)
    assert [r["id"] for r in rows] == [r["id"] for r in want_rows]       # the same ids, each once
    differences = [(a["id"], k, a.get(k), b.get(k)) for a, b in zip(rows, want_rows)
                   for k in a.keys() | b.keys() if a.get(k) != b.get(k)]
    assert not differences, differences[:6]                                 # and the same drawings
    assert files == want_files and not any("/." in f for f in files)       # no duplicates, no temp files
    after = _committed(out, postgres.url)
    assert {i: after[i] for i in before} == before                          # nothing committed was redrawn
    with _schema_conn(out, postgres.url) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT id) FROM drawings").fetchone() == (12, 12)
        assert conn.execute("SELECT count(*) FROM failures").fetchone() == (0,)
        # a committed thread's checkpoints are dropped (BatchRunner.forget), unless the kill fell between
        # its commit and that: whatever is left belongs to committed drawings, no thread is left half-way
        left = {row[0].split("~")[0] for row in conn.execute("SELECT DISTINCT thread_id FROM checkpoints")}
        assert left <= set(after)
    assert not (out / "manifest.sqlite").exists() and not (out / "work" / "checkpoints.sqlite").exists()

    info = CliRunner().invoke(build_app(), ["dataset", "info", str(out), "--json", "--checkpoint", postgres.url])
    assert info.exit_code == 0, info.output
    assert sum(counts.get("done", 0) for counts in json.loads(info.output)["levels"].values()) == 12
    bare = CliRunner().invoke(build_app(), ["dataset", "info", str(out)])   # the URL forgotten: say how
    assert bare.exit_code == 2 and "--checkpoint" in bare.output and "Traceback" not in bare.output


def test_one_driver_per_dataset_across_machines(postgres, tmp_path):
    """The folder lock cannot see a driver on another machine; the Postgres advisory lock does."""
    from test_dataset import build

    from drawloop.dataset.reader import DatasetBusy

    out = tmp_path / "data"
    assert build(tmp_path, ("a varied tree",), samples=1, checkpoint=postgres.url).counts["done"] == 1
    with open_manifest(out, postgres.url) as other_machine:
        other_machine.claim()
        with pytest.raises(DatasetBusy, match=r"another drawloop process is building .*schema drawloop_data_"):
            build(tmp_path, ("a varied tree",), samples=2, checkpoint=postgres.url)
    result = build(tmp_path, ("a varied tree",), samples=2, checkpoint=postgres.url)    # released with its holder
    assert result.counts["done"] == 2 and result.stats.done_before == 1


def test_manifest_in_postgres_behaves_as_in_sqlite(postgres, tmp_path):
    from drawloop.dataset.plan import plan_jobs, select_concepts

    jobs = plan_jobs(select_concepts("shapes", limit=2), samples=2, temperature=0.73)
    seen = {}
    for name in ("sqlite", "postgres"):
        folder = tmp_path / name
        with open_manifest(folder, postgres.url if name == "postgres" else None) as manifest:
            assert (manifest.postgres is None) == (name == "sqlite")
            assert manifest.add_jobs(jobs, as_plan=True) == 4 and manifest.add_jobs(jobs) == 0
            manifest.set_info({"size": 64})
            manifest.set_info({"size": 128, "model": "fake"})
            manifest.commit(jobs[0].id, {"id": jobs[0].id, "score": 0.5})
            manifest.commit(jobs[0].id, {"id": jobs[0].id, "score": 0.6})
            manifest.fail(jobs[1].id, "boom", final=False)
            manifest.fail(jobs[1].id, "boom again", final=True)
            manifest.reopen([jobs[2].id], reset_tries=True)
        with open_manifest(folder, postgres.url if name == "postgres" else None) as again:   # survives reopening
            seen[name] = (again.counts(), again.counts(planned=True), again.info(), again.records(),
                          [(f["id"], f["try"], f["reason"]) for f in again.failures()], again.jobs(),
                          list(again.iter_jobs("pending", planned=True, page=1)))
    assert seen["postgres"] == seen["sqlite"]
    assert seen["postgres"][5][0].temperature == jobs[0].temperature        # 8-byte floats, not REAL's 4
    assert [row.id for row in seen["postgres"][5]] == sorted(job.id for job in jobs)


def test_clear_errors_and_sqlite_stays_the_default(postgres, tmp_path, monkeypatch):
    from test_dataset import build

    assert checkpoint_url(None) is None
    monkeypatch.setenv(CHECKPOINT_ENV, postgres.url)
    assert checkpoint_url(None) == postgres.url and checkpoint_url("sqlite") is None   # 'sqlite' overrides
    with pytest.raises(ValueError, match="takes a postgresql://"):
        checkpoint_url("mysql://root:secret@db/x")
    monkeypatch.delenv(CHECKPOINT_ENV)

    result = build(tmp_path, ("a varied tree",), samples=1)            # the default: SQLite files, no Postgres
    out = tmp_path / "data"
    assert result.counts["done"] == 1 and (out / "manifest.sqlite").is_file()
    assert (out / "work" / "checkpoints.sqlite").is_file() and not (out / POSTGRES_MARKER).exists()
    with Manifest(out / "manifest.sqlite") as manifest:
        assert manifest.postgres is None and manifest.counts()["done"] == 1
    with pytest.raises(ValueError, match=r"is in SQLite \(manifest.sqlite\), not Postgres"):
        build(tmp_path, ("a varied tree",), samples=1, checkpoint=postgres.url)

    with pytest.raises(StorageUnavailable, match=r"cannot reach the Postgres database 127\.0\.0\.1:1/x") as caught:
        build(tmp_path, ("a varied tree",), samples=1, out="other", checkpoint="postgresql://u:secret@127.0.0.1:1/x")
    assert "secret" not in str(caught.value)

    moved = tmp_path / "moved"                    # a postgres.json whose schema is in another database
    moved.mkdir()
    (moved / POSTGRES_MARKER).write_text(json.dumps({"schema": "drawloop_gone_00000000", "database": "elsewhere/db"}))
    with pytest.raises(DamagedStorage, match="does not have .*elsewhere/db"):
        open_manifest(moved, postgres.url)
