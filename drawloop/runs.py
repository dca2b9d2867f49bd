"""A run on disk: one directory per `drawloop draw`, everything needed to resume or replay it.

    run = Run.create("runs", concept="a red apple", settings=settings)
    path = run.store.put(png_bytes, ".png")      # "artifacts/3f/3fa9....png", content-addressed
    with run.checkpointer() as saver: ...         # LangGraph checkpointer for this run (SQLite here,
                                                  # or Postgres: --checkpoint / $DRAWLOOP_CHECKPOINT)
    run.finish(state)                             # best.svg, best.png, contact_sheet.png, result.json

Layout of runs/<run-id>/:
    run.json            what was asked: concept, settings (no secrets), model, versions
    checkpoints.sqlite  LangGraph state after every node, keyed by thread id -> resume
                        (postgres.json instead when they are in Postgres: it names the schema)
    trace.jsonl         one event per node start/end (trace/events.py)
    artifacts/          every attempt's code and PNG, named by SHA-256
    best.svg|py, best.png, contact_sheet.png, result.json   written when the thread finishes
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator

from drawloop import imaging
from drawloop.imaging import PICK_FRAME, PLAIN_FRAME, Tile
from drawloop.storage import PostgresPlace, advisory_lock, checkpoint_url, open_sqlite, postgres_place
from drawloop.state import Attempt, DrawState, attempt_score

CODE_SUFFIX = {"svg": ".svg", "python": ".py"}


def slug(text: str, limit: int = 40) -> str:
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return cleaned[:limit].rstrip("-") or "run"


def new_run_id(concept: str) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{slug(concept, 32)}-{secrets.token_hex(2)}"


@contextlib.contextmanager
def sqlite_checkpointer(path: Path) -> Iterator[Any]:
    """A LangGraph SqliteSaver on `path`, shared by any number of threads (keyed by thread_id).
    SqliteSaver serialises access through one connection and a lock; WAL with synchronous=NORMAL
    survives a killed process (not a power cut, which costs at most the last checkpoints: the
    threads redo those nodes). Measured in bench/batch.py against one file per thread."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    folder = Path(path).parent
    conn = open_sqlite(path, "the checkpoint database", check_same_thread=False, timeout=60,
                       must_exist=lambda: (folder / "trace.jsonl").exists() and (folder / "trace.jsonl").stat().st_size > 0,
                       recover=f"every finished drawing is still in {folder / 'artifacts'} and trace.jsonl; "
                               f"move {Path(path).name} aside to start the loop over there")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    saver = SqliteSaver(conn)
    try:
        yield saver
    finally:
        # Threads may still be writing (stopped on an error): closing a connection under a
        # statement in flight crashes Python, so wait for it; their next step then fails cleanly.
        with saver.lock:
            conn.close()


@contextlib.contextmanager
def postgres_checkpointer(place: PostgresPlace) -> Iterator[Any]:
    """A LangGraph PostgresSaver in `place`'s schema, shared by any number of threads like the
    SQLite one. One connection, not a pool: PostgresSaver holds its own lock around every call
    (pool or not), so a pool would only open idle connections. The connection is autocommit,
    which PostgresSaver.setup() needs (CREATE INDEX CONCURRENTLY), with prepare_threshold=0 and
    dict rows, as PostgresSaver.from_conn_string makes it; setup() runs under an advisory lock, so
    two processes starting on one fresh schema do not race its migrations."""
    from langgraph.checkpoint.postgres import PostgresSaver

    conn = place.connect(dict_rows=True)
    try:
        saver = PostgresSaver(conn)
        with advisory_lock(conn, f"drawloop-setup:{place.schema}"):
            saver.setup()
    except BaseException:
        conn.close()
        raise
    try:
        yield saver
    finally:
        with saver.lock:        # as for SQLite: let a statement in flight finish first
            conn.close()


@contextlib.contextmanager
def open_checkpointer(path: Path, url: str | None = None, place: PostgresPlace | None = None) -> Iterator[Any]:
    """The one place a checkpointer is chosen: Postgres when `place` is given, or `url` (else
    $DRAWLOOP_CHECKPOINT) is a postgresql:// URL, in the schema the folder of `path` names in its
    postgres.json; otherwise the SQLite file `path`, the default on one machine."""
    if place is None:
        folder = Path(path).parent
        trace = folder / "trace.jsonl"
        place = postgres_place(folder, checkpoint_url(url), "the checkpoints", path,
                               must_exist=lambda: trace.exists() and trace.stat().st_size > 0)
    if place is None:
        with sqlite_checkpointer(path) as saver:
            yield saver
    else:
        with postgres_checkpointer(place) as saver:
            yield saver


class ArtifactStore:
    """Content-addressed files under <run>/artifacts; paths returned are relative to the run.
    Safe for many threads and processes: each writer has its own temp file, and the rename is
    atomic, so two writers of the same picture never tear it and a killed run never leaves half.

    Shared storage: the directory may be any mounted path, an NFS (or similar) folder that several
    machines see included. That needs only what put() does: a temp name no other machine picks
    (pid and thread ident repeat across hosts, so a random token too), write + fsync, then rename,
    which NFS performs atomically on the server, and an fsync of the folder, so a rename a power
    cut would lose cannot leave a checkpoint (perhaps in Postgres on another machine, which
    survives) naming a missing file. Readers open a file only after a checkpoint names it, that is
    after its rename: close-to-open consistency is enough. Object stores (s3://, gs://) are not
    mounted here on purpose: put() and read() are the single seam, and an fsspec-backed store with
    the same two methods (fs.pipe to a temp key, then fs.mv, or a conditional put) can replace this
    class without changing a caller; none uses path(), which only a local folder can honour."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)

    def put(self, data: bytes | str, suffix: str) -> str:
        blob = data.encode("utf-8") if isinstance(data, str) else data
        digest = hashlib.sha256(blob).hexdigest()
        rel = Path("artifacts") / digest[:2] / f"{digest}{suffix}"
        target = self.run_dir / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{threading.get_ident()}-"
                                   f"{secrets.token_hex(4)}")
            with open(tmp, "wb") as handle:
                handle.write(blob)
                handle.flush()
                os.fsync(handle.fileno())   # on disk before any checkpoint can name it (power cuts)
            os.replace(tmp, target)
            _fsync_dir(target.parent)      # and so is its name
        return rel.as_posix()

    def read(self, rel: str) -> bytes:
        return (self.run_dir / rel).read_bytes()

    def path(self, rel: str) -> Path:
        return self.run_dir / rel


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:     # some file systems refuse to fsync a folder; the rename itself is done
        pass
    finally:
        os.close(fd)


class Run:
    def __init__(self, run_dir: Path, meta: dict[str, Any]):
        self.dir = Path(run_dir)
        self.meta = meta
        self.store = ArtifactStore(self.dir)

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def trace_path(self) -> Path:
        return self.dir / "trace.jsonl"

    @property
    def checkpoint_path(self) -> Path:
        return self.dir / "checkpoints.sqlite"

    @classmethod
    def create(cls, runs_dir: str | Path, concept: str, settings: Any, model_label: str = "",
               run_dir: str | Path | None = None) -> "Run":
        path = Path(run_dir) if run_dir else Path(runs_dir) / new_run_id(concept)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "run_id": path.name,
            "thread_id": path.name,   # the LangGraph thread (runs before it was recorded used "main")
            "concept": concept,
            "created": dt.datetime.now().isoformat(timespec="seconds"),
            "model": model_label or getattr(settings, "model", ""),
            "settings": settings.public() if hasattr(settings, "public") else dict(settings),
        }
        (path / "run.json").write_text(json.dumps(meta, indent=2, default=str))
        return cls(path, meta)

    @classmethod
    def open(cls, run_dir: str | Path) -> "Run":
        path = Path(run_dir)
        meta_path = path / "run.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{path} is not a drawloop run (no run.json)")
        return cls(path, json.loads(meta_path.read_text()))

    @contextlib.contextmanager
    def checkpointer(self, url: str | None = None) -> Iterator[Any]:
        """SQLite at checkpoint_path, or Postgres for a postgresql:// `url` (else $DRAWLOOP_CHECKPOINT)."""
        with open_checkpointer(self.checkpoint_path, url) as saver:
            yield saver

    def finish(self, state: DrawState, summary: dict[str, Any]) -> None:
        """Write the best drawing, the contact sheet and result.json (idempotent)."""
        attempts = state.get("attempts") or []
        best = state.get("best")
        if best is not None and attempts:
            attempt = attempts[best]
            suffix = CODE_SUFFIX.get(attempt.get("language", "svg"), ".txt")
            (self.dir / f"best{suffix}").write_text(attempt.get("code", ""))
            if attempt.get("image"):
                (self.dir / "best.png").write_bytes(self.store.read(attempt["image"]))
        if attempts:
            contact_sheet(attempts, self.store, best=best, title=state.get("concept", ""),
                          path=self.dir / "contact_sheet.png", rounds=state.get("rounds"))
        (self.dir / "result.json").write_text(json.dumps(summary, indent=2, default=str))


def _caption(attempt: Attempt, verdict: str | None = None) -> list[str]:
    where = f"round {attempt['round']} · cand {attempt.get('candidate', 0)}" if verdict is not None \
        else f"iter {attempt.get('iteration', 0)}"
    line1 = f"{where}  score {attempt_score(attempt):.2f}"
    recognition = attempt.get("recognition") or {}
    if attempt.get("draw_error"):
        line2 = "no code: " + attempt["draw_error"]
    elif attempt.get("render_error"):
        line2 = "render failed: " + attempt["render_error"]
    elif recognition.get("label"):
        mark = "✓" if recognition.get("correct") else "✗"
        line2 = f"{mark} seen as: {recognition['label']}"
    else:
        line2 = "not recognized"
    return [line1, line2] + ([verdict] if verdict else [])


def _verdicts(rounds: list[dict] | None) -> dict[int, str]:
    """attempt index -> what the judge said of it, for the round winners."""
    said = {}
    for outcome in rounds or []:
        text = "kept as best" if outcome.get("replaced") else "rejected: " + (outcome.get("reason") or "")
        said[outcome["winner"]] = text
    return said


def contact_sheet(attempts: list[Attempt], store: ArtifactStore, best: int | None, title: str, path: Path,
                  tile: int = 220, columns: int = 4, rounds: list[dict] | None = None) -> Path:
    """A PNG grid of every attempt with its score and what the recognizer saw; the best is framed.
    With several candidates a round, each round is a row and the judge's verdict is under its winner."""
    per_round = max((a.get("candidate", 0) for a in attempts), default=0) + 1
    multi = per_round > 1
    if multi:
        columns = per_round
    verdicts = _verdicts(rounds) if multi else {}
    tiles = []
    for i, attempt in enumerate(attempts):
        lines = _caption(attempt, verdicts.get(i, "") if multi else None)
        tiles.append(Tile(store.read(attempt["image"]) if attempt.get("image") else None, lines,
                          frame=PICK_FRAME if i == best else PLAIN_FRAME, frame_width=4 if i == best else 1,
                          line_colours=[(30, 120, 50) if line == "kept as best" else "black" for line in lines]))
    rows = [tiles[i:i + columns] for i in range(0, len(tiles), columns)]
    path.parent.mkdir(parents=True, exist_ok=True)
    imaging.contact_sheet(rows, title=title[:90], tile=tile).save(path)
    return path