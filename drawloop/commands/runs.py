"""`drawloop runs`: list, remove and prune run directories.

    drawloop runs                          # table: concept, model, best score, iterations, stop, time, tokens
    drawloop runs --dir /tmp/runs --json   # the same rows for scripts
    drawloop runs rm red-apple             # dry run: says what would go
    drawloop runs rm red-apple --yes       # deletes
    drawloop runs prune --older-than 7d    # dry run; add --yes to delete
    drawloop runs prune --keep 20 --yes    # keep the 20 newest

Only drawing runs (directories with a run.json) are ever listed or deleted: a check-up or a
dataset directory in the same place is left alone.
With both --older-than and --keep, a run goes only if both rules say so.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import time
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.table import Table

from drawloop.commands.trace import default_runs_dir
from drawloop.commands import console, err_console

runs_app = typer.Typer(help="List, remove and prune run directories.", invoke_without_command=True)

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """'90m', '36h', '7d', '2w' -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text or "")
    if not match:
        raise typer.BadParameter(f"{text!r} is not an age; use a number and a unit: 30m, 12h, 7d, 2w")
    return float(match.group(1)) * UNITS[match.group(2)]


def select_for_prune(rows: list[dict], older_than: float | None, keep: int | None, now: float) -> list[dict]:
    """Rows (oldest first) that the rules say to delete; every given rule must agree."""
    keep_ids = {row["id"] for row in rows[-keep:]} if keep else set()
    doomed = []
    for row in rows:
        too_old = older_than is None or now - row["created_ts"] > older_than
        beyond_keep = keep is None or row["id"] not in keep_ids
        if too_old and beyond_keep:
            doomed.append(row)
    return doomed


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _when(row: dict) -> str:
    return dt.datetime.fromtimestamp(row["created_ts"]).strftime("%Y-%m-%d %H:%M")


def _rows(runs_dir: Path) -> list[dict]:
    from drawloop.trace.replay import list_runs, run_summary

    return [run_summary(path) for path in list_runs(runs_dir)]


# (header, row key or formatter, widest it may get, justify); the run id always shows in full
COLUMNS = {
    "run": (lambda r: r["id"], None, "left"),
    "concept": (lambda r: r["concept"], 28, "left"),
    "model": (lambda r: r["model"], 26, "left"),
    "best": (lambda r: "" if r["best_score"] is None else f"{r['best_score']:.2f}", None, "right"),
    "iters": (lambda r: str(r["iterations"]), None, "right"),
    "stop": (lambda r: r["stop_reason"] or ("unfinished" if not r["finished"] else ""), 16, "left"),
    "created": (_when, None, "left"),
    "time": (lambda r: f"{r['seconds'] or 0:.0f}s", None, "right"),
    "tokens in/out": (lambda r: f"{r['tokens_in']}/{r['tokens_out']}", None, "right"),
}
DROP_WHEN_NARROW = ("model", "tokens in/out", "concept", "created")  # the id already says the concept


def fitting_columns(rows: list[dict], width: int) -> list[str]:
    """Every column that fits the terminal, dropping the least needed first."""
    def natural(name: str) -> int:
        get, cap, _ = COLUMNS[name]
        widest = max([len(name)] + [len(str(get(row))) for row in rows])
        return min(widest, cap or widest) + 3  # cell padding and the separator

    names = list(COLUMNS)
    for name in DROP_WHEN_NARROW:
        if sum(natural(n) for n in names) + 1 <= width:
            break
        names.remove(name)
    return names


def runs_table(rows: list[dict], title: str, width: int = 200) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, expand=False)
    names = fitting_columns(rows, width)
    for name in names:
        _, cap, justify = COLUMNS[name]
        table.add_column(name, justify=justify, max_width=cap, no_wrap=name != "concept", overflow="ellipsis",
                         style={"run": "bold", "model": "cyan", "tokens in/out": "dim"}.get(name))
    for row in rows:
        cells = [str(COLUMNS[name][0](row)) for name in names]
        if "stop" in names and not row["finished"] and not row["stop_reason"]:
            cells[names.index("stop")] = "[yellow]unfinished[/]"
        table.add_row(*cells)
    return table


def _delete(rows: list[dict], yes: bool, verb: str) -> None:
    total = sum(row["bytes"] for row in rows)
    if not rows:
        console.print(f"nothing to {verb}")
        return
    for row in rows:
        console.print(f"{'deleting' if yes else 'would delete'} {row['path']}  ({_size(row['bytes'])}, "
                      f"{row['concept']}, {_when(row)})")
        if yes:
            shutil.rmtree(row["path"])
    if yes:
        console.print(f"deleted {len(rows)} run(s), {_size(total)}")
    else:
        console.print(f"[yellow]dry run:[/] {len(rows)} run(s), {_size(total)}; add --yes to delete")


def _dir_option() -> Path:
    return typer.Option(None, "--dir", help="The runs directory (default: runs, or $DRAWLOOP_RUNS_DIR).")


@runs_app.callback()
def list_command(
    ctx: typer.Context,
    runs_dir: Path = _dir_option(),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """List runs: concept, model, best score, iterations, stop reason, time and tokens."""
    if ctx.invoked_subcommand is not None:
        return
    root = runs_dir or default_runs_dir()
    rows = _rows(root)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print(f"no runs in {root}" + ("" if root.is_dir() else " (no such directory)"))
        return
    console.print(runs_table(rows, f"{len(rows)} run(s) in {root}", console.width))
    console.print("[dim]replay one: drawloop trace show RUN   ·   clean up: drawloop runs prune --keep N[/]")


@runs_app.command("rm")
def rm_command(
    runs: list[str] = typer.Argument(..., help="Run directories, ids, or unique parts of ids."),
    runs_dir: Path = _dir_option(),
    yes: bool = typer.Option(False, "--yes", "-y", help="Really delete (default: dry run)."),
) -> None:
    """Remove runs (a dry run unless --yes)."""
    from drawloop.trace.replay import RunNotFound, find_run, is_run_dir, run_summary

    root = runs_dir or default_runs_dir()
    try:
        paths = [find_run(spec, root) for spec in runs]
    except RunNotFound as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2)
    not_runs = [str(p) for p in paths if not is_run_dir(p)]
    if not_runs:  # a check-up or a dataset also has a trace, but holds far more than one drawing
        err_console.print(f"[red]error:[/] not drawing runs (no run.json), so not deleted: {', '.join(not_runs)}")
        raise typer.Exit(2)
    unique = list(dict.fromkeys(p.resolve() for p in paths))
    _delete([run_summary(p) for p in unique], yes, "remove")


@runs_app.command("prune")
def prune_command(
    older_than: Optional[str] = typer.Option(None, "--older-than", help="Age, e.g. 12h, 7d, 2w."),
    keep: Optional[int] = typer.Option(None, "--keep", min=0, help="Keep this many of the newest runs."),
    runs_dir: Path = _dir_option(),
    yes: bool = typer.Option(False, "--yes", "-y", help="Really delete (default: dry run)."),
) -> None:
    """Delete old runs (a dry run unless --yes)."""
    if older_than is None and keep is None:
        err_console.print("[red]error:[/] say which runs to prune: --older-than 7d, --keep N, or both")
        raise typer.Exit(2)
    age = parse_age(older_than) if older_than is not None else None
    rows = _rows(runs_dir or default_runs_dir())
    _delete(select_for_prune(rows, age, keep, time.time()), yes, "prune")


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
