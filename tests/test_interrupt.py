"""Ctrl-C handling shared by draw, demo, checkup and dataset build (drawloop/commands/interrupt.py)."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import os, signal, threading, time
    from rich.console import Console
    from drawloop.commands.interrupt import StopOnCtrlC

    class StuckView:            # a live view whose stop() never returns, like a deadlocked rich Live
        def stop(self):
            threading.Event().wait()

    with StopOnCtrlC(lambda: "rerun to resume", Console(stderr=True)) as stop:
        stop.live = StuckView() if os.environ.get("STUCK") else None
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(60)          # never reached: the handler exits
    print("handler did not exit")
""")


def _interrupt(stuck: bool) -> subprocess.CompletedProcess:
    env = {"STUCK": "1"} if stuck else {}
    return subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **env})


def test_ctrl_c_exits_130_with_the_resume_hint():
    result = _interrupt(stuck=False)
    assert result.returncode == 130, result
    assert "interrupted. rerun to resume" in result.stderr
    assert "did not exit" not in result.stdout


def test_ctrl_c_exits_even_when_the_live_view_cannot_stop():
    """The handler runs wherever the main thread was, maybe inside a print holding rich's locks:
    a view that never stops must not keep the process alive (CI hung on this once)."""
    result = _interrupt(stuck=True)
    assert result.returncode == 130, result
    assert "interrupted. rerun to resume" in result.stderr
