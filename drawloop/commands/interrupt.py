"""Ctrl-C that stops a command at once, like a kill, with the terminal tidied and a resume hint.

    with StopOnCtrlC(lambda: "run the same command to resume", err_console) as stop:
        with Live(view) as live:
            stop.live = live                 # stopped cleanly before the hint is printed
            ...

Why not Python's KeyboardInterrupt: the loops' nodes run on worker threads that may be blocked on
the model for minutes (LangGraph runs nodes on its own pool when it streams events), and Python
waits for them before it exits. Stopping at once is safe because everything finished is durable
(SQLite checkpoints, manifests, content-addressed files survive a SIGKILL by design) and the
embedded model server dies with its parent (PDEATHSIG). A second Ctrl-C skips even the tidying.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any, Callable

from rich.console import Console


class StopOnCtrlC:
    def __init__(self, hint: Callable[[], str | None], console: Console):
        self.hint, self.console = hint, console
        self.live: Any = None            # anything with stop(): a rich Live or drawloop's LiveView
        self._previous = None

    def __enter__(self) -> "StopOnCtrlC":
        self._previous = _on_ctrl_c(lambda *_: self.interrupted())
        return self

    def __exit__(self, *exc: Any) -> None:
        _on_ctrl_c(self._previous)

    def interrupted(self) -> None:
        _on_ctrl_c(lambda *_: os._exit(130))
        if self.live is not None:
            try:
                self.live.stop()
            except Exception:  # noqa: BLE001 - the terminal state is best effort; the exit is not
                pass
        hint = self.hint()
        self.console.print("\n[yellow]interrupted.[/]" + (f" {hint}" if hint else ""), soft_wrap=True)
        exit_now(130)


def exit_now(code: int) -> None:
    """End the process without waiting for threads; their finished work is on disk already."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _on_ctrl_c(handler):
    """Install a SIGINT handler and return the one it replaces; nothing off the main thread, where
    Python allows no handlers (and where Ctrl-C never lands)."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, handler) or signal.default_int_handler
