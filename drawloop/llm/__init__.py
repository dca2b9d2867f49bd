"""Chat models: one factory for every backend, handing out ChatLLMs that call them carefully.

    with open_model(Settings.from_env(model="local")) as models:
        drawer_llm = models.chat(max_tokens=1200)          # a ChatLLM
        answer = drawer_llm.complete([("system", "..."), ("user", "Draw a cat")], stop=["</svg>"])
        answer.text, answer.tokens_out, answer.seconds

OpenAI itself (`openai:gpt-4o-mini`), any OpenAI-compatible server (`--base-url
http://host:8000/v1`) and the embedded llama.cpp server (`local`, `local:/path/model.gguf`) go
through langchain-openai's ChatOpenAI; any other LangChain provider (`anthropic:NAME`,
`ollama:NAME`, ...) through its own package (providers.py); and any BaseChatModel can be handed
in (`draw(chat_model=...)`, `open_model(settings, chat_models={...})`).

The package: this module is the factory (ModelHandle, open_model, parse_model_spec);
chat.py is the calling discipline (ChatLLM: retries with backoff that honour Retry-After, the
--rpm limiter, empty answers, token accounting, LLMError/RateLimited, watch_rate_limits);
transport.py is BoundedTransport (one total deadline and a size cap per request, and what the
server last sent, for error messages). Unit tests pass any langchain chat model (e.g.
GenericFakeChatModel) to `ChatLLM` directly.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import httpx
import httpx2  # the fork of httpx that the openai client is built on
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.rate_limiters import InMemoryRateLimiter

from drawloop import local_model, providers
from drawloop.config import Settings
from drawloop.llm.chat import ChatLLM, LLMError, chat_model_name, describe_error
from drawloop.llm.transport import BoundedTransport

ROLES = ("drawer", "recognizer", "critic")


# seconds per request to the embedded server (at least; DRAWLOOP_TIMEOUT may raise it)
LOCAL_DEADLINE = 900.0


class ModelHandle:
    """Owns the model backend for a run: starts the local server if needed, stops it at the end.

    `chat_models` hands in LangChain chat models ready made: {"default": m} for every role,
    {"recognizer": m} or {"critic": m} (the critic's code-reading scorer) for one; a role
    without one uses the default, else the backend of `settings.model`. With a default model
    nothing is started or checked: the caller's model is the backend."""

    def __init__(self, settings: Settings, chat_models: dict[str, BaseChatModel | None] | None = None):
        self.settings = settings
        self.provider, self.model_name = parse_model_spec(settings.model)
        self.chat_models = {role: model for role, model in (chat_models or {}).items() if model is not None}
        unknown = sorted(set(self.chat_models) - {"default", *ROLES})
        if unknown:
            raise ValueError(f"no model role {', '.join(unknown)}; roles: default, {', '.join(ROLES)}")
        self.server = None
        self.base_url = settings.base_url
        self.api_key = settings.api_key
        self._rate_limiter = None

    def __enter__(self) -> "ModelHandle":
        return self.open()

    def open(self) -> "ModelHandle":
        if "default" in self.chat_models:
            return self        # the caller's model serves every role
        if self.provider == "local" and not self.settings.base_url:
            # One slot per request that can be in flight: each thread drafts its candidates at once.
            # llama.cpp splits its context among the slots, so each parallel slot gets its own 4k.
            parallel = min(8, self.settings.parallel * self.settings.candidates)
            self.server = local_model.LocalServer(local_model.model_path(self.model_name),
                                                  threads=self.settings.threads, parallel=parallel,
                                                  ctx=max(8192, 4096 * parallel),
                                                  speculation=self.settings.speculation).start()
            self.base_url, self.api_key = self.server.base_url, "sk-local"
        elif self.provider not in ("local", "openai"):
            providers.check_installed(self.provider)   # "pip install langchain-anthropic", before any work
        elif self.base_url:
            self.api_key = self.api_key or "EMPTY"
            check_reachable(self.base_url, self.api_key)
        elif not self.api_key:
            raise LLMError("no API key: set OPENAI_API_KEY (or DRAWLOOP_API_KEY), or use --model local, "
                           "or point --base-url at an OpenAI-compatible server")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def spec(self) -> str:
        """provider:name of the drawer's model (tags and metadata say it; no endpoint)."""
        given = self.chat_models.get("default")
        if given is not None:
            kind, name = type(given).__name__, chat_model_name(given)
            return f"langchain:{kind}" if name == kind else f"langchain:{kind}:{name}"
        return f"{self.provider}:{self.model_name}"

    @property
    def label(self) -> str:
        """What reports say about the model: provider, name and endpoint."""
        if "default" in self.chat_models:
            return f"{self.spec} (passed in)"
        if self.provider not in ("local", "openai"):
            return f"{self.provider}:{self.model_name}" + (f" ({self.base_url})" if self.base_url else "")
        if self.server:   # what a run's result.json and every report say produced the drawings
            return (f"{self.provider}:{self.model_name} (embedded llama.cpp, "
                    f"speculation {self.settings.speculation})")
        return f"{self.provider}:{self.model_name} ({self.base_url or 'api.openai.com'})"

    @property
    def rate_limiter(self):
        """One token bucket for every call through this handle (--rpm requests a minute), or None."""
        rpm = getattr(self.settings, "rpm", None)
        if rpm and self._rate_limiter is None:
            self._rate_limiter = InMemoryRateLimiter(requests_per_second=rpm / 60.0,
                                                     check_every_n_seconds=min(0.1, 15.0 / rpm),
                                                     max_bucket_size=1)
        return self._rate_limiter

    def chat(self, max_tokens: int | None = None, temperature: float | None = None,
             role: str = "drawer") -> ChatLLM:
        settings = self.settings
        given = self.chat_models.get(role) or self.chat_models.get("default")
        if given is not None:   # the caller's model, with its own sampling settings
            return ChatLLM(given, retries=settings.retries, name=chat_model_name(given),
                           rate_limiter=self.rate_limiter)
        max_tokens = max_tokens or settings.max_tokens
        temperature = settings.temperature if temperature is None else temperature
        if self.provider not in ("local", "openai"):
            return self._provider_chat(max_tokens, temperature)
        # the openai client: a slow import, only when a model opens
        from langchain_openai import ChatOpenAI

        # The embedded server decodes at whatever speed this machine has left: a 1,200-token draft
        # on 2 busy cores took 550 s in a demo, and a 180 s deadline killed it three times over.
        deadline = max(settings.request_timeout, LOCAL_DEADLINE) if self.server else settings.request_timeout
        transport = BoundedTransport(deadline=deadline)
        kwargs: dict[str, Any] = dict(
            model=self.model_name if self.provider == "openai" else "local",
            api_key=self.api_key,
            temperature=temperature,
            timeout=deadline,
            http_client=httpx2.Client(transport=transport, timeout=deadline),
            max_retries=0,  # ChatLLM retries, with backoff and empty-answer handling
            max_tokens=max_tokens,
            stream_usage=True,  # token counts also when the drawer streams (repetition guard)
        )
        if self.base_url:
            kwargs["base_url"] = self.base_url
            # Some compatible servers ignore max_completion_tokens; max_tokens they all honour.
            kwargs["extra_body"] = {"max_tokens": max_tokens}
        return ChatLLM(ChatOpenAI(**kwargs), retries=settings.retries,
                       name=f"{self.provider}:{self.model_name}", transport=transport,
                       rate_limiter=self.rate_limiter)

    def _provider_chat(self, max_tokens: int, temperature: float) -> ChatLLM:
        settings = self.settings
        # The OpenAI key Settings falls back to is not another provider's: theirs come from their
        # own variables (ANTHROPIC_API_KEY, ...), unless DRAWLOOP_API_KEY or api_key= says otherwise.
        key = settings.api_key
        if key and key == os.environ.get("OPENAI_API_KEY") and not os.environ.get("DRAWLOOP_API_KEY"):
            key = None
        chat = providers.chat_model(self.provider, self.model_name, temperature=temperature,
                                    max_tokens=max_tokens, timeout=settings.request_timeout, max_retries=0,
                                    base_url=self.base_url, api_key=key)
        return ChatLLM(chat, retries=settings.retries, name=f"{self.provider}:{self.model_name}",
                       rate_limiter=self.rate_limiter)


def open_model(settings: Settings, chat_models: dict[str, BaseChatModel | None] | None = None) -> ModelHandle:
    return ModelHandle(settings, chat_models)


ChatFactory = Callable[..., ChatLLM]


def parse_model_spec(spec: str) -> tuple[str, str]:
    """'local' -> ('local', default model); 'local:x' -> ('local', x);
    'openai:gpt-4o' -> ('openai', 'gpt-4o');
    'anthropic:claude-3-5-haiku-latest' -> ('anthropic', ...): any LangChain provider (providers.py).
    Only the name is checked here; whether the provider's package is installed, when the model opens."""
    spec = (spec or "local").strip()
    provider, _, name = spec.partition(":")
    if provider == "local":
        return "local", name or local_model.DEFAULT_MODEL
    if provider == "openai":
        if not name:
            raise ValueError("--model openai:NAME needs a model name, e.g. openai:gpt-4o-mini")
        return "openai", name
    if name and providers.known(provider):
        return providers.canonical(provider), name
    if providers.known(provider):
        raise ValueError(f"--model {provider}:NAME needs a model name")
    raise ValueError(f"unknown model spec {spec!r}: use local, local:/path.gguf, openai:NAME "
                     f"(with --base-url for any OpenAI-compatible server), or PROVIDER:NAME for a "
                     f"LangChain provider "
                     f"({', '.join(providers.PROVIDERS)})")


def check_reachable(base_url: str, api_key: str | None = None, timeout: float = 5.0) -> None:
    """Fail fast with a clear message when an OpenAI-compatible server cannot be reached."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        httpx.get(base_url.rstrip("/") + "/models", headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise LLMError(f"cannot reach the model server at {base_url} ({describe_error(exc)}). "
                       "Is it running, and is --base-url right (it usually ends in /v1)?") from exc
