"""`drawloop dataset`: build, inspect and re-curate datasets of drawings.

    drawloop dataset build --concepts shapes --samples 2 --out data/shapes --max-iters 2
    drawloop dataset build --concepts all --samples 20 --out data/llm --concurrency 32 \\
        --model openai:qwen2.5-coder --base-url http://gpu-box:8000/v1
    drawloop dataset build ... --executor ray --ray-address auto   # workers on a Ray cluster (README: On a cluster)
    drawloop dataset build --concepts my_concepts.txt --samples 5 --out data/mine   # one concept a line
    drawloop dataset info data/shapes                 # done / failed / pending per level, failure reasons
    drawloop dataset curate data/shapes --dedup 0.9   # another near-duplicate threshold, no redrawing
    drawloop dataset export-code data/llm data/llm-drawings.jsonl   # code only, one line a drawing: commit it
    drawloop dataset build ... --out /shared/data/llm --checkpoint postgresql://drawloop@db-host/drawloop

Kill a build at any moment (Ctrl-C, SIGKILL, a reboot) and run the same command again: it resumes.
"""

from __future__ import annotations

import json
import time
import traceback
from collections import Counter, deque
from pathlib import Path
from typing import Optional

import typer
from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from drawloop.commands.interrupt import StopOnCtrlC, exit_now
from drawloop.commands import console, err_console, exit_code



def _known_errors() -> tuple[type[BaseException], ...]:
    from drawloop.dataset.reader import DatasetError
    from drawloop.graphs.batch import BatchAborted
    from drawloop.llm.chat import LLMError
    from drawloop.local_model import LocalModelError

    return (ValueError, LLMError, LocalModelError, BatchAborted, DatasetError, OSError)  # OSError: disk full...


def _checkpoint_option():
    return typer.Option(None, "--checkpoint", help="postgresql://user@host:port/db: the manifest and checkpoints "
                        "in Postgres, so another machine resumes the build (default: SQLite files in the folder). "
                        "Env: DRAWLOOP_CHECKPOINT.")


def _validation_option():
    return typer.Option(None, "--validation", min=0.0, max=0.99, help="Share of the concepts held out as the "
                        "validation split (by concept: all drawings of a concept in one split); default 0.1, or "
                        "what the dataset had.")


def _format_option():
    return typer.Option(None, "--format", help="imagefolder: split folders + metadata.jsonl (always written); "
                        "webdataset: tar shards in webdataset/ as well, for large builds. Default: as before.")


def _license_option():
    return typer.Option(None, "--license", help="The dataset card's license, a Hub license id (cc-by-4.0, mit, "
                        "other, ...); default unknown, or what the dataset had.")


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class BatchView:
    """The live display: a bar, counts, throughput, tokens, ETA, the latest drawings."""

    def __init__(self, title: str):
        self.title = title
        self.stats = None
        self.recent: deque[str] = deque(maxlen=4)
        self.frozen: tuple[float, float] | None = None   # (per minute, elapsed) once drawing is over

    def progress(self, stats) -> None:
        self.stats = stats
        if stats.done + stats.failed >= stats.total and not stats.running:
            self.frozen = (stats.per_minute, stats.elapsed)

    def drawing(self, record: dict) -> None:
        mark = "[green]right[/]" if record.get("recognized") else "[red]wrong[/]"
        self.recent.appendleft(f"{record['concept']} #{record['sample']}  score {record['score']:.2f} {mark}"
                               f"  ({record['iterations']} it)")

    def __rich__(self):
        s = self.stats
        if s is None:
            return Text(f"{self.title}\nstarting...")
        finished = s.done + s.failed
        bar = ProgressBar(total=max(1, s.total), completed=finished, width=50)
        line = Table.grid(padding=(0, 1))
        line.add_row(bar, Text(f"{finished}/{s.total}  {100 * finished / max(1, s.total):.0f}%"))
        earlier = f" ({s.done_before} earlier)" if s.done_before else ""
        per_minute, elapsed = self.frozen or (s.per_minute, s.elapsed)
        parts = [
            Text.from_markup(f"[bold]{self.title}[/]"), line,
            Text.from_markup(f"done [green]{s.done}[/]{earlier} · failed [red]{s.failed}[/] · running "
                             f"[cyan]{s.running}[/] · pending {s.pending} · retried {s.retries}"),
            Text(f"{per_minute:.1f} drawings/min · tokens {s.tokens_in:,} in / {s.tokens_out:,} out · "
                 f"elapsed {_clock(elapsed)} · ETA {_clock(0 if self.frozen else s.eta_seconds)}"),
        ]
        if self.frozen:
            parts.append(Text("drawing done: embedding, deduplicating, exporting...", style="cyan"))
        parts += [Text.from_markup(f"  [dim]latest:[/] {line}") for line in self.recent]
        if s.last_error:
            parts.append(Text(f"last error: {s.last_error[:160]}", style="yellow"))
        return Group(*parts)


def build_command(
    concepts: str = typer.Option(..., "--concepts", "-c", help="Levels (shapes,objects,scenes,compositions,"
                                 "effects,relations), 'all', or a file with one concept per line."),
    samples: int = typer.Option(..., "--samples", "-n", min=1, help="Drawings per concept."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder (created; rerun to resume)."),
    concurrency: int = typer.Option(4, "--concurrency", "-k", min=1, max=1024,
                                    help="Threads drawing at once (the local model gets as many slots, up to 8)."),
    executor_name: str = typer.Option("thread", "--executor", help="thread: threads in this process; ray: worker "
                                      "processes on a Ray cluster (pip install 'drawloop[cluster]'; README: On a cluster)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="With --executor ray: auto (the cluster "
                                              "`ray start --head` began here) or ray://HOST:10001; default: start Ray "
                                              "on this machine unless one is running."),
    model: Optional[str] = typer.Option(None, help="local | local:/path.gguf | openai:NAME (default: local)."),
    base_url: Optional[str] = typer.Option(None, help="Any OpenAI-compatible server, e.g. http://host:8000/v1."),
    max_iters: int = typer.Option(3, help="Attempts per drawing at most."),
    patience: int = typer.Option(2, help="Stop a drawing after this many rounds without improvement."),
    candidates: int = typer.Option(1, "--candidates", "-N", help="Drafts per round, judged pairwise."),
    temperature: float = typer.Option(0.7, help="Mean sampling temperature of the drawer."),
    spread: float = typer.Option(0.2, help="Each drawing's temperature is drawn from mean ± spread."),
    seed: int = typer.Option(0, help="Build seed: every drawing's seed derives from it."),
    size: int = typer.Option(256, help="Render size in pixels."),
    language: str = typer.Option("svg", help="Drawing language: svg or python."),
    tries: int = typer.Option(3, min=1, help="Tries per drawing before it is recorded as failed."),
    dedup: float = typer.Option(0.97, help="Near-duplicate threshold (cosine similarity of image features)."),
    dedup_scope: str = typer.Option("concept", help="concept: copies within a concept; global: across all."),
    embedder: str = typer.Option("efficientnet-lite0", help="Image features: efficientnet-lite0 | thumbnail."),
    limit: Optional[int] = typer.Option(None, min=1, help="Use only N concepts, spread evenly over the selection."),
    retry_failed: bool = typer.Option(False, help="Give drawings that failed for good a fresh set of tries."),
    as_json: bool = typer.Option(False, "--json", help="No live view; print a JSON summary at the end."),
    checkpoint: Optional[str] = _checkpoint_option(),
    validation: Optional[float] = _validation_option(),
    data_format: Optional[str] = _format_option(),
    license: Optional[str] = _license_option(),
) -> None:
    """Draw every concept N times into a resumable, deduplicated, FAISS-indexed dataset."""
    from drawloop.config import Settings
    from drawloop.dataset import build_dataset
    from drawloop.graphs.ray_executor import make_executor

    try:
        executor = make_executor(executor_name, ray_address)   # Ray is imported and joined inside the build
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    # Ctrl-C ends the build at once (see commands/interrupt.py): every finished drawing is durable.
    with StopOnCtrlC(lambda: f"Every finished drawing is saved in {out}; run the same command to resume.",
                     err_console) as stop:
        try:
            settings = Settings.from_env(model=model, base_url=base_url, max_iters=max_iters, patience=patience,
                                         candidates=candidates, temperature=temperature, size=size, language=language, seed=seed)
            view = BatchView(f"drawloop dataset build · {out} · {settings.model} · {concurrency} at a time")
            log = (lambda _: None) if as_json else (lambda text: console.print(f"[dim]{text}[/]"))
            kwargs = dict(concurrency=concurrency, tries=tries, seed=seed, spread=spread, dedup=dedup,
                          dedup_scope=dedup_scope, embedder=embedder, limit=limit, retry_failed=retry_failed,
                          log=log, executor=executor, checkpoint=checkpoint, validation=validation,
                          format=data_format, license=license)
            if as_json:
                result = build_dataset(concepts, samples, out, settings, **kwargs)
            else:
                from rich.live import Live

                with Live(view, console=console, refresh_per_second=2, transient=False) as stop.live:
                    result = build_dataset(concepts, samples, out, settings, on_progress=view.progress,
                                           on_drawing=view.drawing, **kwargs)
        except KeyboardInterrupt:
            stop.interrupted()
        except _known_errors() as exc:
            err_console.print(f"[red]error:[/] {exc}", soft_wrap=True)   # paths stay whole, to copy
            if out.exists():
                err_console.print("finished drawings are saved; fix the cause and run the same command to resume.")
            if not executor.join(timeout=1.0):
                exit_now(exit_code(exc))   # threads still waiting on the model would hold a normal exit for minutes
            raise typer.Exit(exit_code(exc))
        except Exception:
            if executor.join(timeout=1.0):
                raise
            traceback.print_exc()   # a bug: show it, but do not wait minutes for the model first
            exit_now(1)
    if hasattr(executor, "close"):
        executor.close()   # Ray's workers and per-node model servers
    if as_json:
        print(json.dumps({"out": str(out), "counts": result.counts, "stats": result.stats.to_dict(),
                          "summary": result.summary}, indent=2, default=str))
        return
    _print_summary(out, result.summary, result.counts)


def _print_summary(out: Path, summary: dict, counts: dict) -> None:
    table = Table(title=f"{out}: {summary['kept']} drawings kept", show_lines=False)
    for name in ("level", "concepts", "drawings", "kept", "duplicates", "failed", "mean score", "recognized",
                 "diversity"):
        table.add_column(name, justify="left" if name == "level" else "right")
    for level, s in summary["levels"].items():
        table.add_row(level, str(s["concepts"]), str(s["drawings"]), str(s["kept"]), str(s["duplicates"]),
                      str(s["failed"]), f"{s['score'].get('mean', 0):.2f}" if s["score"] else "–",
                      f"{100 * s['recognized']:.0f}%" if s["recognized"] is not None else "–",
                      f"{s['diversity'].get('mean', 0):.2f}" if s["diversity"] else "–")
    console.print(table)
    if counts.get("pending"):
        console.print(f"[yellow]{counts['pending']} drawings still pending[/]: run the same command to finish.")
    console.print(f"card: {out / 'README.md'}   contact sheets: {out / 'contact_sheets'}")


def info_command(
    root: Path = typer.Argument(..., help="A dataset folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    checkpoint: Optional[str] = _checkpoint_option(),
) -> None:
    """Where a build stands: done / failed / pending per level, settings, why drawings failed."""
    from drawloop.dataset.manifest import is_dataset, open_manifest

    if not is_dataset(root):
        err_console.print(f"[red]error:[/] {root} is not a drawloop dataset (no manifest.sqlite or postgres.json)")
        raise typer.Exit(2)
    try:
        with open_manifest(root, checkpoint) as manifest:
            jobs, info, failures = manifest.jobs(), manifest.info(), manifest.failures()
    except _known_errors() as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exit_code(exc))
    levels: dict[str, Counter] = {}
    for job in jobs:
        levels.setdefault(job.level, Counter())[job.status] += 1
    duplicates = 0
    if (root / "metadata.jsonl").is_file():
        duplicates = sum(1 for line in (root / "metadata.jsonl").read_text().splitlines()
                         if line.strip() and json.loads(line).get("duplicate"))
    reasons = Counter(f["reason"].split(";")[-1].strip()[:100] for f in failures)
    report = {"root": str(root), "build": info, "duplicates": duplicates,
              "levels": {level: dict(counts) for level, counts in sorted(levels.items())},
              "failure_reasons": reasons.most_common(10)}
    if as_json:
        print(json.dumps(report, indent=2, default=str))
        return
    table = Table(title=f"{root} · {info.get('model', '?')} · {len(jobs)} jobs")
    for name in ("level", "done", "failed", "pending"):
        table.add_column(name, justify="left" if name == "level" else "right")
    for level, counts in sorted(levels.items()):
        table.add_row(level, str(counts["done"]), str(counts["failed"]), str(counts["pending"]))
    console.print(table)
    console.print(f"near-duplicates set aside at the last curation: {duplicates}")
    if reasons:
        console.print("failed tries by reason:")
        for reason, count in reasons.most_common(10):
            console.print(f"  {count} × {reason}")
    console.print(f"built with: {info.get('command', '?')}")


def curate_command(
    root: Path = typer.Argument(..., help="A dataset folder."),
    dedup: Optional[float] = typer.Option(None, help="New near-duplicate threshold (cosine similarity)."),
    dedup_scope: Optional[str] = typer.Option(None, help="concept | global."),
    embedder: Optional[str] = typer.Option(None, help="efficientnet-lite0 | thumbnail."),
    checkpoint: Optional[str] = _checkpoint_option(),
    validation: Optional[float] = _validation_option(),
    data_format: Optional[str] = _format_option(),
    license: Optional[str] = _license_option(),
) -> None:
    """Re-curate and re-export a dataset (dedup, index, card, contact sheets) without drawing."""
    from drawloop.dataset import curate_dataset
    from drawloop.dataset.manifest import open_manifest

    try:
        start = time.perf_counter()
        summary = curate_dataset(root, dedup=dedup, embedder=embedder, dedup_scope=dedup_scope,
                                 log=lambda text: console.print(f"[dim]{text}[/]"), checkpoint=checkpoint,
                                 validation=validation, format=data_format, license=license)
        with open_manifest(root, checkpoint) as manifest:
            counts = manifest.counts()
    except _known_errors() as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exit_code(exc))
    _print_summary(root, summary, counts)
    console.print(f"[dim]curated in {time.perf_counter() - start:.1f}s[/]")


def export_code_command(
    root: Path = typer.Argument(..., help="A finished dataset folder."),
    out: Path = typer.Argument(..., help="The JSONL to write (.jsonl.gz: gzipped)."),
) -> None:
    """Code-only copy of the kept drawings, one JSON line each (no PNGs: small enough to commit);
    `drawloop compare --drawings OUT` renders them again (drawloop/dataset/code_export.py)."""
    from drawloop.dataset.code_export import export_code

    try:
        summary = export_code(root, out)
    except (ValueError, OSError) as exc:   # not a dataset, a missing code file: 2; the disk: 1
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2 if isinstance(exc, ValueError) else 1)
    models = ", ".join(f"{name} ({n})" for name, n in summary["models"].items())
    console.print(f"{out}: {summary['drawings']} drawings of {summary['concepts']} concepts "
                  f"({summary['first_drafts']} first drafts, {summary['refined']} refined), "
                  f"{summary['bytes'] / 1e6:.2f} MB; drawn by {models}")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Datasets of drawings: build (resumable, concurrent), info, curate, export-code.",
                        no_args_is_help=True)
    group.command("build")(build_command)
    group.command("info")(info_command)
    group.command("curate")(curate_command)
    group.command("export-code")(export_code_command)
    app.add_typer(group, name="dataset")
