"""Settings from the environment: every field as DRAWLOOP_<FIELD>, read as its field's type, with
errors that name the variable."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import pytest

from drawloop.config import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith(("DRAWLOOP_", "OPENAI_")):
            monkeypatch.delenv(name)


# one value that reads and validates, per field
SAMPLES = {
    "model": ("openai:gpt-4o-mini", "openai:gpt-4o-mini"), "base_url": ("http://h:1/v1", "http://h:1/v1"),
    "api_key": ("sk-x", "sk-x"), "critic_model": ("openai:vl", "openai:vl"),
    "critic_base_url": ("http://h:2/v1", "http://h:2/v1"), "temperature": ("0.25", 0.25),
    "max_tokens": ("900", 900), "request_timeout": ("12.5", 12.5), "retries": ("4", 4), "rpm": ("30", 30.0),
    "threads": ("3", 3), "parallel": ("2", 2), "speculation": ("off", "off"), "language": ("python", "python"),
    "size": ("128", 128), "max_iters": ("7", 7), "patience": ("3", 3), "min_delta": ("0.05", 0.05),
    "target": ("0.9", 0.9), "candidates": ("2", 2), "n_distractors": ("6", 6), "feedback": ("plain", "plain"),
    "critic": ("mine", "mine"), "recognizer": ("other", "other"), "judge": ("score", "score"),
    "runs_dir": ("/tmp/r", "/tmp/r"), "seed": ("11", 11), "extra": ('{"a": [1, 2]}', {"a": [1, 2]}),
}


def test_every_field_reads_its_variable(monkeypatch):
    names = [f.name for f in fields(Settings)]
    missing = sorted(set(names) - set(SAMPLES))
    assert not missing, f"add a sample for {missing}"
    for name in names:
        monkeypatch.setenv(f"DRAWLOOP_{name.upper()}", SAMPLES[name][0])
    settings = Settings.from_env()
    assert {name: getattr(settings, name) for name in names} == {name: SAMPLES[name][1] for name in names}


@pytest.mark.parametrize("var, raw, name, value", [
    ("DRAWLOOP_MAX_ITERS", "8", "max_iters", 8),                 # int
    ("DRAWLOOP_MIN_DELTA", "1e-3", "min_delta", 0.001),          # float
    ("DRAWLOOP_TEMPERATURE", " 0.5 ", "temperature", 0.5),       # surrounding spaces
    ("DRAWLOOP_FEEDBACK", "plain", "feedback", "plain"),         # str
    ("DRAWLOOP_TARGET", "0.8", "target", 0.8),                   # optional float
    ("DRAWLOOP_TARGET", "none", "target", None),                 # an optional field can say none
    ("DRAWLOOP_SEED", "NULL", "seed", None),
    ("DRAWLOOP_THREADS", "4", "threads", 4),                     # optional int
    ("DRAWLOOP_EXTRA", '{"k": "v"}', "extra", {"k": "v"}),       # dict: a JSON object
    ("DRAWLOOP_TIMEOUT", "9", "request_timeout", 9.0),           # the older name still works
])
def test_each_type_reads(monkeypatch, var, raw, name, value):
    monkeypatch.setenv(var, raw)
    assert getattr(Settings.from_env(), name) == value


@pytest.mark.parametrize("var, raw, says", [
    ("DRAWLOOP_MAX_ITERS", "many", "DRAWLOOP_MAX_ITERS='many' is not a whole number"),
    ("DRAWLOOP_MAX_ITERS", "2.5", "DRAWLOOP_MAX_ITERS='2.5' is not a whole number"),
    ("DRAWLOOP_MIN_DELTA", "small", "DRAWLOOP_MIN_DELTA='small' is not a number"),
    ("DRAWLOOP_TARGET", "high", "DRAWLOOP_TARGET='high' is not a number"),
    ("DRAWLOOP_EXTRA", "[1]", "DRAWLOOP_EXTRA='[1]' is not a JSON object"),
    ("DRAWLOOP_EXTRA", "{oops", "is not a JSON object"),
    ("DRAWLOOP_MAX_ITERS", "0", "--max-iters (DRAWLOOP_MAX_ITERS) must be at least 1, not 0"),   # range
    ("DRAWLOOP_TEMPERATURE", "7", "--temperature (DRAWLOOP_TEMPERATURE) must be in [0, 2]"),
    ("DRAWLOOP_RETRIES", "99", "setting retries (DRAWLOOP_RETRIES) must be between 0 and 10"),
    ("DRAWLOOP_TIMEOUT", "-1", "setting request_timeout (DRAWLOOP_TIMEOUT) must be"),
])
def test_bad_values_name_the_variable(monkeypatch, var, raw, says):
    monkeypatch.setenv(var, raw)
    with pytest.raises(ValueError) as caught:
        Settings.from_env()
    assert says in str(caught.value)


def test_arguments_win_and_their_errors_name_the_option(monkeypatch):
    monkeypatch.setenv("DRAWLOOP_MAX_ITERS", "8")
    monkeypatch.setenv("DRAWLOOP_PATIENCE", "4")
    settings = Settings.from_env(max_iters=2)
    assert (settings.max_iters, settings.patience) == (2, 4)
    with pytest.raises(ValueError, match=r"^--max-iters must be at least 1, not 0$"):
        Settings.from_env(max_iters=0)       # given as an argument: no variable to blame


def test_empty_means_unset_and_the_new_name_wins_over_the_old(monkeypatch):
    monkeypatch.setenv("DRAWLOOP_MAX_ITERS", "")
    assert Settings.from_env().max_iters == Settings().max_iters
    monkeypatch.setenv("DRAWLOOP_TIMEOUT", "5")
    monkeypatch.setenv("DRAWLOOP_REQUEST_TIMEOUT", "6")
    assert Settings.from_env().request_timeout == 6.0
    assert Settings.env_names("request_timeout") == ("DRAWLOOP_REQUEST_TIMEOUT", "DRAWLOOP_TIMEOUT")
    assert Settings.env_names("max_iters") == ("DRAWLOOP_MAX_ITERS",)


def test_the_environment_stays_out_of_run_json(monkeypatch):
    monkeypatch.setenv("DRAWLOOP_MAX_ITERS", "8")
    settings = Settings.from_env()
    assert "_env" not in settings.public() and settings.public()["max_iters"] == 8


@dataclass
class Wider(Settings):
    """Field types Settings has none of today (bool, lists): the same reading rules hold."""

    dry_run: bool = False
    tags: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    note: str | None = None


@pytest.mark.parametrize("raw, value", [("1", True), ("true", True), ("YES", True), ("on", True),
                                        ("0", False), ("False", False), ("no", False), ("off", False)])
def test_bools_read(monkeypatch, raw, value):
    monkeypatch.setenv("DRAWLOOP_DRY_RUN", raw)
    assert Wider.from_env().dry_run is value


def test_lists_and_optional_strings_read(monkeypatch):
    monkeypatch.setenv("DRAWLOOP_TAGS", "a, b ,c")
    monkeypatch.setenv("DRAWLOOP_SIZES", "[32, 64]")
    monkeypatch.setenv("DRAWLOOP_NOTE", "hello")
    wider = Wider.from_env()
    assert (wider.tags, wider.sizes, wider.note) == (["a", "b", "c"], [32, 64], "hello")
    monkeypatch.setenv("DRAWLOOP_SIZES", "32,64")
    assert Wider.from_env().sizes == [32, 64]
    monkeypatch.setenv("DRAWLOOP_NOTE", "none")
    assert Wider.from_env().note is None


@pytest.mark.parametrize("var, raw, says", [
    ("DRAWLOOP_DRY_RUN", "maybe", "DRAWLOOP_DRY_RUN='maybe' is not true or false"),
    ("DRAWLOOP_SIZES", "32,big", "DRAWLOOP_SIZES='big' is not a whole number"),
    ("DRAWLOOP_SIZES", "[1, 2", "is not a JSON array or comma-separated values"),
])
def test_bad_bools_and_lists_name_the_variable(monkeypatch, var, raw, says):
    monkeypatch.setenv(var, raw)
    with pytest.raises(ValueError, match=says.replace("[", r"\[")):
        Wider.from_env()
