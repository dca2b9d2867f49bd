"""Settings for a run: which model, where it lives, and the loop's limits.

    settings = Settings.from_env(model="openai:gpt-4o-mini", max_iters=8)

Every field can come from the environment as DRAWLOOP_<FIELD> (DRAWLOOP_MODEL, DRAWLOOP_MAX_ITERS,
DRAWLOOP_MIN_DELTA, DRAWLOOP_TARGET, DRAWLOOP_EXTRA, ...; OPENAI_API_KEY / OPENAI_BASE_URL as fallbacks,
DRAWLOOP_TIMEOUT as the older name of DRAWLOOP_REQUEST_TIMEOUT), and keyword arguments win over the
environment. A value is read as its field's type: int and float as numbers, bool as 1/0, true/false,
yes/no or on/off, an optional field also as "none", a list as a JSON array or comma-separated, a dict
as a JSON object; an empty variable counts as unset. A value that does not read says which variable
it came from (`DRAWLOOP_MAX_ITERS='many' is not a whole number`), and so does a value out of range.

Model specs:
    local                       the embedded llama.cpp server with Qwen2.5-Coder-1.5B (offline)
    local:qwen2.5-coder-0.5b    another packaged model, or local:/path/to/any.gguf
    openai:gpt-4o-mini          OpenAI itself (OPENAI_API_KEY)
    openai:NAME + base_url      any OpenAI-compatible server (vLLM, Ollama, LM Studio, llama.cpp)
"""

from __future__ import annotations

import json
import math
import os
import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from typing import Any


NO_FLAG = ("request_timeout", "retries", "threads", "parallel", "n_distractors", "api_key")  # no CLI option


@dataclass
class Settings:
    model: str = "local"
    base_url: str | None = None
    api_key: str | None = None
    critic_model: str | None = None      # optional vision-language critic (image input)
    critic_base_url: str | None = None   # where the critic model is served (default: OpenAI)
    temperature: float = 0.7
    max_tokens: int = 1200               # per drawing; small models can loop on path commands
    request_timeout: float = 180.0
    retries: int = 2
    rpm: float | None = None             # model requests per minute at most (client-side rate limit); None: no limit
    threads: int | None = None           # llama.cpp threads; None = all cores
    parallel: int = 1                    # llama.cpp slots: concurrent requests the local server decodes together
    speculation: str = "ngram-mod"       # the local server's n-gram self-speculation; "off" to disable
    language: str = "svg"
    size: int = 256
    max_iters: int = 5
    patience: int = 2
    min_delta: float = 0.01
    target: float | None = None
    candidates: int = 1                  # drafts per round, judged pairwise against the best so far
    n_distractors: int = 4
    feedback: str = "critic"             # "critic": critic + recognizer feedback; "plain": "improve it"
    critic: str = "default"              # registered critic name (agents/registry.py)
    recognizer: str = "code"             # registered recognizer name
    judge: str = "default"               # registered judge name: score (offline) | vlm | default
    runs_dir: str = "runs"
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # Every field reads DRAWLOOP_<FIELD> (env_names); these were named before that rule, and a name
    # here that differs from it (DRAWLOOP_TIMEOUT) still works as the older spelling.
    ENV = {
        "model": "DRAWLOOP_MODEL",
        "base_url": "DRAWLOOP_BASE_URL",
        "api_key": "DRAWLOOP_API_KEY",
        "critic_model": "DRAWLOOP_CRITIC_MODEL",
        "critic_base_url": "DRAWLOOP_CRITIC_BASE_URL",
        "runs_dir": "DRAWLOOP_RUNS_DIR",
        "threads": "DRAWLOOP_THREADS",
        "request_timeout": "DRAWLOOP_TIMEOUT",
        "speculation": "DRAWLOOP_SPECULATION",
        "rpm": "DRAWLOOP_RPM",
    }

    @classmethod
    def env_names(cls, name: str) -> tuple[str, ...]:
        """The variables a field reads, first wins: DRAWLOOP_<FIELD>, then an older name (ENV)."""
        primary = f"DRAWLOOP_{name.upper()}"
        older = cls.ENV.get(name)
        return (primary,) if older in (None, primary) else (primary, older)

    @classmethod
    def from_env(cls, **overrides: Any) -> "Settings":
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}      # field -> the variable it came from, for error messages
        kinds = _field_types(cls)
        for name in kinds:
            for var in cls.env_names(name):
                raw = os.environ.get(var)
                if raw:
                    values[name], sources[name] = _coerce(raw, kinds[name], var), var
                    break
        values.setdefault("api_key", os.environ.get("OPENAI_API_KEY"))
        if os.environ.get("OPENAI_BASE_URL"):
            values.setdefault("base_url", os.environ["OPENAI_BASE_URL"])
        unknown = sorted(set(overrides) - set(kinds))
        if unknown:   # e.g. a run.json written by another version of drawloop
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(kinds))}")
        given = {k: v for k, v in overrides.items() if v is not None}
        values.update(given)
        settings = cls(**values)
        settings._env = {k: var for k, var in sources.items() if k not in given}   # not a field: not in run.json
        settings.validate()
        return settings

    def validate(self) -> None:
        """Each rule names the option (and its environment variable) it is about."""
        finite = math.isfinite
        rules = [
            ("max_iters", self.max_iters >= 1, "must be at least 1"),
            ("patience", self.patience >= 1, "must be at least 1"),
            ("min_delta", finite(self.min_delta) and self.min_delta >= 0, "must be a number >= 0"),
            ("target", self.target is None or (finite(self.target) and 0 <= self.target <= 1),
             "must be in [0, 1]"),
            ("temperature", finite(self.temperature) and 0 <= self.temperature <= 2, "must be in [0, 2]"),
            ("max_tokens", 16 <= self.max_tokens <= 32768, "must be between 16 and 32768"),
            ("request_timeout", finite(self.request_timeout) and self.request_timeout > 0,
             "must be a number of seconds > 0"),
            ("retries", 0 <= self.retries <= 10, "must be between 0 and 10"),
            ("rpm", self.rpm is None or (finite(self.rpm) and self.rpm > 0), "must be a number of requests > 0"),
            ("threads", self.threads is None or 1 <= self.threads <= 256, "must be between 1 and 256"),
            # svg and python are built in; a plugin may register a renderer for any other name
            # (commands check that one exists before a model starts: registry.check_language)
            ("language", bool(re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", self.language or "")),
             "must be a language name: svg, python, or one a plugin registered"),
            ("feedback", self.feedback in ("critic", "plain"), "must be critic or plain"),
            ("candidates", 1 <= self.candidates <= 16, "must be between 1 and 16"),
            ("speculation", self.speculation in ("off", "ngram-mod", "ngram-simple"),
             "must be off, ngram-mod or ngram-simple"),
            ("parallel", self.parallel >= 1, "must be at least 1"),
            ("size", 32 <= self.size <= 2048, "must be between 32 and 2048 pixels"),
            ("n_distractors", 1 <= self.n_distractors <= 20, "must be between 1 and 20"),
        ]
        for name, ok, rule in rules:
            if not ok:
                var = getattr(self, "_env", {}).get(name)
                raise ValueError(f"{self.describe(name, var)} {rule}, not {getattr(self, name)!r}")

    @classmethod
    def describe(cls, name: str, var: str | None = None) -> str:
        """How a user sets it: '--min-delta', '--min-delta (DRAWLOOP_MIN_DELTA)' when the value came
        from that variable, or '--request-timeout (DRAWLOOP_TIMEOUT)' for the variables named in ENV."""
        option = f"setting {name}" if name in NO_FLAG else "--" + name.replace("_", "-")
        var = var or cls.ENV.get(name)
        return f"{option} ({var})" if var else option

    def public(self) -> dict[str, Any]:
        """Settings as recorded in run.json: everything but the secret."""
        data = asdict(self)
        data["api_key"] = "***" if self.api_key else None
        return data


def _field_types(cls) -> dict[str, Any]:
    """Each field's type as a type, not the string `from __future__ import annotations` leaves."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, str) for f in fields(cls)}


TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _coerce(raw: str, kind: Any, var: str) -> Any:
    """`raw` (an environment variable's text) as a value of type `kind`; a ValueError naming `var`."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):             # X | None
        inner = [a for a in args if a is not type(None)]
        if type(None) in args and raw.strip().lower() in ("none", "null"):
            return None
        return _coerce(raw, inner[0] if len(inner) == 1 else str, var)
    text = raw.strip()
    if kind is bool:
        if text.lower() in TRUE + FALSE:
            return text.lower() in TRUE
        raise ValueError(f"{var}={raw!r} is not true or false (1/0, true/false, yes/no, on/off)")
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"{var}={raw!r} is not {'a whole number' if kind is int else 'a number'}") from None
    if origin in (list, tuple, set) or kind in (list, tuple, set):
        items = _json(raw, var, list, "a JSON array or comma-separated values") if text.startswith("[") else \
            [item.strip() for item in text.split(",") if item.strip()]
        item_type = args[0] if args and args[0] is not Ellipsis else str
        values = [item if not isinstance(item, str) else _coerce(item, item_type, var) for item in items]
        return (origin or kind)(values)
    if origin is dict or kind is dict:
        return _json(raw, var, dict, 'a JSON object, e.g. {"key": 1}')
    return raw


def _json(raw: str, var: str, kind: type, what: str) -> Any:
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, kind):
        raise ValueError(f"{var}={raw!r} is not {what}")
    return value
