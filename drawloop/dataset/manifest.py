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

On a cluster the same ledger can live in Postgres, in the dataset's own schema next to its
checkpoints, so a build driven from another machine resumes it (open_manifest picks the store):

    manifest = open_manifest(root, "postgresql://user@db-host/drawloop")   # or $DRAWLOOP_CHECKPOINT
    manifest.claim()      # one driver per dataset, also across machines (a Postgres advisory lock)

The class and its SQL are the same for both; a backend (_SqliteLedger, _PostgresLedger) holds what
differs: the schema's types, placeholders, how a transaction starts, how another thread reads.
The SQL is written once, in the upsert form both understand (INSERT ... ON CONFLICT).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from drawloop.storage import DamagedStorage, PostgresPlace, checkpoint_url, open_sqlite, postgres_place

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

# The same tables in Postgres: 8-byte floats (REAL is 4 bytes there: a timestamp would lose
# minutes, a temperature its digits) and byte-order ids (COLLATE "C"), so ORDER BY id pages and
# sorts exactly as SQLite does whatever the database's locale.
PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS info (key TEXT COLLATE "C" PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT COLLATE "C" PRIMARY KEY, concept TEXT NOT NULL, level TEXT, category TEXT, slug TEXT NOT NULL,
    sample BIGINT, seed BIGINT, temperature DOUBLE PRECISION,
    status TEXT NOT NULL DEFAULT 'pending', tries INTEGER NOT NULL DEFAULT 0,
    error TEXT, updated DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS drawings (id TEXT COLLATE "C" PRIMARY KEY, record TEXT NOT NULL, created DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS failures (job_id TEXT COLLATE "C", try INTEGER, reason TEXT, at DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS plan (id TEXT COLLATE "C" PRIMARY KEY);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
"""


def _has_drawings(root: Path, path: Path) -> bool:
    """A dataset exists here: its export, or (next to a manifest file that is there but empty) drawings."""
    if (root / "metadata.jsonl").exists():
        return True
    folders = [root / name for name in ("train", "validation", "images")]    # images/: datasets before splits
    return path.exists() and any(folder.is_dir() and any(folder.iterdir()) for folder in folders)


def _made_drawings(root: Path) -> bool:
    """Drawings were made in `root` (a Postgres manifest has no file of its own to be there)."""
    return _has_drawings(root, root)


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


class _SqliteLedger:
    """manifest.sqlite: one writer connection (rollback journal, synchronous=FULL); another thread
    reads through a short connection of its own."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        root = path.parent
        self.db = open_sqlite(path, "the dataset's manifest", isolation_level=None, timeout=30,
                              must_exist=lambda: _has_drawings(root, path),
                              recover=f"restore it from a backup, or move {root} aside and build again "
                                      "(the drawings under train/ and validation/ stay readable)")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self.db.execute(sql, args).fetchall()

    def read_elsewhere(self, sql: str, args: tuple) -> list[tuple]:
        # The writer's connection belongs to the thread that opened the manifest.
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as db:
            return db.execute(sql, args).fetchall()

    def transaction(self, statements: Iterable[tuple[str, tuple]]) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for sql, args in statements:
                db.execute(sql, args)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def claim(self) -> None:
        pass     # the dataset folder's lock (build.exclusive) is enough on one machine

    def close(self) -> None:
        self.db.close()


class _PostgresLedger:
    """The tables in the dataset's schema; one autocommit connection, shared by threads under a
    lock (a transaction is never interleaved with another thread's read); runs of one statement
    go to the server as one executemany (pipelined), so a chunk of 5000 jobs is no 5000 round trips."""

    def __init__(self, place: PostgresPlace, must_exist=lambda: False):
        self.place = place
        self.lock = threading.RLock()
        self.db = place.connect()
        try:
            with self.db.transaction():
                # Two drivers opening one fresh schema must not race its CREATE TABLEs.
                self.db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                                (f"drawloop-manifest:{place.schema}",))
                fresh = self.db.execute("SELECT to_regclass('jobs') IS NULL").fetchone()[0]
                if fresh and must_exist():
                    raise DamagedStorage(f"the dataset's manifest in {place} has no tables, but drawings were "
                                         "already made; restore the schema from a backup, or move the dataset "
                                         "folder aside and build again (the drawings under train/ and "
                                         "validation/ stay readable)")
                for statement in filter(str.strip, PG_SCHEMA.split(";")):
                    self.db.execute(statement)
        except BaseException:
            self.db.close()
            raise

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")    # the shared SQL has no literal ? or %

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self.lock:
            return self.db.execute(self._sql(sql), args).fetchall()

    read_elsewhere = query

    def transaction(self, statements: Iterable[tuple[str, tuple]]) -> None:
        with self.lock, self.db.transaction(), self.db.cursor() as cursor:
            for sql, group in itertools.groupby(statements, key=lambda statement: statement[0]):
                cursor.executemany(self._sql(sql), [args for _, args in group])

    def claim(self) -> None:
        """One driver per dataset, on any machine: a session lock, freed when this connection ends
        (a SIGKILLed driver's at once, a dead machine's within ~30 s of TCP keepalives)."""
        with self.lock:
            got = self.db.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                                  (f"drawloop-driver:{self.place.schema}",)).fetchone()[0]
            if got:
                return
            holder = self.db.execute(
                "SELECT a.pid, a.client_addr, a.backend_start FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objid = "
                "(hashtextextended(%s, 0) & 4294967295)::oid", (f"drawloop-driver:{self.place.schema}",)).fetchone()
        from drawloop.dataset.reader import DatasetBusy

        who = (f" (Postgres backend {holder[0]}, client {holder[1] or 'local'}, since {holder[2]:%Y-%m-%d %H:%M:%S})"
               if holder else "")
        raise DatasetBusy(f"another drawloop process is building or curating this dataset ({self.place}){who}; wait "
                         "for it (or stop it) and run again")

    def close(self) -> None:
        with self.lock:
            self.db.close()


def open_manifest(root: str | Path, checkpoint: str | None = None) -> Manifest:
    """The manifest of the dataset in `root`: ROOT/manifest.sqlite, or, with a postgresql://
    `checkpoint` URL (else $DRAWLOOP_CHECKPOINT), the tables in the schema ROOT/postgres.json names."""
    root = Path(root)
    path = root / "manifest.sqlite"
    place = postgres_place(root, checkpoint_url(checkpoint), "the dataset's manifest", path,
                           must_exist=lambda: _made_drawings(root))
    return Manifest(path) if place is None else Manifest(postgres=place, root=root)


def is_dataset(root: str | Path) -> bool:
    """A manifest is there, in SQLite or (named by postgres.json) in Postgres."""
    from drawloop.storage import POSTGRES_MARKER

    return (Path(root) / "manifest.sqlite").is_file() or (Path(root) / POSTGRES_MARKER).is_file()


class Manifest:
    def __init__(self, path: str | Path | None = None, *, postgres: PostgresPlace | None = None,
                 root: str | Path | None = None):
        """Manifest(path): SQLite. Manifest(postgres=place, root=dataset folder): Postgres (with
        `root`, a schema without tables next to drawings already made is damage, not a fresh start)."""
        if (path is None) == (postgres is None):
            raise TypeError("Manifest(path) for SQLite or Manifest(postgres=place), not both or neither")
        if postgres is not None:
            self.path = None
            self.backend: _SqliteLedger | _PostgresLedger = _PostgresLedger(
                postgres, must_exist=lambda: root is not None and _made_drawings(Path(root)))
        else:
            self.path = Path(path)
            self.backend = _SqliteLedger(self.path)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "Manifest":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def postgres(self) -> PostgresPlace | None:
        """Where the manifest is in Postgres (its checkpoints go there too); None: SQLite."""
        return getattr(self.backend, "place", None)

    def claim(self) -> None:
        """Make this process the dataset's one driver (Postgres: across machines), or raise DatasetBusy."""
        self.backend.claim()

    def _transaction(self, statements: Iterable[tuple[str, tuple]]) -> None:
        self.backend.transaction(statements)

    def _one(self, sql: str, args: tuple = ()) -> Any:
        rows = self.backend.query(sql, args)
        return rows[0] if rows else None

    # ------------------------------------------------------------ build settings

    def info(self) -> dict[str, Any]:
        return {key: json.loads(value) for key, value in self.backend.query("SELECT key, value FROM info")}

    def set_info(self, values: dict[str, Any]) -> None:
        self._transaction(("INSERT INTO info VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                           (key, json.dumps(value, default=str))) for key, value in values.items())

    # ------------------------------------------------------------ jobs

    def add_jobs(self, jobs: Iterable[Any], as_plan: bool = False, chunk: int = 5000) -> int:
        """Register planned jobs (drawloop.dataset.plan.PlannedJob), streamed in chunks so a plan
        of millions never sits in memory; returns how many were new. With `as_plan` they also
        become the current plan (`planned=True` below), replacing the previous one."""
        before = self._one("SELECT COUNT(*) FROM jobs")[0]
        if as_plan:
            self._transaction([("DELETE FROM plan", ())])
        batch: list[Any] = []
        for job in jobs:
            batch.append(job)
            if len(batch) >= chunk:
                self._add(batch, as_plan)
                batch = []
        self._add(batch, as_plan)
        return self._one("SELECT COUNT(*) FROM jobs")[0] - before

    def _add(self, jobs: list[Any], as_plan: bool) -> None:
        now = time.time()
        statements = [("INSERT INTO jobs (id, concept, level, category, slug, sample, seed, temperature, "
                       "updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                       (j.id, j.concept.name, j.concept.level, j.concept.category, j.slug, j.sample, j.seed,
                        j.temperature, now)) for j in jobs]
        if as_plan:
            statements += [("INSERT INTO plan VALUES (?) ON CONFLICT DO NOTHING", (j.id,)) for j in jobs]
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
            # The batch runner pulls jobs from a worker thread: each page is read apart from the
            # writer (its own short connection in SQLite, between transactions in Postgres).
            rows = self.backend.read_elsewhere(sql, (*[v for _, v in where], last, page))
            yield from (JobRow(*row) for row in rows)
            if len(rows) < page:
                return
            last = rows[-1][0]

    def job(self, job_id: str) -> JobRow:
        row = self._one("SELECT id, concept, level, category, slug, sample, seed, temperature, status, tries, "
                        "error FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            raise KeyError(job_id)
        return JobRow(*row)

    def counts(self, planned: bool = False) -> dict[str, int]:
        counts = {"pending": 0, "done": 0, "failed": 0}
        sql = "SELECT status, COUNT(*) FROM jobs" + (" WHERE id IN (SELECT id FROM plan)" if planned else "")
        counts.update(dict(self.backend.query(sql + " GROUP BY status")))
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
            ("INSERT INTO drawings VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET record = excluded.record, "
             "created = excluded.created", (job_id, json.dumps(record, sort_keys=True), now)),
            ("UPDATE jobs SET status = 'done', error = NULL, updated = ? WHERE id = ?", (now, job_id)),
        ])

    def fail(self, job_id: str, reason: str, final: bool) -> None:
        """Record one failed try; with `final` the job is given up (status failed)."""
        now = time.time()
        tries = self._one("SELECT tries FROM jobs WHERE id = ?", (job_id,))[0]
        self._transaction([
            ("INSERT INTO failures VALUES (?, ?, ?, ?)", (job_id, tries, reason, now)),
            ("UPDATE jobs SET tries = tries + 1, error = ?, status = ?, updated = ? WHERE id = ?",
             (reason, "failed" if final else "pending", now, job_id)),
        ])

    def records(self) -> list[dict[str, Any]]:
        """Every committed drawing's metadata record, sorted by id."""
        return [json.loads(row[0]) for row in self.backend.query("SELECT record FROM drawings ORDER BY id")]

    def failures(self) -> list[dict[str, Any]]:
        rows = self.backend.query("SELECT job_id, try, reason, at FROM failures ORDER BY at")
        return [{"id": job_id, "try": n, "reason": reason, "at": at} for job_id, n, reason, at in rows]
