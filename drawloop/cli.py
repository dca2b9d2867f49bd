"""The `drawloop` command. Each group of sub-commands lives in drawloop/commands/<area>.py and
exposes `register(app)`; heavy imports (torch, faiss) happen inside the command functions so
`drawloop --help` stays instant.

    drawloop draw "a red apple" --max-iters 6
    drawloop --help
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="drawloop",
    help="Language models learn to see by drawing: draw, render, recognize, critique, redraw.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# One line per command module; each defines register(app).
COMMAND_MODULES = (
    "drawloop.commands.draw",
    "drawloop.commands.concepts",
    "drawloop.commands.dataset",
    "drawloop.commands.vision",
    "drawloop.commands.train",
    "drawloop.commands.checkup",
    "drawloop.commands.trace",
    "drawloop.commands.runs",
    "drawloop.commands.critique",
)


def build_app() -> typer.Typer:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)
    return app


def main() -> None:
    build_app()()


if __name__ == "__main__":
    main()
