"""The `drawloop` sub-commands, one module per command group, and the consoles they share.

    from drawloop.commands import console, err_console
    err_console.print(f"[red]no such directory:[/] {path}")

Messages are soft-wrapped: rich never breaks a line at 80 columns when output is not a terminal,
so `grep`, scripts and long paths see each message on one line. Tables still fit the width.

Exit codes, the same for every command (README, `drawloop --help`):

    0    done
    1    the work failed: the model, the network, the disk, a damaged or busy dataset, no drawing
    2    the command line is wrong: a bad option value, a missing file, an unknown concept or run
    130  interrupted (Ctrl-C)

    except (ValueError, LLMError) as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exit_code(exc))
"""

from rich.console import Console

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130

# By class name, so that no optional module (Ray, psycopg) is imported to ask. A ValueError is the
# command line's fault unless it is one of these, which say the work could not be done as asked.
_FAILURES = ("DamagedStorage", "StorageUnavailable", "RayUnavailable", "DatasetBusy")
_USAGE = ("UserError", "UsageError", "BadParameter")


def exit_code(exc: BaseException) -> int:
    """USAGE (2) for a mistake in the command line: a ValueError (a bad option value, an unknown
    concept, a folder that is not a dataset, a run that does not exist), a file that is not there,
    a UserError; FAILED (1) for everything else: the model, the network, the disk, a damaged
    or busy store."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & set(_FAILURES):
        return FAILED
    if names & set(_USAGE) or isinstance(exc, (ValueError, FileNotFoundError)):
        return USAGE
    return FAILED


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
