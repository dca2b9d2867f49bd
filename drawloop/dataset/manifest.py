"""The build's ledger: which jobs exist, which are done, which failed and why (SQLite, one writer).

    manifest = Manifest(root / "manifest.sqlite")
    manifest.add_jobs(planned_jobs)                     # idempotent: known ids are left alone
    manifest.pending()                                  # [(PlannedJob-like row, tries), ...]
    manifest.commit("red-circle-0000", record)          # the drawing's metadata; the job is done
    manifest.fail("red-circle-0001", "no drawing rendered...", final=False)
    manifest.records()                                  # every committed drawing's metadata, by id
    manifest.counts()                                   # {"done": 10, "pending": 2, "failed": 1}

The manifest is the truth about a dataset: files on disk that it does not list are leftovers of a
killed commit and get rewritten; a job it lists as done is never drawn again. Every write is one
transaction in rollback-journal mode with synchronous=FULL, so a SIGKILL (or power loss) leaves
either the old or the new state, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from drawloop.storage import open_sqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, concept TEXT NOT NULL, level TEXT, category TEXT, slug TEXT NOT NULL,
    sample INTEGER, seed INTEGER, temperature REAL,
    status TEXT NOT NULL DEFAULT 'pending',       -- pending | done | failed (gave up)
    tries INTEGER NOT NULL DEFAULT 0,             -- failed tries so far
    error TEXT, updated REAL);
CREATE TABLE IF NOT EXISTS drawings (id TEXT PRIMARY KEY, record TEXT NOT NULL, created REAL);
CREATE TABLE IF NOT EXISTS failures (job_id TEXT, try INTEGER, reason TEXT, at REAL);
CREATE TABLE IF NOT EXISTS plan (id TEXT PRIMARY KEY);   -- the jobs of the latest build command
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
"""


def _has_drawings(root: Path, path: Path) -> bool:
    """A dataset exists here: its export, or (next to a manifest file that is there but empty) drawings."""
    if (root / "metadata.jsonl").exists():
        return True
    return path.exists() and (root / "images").is_dir() and any((root / "images").iterdir())


@dataclass(frozen=True)
class JobRow:
    id: str
    concept: str
    level: str
    category: str
    slug: str
    sample: int
    seed: int
    temperature: float
    status: str
    tries: int
    error: str | None


class Manifest:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        root = self.path.parent
        self.db = open_sqlite(self.path, "the dataset's manifest", isolation_level=None, timeout=30,
                              must_exist=lambda: _has_drawings(root, self.path),
                              recover=f"restore it from a backup, or move {root} aside and build again "
                                      "(the drawings under images/ stay readable)")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Manifest":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _transaction(self, statements: Iterable[tuple[str, tuple]]) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for sql, args in statements:
                db.execute(sql, args)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # ------------------------------------------------------------ build settings

    def info(self) -> dict[str, Any]:
        return {key: json.loads(value) for key, value in self.db.execute("SELECT key, value FROM info")}

    def set_info(self, values: dict[str, Any]) -> None:
        self._transaction(("INSERT OR REPLACE INTO info VALUES (?, ?)", (key, json.dumps(value, default=str)))
                          for key, value in values.items())

    # ------------------------------------------------------------ jobs

    def add_jobs(self, jobs: Iterable[Any], as_plan: bool = False, chunk: int = 5000) -> int:
        """Register planned jobs (drawloop.dataset.plan.PlannedJob), streamed in chunks so a plan
        of millions never sits in memory; returns how many were new. With `as_plan` they also
        become the current plan (`planned=True` below), replacing the previous one."""
        before = self.db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        if as_plan:
            self._transaction([("DELETE FROM plan", ())])
        batch: list[Any] = []
        for job in jobs:
            batch.append(job)
            if len(batch) >= chunk:
                self._add(batch, as_plan)
                batch = []
        self._add(batch, as_plan)
        return self.db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] - before

    def _add(self, jobs: list[Any], as_plan: bool) -> None:
        now = time.time()
        statements = [("INSERT OR IGNORE INTO jobs (id, concept, level, category, slug, sample, seed, temperature, "
                       "updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (j.id, j.concept.name, j.concept.level, j.concept.category, j.slug, j.sample, j.seed,
                        j.temperature, now)) for j in jobs]
        if as_plan:
            statements += [("INSERT OR IGNORE INTO plan VALUES (?)", (j.id,)) for j in jobs]
        self._transaction(statements)

    def jobs(self, status: str | None = None, planned: bool = False) -> list[JobRow]:
        return list(self.iter_jobs(status, planned))

    def iter_jobs(self, status: str | None = None, planned: bool = False, page: int = 2000) -> Iterator[JobRow]:
        """Jobs in id order, a page at a time (no cursor stays open across the writes a caller makes);
        safe to consume from any thread."""
        where = [("status = ?", status)] if status else []
        clauses = [c for c, _ in where] + (["id IN (SELECT id FROM plan)"] if planned else [])
        last = ""
        while True:
            sql = ("SELECT id, concept, level, category, slug, sample, seed, temperature, status, tries, error "
                   "FROM jobs WHERE " + " AND ".join(clauses + ["id > ?"]) + " ORDER BY id LIMIT ?")
            # Its own short connection per page: the batch runner pulls jobs from a worker thread,
            # and the writer's connection belongs to the thread that opened the manifest.
            with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as db:
                rows = db.execute(sql, (*[v for _, v in where], last, page)).fetchall()
            yield from (JobRow(*row) for row in rows)
            if len(rows) < page:
                return
            last = rows[-1][0]

    def job(self, job_id: str) -> JobRow:
        row = self.db.execute("SELECT id, concept, level, category, slug, sample, seed, temperature, status, tries, "
                              "error FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(job_id)
        return JobRow(*row)

    def counts(self, planned: bool = False) -> dict[str, int]:
        counts = {"pending": 0, "done": 0, "failed": 0}
        sql = "SELECT status, COUNT(*) FROM jobs" + (" WHERE id IN (SELECT id FROM plan)" if planned else "")
        counts.update(dict(self.db.execute(sql + " GROUP BY status").fetchall()))
        return counts

    def reopen(self, ids: Iterable[str], reset_tries: bool = False) -> None:
        """Put jobs back to pending (a done job whose files vanished; failed jobs on --retry-failed)."""
        extra = ", tries = 0" if reset_tries else ""
        self._transaction([(f"UPDATE jobs SET status = 'pending'{extra}, updated = ? WHERE id = ?", (time.time(), i))
                           for i in ids] + [("DELETE FROM drawings WHERE id = ?", (i,)) for i in ids])

    # ------------------------------------------------------------ outcomes

    def commit(self, job_id: str, record: dict[str, Any]) -> None:
        """Record a finished drawing (its files are already on disk) and mark the job done."""
        now = time.time()
        self._transaction([
            ("INSERT OR REPLACE INTO drawings VALUES (?, ?, ?)", (job_id, json.dumps(record, sort_keys=True), now)),
            ("UPDATE jobs SET status = 'done', error = NULL, updated = ? WHERE id = ?", (now, job_id)),
        ])

    def fail(self, job_id: str, reason: str, final: bool) -> None:
        """Record one failed try; with `final` the job is given up (status failed)."""
        now = time.time()
        tries = self.db.execute("SELECT tries FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
        self._transaction([
            ("INSERT INTO failures VALUES (?, ?, ?, ?)", (job_id, tries, reason, now)),
            ("UPDATE jobs SET tries = tries + 1, error = ?, status = ?, updated = ? WHERE id = ?",
             (reason, "failed" if final else "pending", now, job_id)),
        ])

    def records(self) -> list[dict[str, Any]]:
        """Every committed drawing's metadata record, sorted by id."""
        return [json.loads(row[0]) for row in self.db.execute("SELECT record FROM drawings ORDER BY id")]

    def failures(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT job_id, try, reason, at FROM failures ORDER BY at")
        return [{"id": job_id, "try": n, "reason": reason, "at": at} for job_id, n, reason, at in rows]
