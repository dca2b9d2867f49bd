"""The embedded model: cache checks (fast) and the real llama.cpp server end to end (slow)."""

import os
from pathlib import Path

import httpx
import pytest

from drawloop import local_model
from drawloop.local_model import LocalModelError, LocalServer, ModelSpec, model_path


def test_missing_model_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("DRAWLOOP_CACHE", str(tmp_path))
    with pytest.raises(LocalModelError, match="make model"):
        model_path("qwen2.5-coder-1.5b")
    with pytest.raises(LocalModelError, match="no GGUF file"):
        model_path(str(tmp_path / "nope.gguf"))


def test_corrupt_model_is_rejected_and_verified_marker_is_tied_to_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DRAWLOOP_CACHE", str(tmp_path))
    payload = b"GGUF fake weights"
    import hashlib

    spec = ModelSpec("tiny", "tiny.gguf", "none-part", "0", 1, hashlib.sha256(payload).hexdigest())
    monkeypatch.setitem(local_model.MODELS, "tiny", spec)
    target = tmp_path / "models" / "tiny.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"GGUF corrupted!!!")
    with pytest.raises(LocalModelError, match="not set up"):
        model_path("tiny")
    target.write_bytes(payload)
    assert model_path("tiny") == target
    assert target.with_suffix(".verified").read_text().startswith(spec.sha256)
    target.write_bytes(b"GGUF swapped later")  # size changes -> marker no longer matches -> rehash fails
    with pytest.raises(LocalModelError):
        model_path("tiny")


def test_fetch_assembles_parts_in_order_and_checks_the_hash(tmp_path, monkeypatch):
    import hashlib
    import types
    import sys

    parts = [b"first-", b"second-", b"third"]
    for i, data in enumerate(parts, 1):
        path = tmp_path / f"part{i}.bin"
        path.write_bytes(data)
        module = types.ModuleType(f"fake_model_part{i}")
        module.get_part_path = (lambda p=path: str(p))
        monkeypatch.setitem(sys.modules, f"fake_model_part{i}", module)
    good = ModelSpec("fake", "fake.gguf", "fake-model-part", "0", 3, hashlib.sha256(b"".join(parts)).hexdigest())
    monkeypatch.setenv("DRAWLOOP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(local_model.MODELS, "fake", good)
    assert local_model.fetch("fake", log=lambda *_: None).read_bytes() == b"first-second-third"
    bad = ModelSpec("bad", "bad.gguf", "fake-model-part", "0", 3, "0" * 64)
    monkeypatch.setitem(local_model.MODELS, "bad", bad)
    with pytest.raises(LocalModelError, match="expected 0000"):
        local_model.fetch("bad", log=lambda *_: None)
    assert not (tmp_path / "cache" / "models" / "bad.gguf").exists()


def _model_ready() -> bool:
    try:
        model_path()
    except LocalModelError:
        return False
    return True


needs_model = pytest.mark.skipif(not _model_ready() and not os.environ.get("CI"),
                                 reason="local model not fetched (make model)")


@pytest.mark.slow
@needs_model
def test_real_server_honours_token_cap_and_stops_with_us():
    with LocalServer(model_path()) as server:
        reply = httpx.post(server.base_url + "/chat/completions", timeout=300, json={
            "model": "local", "max_tokens": 12, "temperature": 0,
            "messages": [{"role": "user", "content": "Count from 1 to 100, comma separated."}]}).json()
        assert reply["usage"]["completion_tokens"] <= 12
        process = server.process
    assert process.poll() is not None  # the server is gone when the context ends


@pytest.mark.slow
@needs_model
def test_real_model_draws_two_iterations_end_to_end(tmp_path):
    from drawloop import draw

    result = draw("a red circle", model="local", max_iters=2, patience=5, runs_dir=str(tmp_path), seed=0,
                  max_tokens=600)
    assert len(result.attempts) == 2 and result.stop_reason == "max_iters"
    rendered = [a for a in result.attempts if a.get("image")]
    assert rendered, [a.get("draw_error") or a.get("render_error") for a in result.attempts]
    assert all(a.get("critique") is not None for a in result.attempts)
    assert result.usage()["tokens_out"] > 20
    assert (result.run_dir / "contact_sheet.png").exists() and (result.run_dir / "best.png").exists()


@pytest.mark.slow
@needs_model
def test_server_dies_with_a_parent_that_exits_abruptly_and_leaves_no_log(tmp_path):
    """Ctrl-C ends drawloop's commands with os._exit (no atexit, no stop()): the llama.cpp server
    must still go, even in its own session (DRAWLOOP_SERVER_NICE), and leave no log file behind."""
    import os
    import subprocess
    import sys
    import time

    script = ("import os, sys\n"
              "from drawloop.local_model import LocalServer, model_path\n"
              "server = LocalServer(model_path()).start()\n"
              "print(server.process.pid, flush=True)\n"
              "os._exit(130)\n")
    env = {**os.environ, "DRAWLOOP_SERVER_NICE": "-1", "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 130, done.stderr
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(pid, 9)
        raise AssertionError("the llama.cpp server outlived its parent")
    assert not list(tmp_path.glob("drawloop-llama-*"))


REVISION = [{"role": "system", "content": "You write SVG code."},
            {"role": "user", "content": "Here is your previous drawing code for a bicycle:\n```svg\n"
             + (Path(__file__).parent / "ladders" / "bicycle" / "4_detailed.svg").read_text()
             + "\n```\nImprove it: make the wheels thicker. Answer with the whole SVG."}]


@pytest.mark.slow
@needs_model
def test_speculation_keeps_the_greedy_text_of_a_revision_and_drafts_tokens():
    """One fresh server per setting and cache_prompt off, so no prompt-cache state can differ."""
    answers = {}
    for speculation in ("ngram-mod", "off"):
        with LocalServer(model_path(), threads=2, speculation=speculation) as server:
            reply = httpx.post(server.base_url + "/chat/completions", timeout=600, json={
                "model": "local", "max_tokens": 120, "temperature": 0, "cache_prompt": False,
                "messages": REVISION}).json()
        answers[speculation] = (reply["choices"][0]["message"]["content"], reply.get("timings") or {})
    (on_text, on_timings), (off_text, off_timings) = answers["ngram-mod"], answers["off"]
    assert on_text == off_text and len(off_text) > 100
    assert on_timings.get("draft_n", 0) > 0 and not off_timings.get("draft_n")


def test_the_speculation_setting_reaches_the_server_and_can_be_switched_off(monkeypatch):
    from drawloop.config import Settings
    from drawloop.llm import ModelHandle
    import drawloop.local_model as local_model

    started = []

    class Recorder:
        def __init__(self, gguf, **kwargs):
            started.append(kwargs)
            self.base_url = "http://127.0.0.1:1/v1"

        def start(self):
            return self

    monkeypatch.setattr(local_model, "LocalServer", Recorder)
    monkeypatch.setattr(local_model, "model_path", lambda name=None: Path("/nowhere.gguf"))
    ModelHandle(Settings.from_env()).open()
    monkeypatch.setenv("DRAWLOOP_SPECULATION", "off")
    ModelHandle(Settings.from_env()).open()
    assert [s["speculation"] for s in started] == ["ngram-mod", "off"]
    monkeypatch.setenv("DRAWLOOP_SPECULATION", "fast")
    with pytest.raises(ValueError, match=r"--speculation \(DRAWLOOP_SPECULATION\) must be"):
        Settings.from_env()
    with pytest.raises(ValueError, match="speculation must be one of"):
        LocalServer(Path("/nowhere.gguf"), speculation="fast")   # the real class, imported at the top
