"""`drawloop checkup`: the study's four tests in one command, and `checkup compare`.

    drawloop checkup --levels shapes,objects --concepts-per-level 3 --samples 2 --iters 3
    drawloop checkup --model openai:gpt-4o-mini --out runs/checkup-4o-mini     # rerun = resume
    drawloop checkup --model openai:qwen --base-url http://localhost:8000/v1
    drawloop checkup --executor ray --ray-address auto --model openai:qwen --base-url http://gpu-box:8000/v1
    drawloop checkup --retry-failed                # also redo loops in which the model timed out
    drawloop checkup compare runs/checkup-local runs/checkup-4o-mini

The report lands in OUT/report.md (default out: runs/checkup-<model>). Running the same command
again resumes: finished loops, recognitions and embeddings are read back, never recomputed; more
concepts or samples later cost only the new ones. On a slow machine raise DRAWLOOP_TIMEOUT (seconds
per request, default 180) rather than letting drawings fail as timeouts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import traceback
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from drawloop.checkup import (HEADLINE_ROWS, CheckupPlan, compare, loops_still_running, run_checkup,
                              write_report)
from drawloop.checkup import metrics as m
from drawloop.checkup.report import fmt
from drawloop.commands.interrupt import StopOnCtrlC, exit_now
from drawloop.commands import console, err_console, exit_code



def _levels(values: list[str] | None) -> tuple[str, ...]:
    """--levels shapes,objects --level scenes -> ('shapes', 'objects', 'scenes')."""
    if not values:
        return ("shapes", "objects", "scenes")
    return tuple(dict.fromkeys(part.strip() for value in values for part in value.split(",") if part.strip()))


def _known_errors() -> tuple[type[BaseException], ...]:
    from drawloop.llm.chat import LLMError
    from drawloop.local_model import LocalModelError

    return (ValueError, LLMError, LocalModelError, FileNotFoundError)


def _headline_table(results: dict) -> Table:
    headline = m.headline(results)
    table = Table(title=f"check-up · {results['model']}", show_header=False)
    for key, label, pct in HEADLINE_ROWS:
        table.add_row(label, fmt(headline[key], pct))
    return table


def register(app: typer.Typer) -> None:
    checkup_app = typer.Typer(help="The vision check-up: generation, recognition, self-correction, "
                                   "diversity.", no_args_is_help=False)

    @checkup_app.callback(invoke_without_command=True)
    def checkup(
        ctx: typer.Context,
        model: Optional[str] = typer.Option(None, help="local | local:/path.gguf | openai:NAME "
                                                       "(default: local)."),
        base_url: Optional[str] = typer.Option(None, help="Any OpenAI-compatible server, e.g. "
                                                          "http://localhost:8000/v1."),
        levels: Optional[List[str]] = typer.Option(None, "--levels", "--level",
                                                   help="Levels, comma-separated or repeated "
                                                        "(default: shapes,objects,scenes)."),
        concepts_per_level: int = typer.Option(10, help="Concepts per level, evenly spread over the "
                                                        "level's list."),
        samples: int = typer.Option(2, help="Independent drawings per concept (each runs both loops)."),
        iters: int = typer.Option(4, help="Rounds per loop, first draft included."),
        candidates: int = typer.Option(1, "--candidates", "-N", help="Drafts per round, judged pairwise."),
        out: Optional[Path] = typer.Option(None, "--out", help="Check-up directory "
                                                               "(default: runs/checkup-<model>)."),
        concurrency: Optional[int] = typer.Option(None, help="Threads worked on at once (default 2; the "
                                                             "embedded model gets one slot per thread)."),
        retry_failed: bool = typer.Option(False, "--retry-failed", help="Redo finished loops in which the "
                                                                        "model could not be reached "
                                                                        "(timeouts)."),
        human_per_concept: int = typer.Option(2, help="People's openclipart drawings recognized per "
                                                      "concept."),
        human_max_chars: int = typer.Option(12000, help="Skip people's SVGs longer than this after metadata "
                                                        "is removed (the model reads them)."),
        temperature: float = typer.Option(0.7),
        max_tokens: Optional[int] = typer.Option(None, help="Token cap per drawing (default 1200)."),
        seed: int = typer.Option(0, help="Base seed: sample k uses seed + 1000k."),
        executor_name: str = typer.Option("thread", "--executor", help="thread: loops on threads here; "
                                          "ray: on a Ray cluster's workers "
                                          "(pip install 'drawloop[cluster]')."),
        ray_address: Optional[str] = typer.Option(None, "--ray-address", help="With --executor ray: auto or "
                                                  "ray://HOST:10001; default: start Ray here unless one is "
                                                  "running."),
        checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="postgresql://user@host:port/db: "
                                                 "checkpoints in Postgres (default: OUT/checkpoints.sqlite). "
                                                 "Env: DRAWLOOP_CHECKPOINT."),
    ) -> None:
        """Run (or resume) the vision check-up and write OUT/report.md."""
        if ctx.invoked_subcommand is not None:
            return
        from drawloop.config import Settings
        from drawloop.llm import open_model
        from drawloop.graphs.ray_executor import make_executor, model_label
        from drawloop.runs import slug

        try:
            settings = Settings.from_env(model=model, base_url=base_url, temperature=temperature,
                                         max_tokens=max_tokens, seed=seed, max_iters=iters,
                                         candidates=candidates)
            concurrency = concurrency or 2
            if settings.model.startswith("local") and not settings.base_url:
                # One llama.cpp slot per thread, so no request queues behind another and times out.
                # Two slots decode 1.3x the tokens/s of one on 2 cores (measured, 12.7 vs 16.7).
                settings = dataclasses.replace(settings, parallel=min(concurrency, 8))
            plan = CheckupPlan(levels=_levels(levels), concepts_per_level=concepts_per_level, samples=samples,
                               iters=iters, concurrency=concurrency, human_per_concept=human_per_concept,
                               human_max_chars=human_max_chars, seed=seed, retry_failed=retry_failed)
            plan.validate()
            # None: the check-up's own thread pool; Ray: its workers open the model, none is opened here
            executor = (None if executor_name == "thread" and not ray_address
                        else make_executor(executor_name, ray_address))
            out = out or Path(settings.runs_dir) / f"checkup-{slug(settings.model, 40)}"
            # Ctrl-C ends the process at once (commands/interrupt.py): checkpoints hold every finished node.
            with StopOnCtrlC(lambda: f"rerun the same command (same --out {out}) to resume; "
                                     "finished work is kept", err_console) as stop:
                try:
                    with contextlib.nullcontext() if executor else open_model(settings) as models:
                        label = models.label if models else model_label(settings)
                        console.print(f"[bold]drawloop checkup[/] · {label} · {len(plan.concepts())} "
                                      f"concepts × {samples} samples × {iters} iterations → {out}")
                        results = _run_with_progress(out, plan, settings, models,
                                                     functools.partial(run_checkup, checkpoint=checkpoint,
                                                                       executor=executor), stop)
                except KeyboardInterrupt:
                    stop.interrupted()
            if executor is not None:
                executor.close()
            report = write_report(out)
        except _known_errors() as exc:
            err_console.print(f"[red]error:[/] {exc}")
            if loops_still_running(timeout=1.0):
                err_console.print("finished work is kept; fix the cause and rerun the same command to "
                                  "resume.")
                # other loops still wait on the model: a normal exit would wait minutes
                exit_now(exit_code(exc))
            raise typer.Exit(exit_code(exc))
        except Exception:
            if not loops_still_running(timeout=1.0):
                raise
            traceback.print_exc()   # a bug: show it, but do not wait minutes for the model first
            exit_now(1)
        console.print(_headline_table(results))
        console.print(f"report: {report}")

    @checkup_app.command("compare")
    def compare_command(
        dir_a: Path = typer.Argument(..., help="A finished check-up directory."),
        dir_b: Path = typer.Argument(..., help="Another one."),
        out: Optional[Path] = typer.Option(None, "--out", help="Where compare.md and compare.png go."),
    ) -> None:
        """Put two check-ups side by side (markdown + figure)."""
        try:
            path = compare(dir_a, dir_b, out)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            err_console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2)
        console.print(path.read_text())
        console.print(f"written: {path}")

    app.add_typer(checkup_app, name="checkup")


def _run_with_progress(out, plan, settings, models, run_checkup, stop=None):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[last]}", markup=False), console=console,
                  transient=False) as progress:
        if stop is not None:
            stop.live = progress
        tasks: dict[str, int] = {}

        def on_progress(done: int, total: int, what: str) -> None:
            phase = "people's drawings" if what.startswith("human:") else "drawing loops"
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=total, last="")
            progress.update(tasks[phase], completed=done, total=total, last=what)

        def on_event(event) -> None:
            # What the model is doing right now: loops take minutes with a local model.
            if event.phase != "start" or "drawing loops" not in tasks:
                return
            progress.update(tasks["drawing loops"],
                            last=f"{event.thread} · iteration {event.iteration} · {event.node}")

        return run_checkup(out, plan, settings, models, on_progress=on_progress, on_event=on_event)
