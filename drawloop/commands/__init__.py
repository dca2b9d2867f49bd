"""The `drawloop` sub-commands, one module per command group, and the consoles they share.

    from drawloop.commands import console, err_console
    err_console.print(f"[red]no such directory:[/] {path}")

Messages are soft-wrapped: rich never breaks a line at 80 columns when output is not a terminal,
so `grep`, scripts and long paths see each message on one line. Tables still fit the width.
"""

from rich.console import Console

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def writable_folder(path, option: str = "--out"):
    """`path` as a folder drawloop can write into (created if missing), or a ValueError that names
    the option and says why not: checked before a model server starts or a run begins."""
    import os
    import tempfile
    from pathlib import Path

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".drawloop-probe-") as probe:
            probe.write(b"x" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        raise ValueError(f"{option} {path}: cannot write there ({exc.strerror or exc})") from None
    return path


def storage_error(exc: BaseException) -> str | None:
    """A readable line for a failure to write run files (full disk, read-only, damaged database), or
    None if `exc` is not one. SQLite reports a full disk as 'database or disk is full', and a failed
    commit after one as 'cannot rollback': both mean the disk is full."""
    import errno
    import sqlite3

    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"the disk is full ({exc.filename or 'writing run files'}): free space, then resume"
    if isinstance(exc, OSError):
        return f"cannot write {exc.filename or 'run files'}: {exc.strerror or exc}"
    if isinstance(exc, sqlite3.Error):
        text = str(exc)
        if "full" in text or "rollback" in text:
            return "the disk is full (SQLite could not write its database): free space, then resume"
        return f"a SQLite database failed: {text}"
    return None
