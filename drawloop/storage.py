"""SQLite files opened with a check: a damaged ledger is reported, never silently started over.

    db = open_sqlite(root / "manifest.sqlite", "the dataset's manifest",
                     recover="restore it from a backup, or build into a new folder",
                     must_exist=lambda: (root / "metadata.jsonl").exists())

drawloop keeps its truth in SQLite (a dataset's manifest, a run's LangGraph checkpoints). A file
that a disk error, a bad copy or a user truncated used to surface as a traceback deep in a query
("file is not a database") or, worse, as an empty database: a 0-byte manifest made a finished
dataset look new and redraw everything. Opening goes through here instead: a 0-byte file where
data must exist, a file SQLite cannot read, or one that fails `PRAGMA quick_check` raises
`DamagedStorage`, whose message says which file, what is wrong and how to recover.

On more than one machine the same state can live in Postgres instead (`--checkpoint
postgresql://...` or $DRAWLOOP_CHECKPOINT; SQLite stays the default). SQLite over a network file
system has no reliable locking, so a shared folder holds only files written whole (artifacts,
drawings) and the database holds the rest:

    url = checkpoint_url(option)            # the option, else $DRAWLOOP_CHECKPOINT; None: SQLite
    place = postgres_place(folder, url, "the dataset's manifest", folder / "manifest.sqlite", must_exist)
    conn = place.connect()                  # autocommit, search_path = the folder's own schema

Each folder (a dataset, a run, a check-up) gets its own schema, named in FOLDER/postgres.json the
first time, so every machine that sees the folder finds the same one and two folders never share
thread ids. The same checks as for SQLite apply: a folder with work in it but no postgres.json, or
a postgres.json naming a schema the database does not have, is `DamagedStorage`, never a silent
fresh start; a folder whose state is in one store is not opened in the other.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

CHECKPOINT_ENV = "DRAWLOOP_CHECKPOINT"
POSTGRES_MARKER = "postgres.json"


class DamagedStorage(ValueError):
    """A SQLite file drawloop relies on is damaged; str() says which, what, and how to recover."""


def open_sqlite(path: str | Path, label: str, recover: str, must_exist: Callable[[], bool] = lambda: False,
                **connect_args) -> sqlite3.Connection:
    """Connect to `path` after checking it. `must_exist()` says whether data should already be there
    (then a missing or 0-byte file is damage, not a fresh start)."""
    path = Path(path)
    empty = all(_size(p) == 0 for p in (path, path.with_name(path.name + "-wal")))   # WAL: data may wait there
    if empty and must_exist():
        state = "missing" if not path.exists() else "empty (0 bytes)"
        raise DamagedStorage(f"{label} {path} is {state}, but work was already recorded next to it; "
                             f"drawloop will not start over silently: {recover}")
    try:
        conn = sqlite3.connect(path, **connect_args)
    except sqlite3.Error as exc:
        raise DamagedStorage(f"{label} {path} cannot be opened ({exc}): {recover}") from None
    if not empty:
        problem = _check(conn)
        if problem:
            conn.close()
            raise DamagedStorage(f"{label} {path} is damaged ({problem}): {recover}")
    return conn


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _check(conn: sqlite3.Connection) -> str | None:
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:      # "file is not a database", "malformed", ...
        return str(exc)
    problems = [row[0] for row in rows if row[0] != "ok"]
    return "; ".join(problems[:3]) or None


# ---------------------------------------------------------------- Postgres (shared by several machines)

class StorageUnavailable(ValueError):
    """The Postgres database cannot be reached; str() says which (never its password)."""


def checkpoint_url(value: str | None = None) -> str | None:
    """Where checkpoints (and a dataset's manifest) go: `value` (--checkpoint), else
    $DRAWLOOP_CHECKPOINT. None means SQLite files in the folder, the default; 'sqlite' says so
    explicitly (and overrides the environment)."""
    value = value if value is not None else os.environ.get(CHECKPOINT_ENV)
    if value is None or value.strip() in ("", "sqlite"):
        return None
    value = value.strip()
    if not value.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"--checkpoint ({CHECKPOINT_ENV}) takes a postgresql://user@host:port/dbname URL or "
                         f"'sqlite' (the default), not {value.split('://')[0][:20]!r}")
    return value


def describe_url(url: str) -> str:
    """host:port/dbname of a connection URL, without user or password: safe to print and to store."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(url)
    except Exception:   # noqa: BLE001 - a malformed URL: say so, never echo it (it may hold a password)
        return "(an unreadable postgresql:// URL)"
    host = parts.get("host") or "localhost"
    return f"{host}:{parts.get('port') or 5432}/{parts.get('dbname') or parts.get('user') or '?'}"


def connect_postgres(url: str, schema: str | None = None, dict_rows: bool = False):
    """A psycopg connection in autocommit mode (what LangGraph's PostgresSaver needs: its setup runs
    CREATE INDEX CONCURRENTLY, and every other statement commits by itself), prepare_threshold=0
    (server-side prepared statements break behind a pooler such as pgbouncer), search_path set to
    `schema`. A dead peer is noticed within about 30 s (TCP keepalives), so the locks a killed
    machine held are freed for the next one."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.rows import dict_row, tuple_row

    extra = {} if "connect_timeout" in conninfo_to_dict(url) else {"connect_timeout": 30}
    try:
        conn = psycopg.connect(url, autocommit=True, prepare_threshold=0,
                               row_factory=dict_row if dict_rows else tuple_row, **extra)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageUnavailable(f"cannot reach the Postgres database {describe_url(url)} ({reason}); "
                                 "check --checkpoint / $DRAWLOOP_CHECKPOINT and that the server is up") from None
    conn.execute("SELECT set_config('tcp_keepalives_idle', '15', false), "
                 "set_config('tcp_keepalives_interval', '5', false), set_config('tcp_keepalives_count', '3', false)")
    if schema:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    return conn


@contextmanager
def advisory_lock(conn, name: str, wait: bool = True) -> Iterator[bool]:
    """A Postgres session lock on `name` for the block; yields whether it was taken (wait=False may
    fail). Waits by polling, so no statement sits blocked holding a snapshot (CREATE INDEX
    CONCURRENTLY in another session would wait for it: a deadlock)."""
    while True:
        got = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (name,)).fetchone()
        got = got["pg_try_advisory_lock"] if isinstance(got, dict) else got[0]
        if got or not wait:
            break
        time.sleep(0.05)
    try:
        yield got
    finally:
        if got and not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (name,))


@dataclass(frozen=True)
class PostgresPlace:
    """One folder's schema in one Postgres database."""

    url: str
    schema: str

    def connect(self, dict_rows: bool = False):
        return connect_postgres(self.url, self.schema, dict_rows=dict_rows)

    def __str__(self) -> str:
        return f"schema {self.schema} of the Postgres database {describe_url(self.url)}"


def postgres_place(folder: str | Path, url: str | None, label: str, sqlite_file: str | Path,
                   must_exist: Callable[[], bool] = lambda: False) -> PostgresPlace | None:
    """Where `folder`'s state (`label`, e.g. "the dataset's manifest") lives in Postgres; None when
    it is in SQLite (`url` None, the default). The schema is made the first time and named in
    FOLDER/postgres.json; a later call, from any machine that sees the folder, reads it back."""
    folder, sqlite_file = Path(folder), Path(sqlite_file)
    marker = folder / POSTGRES_MARKER
    known = _read_marker(marker)
    if url is None:
        if known:
            raise ValueError(f"{label} of {folder} is in Postgres ({known['schema']} on {known['database']}, "
                             f"see {marker}); pass --checkpoint postgresql://... or set {CHECKPOINT_ENV}")
        return None
    if known is None:
        if any(_size(p) for p in (sqlite_file, sqlite_file.with_name(sqlite_file.name + "-wal"))):
            raise ValueError(f"{label} of {folder} is in SQLite ({sqlite_file.name}), not Postgres; run without "
                             f"--checkpoint (and without {CHECKPOINT_ENV}) to go on with it, or use another folder")
        if must_exist():
            raise DamagedStorage(f"{folder} holds work but no {POSTGRES_MARKER}, which names the Postgres schema of "
                                 f"{label}; drawloop will not start over silently: restore {marker} (it names a "
                                 f"schema drawloop_...), or move {folder} aside and start again")
        return _new_place(folder, url, marker)
    place = PostgresPlace(url, known["schema"])
    with connect_postgres(url) as conn:    # closed at the end
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (place.schema,)).fetchone()
    if not found:
        raise DamagedStorage(f"{label} of {folder} is in schema {place.schema}, which the Postgres database "
                             f"{describe_url(url)} does not have ({marker} says it was made in {known['database']}): "
                             "point --checkpoint at that database, or move the folder aside and start again")
    return place


def _read_marker(marker: Path) -> dict[str, Any] | None:
    try:
        known = json.loads(marker.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DamagedStorage(f"{marker} cannot be read ({exc}); it names the Postgres schema of this folder's "
                             "state: restore it from a backup") from None
    if not isinstance(known, dict) or not re.fullmatch(r"[a-z0-9_]{1,63}", str(known.get("schema", ""))):
        raise DamagedStorage(f"{marker} does not name a schema; restore it from a backup")
    return known


def _new_place(folder: Path, url: str, marker: Path) -> PostgresPlace:
    from psycopg import sql

    stem = re.sub(r"[^a-z0-9]+", "_", folder.resolve().name.lower()).strip("_")[:40] or "run"
    place = PostgresPlace(url, f"drawloop_{stem}_{secrets.token_hex(4)}")   # two folders of one name differ
    with connect_postgres(url) as conn:    # closed at the end
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(place.schema)))
    folder.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"schema": place.schema, "database": describe_url(url),
                       "created": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=2) + "\n"
    tmp = marker.with_name(f".{marker.name}.tmp-{secrets.token_hex(6)}")
    with open(tmp, "w") as handle:
        handle.write(body)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(tmp, marker)    # atomic create-if-absent, also on NFS: the first of two racers wins
    except FileExistsError:
        place = PostgresPlace(url, _read_marker(marker)["schema"])
    finally:
        os.unlink(tmp)
    return place

