"""The `drawloop` sub-commands, one module per command group, and the consoles they share.

    from drawloop.commands import console, err_console
    err_console.print(f"[red]no such directory:[/] {path}")

Messages are soft-wrapped: rich never breaks a line at 80 columns when output is not a terminal,
so `grep`, scripts and long paths see each message on one line. Tables still fit the width.
"""

from rich.console import Console

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
