"""drawloop/dataset: planning, the manifest, a whole build, dedup of planted copies, reading back,
resuming (also after SIGKILL at random points, through the CLI against a loopback fake model)."""

from __future__ import annotations

import io
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
from conftest import FakeOpenAI
from typer.testing import CliRunner

from drawloop.agents.base import Draft
from drawloop.agents.critic import Critic, RenderSanityScorer
from drawloop.config import Settings
from drawloop.dataset import DatasetError, DrawingDataset, build_dataset, curate_dataset
from drawloop.dataset.manifest import Manifest
from drawloop.dataset.plan import job_temperature, plan_jobs, select_concepts, unique_slugs

SVG = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" fill="#fff"/>'
       '{body}</svg>')


def varied(seed: int) -> str:
    """A picture that differs with the seed: two shapes, colours and places from it."""
    r = random.Random(seed)
    return SVG.format(body=(
        f'<circle cx="{r.randint(12, 52)}" cy="{r.randint(12, 52)}" r="{r.randint(5, 12)}" '
        f'fill="#{r.randrange(1 << 24):06x}"/><rect x="{r.randint(0, 40)}" y="{r.randint(0, 40)}" '
        f'width="{r.randint(6, 24)}" height="{r.randint(6, 24)}" fill="#{r.randrange(1 << 24):06x}"/>'))


class PlantedDrawer:
    """Exact copies for 'a planted cat' and 'a planted twin' (the same picture), shifted copies
    of one shape for 'a shifted dog', different pictures for everything else."""

    def __init__(self):
        self.calls: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def draw(self, concept, language, history, seed=None):
        with self.lock:
            self.calls.append((concept, seed))
        if concept in ("a planted cat", "a planted twin"):
            code = SVG.format(body='<rect x="16" y="16" width="32" height="32" fill="#2a6"/>')
        elif concept == "a shifted dog":
            x = 10 + seed % 4
            code = SVG.format(body=f'<rect x="{x}" y="{x}" width="30" height="20" fill="#a33"/>')
        else:
            code = varied(seed)
        return Draft(code=code, usage={"tokens_in": 3, "tokens_out": 5})


class RightRecognizer:
    def recognize(self, drawing):
        return {"label": drawing.concept, "correct": True, "choices": drawing.choices, "source": "test"}


def agents(drawer=None):
    return {"drawer": drawer or PlantedDrawer(), "recognizer": RightRecognizer(),
            "critic": Critic([(RenderSanityScorer(), 1.0)])}


def settings(**overrides):
    return Settings(**{"max_iters": 2, "patience": 5, "size": 64, "n_distractors": 2, **overrides})


def concept_file(tmp_path, *names) -> str:
    path = tmp_path / "concepts.txt"
    path.write_text("# test concepts\n" + "\n".join(names) + "\n")
    return str(path)


def build(tmp_path, names, samples=3, drawer=None, out="data", **kwargs):
    return build_dataset(concept_file(tmp_path, *names), samples, tmp_path / out, settings(),
                         agents=agents(drawer), embedder="thumbnail", concurrency=3, **kwargs)


# ---------------------------------------------------------------- planning

def test_select_concepts_from_levels_file_and_limit(tmp_path):
    shapes = select_concepts("shapes")
    assert shapes and {c.level for c in shapes} == {"shapes"}
    both = select_concepts("shapes,scenes")
    assert {c.level for c in both} == {"shapes", "scenes"}
    assert len(select_concepts("all")) > len(both)
    subset = select_concepts("shapes", limit=5)
    assert [c.name for c in subset] == [shapes[i * len(shapes) // 5].name for i in range(5)]
    mine = select_concepts(concept_file(tmp_path, "a red circle", "a purple giraffe on a bike", "a red circle"))
    assert [(c.name, c.level) for c in mine] == [("a red circle", "shapes"), ("a purple giraffe on a bike", "custom")]
    assert mine[1].distractors and "a purple giraffe on a bike" not in mine[1].distractors
    with pytest.raises(ValueError, match="neither a level"):
        select_concepts("shapez")
    with pytest.raises(ValueError, match="lists no concepts"):
        select_concepts(concept_file(tmp_path, "", "  "))


def test_plan_is_stable_and_samples_differ():
    concepts = select_concepts("shapes", limit=3)
    jobs = plan_jobs(concepts, samples=4, seed=1, temperature=0.7, spread=0.2)
    assert jobs == plan_jobs(concepts, samples=4, seed=1, temperature=0.7, spread=0.2)
    assert len(jobs) == 12 and len({j.id for j in jobs}) == 12 and len({j.seed for j in jobs}) == 12
    assert jobs[0].id == "red-circle-0000" and jobs[3].id == "red-circle-0003"
    assert all(0.5 <= j.temperature <= 0.9 for j in jobs) and len({j.temperature for j in jobs}) > 1
    assert plan_jobs(concepts, samples=4, seed=2)[0].seed != jobs[0].seed
    assert job_temperature(5, 0.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="--samples"):
        plan_jobs(concepts, samples=0)


def test_slugs_never_collide():
    from drawloop.concepts import Concept

    a, b = Concept("a red circle", "custom", "custom", ()), Concept("A red circle!", "custom", "custom", ())
    slugs = unique_slugs([a, b])
    assert slugs["a red circle"] == "red-circle" and slugs["A red circle!"].startswith("red-circle-")


# ---------------------------------------------------------------- manifest

def test_manifest_records_commits_failures_and_reopens(tmp_path):
    jobs = plan_jobs(select_concepts("shapes", limit=2), samples=2)
    with Manifest(tmp_path / "m.sqlite") as manifest:
        assert manifest.add_jobs(jobs) == 4 and manifest.add_jobs(jobs) == 0
        manifest.commit(jobs[0].id, {"id": jobs[0].id, "score": 0.5})
        manifest.fail(jobs[1].id, "boom", final=False)
        manifest.fail(jobs[1].id, "boom again", final=True)
        assert manifest.counts() == {"pending": 2, "done": 1, "failed": 1}
        failed = manifest.jobs("failed")[0]
        assert (failed.id, failed.tries, failed.error) == (jobs[1].id, 2, "boom again")
        assert [f["reason"] for f in manifest.failures()] == ["boom", "boom again"]
        manifest.reopen([jobs[0].id, jobs[1].id], reset_tries=True)
        assert manifest.counts() == {"pending": 4, "done": 0, "failed": 0} and manifest.records() == []
    with Manifest(tmp_path / "m.sqlite") as again:   # survives reopening
        assert again.jobs()[1].tries == 0 and len(again.failures()) == 2


# ---------------------------------------------------------------- a whole build

def test_build_draws_every_sample_and_exports_a_readable_dataset(tmp_path):
    names = ("a red circle", "a varied tree", "a blue square")
    result = build(tmp_path, names, samples=3)
    root = tmp_path / "data"
    assert result.counts == {"pending": 0, "done": 9, "failed": 0} and result.stats.done == 9
    rows = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 9 and len({r["png_sha256"] for r in rows}) == 9 and not any(r["duplicate"] for r in rows)
    row = rows[0]
    for key in ("concept", "level", "score", "recognition", "iterations", "model", "seed", "temperature",
                "png_sha256", "code_sha256", "file_name", "code", "split"):
        assert key in row
    assert row["model"] == "custom:PlantedDrawer" and row["iterations"] == 2
    assert (root / row["file_name"]).read_bytes()[:4] == b"\x89PNG" and (root / row["code"]).read_text().startswith("<svg")
    assert row["file_name"] == f"{row['split']}/{row['id']}.png" and "image" not in row
    # split by concept: a concept's drawings all in one split (tests/test_dataset_formats.py has more)
    assert {r["concept"]: r["split"] for r in rows} == {"a varied tree": "validation", "a red circle": "train",
                                                        "a blue square": "train"}

    data = DrawingDataset(root)
    assert len(data) == 9 and data.classes == ["blue-square", "red-circle", "varied-tree"]
    assert {data.label(i) for i in range(9)} == {0, 1, 2} and data.image(0).size == (64, 64)
    assert DrawingDataset(root, split="validation").classes == ["varied-tree"]
    assert len(DrawingDataset(root, split="train")) == 6
    assert len(data.index()) == 9
    from drawloop.vision.data import load_source

    assert tuple(load_source(str(root), size=16).shape) == (9, 3, 16, 16)
    assert len(load_source(str(root), size=16, where={"duplicate": False})) == 9
    card = (root / "README.md").read_text()
    assert "| shapes | 2 | 6 | 6 | 0 | 0 |" in card and "contact_sheets/shapes.png" in card
    assert (root / "contact_sheets" / "shapes.png").is_file() and (root / "contact_sheets" / "custom.png").is_file()
    assert (root / "curated.txt").read_text().count("\n") == 9
    assert "drawloop dataset build --concepts" in card


def test_planted_duplicates_are_removed_and_recuration_restores_them(tmp_path):
    names = ("a planted cat", "a planted twin", "a shifted dog", "a varied tree")
    result = build(tmp_path, names, samples=3)
    root = tmp_path / "data"
    rows = {r["id"]: r for r in map(json.loads, (root / "metadata.jsonl").read_text().splitlines())}
    kept = lambda slug: sorted(i for i, r in rows.items() if r["slug"] == slug and not r["duplicate"])  # noqa: E731
    assert len(kept("planted-cat")) == 1 and len(kept("planted-twin")) == 1     # exact copies, same PNG
    assert len(kept("shifted-dog")) == 1                                        # near copies, other PNGs
    assert len({rows[i]["png_sha256"] for i in rows if rows[i]["slug"] == "shifted-dog"}) > 1
    assert len(kept("varied-tree")) == 3
    dup = next(r for r in rows.values() if r["slug"] == "shifted-dog" and r["duplicate"])
    assert dup["duplicate_of"] in rows and dup["file_name"].startswith("duplicates/") and (root / dup["file_name"]).is_file()
    assert not (root / dup["split"] / f"{dup['id']}.png").exists()
    assert result.summary["duplicates"] == 6 and len(DrawingDataset(root)) == 6
    assert len(DrawingDataset(root, include_duplicates=True)) == 12 and len(DrawingDataset(root).index()) == 6
    assert result.summary["levels"]["custom"]["duplicates"] == 6

    curate_dataset(root, dedup_scope="global")      # the twin's copy of the cat goes too
    assert len(DrawingDataset(root)) == 5 and not list((root / "train").glob("planted-twin-*"))
    curate_dataset(root, dedup_scope="concept")     # and comes back, without redrawing anything
    assert len(DrawingDataset(root)) == 6 and len(list((root / "train").glob("planted-twin-*.png"))) == 1
    with pytest.raises(ValueError, match="dedup"):
        curate_dataset(root, dedup=1.5)


def test_rebuild_resumes_without_redrawing_and_redraws_only_lost_files(tmp_path):
    drawer = PlantedDrawer()
    build(tmp_path, ("a varied tree", "a blue square"), samples=2, drawer=drawer)
    before = (tmp_path / "data" / "metadata.jsonl").read_text()
    calls = len(drawer.calls)
    result = build(tmp_path, ("a varied tree", "a blue square"), samples=2, drawer=drawer)
    assert len(drawer.calls) == calls and result.stats.done_before == 4
    assert (tmp_path / "data" / "metadata.jsonl").read_text() == before
    (tmp_path / "data" / "validation" / "varied-tree-0001.png").unlink()
    build(tmp_path, ("a varied tree", "a blue square"), samples=3, drawer=drawer)   # and one more sample each
    redrawn = {concept for concept, _ in drawer.calls[calls:]}
    assert len(drawer.calls) - calls == 3 * 2 and redrawn == {"a varied tree", "a blue square"}
    rows = [json.loads(line) for line in (tmp_path / "data" / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and (tmp_path / "data" / "validation" / "varied-tree-0001.png").is_file()


def test_failed_drawings_are_recorded_and_retried_on_request(tmp_path):
    class Mute(PlantedDrawer):
        def draw(self, concept, language, history, seed=None):
            if concept == "a mute fox":
                return Draft(code="", error="no svg in the answer")
            return super().draw(concept, language, history, seed)

    result = build(tmp_path, ("a mute fox", "a varied tree"), samples=2, drawer=Mute(), tries=2)
    assert result.counts == {"pending": 0, "done": 2, "failed": 2}
    failures = [json.loads(line) for line in (tmp_path / "data" / "failures.jsonl").read_text().splitlines()]
    assert len(failures) == 4 and all("no svg in the answer" in f["reason"] for f in failures)
    assert "no svg in the answer" in (tmp_path / "data" / "README.md").read_text()
    again = build(tmp_path, ("a mute fox", "a varied tree"), samples=2, drawer=PlantedDrawer(), retry_failed=True)
    assert again.counts == {"pending": 0, "done": 4, "failed": 0}


def test_retry_failed_draws_with_seeds_never_tried_before(tmp_path):
    """--retry-failed gives a fresh set of tries: fresh seeds too, or a seeded model would only
    repeat the answers that failed (and a thread left from a failed try would be read back)."""
    class FailsOnSeeds(PlantedDrawer):
        def __init__(self, failing=None):      # None: every seed fails
            super().__init__()
            self.failing = failing

        def draw(self, concept, language, history, seed=None):
            if self.failing is None or seed in self.failing:
                with self.lock:
                    self.calls.append((concept, seed))
                return Draft(code="", error="no svg in the answer")
            return super().draw(concept, language, history, seed)

    first = FailsOnSeeds()
    assert build(tmp_path, ("a mute fox",), samples=2, drawer=first, tries=2).counts["failed"] == 2
    again = FailsOnSeeds({seed for _, seed in first.calls})     # the same answers to the same seeds
    result = build(tmp_path, ("a mute fox",), samples=2, drawer=again, tries=2, retry_failed=True)
    assert result.counts == {"pending": 0, "done": 2, "failed": 0}
    assert not {seed for _, seed in again.calls} & {seed for _, seed in first.calls}
    rows = [json.loads(line) for line in (tmp_path / "data" / "metadata.jsonl").read_text().splitlines()]
    assert all(row["thread_id"].endswith("~2") for row in rows)    # threads count on past the two given up


CLOSE_WHILE_WRITING = """
import sys, threading, time
from pathlib import Path
from drawloop.runs import sqlite_checkpointer

def busy(saver):
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    try:
        while True:
            saver.get_tuple(config)
            saver.delete_thread("t")
    except Exception:
        pass          # the database closed under it: the thread's next step fails, not the process

for trial in range(100):
    with sqlite_checkpointer(Path(sys.argv[1])) as saver:
        threads = [threading.Thread(target=busy, args=(saver,), daemon=True) for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(0.002)
    for thread in threads:
        thread.join(5)
print("ok")
"""


def test_checkpointer_closes_safely_while_threads_still_use_it(tmp_path):
    """A build stopped by an error closes the checkpoint DB while threads may still be writing to
    it; closing a sqlite3 connection in use by another thread crashes Python (segfault), so the
    close waits for the statement in flight."""
    done = subprocess.run([sys.executable, "-c", CLOSE_WHILE_WRITING, str(tmp_path / "ck.sqlite")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", (done.returncode, done.stderr[-1500:])


# ---------------------------------------------------------------- the command line

def test_cli_rejects_bad_input_clearly(tmp_path):
    from drawloop.cli import build_app

    app = build_app()
    runner = CliRunner()
    bad = runner.invoke(app, ["dataset", "build", "--concepts", "shapez", "--samples", "1", "--out",
                              str(tmp_path / "d"), "--json"])
    flat = lambda result: " ".join(result.output.split())  # noqa: E731  (rich wraps long lines)
    assert bad.exit_code == 2 and "neither a level" in flat(bad)
    bad = runner.invoke(app, ["dataset", "build", "--concepts", "shapes", "--samples", "1", "--out",
                              str(tmp_path / "d"), "--dedup", "1.5", "--json"])
    assert bad.exit_code == 2 and "cosine similarity" in flat(bad) and not (tmp_path / "d").exists()
    info = runner.invoke(app, ["dataset", "info", str(tmp_path)])
    assert info.exit_code == 2 and "not a drawloop dataset" in flat(info)
    with pytest.raises(DatasetError, match="metadata.jsonl"):
        DrawingDataset(tmp_path)


def test_size_of_an_existing_dataset_cannot_change(tmp_path):
    build(tmp_path, ("a varied tree",), samples=1)
    with pytest.raises(ValueError, match="--size 64"):
        build_dataset(concept_file(tmp_path, "a varied tree"), 1, tmp_path / "data", settings(size=128),
                      agents=agents(), embedder="thumbnail")


def test_one_process_at_a_time_per_dataset(tmp_path):
    from drawloop.dataset.build import exclusive

    with exclusive(tmp_path / "data"):
        with pytest.raises(ValueError, match="another drawloop process"):
            build(tmp_path, ("a varied tree",), samples=1)
    assert build(tmp_path, ("a varied tree",), samples=1).counts["done"] == 1   # released with its holder


class DeterministicModel(FakeOpenAI):
    """Answers that depend only on the prompt and the seed, after a fixed delay: two builds of the
    same dataset must come out identical however often one of them is killed."""

    delay = 0.0

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(self.delay)
        prompt = body["messages"][-1]["content"]
        h = zlib.crc32(f"{prompt}|{body.get('seed')}".encode())
        if "Choose exactly one option" in prompt:
            text = "ABC"[h % 3]
        elif "SCORE:" in prompt:
            text = f"SCORE: {h % 11}\nFIXES:\n- make the main shape larger"
        else:
            text = f"```svg\n{varied(h)}\n```"
        self._answer(body, text)


@pytest.fixture
def deterministic_server():
    import http.server

    DeterministicModel.delay = 0.03
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DeterministicModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def _cli_args(concepts: str, out: Path, url: str) -> list[str]:
    return ["dataset", "build", "--concepts", concepts, "--samples", "3", "--out", str(out), "--model", "openai:fake",
            "--base-url", url, "--concurrency", "4", "--max-iters", "3", "--patience", "3", "--size", "64",
            "--embedder", "thumbnail", "--json"]


def _done(out: Path) -> dict[str, str]:
    """Committed drawings (id -> PNG hash), read while the build may be writing."""
    try:
        db = sqlite3.connect(f"file:{out / 'manifest.sqlite'}?mode=ro", uri=True, timeout=5)
        try:
            return {i: json.loads(r)["png_sha256"] for i, r in db.execute("SELECT id, record FROM drawings")}
        finally:
            db.close()
    except sqlite3.Error:
        return {}


def _dataset(out: Path) -> tuple[list[dict], list[str]]:
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("seconds")  # wall time, the one thing that may differ
    files = sorted(str(p.relative_to(out)) for top in ("train", "validation", "duplicates") if (out / top).exists()
                   for p in (out / top).rglob("*") if p.is_file() and p.name != "metadata.jsonl")
    return rows, files


@pytest.mark.slow
def test_sigkill_at_random_points_resumes_to_the_same_dataset(tmp_path, deterministic_server):
    from drawloop.cli import build_app

    concepts = concept_file(tmp_path, "a red circle", "a blue square", "a green triangle", "a cat", "a tree")
    reference = CliRunner().invoke(build_app(), _cli_args(concepts, tmp_path / "ref", deterministic_server))
    assert reference.exit_code == 0, reference.output
    want_rows, want_files = _dataset(tmp_path / "ref")
    assert len(want_rows) == 15

    out = tmp_path / "killed"
    command = [sys.executable, "-m", "drawloop", *_cli_args(concepts, out, deterministic_server)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    rng = random.Random(4)
    # kill while starting, mid-way, and once every drawing is committed (during curation)
    triggers = [("time", rng.uniform(0.5, 2.0)), ("done", rng.randint(2, 11)), ("done", 15)]
    committed: dict[str, str] = {}
    kills = 0
    for kind, value in triggers:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        start = time.monotonic()
        while process.poll() is None and time.monotonic() - start < 120:
            if (kind == "time" and time.monotonic() - start >= value) or \
                    (kind == "done" and len(_done(out)) >= value):
                time.sleep(rng.uniform(0, 0.3))
                process.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.05)
        process.wait(timeout=60)
        now = _done(out)
        assert {i: now[i] for i in committed} == committed   # nothing committed is lost or redrawn
        committed = now
    assert kills >= 2
    final = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert final.returncode == 0, final.stderr[-2000:]
    rows, files = _dataset(out)
    differences = [(a["id"], k, a.get(k), b.get(k)) for a, b in zip(rows, want_rows) for k in a.keys() | b.keys()
                   if a.get(k) != b.get(k)]
    assert len(rows) == len(want_rows) and not differences, differences[:6]
    assert files == want_files                            # same drawings, nothing lost or duplicated
    assert len(files) == 2 * 15 and not any("/." in f for f in files)
    assert {i: committed[i] for i in committed} == {r["id"]: r["png_sha256"] for r in rows if r["id"] in committed}
    with Manifest(out / "manifest.sqlite") as manifest:
        assert manifest.counts() == {"pending": 0, "done": 15, "failed": 0} and manifest.failures() == []


class StallingModel(DeterministicModel):
    """The deterministic model, except that a request hangs (like a model that takes minutes) while
    `stall` is set or when it mentions `stall_on`, until `release`; `waiting` says one hangs."""

    stall, waiting, release = threading.Event(), threading.Event(), threading.Event()
    stall_on = b"\0"

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if StallingModel.stall.is_set() or StallingModel.stall_on in body:
            StallingModel.waiting.set()
            return StallingModel.release.wait(60)
        self.rfile = io.BytesIO(body)
        super().do_POST()


@pytest.fixture
def stalling_server():
    import http.server

    for event in (StallingModel.stall, StallingModel.waiting, StallingModel.release):
        event.clear()
    StallingModel.delay, StallingModel.stall_on = 0.0, b"\0"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StallingModel)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    StallingModel.release.set()
    server.shutdown()


def test_ctrl_c_stops_a_build_blocked_on_the_model_at_once_and_the_rerun_finishes_it(tmp_path, stalling_server):
    """Threads waiting on a model that takes minutes must not hold Ctrl-C: the build exits 130 at
    once, the terminal is left tidy, and the same command then finishes the dataset with every
    drawing committed before the interrupt kept as it was, nothing drawn twice, nothing lost."""
    concepts = concept_file(tmp_path, "a red circle", "a blue square")
    out = tmp_path / "data"
    args = [arg for arg in _cli_args(concepts, out, stalling_server) if arg != "--json"]   # the live view
    args[args.index("--concurrency") + 1] = "2"
    command = [sys.executable, "-m", "drawloop", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TTY_COMPATIBLE": "1", "COLUMNS": "100"}  # Live redraws
    log = tmp_path / "interrupted.log"
    with open(log, "w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 90
            while len(_done(out)) < 2:          # some drawings committed before the model stalls
                assert time.monotonic() < deadline and process.poll() is None, log.read_text()[-3000:]
                time.sleep(0.05)
            StallingModel.stall.set()
            assert StallingModel.waiting.wait(60), log.read_text()[-3000:]
            time.sleep(1.0)                     # both threads now wait on the model
            before = _done(out)
            process.send_signal(signal.SIGINT)
            process.wait(timeout=20)            # far less than the model's 60 s
        finally:
            process.kill()
    output = log.read_text()
    assert process.returncode == 130, output[-3000:]
    view, hint = output[:output.index("interrupted")], output[output.index("interrupted"):]
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", hint)
    assert "resume" in plain and str(out) in plain and "Traceback" not in output
    assert re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", view).endswith("\n")   # the hint starts a line
    assert "\x1b[?25h" in view and "\x1b[?25l" not in hint   # the live view gave the cursor back
    assert 2 <= len(before) < 6 and _done(out) == before

    StallingModel.stall.clear()
    StallingModel.release.set()                 # the model answers again; the same command resumes
    rerun = subprocess.run(command + ["--json"], capture_output=True, text=True, env=env, timeout=120)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    now = _done(out)
    assert {i: now[i] for i in before} == before        # committed before the interrupt: untouched
    rows, files = _dataset(out)
    assert sorted(r["id"] for r in rows) == sorted(now) and len(now) == 6    # every drawing, once
    assert len(files) == 2 * 6 and not any("/." in f for f in files)       # png + code each, no strays
    with Manifest(out / "manifest.sqlite") as manifest:
        assert manifest.counts() == {"pending": 0, "done": 6, "failed": 0} and manifest.failures() == []


def test_an_error_while_threads_wait_on_the_model_exits_at_once(tmp_path, stalling_server):
    """A build that stops on an error (here: a drawing that cannot be written) must not wait for
    the threads still blocked on the model before it says so and exits 1. (Python joins LangGraph's
    node threads at exit, so a plain exit would wait for the model's answer.)"""
    StallingModel.stall_on = b"stuck kettle"
    out = tmp_path / "data"
    (out / "train" / "red-circle-0000.png").mkdir(parents=True)   # a folder where the drawing should be
    args = _cli_args(concept_file(tmp_path, "a stuck kettle", "a red circle"), out, stalling_server)
    args[args.index("--samples") + 1] = "1"
    process = subprocess.Popen([sys.executable, "-m", "drawloop", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=40)     # the stuck thread would hold it for 60 s
    finally:
        process.kill()
    assert StallingModel.waiting.is_set()               # the kettle's thread really was waiting
    assert process.returncode == 1, output[-2000:]     # the work failed (a usage error would be 2)
    assert "error:" in output and "train/red-circle-0000.png" in output and "Traceback" not in output
    with Manifest(out / "manifest.sqlite") as manifest:
        assert manifest.counts() == {"pending": 2, "done": 0, "failed": 0}   # nothing counted that is not on disk


# --- damaged files ------------------------------------------------------------------------------

@pytest.mark.parametrize("damage, says", [
    (lambda p: p.write_bytes(b""), r"is empty \(0 bytes\)"),                   # before: the dataset started over
    (lambda p: p.write_bytes(p.read_bytes()[:1500]), "damaged|cannot be opened"),   # truncated
    (lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4080), "damaged|cannot be opened"),
])
def test_a_damaged_manifest_is_reported_and_nothing_is_redrawn(tmp_path, damage, says):
    from drawloop.cli import build_app
    from drawloop.storage import DamagedStorage

    drawer = PlantedDrawer()
    build(tmp_path, ("a varied tree", "a blue square"), samples=2, drawer=drawer)
    manifest = tmp_path / "data" / "manifest.sqlite"
    damage(manifest)
    calls = len(drawer.calls)
    with pytest.raises(DamagedStorage, match=says) as caught:
        build(tmp_path, ("a varied tree", "a blue square"), samples=2, drawer=drawer)
    assert "manifest.sqlite" in str(caught.value) and "validation/ stay readable" in str(caught.value)
    assert len(drawer.calls) == calls
    info = CliRunner().invoke(build_app(), ["dataset", "info", str(tmp_path / "data")])
    assert info.exit_code == 1 and "Traceback" not in info.output and "manifest" in info.output   # not usage


def test_a_damaged_checkpoint_database_is_reported_with_how_to_recover(tmp_path):
    from drawloop.runs import sqlite_checkpointer
    from drawloop.storage import DamagedStorage

    (tmp_path / "trace.jsonl").write_text('{"node": "draw", "phase": "start"}\n')
    (tmp_path / "checkpoints.sqlite").write_bytes(b"this is not a database, it was overwritten" * 50)
    with pytest.raises(DamagedStorage, match=r"checkpoint database .* (damaged|cannot be opened).*artifacts"):
        with sqlite_checkpointer(tmp_path / "checkpoints.sqlite"):
            pass
    (tmp_path / "checkpoints.sqlite").write_bytes(b"")
    with pytest.raises(DamagedStorage, match="is empty"):
        with sqlite_checkpointer(tmp_path / "checkpoints.sqlite"):
            pass


def test_plans_are_lazy_from_plan_to_manifest_to_threads(tmp_path):
    """`dataset build -c shapes -n 100000` planned every job in memory (1.9 GB, then MemoryError):
    the plan is a generator, the manifest takes it in chunks, the runner starts threads as it reads."""
    import itertools
    import tracemalloc

    from drawloop.dataset.plan import MAX_SAMPLES, iter_jobs

    concepts = select_concepts("shapes")
    plan = iter_jobs(concepts, samples=MAX_SAMPLES)           # millions of jobs, none made yet
    assert [job.id for job in itertools.islice(plan, 2)] == [f"{unique_slugs(concepts)[concepts[0].name]}-0000",
                                                             f"{unique_slugs(concepts)[concepts[0].name]}-0001"]
    tracemalloc.start()
    with Manifest(tmp_path / "manifest.sqlite") as manifest:
        added = manifest.add_jobs(itertools.islice(iter_jobs(concepts, samples=MAX_SAMPLES), 60_000), as_plan=True)
        peak = tracemalloc.get_traced_memory()[1]
        assert added == 60_000 and manifest.counts(planned=True)["pending"] == 60_000
        assert peak < 40 * 2**20        # a list of 60k jobs plus their ids took > 60 MiB
        pages = manifest.iter_jobs("pending", planned=True, page=1000)
        assert next(pages).id.endswith("-0000")
    tracemalloc.stop()

