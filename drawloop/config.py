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

import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any


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
    }

    @classmethod
    def from_env(cls, **overrides: Any) -> "Settings":
        values: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for name, var in cls.ENV.items():
            raw = os.environ.get(var)
            if raw:
                values[name] = _coerce(raw, types[name])
        values.setdefault("api_key", os.environ.get("OPENAI_API_KEY"))
        if os.environ.get("OPENAI_BASE_URL"):
            values.setdefault("base_url", os.environ["OPENAI_BASE_URL"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.max_iters < 1:
            raise ValueError("max_iters must be at least 1")
        if self.patience < 1:
            raise ValueError("patience must be at least 1")
        if self.min_delta < 0:
            raise ValueError("min_delta must be >= 0")
        if self.target is not None and not 0 <= self.target <= 1:
            raise ValueError("target must be in [0, 1]")
        if self.feedback not in ("critic", "plain"):
            raise ValueError("feedback must be 'critic' or 'plain'")
        if not 1 <= self.candidates <= 16:
            raise ValueError("candidates must be between 1 and 16")
        if self.speculation not in ("off", "ngram-mod", "ngram-simple"):
            raise ValueError(f"speculation must be off, ngram-mod or ngram-simple, not {self.speculation!r}")
        if self.parallel < 1:
            raise ValueError("parallel must be at least 1")
        if not 32 <= self.size <= 2048:
            raise ValueError("size must be between 32 and 2048 pixels")

    def public(self) -> dict[str, Any]:
        """Settings as recorded in run.json: everything but the secret."""
        data = asdict(self)
        data["api_key"] = "***" if self.api_key else None
        return data


def _coerce(raw: str, kind: Any) -> Any:
    kind = str(kind)
    if "int" in kind:
        return int(raw)
    if "float" in kind:
        return float(raw)
    return raw
