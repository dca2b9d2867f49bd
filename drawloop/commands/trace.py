"""`drawloop trace show`: replay a run's trace in the terminal.

    drawloop trace show runs/20261125-140024-a-red-apple-45bd     # iterations -> nodes, thumbnails
    drawloop trace show red-apple --diff                          # a unique part of a run id; code diffs
    drawloop trace show latest --thread main --json               # for scripts
    drawloop trace show latest --no-thumbs | less -R
    drawloop trace show data/llm/work                             # a batch's trace: one row per thread
    drawloop trace show data/llm/work --thread apple-0003         # ... then one thread's tree
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from drawloop.commands import err_console

trace_app = typer.Typer(help="Replay what a run did: nodes, timings, tokens, scores, drawings.",
                        no_args_is_help=True)



def default_runs_dir() -> Path:
    return Path(os.environ.get("DRAWLOOP_RUNS_DIR") or "runs")


@trace_app.command("show")
def show_command(
    run: str = typer.Argument(..., help="A run directory, a run id (or a unique part of one), or 'latest'."),
    thread: Optional[str] = typer.Option(None, "--thread", "-t", help="Only this thread (default: all)."),
    diff: bool = typer.Option(False, "--diff", help="Show the code diff between consecutive iterations."),
    as_json: bool = typer.Option(False, "--json", help="Print the replay as JSON for scripts."),
    thumbs: Optional[bool] = typer.Option(None, "--thumbs/--no-thumbs",
                                          help="Colour thumbnails of each drawing (default: when colour is on)."),
    all_threads: bool = typer.Option(False, "--all", help="Every thread's tree, even for a trace of many threads."),
    thumb_width: int = typer.Option(20, "--thumb-width", min=8, max=80, help="Thumbnail width in columns."),
    runs_dir: Path = typer.Option(None, "--dir", help="Where run ids are looked up (default: runs, or $DRAWLOOP_RUNS_DIR)."),
) -> None:
    """Replay a run: a tree of iterations and nodes with time, tokens, what the recognizer saw,
    the critic's score and feedback, and a thumbnail of each drawing."""
    from drawloop.trace.replay import RunNotFound, find_run, load_run, run_to_dict
    from drawloop.trace.show import render_run

    try:
        trace = load_run(find_run(run, runs_dir or default_runs_dir()))
        if as_json:
            print(json.dumps(run_to_dict(trace, thread=thread, diff=diff), indent=2, ensure_ascii=False))
            return
        console = Console()
        show_thumbs = console.color_system is not None if thumbs is None else thumbs
        console.print(render_run(trace, thread=thread, diff=diff, thumbs=show_thumbs, thumb_width=thumb_width,
                                 all_threads=all_threads))
    except RunNotFound as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.add_typer(trace_app, name="trace")
