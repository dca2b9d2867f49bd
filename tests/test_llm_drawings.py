"""Code-only drawings: a real (tiny) dataset built against a loopback OpenAI-compatible server, exported
to one JSON line a drawing (drawloop/dataset/code_export.py), rendered again from the code at load time
(drawloop/vision/llm_drawings.py): the same PNG bytes as the build saved, the same training pixels."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import threading
import zlib

import pytest
import torch
import typer
from conftest import FakeOpenAI
from typer.testing import CliRunner

from drawloop.agents.critic import Critic
from drawloop.config import Settings
from drawloop.dataset import build_dataset
from drawloop.dataset.code_export import FIELDS, export_code
from drawloop.vision.data import DataError, count_images, load_source
from drawloop.vision.llm_drawings import load_drawings, read_drawings

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # fixture in conftest.py

COLOURS = ("#c33", "#3a3", "#33c", "#da2", "#a3a", "#2aa")


def picture(h: int) -> str:
    """A picture that depends on h: a circle and a square, colours, places and sizes from it."""
    return ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" fill="#fff"/>'
            f'<circle cx="{12 + h % 40}" cy="{12 + (h >> 6) % 40}" r="{5 + (h >> 12) % 8}" fill="{COLOURS[h % 6]}"/>'
            f'<rect x="{(h >> 3) % 40}" y="{(h >> 9) % 40}" width="{6 + (h >> 15) % 18}" height="{6 + (h >> 18) % 18}" '
            f'fill="{COLOURS[(h >> 4) % 6]}" opacity="0.8"/><text x="4" y="60" font-size="9">{h % 97}</text></svg>')


class SeededModel(FakeOpenAI):
    """Answers from the prompt and the seed alone: drawings differ by sample, scores by attempt."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        prompt = prompt if isinstance(prompt, str) else json.dumps(prompt)
        h = zlib.crc32(f"{prompt}|{body.get('seed')}".encode())
        if "Choose exactly one option" in prompt:
            text = "ABC"[h % 3]
        elif "SCORE:" in prompt:
            text = f"SCORE: {h % 11}\nFIXES:\n- make the main shape larger"
        else:
            text = f"```svg\n{picture(h)}\n```"
        self._answer(body, text)


class CodeHashScorer:
    """A stand-in critic score from the code alone, so some samples keep a revision and some the first draft."""

    name = "code-hash"

    def score(self, drawing):
        from drawloop.agents.critic import ScoreResult

        return ScoreResult(zlib.crc32(drawing.code.encode()) % 100 / 100, "make it larger", {})


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A finished dataset: 3 concepts x 2 samples, up to 2 attempts each, drawn by the fake server."""
    tmp = tmp_path_factory.mktemp("llm")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SeededModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        concepts = tmp / "concepts.txt"
        concepts.write_text("a red circle\na blue square\na tree\n")
        settings = Settings(model="openai:fake", base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
                            max_iters=2, patience=5, size=64, n_distractors=2)
        # the drawer and recognizer are the server's; the offline pixel critic (a gallery, EfficientNet)
        # would cost most of the test's time, so a score from the code's hash stands in for it
        result = build_dataset(str(concepts), 2, tmp / "data", settings, embedder="thumbnail", concurrency=2,
                               agents={"critic": Critic([(CodeHashScorer(), 1.0)])})
    finally:
        server.shutdown()
    assert result.counts == {"pending": 0, "done": 6, "failed": 0}
    return tmp / "data"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DRAWLOOP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "renders"


def _kept_rows(root):
    rows = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
    return sorted((r for r in rows if not r["duplicate"]), key=lambda r: r["id"])


def test_export_writes_one_line_per_kept_drawing_with_its_code_and_provenance(built, tmp_path):
    out = tmp_path / "drawings.jsonl"
    summary = export_code(built, out)
    kept = _kept_rows(built)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary["drawings"] == len(rows) == len(kept) >= 4 and summary["models"] == {"openai:fake": len(rows)}
    assert [r["id"] for r in rows] == [r["id"] for r in kept]          # sorted by id: stable diffs
    for row, meta in zip(rows, kept):
        assert tuple(row) == FIELDS
        assert row["code"] == (built / meta["code"]).read_text() and row["code"].startswith("<svg")
        assert row["png_sha256"] == meta["png_sha256"] == hashlib.sha256((built / meta["file_name"]).read_bytes()).hexdigest()
        assert row["code_sha256"] == meta["code_sha256"]
        assert (row["model"], row["language"], row["size"]) == ("openai:fake", "svg", 64)
        for key in ("concept", "level", "category", "sample", "seed", "temperature", "iterations", "best_iteration"):
            assert row[key] == meta[key]
        assert row["draft"] == ("first" if not meta["best_iteration"] else "refined")
    assert summary["first_drafts"] + summary["refined"] == len(rows) and summary["first_drafts"] and summary["refined"]
    # .gz: the same rows, and the same bytes every time (no timestamp in the header)
    export_code(built, tmp_path / "a.jsonl.gz")
    export_code(built, tmp_path / "b.jsonl.gz")
    assert gzip.decompress((tmp_path / "a.jsonl.gz").read_bytes()) == out.read_bytes()
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()
    assert read_drawings(tmp_path / "a.jsonl.gz") == rows


def test_reloaded_drawings_render_to_the_builds_png_bytes_and_pixels(built, tmp_path, cache):
    out = tmp_path / "drawings.jsonl"
    export_code(built, out)
    first = load_drawings(out, size=16)
    n = len(first.rows)
    assert (first.rendered, first.cached, first.failed, first.mismatched) == (n, 0, [], [])
    for row in first.rows:  # the cache holds the very PNG the build saved
        png = (cache / f"{row['code_sha256']}-svg-64.png").read_bytes()
        assert hashlib.sha256(png).hexdigest() == row["png_sha256"]
    again = load_drawings(out, size=16)
    assert (again.rendered, again.cached) == (0, n) and torch.equal(again.images, first.images)
    # the same training pixels as the dataset folder's PNGs (its order is by split folder, then id)
    folder = load_source(str(built), size=16)
    from drawloop.vision.data import list_images

    order = [p.stem for p in list_images(built)]
    by_id = dict(zip([r["id"] for r in first.rows], first.images))
    assert torch.equal(torch.stack([by_id[i] for i in order]), folder)
    assert first.describe()["models"] == {"openai:fake": n}
    # as a training source: a seeded subset, and the count compare's equal budget sees
    assert tuple(load_source(str(out), size=16, limit=3, seed=1).shape) == (3, 3, 16, 16)
    assert torch.equal(load_source(str(out), size=16, limit=3, seed=1), load_source(str(out), size=16, limit=3, seed=1))
    assert count_images(str(out)) == n


def test_a_drawing_that_renders_differently_is_reported_not_passed_off(built, tmp_path, cache):
    out = tmp_path / "drawings.jsonl"
    export_code(built, out)
    rows = read_drawings(out)
    rows[0]["code"] = rows[0]["code"].replace('fill="#fff"', 'fill="#000"', 1)   # not the build's picture now
    rows[1]["code"] = "<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"  # refused
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_drawings(out, size=16)
    assert loaded.mismatched == [rows[0]["id"]] and loaded.failed == [rows[1]["id"]]
    assert len(loaded.rows) == len(rows) - 1 == len(loaded.images)
    with pytest.raises(DataError, match="1 drawings did not render and 1 rendered other pixels"):
        load_drawings(out, size=16, strict=True)


def test_cli_export_code_and_clear_errors(built, tmp_path):
    from drawloop.commands.dataset import register

    app = typer.Typer()
    register(app)
    out = tmp_path / "d.jsonl"
    result = CliRunner().invoke(app, ["dataset", "export-code", str(built), str(out)])
    assert result.exit_code == 0, result.output
    assert "drawn by openai:fake" in result.output and out.is_file()
    result = CliRunner().invoke(app, ["dataset", "export-code", str(tmp_path / "nothing"), str(out)])
    assert result.exit_code == 2 and "no metadata.jsonl" in result.output
    (tmp_path / "bad.jsonl").write_text('{"id": "x"}\n')
    with pytest.raises(DataError, match="lacks language, size, code, png_sha256"):
        load_source(str(tmp_path / "bad.jsonl"), size=16)
    with pytest.raises(DataError, match="does not exist"):
        load_source(str(tmp_path / "missing.jsonl"), size=16)


def test_train_streams_code_only_drawings_from_the_render_cache(built, tmp_path, cache):
    from drawloop.commands.train import register
    from drawloop.vision.llm_drawings import render_to_cache

    out = tmp_path / "drawings.jsonl"
    export_code(built, out)
    rows = read_drawings(out)
    paths = render_to_cache(rows, chunk=2)                       # a chunk at a time, no PNG held
    assert all(p.is_file() and p.parent == cache for p in paths) and len(paths) == len(rows)
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["train", "--data", str(out), "--stream", "--workers", "1", "--epochs", "1",
                                      "--size", "16", "--arch", "resnet10", "--width", "4", "--batch-size", "4",
                                      "--threads", "1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "train.json").read_text())["images"] == len(rows)
