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


TIDY_SECONDS = 1.0     # how long Ctrl-C waits for the live view to stop before exiting anyway


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
        try:
            # Tidy on a helper thread with a deadline: this handler interrupts the main thread at an
            # arbitrary bytecode, possibly inside a print holding a console lock that the live view's
            # refresh thread (or a worker writing through rich's stdout proxy) needs next: stopping
            # the view here could wait forever. CI saw exactly that hang once.
            tidy = threading.Thread(target=self._stop_live, daemon=True)
            tidy.start()
            tidy.join(TIDY_SECONDS)
            hint = self.hint()
            label = "\x1b[33minterrupted.\x1b[0m" if self.console.is_terminal else "interrupted."
            message = label + (f" {hint}" if hint else "")
            # os.write, not the console: its locks may be held by the code this handler interrupted.
            os.write(_fd_of(self.console), f"\n{message}\n".encode("utf-8", "replace"))
        finally:
            exit_now(130)

    def _stop_live(self) -> None:
        if self.live is not None:
            try:
                self.live.stop()
            except Exception:  # noqa: BLE001 - the terminal state is best effort; the exit is not
                pass


def exit_now(code: int) -> None:
    """End the process without waiting for threads; their finished work is on disk already."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - e.g. a flush re-entered from a signal handler
            pass
    os._exit(code)


def _fd_of(console: Console) -> int:
    """The console's file descriptor, under rich's stdout/stderr proxy if a live view is showing."""
    if console.file in (sys.stdout, sys.stderr):
        return 2 if console.stderr else 1
    try:
        return console.file.fileno()
    except (AttributeError, OSError, ValueError):
        return 2


def _on_ctrl_c(handler):
    """Install a SIGINT handler and return the one it replaces; nothing off the main thread, where
    Python allows no handlers (and where Ctrl-C never lands)."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, handler) or signal.default_int_handler
