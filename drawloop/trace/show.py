"""Show a replayed run in the terminal: what `drawloop trace show` prints.

    trace = load_run("runs/20261125-140024-a-red-apple-45bd")      # drawloop.trace.replay
    console.print(render_run(trace, diff=True))                     # header, then a tree per thread
    console.print(render_run(trace, thread="t3", thumb_width=24))   # one thread of a batch
    console.print(threads_table(trace))                             # one row per thread

replay.py reads a run into RunTrace (threads -> iterations -> steps); this module only lays that
out with rich: per iteration its score, what the recognizer saw, node rows with times, tokens
and the critic's feedback, a thumbnail of the PNG artifact and, with `diff`, the code diff.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from drawloop.trace.replay import (
    UNKNOWN,
    Iteration,
    RunTrace,
    Step,
    ThreadTrace,
    code_diff,
    selected_threads,
)
from drawloop.trace.thumbnail import Thumbnail
from drawloop.trace.view import sparkline

FEEDBACK_LINES = 6
MAX_TREES = 3     # more threads than this (a batch, a check-up): an overview table instead of trees
MAX_TABLE_ROWS = 200  # rich lays out big tables slowly, and nobody reads thousands of rows


def render_run(trace: RunTrace, thread: str | None = None, diff: bool = False, thumbs: bool = True,
               thumb_width: int = 20, all_threads: bool = False) -> RenderableType:
    """The replay as rich renderables: a header, then per thread a tree of iterations -> nodes
    (or, for a trace of many threads, a table of them unless `all_threads`)."""
    parts: list[RenderableType] = [_header(trace)]
    if thread is None and len(trace.threads) > MAX_TREES and not all_threads:
        parts += [threads_table(trace), Text("replay one thread: --thread THREAD   ·   every tree: --all",
                                             style="dim")]
        return Group(*parts)
    for t in selected_threads(trace, thread):
        tree = Tree(_thread_label(t), guide_style="dim")
        said: dict[str, int] = {}  # feedback text -> first iteration that got it
        for i, iteration in enumerate(t.iterations):
            branch = tree.add(_iteration_label(iteration, iteration.index == t.best, trace.concept))
            feedback = iteration._field("critique", "message")
            body: RenderableType = _steps_table(trace, iteration, said.get(feedback) if feedback else None)
            if feedback:
                said.setdefault(feedback, iteration.index)
            if thumbs:
                body = BesideOrAbove(_thumbnail(trace, iteration, thumb_width), body)
            branch.add(body)
            if diff and i > 0:
                previous = t.iterations[i - 1]
                branch.add(_diff_text(code_diff(trace, previous, iteration), previous.index))
        parts.append(tree)
    return Group(*parts)


def threads_table(trace: RunTrace) -> Table:
    """One row per thread: for traces of many threads, where trees would scroll for pages."""
    table = Table(box=box.SIMPLE_HEAD, title_justify="left")
    for name, justify in (("thread", "left"), ("iters", "right"), ("scores", "left"), ("best", "right"),
                          ("seen as (best)", "left"), ("stop", "left"), ("time", "right"),
                          ("tokens", "right")):
        table.add_column(name, justify=justify, no_wrap=name != "seen as (best)")
    threads = list(trace.threads.values())
    for t in threads[:MAX_TABLE_ROWS]:
        best = next((it for it in t.iterations if it.index == t.best), None)
        table.add_row(t.name, str(len(t.iterations)), sparkline(t.scores),
                      f"{best.score:.2f}" if best else "",
                      _seen(best.recognition, trace.concept) if best and best.recognition else "",
                      t.stop_reason or Text("not yet", style="yellow"), _seconds(t.seconds),
                      _tokens(*t.tokens))
    if len(threads) > MAX_TABLE_ROWS:
        table.caption = (f"… and {len(threads) - MAX_TABLE_ROWS} more threads "
                         "(--thread T for one, --json for all)")
    return table


class BesideOrAbove:
    """The thumbnail beside the node rows where the terminal is wide enough, above them where not."""

    def __init__(self, thumb: Thumbnail, rows: Table, min_rows_width: int = 70):
        self.thumb, self.rows, self.min_rows_width = thumb, rows, min_rows_width

    def __rich_console__(self, console, options):
        if options.max_width - self.thumb.width - 2 >= self.min_rows_width:
            grid = Table.grid(padding=(0, 2))
            grid.add_row(self.thumb, self.rows)
            yield grid
        else:
            yield self.thumb
            yield self.rows


# -- helpers ----------------------------------------------------------------------------------

def _tokens(tokens_in: int | None, tokens_out: int | None) -> str:
    if not tokens_in and not tokens_out:
        return ""
    return f"{tokens_in or 0}→{tokens_out or 0} tok"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}s" if value >= 0.1 else f"{value * 1000:.0f}ms"


def _seen(recognition: dict[str, Any], concept: str) -> Text:
    label = recognition.get("label")
    if not label:
        return Text("not recognized" + (f" ({recognition['error']})" if recognition.get("error") else ""),
                    style="yellow")
    if recognition.get("correct"):
        return Text(f"{label} ✓", style="green")
    wanted = Text(f" (wanted {concept})", style="dim") if concept != UNKNOWN else Text("")
    return Text(f"{label} ✗", style="red") + wanted


def _code_note(trace: RunTrace, step: Step) -> Text:
    """How much code the drawer wrote, and whether it ran into the token cap."""
    path = trace.artifact(step.artifact)
    if path is None:
        return Text("no code", style="dim")
    if not path.is_file():
        return Text(f"code missing ({step.artifact})", style="yellow")
    code = path.read_text(encoding="utf-8", errors="replace")
    lines = len(code.splitlines())
    size = _bytes(len(code.encode()))
    note = Text(f"{lines} line{'s' if lines != 1 else ''} · {size} {path.suffix.lstrip('.')}", style="dim")
    cap = (trace.meta.get("settings") or {}).get("max_tokens")
    if cap and step.tokens_out and step.tokens_out >= cap:
        note.append(f"  hit the {cap}-token cap: the answer was cut off", style="yellow")
    return note


def _bytes(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KB"


def _step_detail(trace: RunTrace, step: Step) -> Text:
    if step.interrupted:
        return Text("interrupted (no end event)", style="yellow")
    if step.error:
        return Text(step.error.strip().splitlines()[0][:160], style="red")
    concept = trace.concept
    if step.node == "draw":
        return _code_note(trace, step)
    if step.node == "render":
        return Text("ok", style="green")
    if step.node == "recognize":
        source = (step.recognition or {}).get("source")
        return _seen(step.recognition or {}, concept) + Text(f"  via {source}" if source else "", style="dim")
    if step.node == "decide":
        stop = step.message and step.message != "continue"
        return Text(f"stop: {step.message}" if stop else "continue", style="bold" if stop else "dim")
    detail = Text("")
    if step.score is not None:
        detail.append(f"{step.score:.2f}", style="bold")
    if step.scores:
        detail.append("  " + " · ".join(f"{k} {v:.2f}" for k, v in step.scores.items()), style="cyan")
    if step.node != "critique" and step.message:
        detail.append(("  " if detail else "") + step.message.strip().splitlines()[0][:160])
    return detail


def _feedback(step: Step | None, width: int = 100) -> Text | None:
    if not step or not step.message:
        return None
    lines = [line.rstrip() for line in step.message.strip().splitlines() if line.strip()]
    shown = [line if len(line) <= width else line[: width - 1] + "…" for line in lines[:FEEDBACK_LINES]]
    if len(lines) > FEEDBACK_LINES:
        shown.append(f"… {len(lines) - FEEDBACK_LINES} more lines (--json has all)")
    return Text("\n".join(shown), style="italic")


def _steps_table(trace: RunTrace, iteration: Iteration, repeats: int | None = None) -> Table:
    """The node rows; `repeats` names the earlier iteration whose feedback this one repeats word for word."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(justify="right", no_wrap=True, style="dim")
    table.add_column(overflow="fold")
    for step in iteration.steps:
        table.add_row(step.node, _seconds(step.seconds), _tokens(step.tokens_in, step.tokens_out),
                      _step_detail(trace, step))
        if step.node == "critique" and not step.error:
            feedback = (_feedback(step) if repeats is None
                        else Text(f"same feedback as #{repeats}", style="dim"))
            if feedback is not None:
                table.add_row("", "", "", feedback)
    return table


def _thumbnail(trace: RunTrace, iteration: Iteration, width: int) -> Thumbnail:
    if iteration.image_path:
        return Thumbnail.from_png(trace.artifact(iteration.image_path), width)
    draw = iteration.step("draw")
    if draw is not None and draw.error:
        return Thumbnail.placeholder("no code", width)
    if iteration.error:
        return Thumbnail.placeholder("render failed", width)
    return Thumbnail.placeholder("not rendered", width)


def _diff_text(diff: str | None, previous: int) -> Text:
    if diff is None:
        return Text(f"code diff vs #{previous}: code not available", style="dim")
    if not diff:
        return Text(f"code identical to #{previous}", style="yellow")
    lines = diff.splitlines()
    added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("---"))
    text = Text()
    text.append(f"code diff vs #{previous}: +{added} −{removed}\n", style="bold")
    for line in lines[2:]:  # the ---/+++ header repeats what the title says
        style = ("green" if line.startswith("+") else "red" if line.startswith("-")
                 else "cyan" if line.startswith("@@") else "dim")
        text.append(line + "\n", style=style)
    text.rstrip()
    return text


def _iteration_label(iteration: Iteration, best: bool, concept: str) -> Text:
    label = Text(f"#{iteration.index}", style="bold")
    if iteration.score is not None:
        label.append(f"  score {iteration.score:.2f}", style="bold green" if best else "bold")
    if best:
        label.append("  ★ best", style="green")
    if iteration.recognition:
        label.append("  seen as ")
        label.append_text(_seen(iteration.recognition, concept))
    elif iteration.error:
        label.append("  " + iteration.error.strip().splitlines()[0][:80], style="red")
    label.append(f"   {_seconds(iteration.seconds)}", style="dim")
    tokens = _tokens(*iteration.tokens)
    if tokens:
        label.append(f" · {tokens}", style="dim")
    if iteration.cost_usd is not None:
        label.append(f" · ${iteration.cost_usd:.4f}", style="dim")
    return label


def _header(trace: RunTrace) -> Text:
    text = Text()
    if trace.concept == UNKNOWN:
        text.append(f"trace of {trace.path}", style="bold")
        text.append(f"   {len(trace.threads)} thread(s)", style="cyan")
    else:
        text.append(trace.concept, style="bold")
    if trace.model:
        text.append(f"   {trace.model}", style="cyan")
    if trace.concept != UNKNOWN:
        text.append(f"\nrun {trace.path.name}", style="dim")
    if trace.meta.get("created"):
        text.append(f" · created {trace.meta['created'].replace('T', ' ')}", style="dim")
    if trace.result is None and trace.has_trace and trace.meta:
        text.append(" · unfinished (no result.json)", style="yellow")
    if not trace.has_trace:
        text.append("\nno trace.jsonl in this run: nothing to replay", style="yellow")
    if trace.skipped_lines:
        text.append(f"\n{trace.skipped_lines} unreadable trace line(s) skipped", style="yellow")
    missing = trace.missing_artifacts()
    if missing:
        text.append(f"\n{len(missing)} artifact file(s) missing from {trace.path.name}/artifacts",
                    style="yellow")
    return text


def _thread_label(thread: ThreadTrace) -> Text:
    label = Text(f"thread {thread.name or '(none)'}", style="bold")
    label.append(f"  {len(thread.iterations)} iteration(s)")
    if thread.scores:
        label.append(f"  scores {sparkline(thread.scores)} ", style="green")
        label.append(" → ".join(f"{s:.2f}" for s in thread.scores), style="dim")
    if thread.best is not None:
        best = next(it for it in thread.iterations if it.index == thread.best)
        label.append(f"  best {best.score:.2f} at #{best.index}", style="bold green")
    label.append(f"  stop: {thread.stop_reason or 'not yet'}",
                 style="bold" if thread.stop_reason else "yellow")
    tokens_in, tokens_out = thread.tokens
    label.append(f"\n{_seconds(thread.seconds)} in nodes · tokens {tokens_in} in / {tokens_out} out",
                 style="dim")
    costs = [it.cost_usd for it in thread.iterations if it.cost_usd is not None]
    if costs:
        label.append(f" · ${sum(costs):.4f}", style="dim")
    return label
