"""What LangSmith sees (LANGSMITH_TRACING=true): one thread per run, a run name, tags (concept,
level, model) and metadata on the graph's config, checked with a callback handler (no network).
Thread ids are unique per run and the same when a run resumes."""

import json
import sqlite3

from langchain_core.callbacks import BaseCallbackHandler

import drawloop
from conftest import SmartChat


class Runs(BaseCallbackHandler):
    """Records what a LangSmith tracer would get: the root run, and every chat model call."""

    def __init__(self):
        self.roots, self.chats = [], []

    def on_chain_start(self, serialized, inputs, *, run_id, parent_run_id=None, tags=None, metadata=None, **kw):
        if parent_run_id is None:
            self.roots.append({"name": kw.get("name"), "tags": tags or [], "metadata": dict(metadata or {})})

    def on_chat_model_start(self, serialized, messages, *, run_id, parent_run_id=None, tags=None, metadata=None,
                            **kw):
        self.chats.append({"tags": tags or [], "metadata": dict(metadata or {})})


def test_a_draw_is_one_langsmith_thread_named_and_tagged(tmp_path):
    runs = Runs()
    result = drawloop.draw("a bicycle", chat_model=SmartChat(concept="a bicycle"), runs_dir=str(tmp_path),
                           max_iters=1, config={"callbacks": [runs], "tags": ["mine"], "metadata": {"user": "ann"}})
    run_id = result.run_dir.name
    (root,) = runs.roots
    assert root["name"] == "drawloop draw"
    assert {"drawloop", "drawloop:draw", "concept:a bicycle", "level:objects", "model:langchain:SmartChat:smart-fake",
            "mine"} <= set(root["tags"])
    meta = root["metadata"]
    assert meta["thread_id"] == run_id and meta["drawloop_run"] == run_id and meta["user"] == "ann"
    assert (meta["concept"], meta["level"], meta["drawloop_kind"]) == ("a bicycle", "objects", "draw")
    assert json.loads((result.run_dir / "run.json").read_text())["thread_id"] == run_id   # the checkpoint thread too
    assert runs.chats and all(c["metadata"]["thread_id"] == run_id for c in runs.chats)
    assert {c["metadata"]["langgraph_node"] for c in runs.chats} == {"draw", "recognize", "critique"}
    events = [json.loads(line) for line in (result.run_dir / "trace.jsonl").read_text().splitlines()]
    assert {e["thread"] for e in events} == {run_id}


def test_two_draws_are_two_threads(tmp_path):
    runs = Runs()
    for _ in range(2):
        drawloop.draw("a red apple", chat_model=SmartChat(), runs_dir=str(tmp_path), max_iters=1,
                      config={"callbacks": [runs]})
    assert len({r["metadata"]["thread_id"] for r in runs.roots}) == 2


def test_a_run_from_before_keeps_resuming_its_main_thread(tmp_path):
    result = drawloop.draw("a red apple", chat_model=SmartChat(), runs_dir=str(tmp_path), max_iters=1)
    run_dir, run_id = result.run_dir, result.run_dir.name
    # what an older drawloop left: no thread_id in run.json, checkpoints under "main"
    meta = json.loads((run_dir / "run.json").read_text())
    del meta["thread_id"]
    (run_dir / "run.json").write_text(json.dumps(meta))
    with sqlite3.connect(run_dir / "checkpoints.sqlite") as db:
        for table in ("checkpoints", "writes"):
            db.execute(f"UPDATE {table} SET thread_id = 'main' WHERE thread_id = ?", (run_id,))
    chat, runs = SmartChat(), Runs()
    again = drawloop.draw(resume=run_dir, chat_model=chat, config={"callbacks": [runs]})
    assert chat.calls == [] and again.scores == result.scores   # read back, nothing redrawn
    # and a current run resumes its own thread the same way
    chat = SmartChat()
    fresh = drawloop.draw("a red apple", chat_model=SmartChat(), runs_dir=str(tmp_path), max_iters=1)
    assert drawloop.draw(resume=fresh.run_dir, chat_model=chat).scores == fresh.scores and chat.calls == []


def test_batch_jobs_are_langsmith_threads_unique_to_the_build(tmp_path, monkeypatch):
    import drawloop.graphs.batch as batch
    from test_batch import SeedDrawer, jobs, make_cache

    from langgraph.checkpoint.sqlite import SqliteSaver

    configs = []
    real = batch.run_thread
    monkeypatch.setattr(batch, "run_thread", lambda graph, config, *a, **k: configs.append(config) or
                        real(graph, config, *a, **k))
    conn = sqlite3.connect(tmp_path / "ck.sqlite", check_same_thread=False)
    graphs = make_cache(tmp_path, SqliteSaver(conn), SeedDrawer(), max_iters=1)
    batch.BatchRunner(graphs, concurrency=2, run_id="data", trace_key="data-1a2b").run(jobs(2), lambda outcome: None)
    assert sorted(c["metadata"]["thread_id"] for c in configs) == ["data-1a2b/job-0", "data-1a2b/job-1"]
    assert sorted(c["configurable"]["thread_id"] for c in configs) == ["job-0", "job-1"]   # checkpoints: as before
    config = configs[0]
    assert config["run_name"] == "drawloop batch" and "concept:a red circle" in config["tags"]
    assert "level:shapes" in config["tags"] and config["metadata"]["job"] in ("job-0", "job-1")
    conn.close()


def test_a_dataset_keeps_its_trace_key_across_resumes(tmp_path):
    from drawloop.dataset.build import _trace_key
    from drawloop.dataset.manifest import Manifest

    with Manifest(tmp_path / "a" / "manifest.sqlite") as manifest:
        key = _trace_key(manifest, tmp_path / "a")
    with Manifest(tmp_path / "a" / "manifest.sqlite") as manifest:   # the build resumed
        assert _trace_key(manifest, tmp_path / "a") == key and key.startswith("a-")
    with Manifest(tmp_path / "b" / "a" / "manifest.sqlite") as manifest:   # another build, same folder name
        assert _trace_key(manifest, tmp_path / "b" / "a") != key


def test_checkup_threads_are_unique_to_the_checkup_and_kept_on_resume(tmp_path, monkeypatch):
    import drawloop.checkup.run as checkup
    from test_checkup import cat_gallery, make_checkup

    from drawloop.agents.recognizer import make_choices
    from drawloop.graphs.refine import default_distractors

    configs = []
    real = checkup.run_thread
    monkeypatch.setattr(checkup, "run_thread", lambda graph, config, *a, **k: configs.append(config) or
                        real(graph, config, *a, **k))
    items = cat_gallery(tmp_path, make_choices("a cat", default_distractors("a cat", 4, 0), 0))
    make_checkup(tmp_path / "c", items, samples=1).run()
    key = json.loads((tmp_path / "c" / "checkup.json").read_text())["trace_key"]
    first = sorted(c["metadata"]["thread_id"] for c in configs)
    assert first and all(t.startswith(f"{key}/") for t in first)
    assert {c["run_name"] for c in configs} == {"drawloop checkup"}
    assert {t for c in configs for t in c["tags"] if t.startswith("level:")} == {"level:shapes", "level:objects"}
    configs.clear()
    make_checkup(tmp_path / "c", items, samples=1).run()   # resumed: the same key, the same threads
    assert json.loads((tmp_path / "c" / "checkup.json").read_text())["trace_key"] == key
    assert sorted(c["metadata"]["thread_id"] for c in configs) == first
