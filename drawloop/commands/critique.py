"""`drawloop critique`: the loop's critic and judge on your own drawings, without running the loop.

    drawloop critique apple.svg apple2.png --concept "an apple"          # per-scorer scores, feedback
    drawloop critique --pair a.svg b.svg --concept "a bicycle" --json     # {"better": "b.svg", "scores": {...}}
    drawloop critique --pairs prefs.jsonl --json    # one JSON line per {"concept", "a", "b"} line, in order
    drawloop critique *.svg --concept "a cat" --no-model    # pixel scorers only: no LLM is started

Paths in a pairs file are relative to that file; the output names them exactly as written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from drawloop.commands import console, err_console, exit_code


def register(app: typer.Typer) -> None:
    @app.command("critique")
    def critique_command(
        files: Optional[List[str]] = typer.Argument(None, help="Drawings to score: .svg, .py or .png."),
        concept: Optional[str] = typer.Option(None, "--concept", "-c", help="What the drawings should show."),
        pair: Optional[List[str]] = typer.Option(None, "--pair", help="Two drawings to compare: --pair A --pair B "
                                                  "or --pair A B."),
        pairs: Optional[Path] = typer.Option(None, "--pairs", help="A JSONL file of {\"concept\", \"a\", \"b\"}."),
        model: Optional[str] = typer.Option(None, help="Model for the code-reading scorers (default: local)."),
        base_url: Optional[str] = typer.Option(None, help="Any OpenAI-compatible server."),
        critic_model: Optional[str] = typer.Option(None, help="A vision-language model: adds the vlm scorer and "
                                                   "judges pairs by looking at both pictures."),
        critic_base_url: Optional[str] = typer.Option(None),
        weights: Optional[str] = typer.Option(None, help="Critic weights, e.g. sanity=1,concept=2,structure=1."),
        critic: str = typer.Option("default", help="A registered critic name."),
        no_model: bool = typer.Option(False, "--no-model", help="Leave out the scorers that need the LLM."),
        size: int = typer.Option(256, help="Render size in pixels."),
        as_json: bool = typer.Option(False, "--json", help="JSON: one object per file, pair or pairs-file line."),
    ) -> None:
        """Score drawings with the configured critic, or say which of two is better and why."""
        from drawloop.commands.draw import _settings
        from drawloop.critique import FileCritic
        from drawloop.llm import open_model
        from drawloop.llm.chat import LLMError
        from drawloop.local_model import LocalModelError

        try:
            jobs = _jobs(files, concept, pair, pairs)
            settings = _settings(model=model, base_url=base_url, critic_model=critic_model,
                                 critic_base_url=critic_base_url, weights=weights, critic=critic, size=size,
                                 temperature=0.0)
            if no_model:
                _run(FileCritic.from_settings(settings, use_model=False), jobs, as_json)
            else:
                with open_model(settings) as models:
                    _run(FileCritic.from_settings(settings, models), jobs, as_json)
        except (ValueError, FileNotFoundError, LLMError, LocalModelError) as exc:
            err_console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(exit_code(exc))


def _jobs(files, concept, pair, pairs) -> list[tuple]:
    """("file", path, concept) | ("pair", a, b, concept, shown_a, shown_b), in output order."""
    chosen = sum(bool(x) for x in (files and not pair, pair, pairs))
    if chosen != 1:
        raise ValueError("give drawings to score, --pair A B, or --pairs FILE.jsonl (one of them)")
    if pairs:
        return list(_pairs_file(pairs))
    if not concept:
        raise ValueError("say what the drawings should show: --concept \"an apple\"")
    if pair:
        both = list(pair) + list(files or [])
        if len(both) != 2:
            raise ValueError(f"--pair takes exactly two drawings, got {len(both)}")
        return [("pair", Path(both[0]), Path(both[1]), concept, both[0], both[1])]  # names as typed
    return [("file", Path(path), concept) for path in files]


def _pairs_file(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such pairs file")
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            concept, a, b = str(row["concept"]), str(row["a"]), str(row["b"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: each line must be {{\"concept\": ..., \"a\": PATH, \"b\": PATH}} "
                             f"({type(exc).__name__})") from None
        yield ("pair", path.parent / a, path.parent / b, concept, a, b)


def _run(critic, jobs: list[tuple], as_json: bool) -> None:
    for job in jobs:
        if job[0] == "file":
            report = critic.score_file(job[1], job[2])
            print(json.dumps(report, ensure_ascii=False)) if as_json else _show_file(report)
            continue
        _, a, b, concept, shown_a, shown_b = job
        result = critic.compare(a, b, concept)
        # name the drawings exactly as the user wrote them
        names = {str(a): shown_a, str(b): shown_b}
        result = {**result, "a": shown_a, "b": shown_b, "better": names[result["better"]],
                  "scores": {names[k]: v for k, v in result["scores"].items()},
                  "per_scorer": {names[k]: v for k, v in result["per_scorer"].items()}}
        print(json.dumps(result, ensure_ascii=False)) if as_json else _show_pair(result)


def _show_file(report: dict) -> None:
    table = Table(title=f"{report['file']}  ·  {report['concept']}", title_justify="left")
    table.add_column("scorer")
    table.add_column("score", justify="right")
    for name, value in report["scores"].items():
        table.add_row(name, f"{value:.2f}")
    table.add_row("[bold]combined[/]", f"[bold]{report['score']:.2f}[/]")
    console.print(table)
    if report.get("render_error"):
        console.print(f"[red]render failed:[/] {report['render_error']}")
    for note in report.get("notes") or []:
        console.print(f"[dim]note: {note}[/]")
    if report["feedback"]:
        console.print(report["feedback"])


def _show_pair(result: dict) -> None:
    a, b = result["a"], result["b"]
    console.print(f"[bold]{result['concept']}[/]: {a} {result['scores'][a]:.2f}  vs  {b} {result['scores'][b]:.2f}")
    console.print(f"better: [bold green]{result['better']}[/]  ({result['judge']} judge: {result['reason']})")
