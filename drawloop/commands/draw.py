"""`drawloop draw` and `drawloop demo`.

    drawloop draw "a red apple" --max-iters 6 --patience 2
    drawloop draw "a red apple" --model openai:gpt-4o-mini
    drawloop draw "a red apple" --model openai:qwen2.5-coder --base-url http://localhost:8000/v1
    drawloop draw "a red apple" --model anthropic:claude-3-5-haiku-latest --rpm 50   # any LangChain provider
    drawloop draw --resume runs/20261125-101500-a-red-apple-1a2b
    drawloop draw "a red apple" --json          # machine-readable summary, no live view
    drawloop demo                               # three concepts, offline, local model
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from drawloop.commands.interrupt import StopOnCtrlC
from drawloop.config import Settings
from drawloop.commands import FAILED, console, err_console, exit_code, storage_error, writable_folder

DEMO_CONCEPTS = ("a red circle", "a bicycle", "a row of bicycles")
DEFAULT_CANDIDATES = Settings.candidates
# Measured (bench/search.py, docs/measurements.md): with the offline critic, two drafts a round
# picked a worse drawing than the first draft for 5 of 10 concepts; one a round never did. So the
# demo uses the default; `drawloop demo -N 2` shows the fan-out.
DEMO_CANDIDATES = DEFAULT_CANDIDATES



class UserError(Exception):
    pass


def _settings(**options):
    from drawloop.agents.critic import parse_weights
    from drawloop.config import Settings

    from drawloop.agents.registry import check_language, check_names

    weights = options.pop("weights", None)
    settings = Settings.from_env(**options)
    if weights:
        settings.extra["weights"] = parse_weights(weights)
    check_names(critic=settings.critic, recognizer=settings.recognizer)  # before a model server starts
    check_language(settings.language)
    return settings


def _known_errors() -> tuple[type[BaseException], ...]:
    from drawloop.llm.chat import LLMError
    from drawloop.local_model import LocalModelError

    return (ValueError, LLMError, LocalModelError, FileNotFoundError, UserError)


def _draw_one(concept, settings, models, as_json, resume=None):
    from drawloop.api import draw
    from drawloop.trace.view import LiveView, summary_panel

    view = LiveView(concept or f"resuming {resume}", model=models.label if models else settings.model,
                    console=console)

    def hint() -> str | None:
        run_dir = resume or (Path(settings.runs_dir) / view.run_id if view.run_id else None)
        return f"resume with: drawloop draw --resume {run_dir}" if run_dir else None

    # Ctrl-C ends the process at once (commands/interrupt.py): the checkpointer holds every finished node.
    with StopOnCtrlC(hint, err_console) as stop:
        try:
            if as_json:
                return draw(concept, settings=settings, models=models, resume=resume, on_event=view.update)
            stop.live = view
            with view:   # the drawer's tokens stream under the spinner (LangGraph "messages" mode)
                result = draw(concept, settings=settings, models=models, resume=resume, on_event=view.update,
                              on_token=view.token)
        except KeyboardInterrupt:
            stop.interrupted()
    console.print(summary_panel(result))
    return result


def register(app: typer.Typer) -> None:
    @app.command("draw")
    def draw_command(
        concept: Optional[str] = typer.Argument(None, help="What to draw, e.g. \"a parrot in a jungle\"."),
        model: Optional[str] = typer.Option(None, help="local | local:/path.gguf | openai:NAME | PROVIDER:NAME, any "
                                            "installed LangChain provider, e.g. anthropic:claude-3-5-haiku-latest, "
                                            "ollama:qwen2.5-coder (default: local)."),
        base_url: Optional[str] = typer.Option(None, help="Any OpenAI-compatible server, e.g. http://localhost:8000/v1."),
        rpm: Optional[float] = typer.Option(None, help="At most this many model requests a minute (a client-side "
                                            "rate limit; 429s are retried after their Retry-After anyway). "
                                            "Env: DRAWLOOP_RPM."),
        critic_model: Optional[str] = typer.Option(None, help="A vision-language model that scores the PNG, "
                                                   "e.g. openai:gpt-4o-mini (adds the 'vlm' scorer, weight 2)."),
        critic_base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible server for --critic-model."),
        max_iters: int = typer.Option(5, help="Hard cap on rounds."),
        patience: int = typer.Option(2, help="Stop after this many rounds in which the judge kept the best."),
        candidates: int = typer.Option(DEFAULT_CANDIDATES, "--candidates", "-N",
                                       help="Drafts per round; the judge compares the round's best with the best "
                                            "so far."),
        min_delta: float = typer.Option(0.01, help="Smallest score gain that counts as improvement."),
        target: Optional[float] = typer.Option(None, help="Stop once the best score reaches this."),
        language: str = typer.Option("svg", help="Drawing language: svg or python."),
        feedback: str = typer.Option("critic", help="critic: full critic+recognizer feedback; plain: 'improve it'."),
        weights: Optional[str] = typer.Option(None, help="Critic weights, e.g. sanity=1,recognition=2,llm=1."),
        recognizer: str = typer.Option("code", help="code: the LLM reads the code (the study's protocol); "
                                       "pixels: kNN over human drawings; or a registered name."),
        critic: str = typer.Option("default", help="default: sanity, concept and structure (they see the "
                                   "picture), recognition and llm (they read the code); or a registered name."),
        temperature: float = typer.Option(0.7),
        speculation: Optional[str] = typer.Option(None, help="The local model's n-gram self-speculation: ngram-mod "
                                                  "(default; same greedy text, faster revisions) or off. "
                                                  "Env: DRAWLOOP_SPECULATION."),
        seed: Optional[int] = typer.Option(None),
        size: int = typer.Option(256, help="Render size in pixels."),
        out: Path = typer.Option(Path("runs"), "--out", help="Directory that holds run directories."),
        resume: Optional[Path] = typer.Option(None, help="Resume an interrupted run directory."),
        as_json: bool = typer.Option(False, "--json", help="Print a JSON summary instead of the live view."),
    ) -> None:
        """Draw one concept: draw -> render -> recognize -> critique -> redraw until it stops improving."""
        from drawloop.llm import open_model

        try:
            if resume is None and concept is None:
                raise UserError("say what to draw (drawloop draw \"a red apple\") or pass --resume RUN_DIR")
            settings = _settings(model=model, base_url=base_url, critic_model=critic_model,
                                 critic_base_url=critic_base_url, max_iters=max_iters,
                                 patience=patience, min_delta=min_delta, target=target, language=language,
                                 candidates=candidates,
                                 feedback=feedback, weights=weights, recognizer=recognizer, critic=critic,
                                 temperature=temperature, seed=seed, size=size, runs_dir=str(out),
                                 speculation=speculation, rpm=rpm)
            if resume is not None:
                result = _draw_resume(resume, as_json)  # the run's own settings decide the model
            else:
                from drawloop.api import validate_concept

                concept = validate_concept(concept)
                writable_folder(out)
                with open_model(settings) as models:
                    result = _draw_one(concept, settings, models, as_json)
        except _known_errors() as exc:
            err_console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(exit_code(exc))
        except Exception as exc:
            message = storage_error(exc)
            if message is None:
                raise
            err_console.print(f"[red]error:[/] {message}")
            raise typer.Exit(FAILED)
        if as_json:
            print(json.dumps(result.to_dict(), indent=2))
        _fail_without_a_drawing([result])

    @app.command("demo")
    def demo_command(
        model: Optional[str] = typer.Option(None, help="Default: the embedded local model (offline)."),
        max_iters: int = typer.Option(3, help="Rounds per concept at most."),
        patience: int = typer.Option(2),
        candidates: int = typer.Option(DEMO_CANDIDATES, "--candidates", "-N", help="Drafts per round."),
        speculation: Optional[str] = typer.Option(None, help="ngram-mod (default) or off."),
        out: Path = typer.Option(Path("runs"), "--out"),
    ) -> None:
        """Draw three concepts of increasing difficulty offline, with the live trace."""
        from drawloop.llm import open_model

        try:
            settings = _settings(model=model, max_iters=max_iters, patience=patience, candidates=candidates,
                                 runs_dir=str(out), seed=0, speculation=speculation)
            writable_folder(out)
            with open_model(settings) as models:
                console.print(f"[bold]drawloop demo[/] · model {models.label} · "
                              f"{len(DEMO_CONCEPTS)} concepts, up to {max_iters} rounds of {candidates} "
                              "candidate(s) each")
                results = [_draw_one(concept, settings, models, as_json=False) for concept in DEMO_CONCEPTS]
        except _known_errors() as exc:
            err_console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(exit_code(exc))
        console.print("\n[bold]contact sheets[/] (open them to see every iteration):")
        for result in results:
            best = result.best or {}
            where = f"round {best.get('round', 0)}, candidate {best.get('candidate', 0)}"
            kept = "a later candidate replaced the first draft" if result.best_index else "the first draft stayed best"
            console.print(f"  {result.run_dir / 'contact_sheet.png'}   best {result.best_score:.2f} ({where}: {kept})")
        _fail_without_a_drawing(results)


def _fail_without_a_drawing(results) -> None:
    """Exit 1 when a concept got no drawing at all (the model never answered, or only with
    garbage): scripts and CI must not read that as success. The run directory keeps every error."""
    empty = [r for r in results if not any(a.get("image") for a in r.attempts)]
    for result in empty:
        errors = [a.get("draw_error") or a.get("render_error") for a in result.attempts]
        reason = next((e for e in reversed(errors) if e), "no attempt was made")
        err_console.print(f"[red]error:[/] no drawing of {result.concept!r}: ", end="")
        err_console.print(f"{reason} (see {result.run_dir})", markup=False)
    if empty:
        raise typer.Exit(1)


def _draw_resume(resume: Path, as_json: bool):
    from drawloop.config import Settings
    from drawloop.llm import open_model
    from drawloop.runs import Run

    run = Run.open(resume)
    saved = {k: v for k, v in run.meta["settings"].items() if k != "api_key"}
    try:
        run_settings = Settings.from_env(**{**saved, "runs_dir": str(resume.parent)})
    except ValueError as exc:
        raise UserError(f"{resume / 'run.json'} cannot be resumed by this drawloop: {exc}") from None
    with open_model(run_settings) as models:
        return _draw_one(None, run_settings, models, as_json, resume=resume)
