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
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable


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
