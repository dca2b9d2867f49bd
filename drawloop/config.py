"""Settings for a run: which model, where it lives, and the loop's limits.

    settings = Settings.from_env(model="openai:gpt-4o-mini", max_iters=8)

Every field can come from the environment (DRAWLOOP_MODEL, DRAWLOOP_BASE_URL, DRAWLOOP_API_KEY,
DRAWLOOP_CRITIC_MODEL, DRAWLOOP_RUNS_DIR, ...; OPENAI_API_KEY / OPENAI_BASE_URL as fallbacks),
and keyword arguments win over the environment.

Model specs:
    local                       the embedded llama.cpp server with Qwen2.5-Coder-1.5B (offline)
    local:qwen2.5-coder-0.5b    another packaged model, or local:/path/to/any.gguf
    openai:gpt-4o-mini          OpenAI itself (OPENAI_API_KEY)
    openai:NAME + base_url      any OpenAI-compatible server (vLLM, Ollama, LM Studio, llama.cpp)
"""

from __future__ import annotations

import math
import os
import re
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
    def from_env(cls, **overrides: Any) -> "Settings":
        values: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for name, var in cls.ENV.items():
            raw = os.environ.get(var)
            if raw:
                values[name] = _coerce(raw, types[name], var)
        values.setdefault("api_key", os.environ.get("OPENAI_API_KEY"))
        if os.environ.get("OPENAI_BASE_URL"):
            values.setdefault("base_url", os.environ["OPENAI_BASE_URL"])
        unknown = sorted(set(overrides) - set(types))
        if unknown:   # e.g. a run.json written by another version of drawloop
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(types))}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
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
                raise ValueError(f"{self.describe(name)} {rule}, not {getattr(self, name)!r}")

    @classmethod
    def describe(cls, name: str) -> str:
        """How a user sets it: '--min-delta', or '--request-timeout (DRAWLOOP_TIMEOUT)'."""
        option = f"setting {name}" if name in NO_FLAG else "--" + name.replace("_", "-")
        return f"{option} ({cls.ENV[name]})" if name in cls.ENV else option

    def public(self) -> dict[str, Any]:
        """Settings as recorded in run.json: everything but the secret."""
        data = asdict(self)
        data["api_key"] = "***" if self.api_key else None
        return data


def _coerce(raw: str, kind: Any, var: str) -> Any:
    kind = str(kind)
    number = int if "int" in kind else float if "float" in kind else None
    if number is None:
        return raw
    try:
        return number(raw)
    except ValueError:
        raise ValueError(f"{var}={raw!r} is not {'a whole number' if number is int else 'a number'}") from None
