"""The live terminal view of a drawing run (rich).

    view = LiveView(concept="a red apple", model="local:qwen2.5-coder-1.5b")
    with view:
        result = draw("a red apple", on_event=view.update)
    console.print(summary_panel(result))

One row per iteration: draw time and tokens, render outcome, what the recognizer saw, the
critic's score per scorer, and the first line of its feedback; a status line says which node is
running right now, and while the drawer writes, the last lines of its draft stream under it:

    result = draw("a red apple", on_event=view.update, on_token=view.token)

The view redraws itself a few times a second from its state (events and tokens only change the
state), and the draft always takes the same number of lines, cut to the terminal's width, so a
streaming answer never makes the screen jump.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from drawloop.text import clean_text
from drawloop.trace.events import TraceEvent

SPARK = "▁▂▃▄▅▆▇█"
DRAFT_LINES = 3          # lines of the draft shown under the spinner
DRAFT_KEEP = 2000        # characters of each draft kept (only its tail is ever shown)


def sparkline(values: list[float]) -> str:
    return "".join(SPARK[min(len(SPARK) - 1, int(max(0.0, min(1.0, v)) * (len(SPARK) - 1) + 0.5))] for v in values)


class LiveView:
    def __init__(self, concept: str, model: str = "", console: Console | None = None):
        self.concept = concept
        self.model = model
        self.console = console or Console()
        self.rows: dict[int, dict[str, Any]] = {}
        self.running: str | None = None
        self.running_since = time.monotonic()
        self.stop_reason: str | None = None
        self.run_id = ""
        self.multi = False          # several candidates a round: label rows round.candidate
        self.drafts: dict[str, dict[str, Any]] = {}   # drawing task -> {"id": message id, "text": its tail}
        self.tokens_seen = 0
        self._drawing = 0           # draw nodes started and not yet ended
        self._lock = threading.Lock()   # the refresh thread renders while events and tokens arrive
        self._live: Live | None = None

    def __enter__(self) -> "LiveView":
        self._live = Live(get_renderable=self.render, console=self.console, refresh_per_second=8, transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        with self._lock:
            self.running = None
            self.drafts.clear()
        if self._live:
            self._live.refresh()
            self._live.__exit__(*exc)

    def token(self, text: str, meta: dict | None = None) -> None:
        """A piece of the drawer's answer as it streams (LangGraph `messages` mode, via
        draw(on_token=...)). Drafts are told apart by their LangGraph task; a new answer in the
        same task (a retry) starts its draft afresh. Shown on the next refresh, not redrawn here."""
        meta = meta or {}
        if meta.get("langgraph_node", "draw") != "draw" or not text:
            return
        key = str(meta.get("langgraph_checkpoint_ns") or "draw")
        with self._lock:
            draft = self.drafts.get(key)
            if draft is None or draft["id"] != meta.get("message_id"):
                draft = self.drafts[key] = {"id": meta.get("message_id"), "text": ""}
            draft["text"] = (draft["text"] + text)[-DRAFT_KEEP:]
            draft["at"] = time.monotonic()
            self.tokens_seen += 1

    def stop(self) -> None:
        """Leave the terminal tidy when the process is about to end abruptly (Ctrl-C)."""
        if self._live:
            self._live.stop()

    def update(self, event: TraceEvent) -> None:
        with self._lock:
            self._update(event)
        if self._live:
            self._live.refresh()

    def _update(self, event: TraceEvent) -> None:
        self.run_id = event.run or self.run_id
        if event.node == "draw" and event.phase in ("start", "end"):
            self._drawing = max(0, self._drawing + (1 if event.phase == "start" else -1))
            if not self._drawing:
                self.drafts.clear()   # the round's drafts are written: their rows say the rest
        if event.phase == "info":     # e.g. a node that runs again after a rate limit
            if event.message:
                self.rows.setdefault(event.iteration, {})["note"] = event.message
            return
        row = self.rows.setdefault(event.iteration, {})
        if event.candidate is not None:
            row["label"] = f"{event.round}.{event.candidate}"
            self.multi = self.multi or event.candidate > 0
        if event.phase == "start":
            self.running, self.running_since = event.node, time.monotonic()
        elif event.node == "draw":
            row["draw"] = f"{event.seconds or 0:.1f}s" + (f" · {event.tokens_out} tok" if event.tokens_out else "")
            if event.error:
                row["render"] = Text("no code", style="red")
                row["note"] = event.error
        elif event.node == "render":
            row["render"] = Text("ok", style="green") if not event.error else Text("failed", style="red")
            if event.error:
                row["note"] = event.error
        elif event.node == "recognize":
            rec = event.recognition or {}
            label = rec.get("label") or "?"
            row["seen"] = Text(label, style="green" if rec.get("correct") else "yellow")
        elif event.node == "critique":
            row["score"] = event.score
            row["scores"] = " ".join(f"{k[:5]} {v:.2f}" for k, v in (event.scores or {}).items())
            if event.notes:
                row["note"] = "critic: " + "; ".join(event.notes)
            if event.message and "note" not in row:
                row["note"] = event.message
        elif event.node == "judge":
            kept = (event.message or "").startswith("kept")
            row["verdict"] = Text("★ " if kept else "· ", style="bold green" if kept else "dim")
            row["note"] = event.message or ""
            if event.score is not None:  # the winner's score after any review node
                row["score"] = event.score
        elif event.node == "decide":
            self.running = None
            if event.round is None and event.score is not None:  # traces before rounds: the final score
                row["score"] = event.score
            if event.message and event.message != "continue":
                self.stop_reason = event.message
        elif event.phase == "end" and (event.message or event.error):  # a custom node, e.g. a reviewer
            row["note"] = f"{event.node}: {(event.error or event.message).strip()}"

    def render(self) -> Group:
        with self._lock:
            return self._render()

    def _draft_lines(self) -> list[Text]:
        """The last DRAFT_LINES lines of the draft written to most recently (always that many, so
        the view keeps its height), as plain text; the caller keeps each to one line."""
        if not self.drafts:
            return []
        drafts = sorted(self.drafts.values(), key=lambda d: d.get("at", 0.0))
        tail = clean_text(drafts[-1]["text"][-DRAFT_LINES * 240:]).expandtabs(4)
        lines = tail.split("\n")[-DRAFT_LINES:]
        lines = [""] * (DRAFT_LINES - len(lines)) + lines
        label = f"{len(drafts)} drafts" if len(drafts) > 1 else "draft"   # the latest one shows
        margins = [f"  {label} │ "] + [" " * (len(label) + 3) + "│ "] * (DRAFT_LINES - 1)
        return [Text(margin, style="dim") + Text(line, style="cyan") for margin, line in zip(margins, lines)]

    def _render(self) -> Group:
        table = Table(title=f"[bold]{self.concept}[/]  [dim]{self.model}[/]", expand=True, title_justify="left")
        table.add_column("round.cand" if self.multi else "iter", justify="right", width=10 if self.multi else 4)
        table.add_column("draw", width=18, no_wrap=True)
        table.add_column("render", width=7)
        table.add_column("recognized as", width=22)
        table.add_column("score", justify="right", width=6)
        table.add_column("per scorer", width=31, no_wrap=True)
        table.add_column("feedback", ratio=1, no_wrap=True, overflow="ellipsis")
        scores = []
        for iteration in sorted(self.rows):
            row = self.rows[iteration]
            score = row.get("score")
            if score is not None:
                scores.append(score)
            note = (row.get("note") or "").strip().splitlines()
            label = Text(row["label"] if self.multi and "label" in row else str(iteration))
            if "verdict" in row:
                label = Text.assemble(row["verdict"], label)
            table.add_row(label, row.get("draw", ""), row.get("render", ""), row.get("seen", ""),
                          f"{score:.2f}" if score is not None else "", row.get("scores", ""),
                          note[0] if note else "")
        parts: list[Any] = [table]
        if scores:
            parts.append(Text(f"score curve  {sparkline(scores)}  best {max(scores):.2f}"))
        if self.running:
            elapsed = time.monotonic() - self.running_since
            parts.append(Spinner("dots", text=f" {self.running} … {elapsed:.0f}s"))
            for line in self._draft_lines():
                line.no_wrap, line.overflow = True, "ellipsis"
                parts.append(line)
        elif self.stop_reason:
            parts.append(Text(f"stopped: {self.stop_reason}", style="bold"))
        return Group(*parts)


def summary_panel(result: Any) -> Panel:
    data = result.to_dict()
    lines = [
        f"[bold]best score[/] {data['best_score']:.2f} at iteration {data['best_iteration']}"
        f"  ·  recognized as: {data['best_recognized_as'] or '—'}",
        f"[bold]scores[/] {' → '.join(f'{s:.2f}' for s in data['scores'])}  {sparkline(data['scores'])}",
        f"[bold]stop[/] {data['stop_reason']}  ·  {data['iterations']} iterations  ·  {data['seconds']:.0f}s"
        f"  ·  tokens in/out {data['usage']['tokens_in']}/{data['usage']['tokens_out']}",
        f"[bold]model[/] {data['model']}",
        f"[bold]run[/] {data['run_dir']}  (best.png, contact_sheet.png, trace.jsonl)",
        f"[bold]replay[/] drawloop trace show {data['run_dir']} --diff",
    ]
    return Panel("\n".join(lines), title=data["concept"], expand=False)
