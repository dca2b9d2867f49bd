"""The `drawloop` command as a whole: --version, shell completion, environment variables in --help
(and read), exit codes (0 done, 1 the work failed, 2 usage, documented), -v/-vv logging on stderr
that leaves --json stdout alone, and the py.typed marker."""

from __future__ import annotations

import json
import logging
import re
import socket
from importlib.resources import files
from pathlib import Path

import pytest
import typer
from conftest import FakeOpenAI
from typer.testing import CliRunner

import drawloop
from drawloop.cli import SETTINGS_COMMANDS, build_app, option_env
from drawloop.config import Settings

runner = CliRunner()


def invoke(*args, **kwargs):
    return runner.invoke(build_app(), [str(a) for a in args], **kwargs)


def flat(text: str) -> str:
    """Help text without rich's box drawing and line breaks."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- version, completion, help

def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"drawloop {drawloop.__version__}"


def test_help_documents_exit_codes_environment_completion_and_logging():
    text = flat(invoke("--help").output)
    for phrase in ("--version", "--verbose", "-v", "--install-completion", "--show-completion",
                   "Exit codes: 0 done · 1 the work failed", "2 the command line is wrong", "130 interrupted",
                   "[env var: ...]", "DRAWLOOP_<SETTING>", "OPENAI_API_KEY", "-vv (DEBUG)"):
        assert phrase in text, phrase


def test_shell_completion_script_and_completions():
    script = runner.invoke(build_app(), ["--show-completion", "bash"], prog_name="drawloop")
    assert script.exit_code == 0 and "_DRAWLOOP_COMPLETE=complete_bash" in script.output
    done = runner.invoke(build_app(), [], prog_name="drawloop",
                         env={"_DRAWLOOP_COMPLETE": "complete_bash", "COMP_WORDS": "drawloop dat", "COMP_CWORD": "1"})
    assert "dataset" in done.output.split()
    done = runner.invoke(build_app(), [], prog_name="drawloop",
                         env={"_DRAWLOOP_COMPLETE": "complete_bash", "COMP_WORDS": "drawloop dataset build --max-i",
                              "COMP_CWORD": "3"})
    assert "--max-iters" in done.output.split()


# ---------------------------------------------------------------- environment variables

def _options(command, path=()):
    if hasattr(command, "commands"):
        yield from ((" ".join(path), p) for p in command.params if p.param_type_name == "option")
        for name, sub in command.commands.items():
            yield from _options(sub, (*path, name))
    else:
        yield from ((" ".join(path), p) for p in command.params if p.param_type_name == "option")


def test_every_settings_option_reads_its_variable_and_says_so():
    command = typer.main.get_command(build_app())
    fields = {f.name for f in __import__("dataclasses").fields(Settings)}
    seen = set()
    for where, option in _options(command):
        if where in SETTINGS_COMMANDS and option.name in fields:
            assert option.envvar == list(Settings.env_names(option.name)) and option.show_envvar, (where, option.name)
            seen.add((where, option.name))
        if option.envvar:
            assert option.show_envvar, (where, option.name)      # no variable read in secret
    assert {("draw", "max_iters"), ("draw", "model"), ("dataset build", "temperature"), ("checkup", "model"),
            ("critique", "critic_model"), ("demo", "max_iters")} <= seen
    assert option_env("out", "draw") == ["DRAWLOOP_RUNS_DIR"] and option_env("size", "train") is None  # not Settings
    help_text = flat(runner.invoke(build_app(), ["dataset", "build", "--help"], env={"COLUMNS": "200"}).output)
    assert "[env var: DRAWLOOP_MAX_ITERS]" in help_text and "[env var: DRAWLOOP_MODEL]" in help_text


def test_options_read_the_environment(fake_server, tmp_path):
    FakeOpenAI.concept = "a red apple"
    env = {"DRAWLOOP_MAX_ITERS": "1", "DRAWLOOP_MODEL": "openai:fake", "DRAWLOOP_BASE_URL": fake_server,
           "DRAWLOOP_RUNS_DIR": str(tmp_path / "runs")}
    result = invoke("draw", "a red apple", "--json", env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["iterations"] == 1 and Path(summary["run_dir"]).parent == tmp_path / "runs"
    again = invoke("draw", "a red apple", "--json", "--max-iters", "2", "--patience", "5", env=env)
    assert json.loads(again.stdout)["iterations"] == 2          # the option wins over the variable


def test_a_bad_variable_is_a_usage_error_that_names_it(tmp_path):
    result = invoke("draw", "a cat", "--out", tmp_path, env={"DRAWLOOP_MAX_ITERS": "many"})
    assert result.exit_code == 2 and "DRAWLOOP_MAX_ITERS" in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------- exit codes

def test_exit_codes_follow_one_rule():
    from drawloop.commands import FAILED, USAGE, exit_code
    from drawloop.commands.draw import UserError
    from drawloop.dataset.reader import DatasetBusy, DatasetError
    from drawloop.llm.chat import LLMError
    from drawloop.local_model import LocalModelError
    from drawloop.storage import DamagedStorage
    from drawloop.trace.replay import RunNotFound

    for exc in (ValueError("bad"), FileNotFoundError("x"), UserError("say what"), RunNotFound("no run"),
                DatasetError("not a dataset"), typer.BadParameter("no")):
        assert exit_code(exc) == USAGE == 2, exc
    for exc in (LLMError("down"), LocalModelError("no server"), OSError(28, "full"), DamagedStorage("bad file"),
                DatasetBusy("another process"), RuntimeError("boom")):
        assert exit_code(exc) == FAILED == 1, exc


def test_exit_codes_end_to_end(tmp_path):
    assert invoke("concepts", "list").exit_code == 0
    assert invoke("draw", "a cat", "--max-iters", "0", "--out", tmp_path).exit_code == 2     # a bad option value
    assert invoke("draw", "--bogus").exit_code == 2                                          # an unknown option
    assert invoke("concepts", "show", "a parot").exit_code == 2                              # an unknown concept
    assert invoke("trace", "show", "no-such-run", "--dir", tmp_path).exit_code == 2         # an unknown run
    assert invoke("critique", tmp_path / "missing.svg", "--concept", "a cat", "--no-model").exit_code == 2
    down = invoke("draw", "a cat", "--model", "openai:x", "--base-url", f"http://127.0.0.1:{closed_port()}/v1",
                  "--out", tmp_path)
    assert down.exit_code == 1 and "cannot reach the model server" in down.output            # the work failed


def test_a_busy_dataset_exits_1(tmp_path):
    from drawloop.dataset.build import exclusive

    (tmp_path / "c.txt").write_text("a red circle\n")
    with exclusive(tmp_path / "data"):
        result = invoke("dataset", "build", "-c", tmp_path / "c.txt", "-n", "1", "-o", tmp_path / "data",
                        "--model", "openai:x", "--base-url", f"http://127.0.0.1:{closed_port()}/v1", "--json")
    assert result.exit_code == 1 and "another drawloop process" in result.output


def test_readme_documents_the_exit_codes():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("### Exit codes", 1)[1].split("\n#", 1)[0]
    for code in ("`0`", "`1`", "`2`", "`130`"):
        assert code in section


# ---------------------------------------------------------------- logging

@pytest.fixture
def no_drawloop_handlers():
    logger = logging.getLogger("drawloop")
    before, level = list(logger.handlers), logger.level
    yield logger
    logger.handlers[:] = before
    logger.setLevel(level)


def test_verbose_logs_retries_to_stderr_and_json_stays_on_stdout(fake_server, tmp_path, no_drawloop_handlers):
    FakeOpenAI.concept = "a red apple"
    FakeOpenAI.answers = [(500, "overloaded")]              # the first call fails once, then is retried
    args = ["draw", "a red apple", "--model", "openai:fake", "--base-url", fake_server, "--max-iters", "1",
            "--out", tmp_path, "--json"]
    result = invoke("-v", *args, env={"DRAWLOOP_RETRIES": "2"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["iterations"] == 1                    # stdout: only the JSON
    assert re.search(r"INFO drawloop\.llm: model openai:fake: try 1 of \d+ failed", result.stderr), result.stderr
    assert "DEBUG" not in result.stderr
    quiet = invoke(*args)
    assert quiet.exit_code == 0 and "INFO" not in quiet.stderr            # no -v: only warnings and worse
    assert len([h for h in no_drawloop_handlers.handlers if type(h).__name__ == "_Stderr"]) == 1   # no pile-up


def test_levels():
    from drawloop.cli import setup_logging

    logger = logging.getLogger("drawloop")
    before, level = list(logger.handlers), logger.level
    try:
        for verbosity, expected in ((0, logging.WARNING), (1, logging.INFO), (2, logging.DEBUG), (5, logging.DEBUG)):
            setup_logging(verbosity)
            assert logger.level == expected
        assert logging.getLogger("drawloop.llm").getEffectiveLevel() == logging.DEBUG
    finally:
        logger.handlers[:] = before
        logger.setLevel(level)


def test_the_library_is_silent_by_default():
    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("drawloop").handlers)


# ---------------------------------------------------------------- packaging

def test_py_typed_is_shipped():
    assert files("drawloop").joinpath("py.typed").is_file()
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    data = pyproject.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    assert '"py.typed"' in data
