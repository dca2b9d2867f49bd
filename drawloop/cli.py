"""The `drawloop` command. Each group of sub-commands lives in drawloop/commands/<area>.py and
exposes `register(app)`; heavy imports (torch, faiss) happen inside the command functions so
`drawloop --help` stays instant.

    drawloop draw "a red apple" --max-iters 6
    drawloop --help
    drawloop --version
    drawloop -v dataset build ...          # log to stderr: -v INFO, -vv DEBUG (stdout stays the command's)
    drawloop --install-completion          # tab completion for bash, zsh, fish or PowerShell

Options that read an environment variable when they are not given say so in --help
([env var: DRAWLOOP_MAX_ITERS]); `_wire_env` attaches them from one table, below, so that every
command's --max-iters reads DRAWLOOP_MAX_ITERS and the help cannot drift from config.Settings.
Exit codes: drawloop/commands/__init__.py (0 done, 1 the work failed, 2 a usage error, 130 Ctrl-C).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
import sys

import typer

EPILOG = (
    "[bold]Exit codes[/]: 0 done · 1 the work failed (the model, the network, the disk, a damaged or busy "
    "dataset, no drawing at all) · 2 the command line is wrong (a bad option value, a missing file, an "
    "unknown concept or run) · 130 interrupted (Ctrl-C).\n\n"
    "[bold]Environment[/]: an option marked \\[env var: ...] reads that variable when it is not given; every "
    "setting also reads DRAWLOOP_<SETTING> in the library (DRAWLOOP_MAX_ITERS, DRAWLOOP_TEMPERATURE, ...), "
    "and OPENAI_API_KEY / OPENAI_BASE_URL are the fallbacks for the key and the server.\n\n"
    "[bold]Shell completion[/]: drawloop --install-completion (bash, zsh, fish, PowerShell), or "
    "--show-completion to print the script. [bold]Logs[/]: drawloop -v COMMAND (INFO) or -vv (DEBUG), on stderr."
)

app = typer.Typer(
    name="drawloop",
    help="Language models learn to see by drawing: draw, render, recognize, critique, redraw.",
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)

# Commands whose options build a Settings: an option named like a Settings field reads its variable.
SETTINGS_COMMANDS = ("draw", "demo", "critique", "dataset build", "checkup")
# Options that read a variable by another rule: "name" anywhere, or "name@command".
OPTION_ENV = {
    "out@draw": ["DRAWLOOP_RUNS_DIR"], "out@demo": ["DRAWLOOP_RUNS_DIR"],   # --out is the runs folder there
    "runs_dir": ["DRAWLOOP_RUNS_DIR"],
    "iters@checkup": ["DRAWLOOP_MAX_ITERS"],
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("drawloop")
    except PackageNotFoundError:    # a checkout on sys.path, not installed
        from drawloop import __version__

        return __version__


def _show_version(value: bool) -> None:
    if value:
        print(f"drawloop {_version()}")
        raise typer.Exit()


class _Stderr(logging.StreamHandler):
    """A handler on whatever sys.stderr is when a record is written: rich's live views and test
    runners swap it, and a handler holding the old one would write under (or past) them."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging(verbosity: int) -> None:
    """The `drawloop` loggers to stderr: WARNING by default, INFO with -v, DEBUG with -vv. Never
    stdout, so `--json` output stays JSON. Idempotent (CliRunner calls it once per invoke)."""
    logger = logging.getLogger("drawloop")
    for handler in [h for h in logger.handlers if isinstance(h, _Stderr)]:
        logger.removeHandler(handler)
    handler = _Stderr()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_show_version,
                                 help="Print drawloop's version and exit."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, envvar="DRAWLOOP_VERBOSE", show_envvar=True,
                                help="Log to stderr what drawloop does: -v INFO (model server, retries, failed "
                                "drawings), -vv DEBUG. Before the command: drawloop -v draw ..."),
) -> None:
    setup_logging(verbose)

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
    _wire_env(app)
    return app


def option_env(name: str, command: str) -> list[str] | None:
    """The variables the option `name` (its parameter name) of `command` reads, or None."""
    from drawloop.config import Settings

    if f"{name}@{command}" in OPTION_ENV or name in OPTION_ENV:
        return OPTION_ENV.get(f"{name}@{command}") or OPTION_ENV[name]
    if command in SETTINGS_COMMANDS and name in {f.name for f in dataclasses.fields(Settings)}:
        return list(Settings.env_names(name))
    return None


def _wire_env(typer_app: typer.Typer, path: tuple[str, ...] = ()) -> None:
    """Give every option that `option_env` names its variables (and [env var: ...] in --help), unless
    the option already declares its own."""
    from typer.models import OptionInfo

    def wire(callback, command: str) -> None:
        for name, parameter in inspect.signature(callback).parameters.items() if callback else ():
            info = parameter.default
            if isinstance(info, OptionInfo) and not info.envvar:
                variables = option_env(name, command)
                if variables:
                    info.envvar, info.show_envvar = variables, True

    for command in typer_app.registered_commands:
        wire(command.callback, " ".join((*path, command.name or command.callback.__name__)))
    if typer_app.registered_callback is not None and path:
        wire(typer_app.registered_callback.callback, " ".join(path))
    for group in typer_app.registered_groups:
        _wire_env(group.typer_instance, (*path, group.name or group.typer_instance.info.name))


def main() -> None:
    build_app()()


if __name__ == "__main__":
    main()
