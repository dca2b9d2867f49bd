"""Chat models: one factory for every backend, and one careful way to call them.

    with open_model(Settings.from_env(model="local")) as models:
        drawer_llm = models.chat(max_tokens=1200)          # a ChatLLM
        answer = drawer_llm.complete([("system", "..."), ("user", "Draw a cat")], stop=["</svg>"])
        answer.text, answer.tokens_out, answer.seconds

OpenAI itself (`openai:gpt-4o-mini`), any OpenAI-compatible server (`--base-url
http://host:8000/v1`) and the embedded llama.cpp server (`local`, `local:/path/model.gguf`) go
through langchain-openai's ChatOpenAI; any other LangChain provider (`anthropic:NAME`,
`ollama:NAME`, ...) through its own package (providers.py); and any BaseChatModel can be handed
in (`draw(chat_model=...)`, `open_model(settings, chat_models={...})`). Timeouts, retries with
backoff that honour Retry-After, a requests-per-minute limit (`--rpm`), empty-answer handling
and token accounting live here, once. A call still rate-limited after its retries raises
`RateLimited` and is noted in `watch_rate_limits()`, so a graph node can let LangGraph's
RetryPolicy run it again (graphs/refine.py). A server is not trusted to behave: `BoundedTransport` gives every
request one total deadline and a cap on the answer's size (an endless stream or body ends the
call, it does not hang the run), remembers what the server sent so errors can say it, and
`clean_text` strips control sequences and invalid Unicode from every answer. Unit tests pass any langchain chat model (e.g.
GenericFakeChatModel) to `ChatLLM` directly.
"""

from __future__ import annotations

import contextlib
import contextvars
import email.utils
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import httpx
import httpx2   # the fork of httpx that the openai client is built on
from langchain_core.language_models.chat_models import BaseChatModel

from drawloop.config import Settings
from drawloop.text import clean_text

logger = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 8 * 1024 * 1024   # a 4k-token SSE stream is ~1.5 MB; beyond this a server is not answering
MAX_RETRY_AFTER = 120.0              # seconds: a longer Retry-After is a server to give up on, not wait for


class LLMError(RuntimeError):
    """The model could not give a usable answer (unreachable, refused, empty) after retries."""


class RateLimited(LLMError):
    """The server still answered 429 (rate limited) after every retry; `retry_after` is its advice."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


_RATE_LIMITS: contextvars.ContextVar[list | None] = contextvars.ContextVar("drawloop_rate_limits", default=None)


@contextlib.contextmanager
def watch_rate_limits() -> Iterator[list[RateLimited]]:
    """Collect the calls made inside the block that gave up rate-limited, even those an agent caught
    and recorded as a failure (a drawer's error, a critic's abstention): the caller can tell a
    result spoilt by a rate limit from a real one and try again later."""
    hits: list[RateLimited] = []
    token = _RATE_LIMITS.set(hits)
    try:
        yield hits
    finally:
        _RATE_LIMITS.reset(token)


@dataclass
class Completion:
    text: str
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    attempts: int = 1
    cut_short: bool = False  # a guard stopped generation early (e.g. a repetition loop)

    def usage(self) -> dict:
        return {"tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
                "seconds": round(self.seconds, 3), "calls": self.attempts}


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a provider's error (openai, anthropic, ... all carry one of these)."""
    for value in (getattr(exc, "status_code", None), getattr(getattr(exc, "response", None), "status_code", None)):
        if isinstance(value, int):
            return value
    return None


def _is_retryable(exc: Exception) -> bool:
    try:
        import openai
    except ImportError:  # pragma: no cover - openai ships with langchain-openai
        openai = None
    if openai is not None and isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError,
                                               openai.NotFoundError, openai.BadRequestError,
                                               openai.UnprocessableEntityError)):
        return False
    return _status(exc) not in (400, 401, 403, 404, 422)   # other providers' refusals


def _is_rate_limit(exc: BaseException) -> bool:
    return _status(exc) == 429 or "RateLimit" in type(exc).__name__


def _describe(exc: BaseException) -> str:
    """The exception and, when the client wrapped it ("Connection error."), the cause that says why."""
    parts, texts = [], set()
    for _ in range(6):            # a bounded walk: cause chains can be long, or even cycle
        if exc is None or len(parts) == 3:
            break
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if text not in texts:     # wrappers often repeat the message ("Request timed out." twice)
            texts.add(text)
            parts.append(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
        context = None if exc.__suppress_context__ else exc.__context__
        exc = exc.__cause__ or (context if not isinstance(context, StopIteration) else None)
    return " <- ".join(parts)[:400]


def _retry_after(exc: Exception) -> float | None:
    """Seconds a 429/503 asked us to wait (Retry-After: seconds or an HTTP date), capped."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, AttributeError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER) if seconds == seconds else None   # NaN: no advice


class ChatLLM:
    """A chat model plus the calling discipline: retries, backoff, empty answers, usage."""

    def __init__(self, chat: BaseChatModel, retries: int = 2, backoff: float = 1.0, name: str = "",
                 transport: "BoundedTransport | None" = None, rate_limiter: Any = None):
        self.chat = chat
        self.retries = retries
        self.backoff = backoff
        self.name = name or chat_model_name(chat)
        self.transport = transport            # what the server last sent, for error messages
        self.rate_limiter = rate_limiter      # a langchain BaseRateLimiter shared by every call to one endpoint
        self.structured: bool | None = None   # does the server honour json_schema? None: not known yet
        self._quiet: tuple[Any, Any] | None = None

    def complete_json(self, messages, schema: dict, name: str, **kwargs: Any) -> tuple[dict | None, Completion | None]:
        """Ask for JSON matching `schema` (OpenAI's json_schema response format, which is what
        langchain's with_structured_output(method="json_schema") sends; vLLM and llama.cpp turn it
        into a grammar, so even a 1.5B model answers in shape). Returns (data, answer); (None,
        answer) when the server ignored the format (parse answer.text yourself); (None, None) when
        it refused it, or refused it before: ask the text way then. Only a refusal is remembered:
        the same call must send the same prompt whatever ran before it (resumed runs, threads)."""
        if self.structured is False:
            return None, None
        response_format = {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
        try:
            answer = self.complete(messages, response_format=response_format, **kwargs)
        except LLMError as exc:
            if "refused" not in str(exc):
                raise
            self.structured = False
            return None, None
        try:
            data = json.loads(answer.text)
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            return None, answer
        self.structured = True
        return data, answer

    def complete(self, messages: Sequence[tuple[str, str]] | Sequence[Any], stop: list[str] | None = None,
                 guard: Callable[[str], bool] | None = None, **kwargs: Any) -> Completion:
        """Ask once (plus retries). With `guard`, the answer is streamed and generation stops as
        soon as guard(text_so_far) is true: small models can loop on one path command until the
        token cap, which costs minutes on a CPU."""
        last_error = "no attempt made"
        limited: tuple[float | None] | None = None   # the last try was rate-limited (with its Retry-After)
        start = time.perf_counter()
        for attempt in range(1, self.retries + 2):
            wait = self.backoff * 2 ** (attempt - 1)
            if self.transport:
                self.transport.forget()
            if self.rate_limiter is not None:
                self.rate_limiter.acquire(blocking=True)
            try:
                if guard is None:
                    message = self._invoker().invoke(list(messages), stop=stop, **kwargs)
                    text = message.content if isinstance(message.content, str) else _join_parts(message.content)
                    usage, cut = getattr(message, "usage_metadata", None) or {}, False
                else:
                    text, usage, cut = self._stream(messages, stop, guard, kwargs)
                text = clean_text(text)
            except Exception as exc:  # the client raises many types; classify, don't crash
                last_error = _describe(exc) + self._server_sent()
                if not _is_retryable(exc):
                    raise LLMError(f"model {self.name} refused the request: {last_error}") from exc
                asked = _retry_after(exc)
                wait = asked if asked is not None else wait
                limited = (asked,) if _is_rate_limit(exc) else None
            else:
                if text.strip():
                    return Completion(text, int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)),
                                      time.perf_counter() - start, attempt, cut)
                last_error, limited = "empty answer", None
            if attempt <= self.retries:
                logger.info("model %s: try %d of %d failed (%s); next try in %.1f s", self.name, attempt,
                            self.retries + 1, last_error, wait)
                time.sleep(wait)
        message = f"model {self.name} gave no usable answer after {self.retries + 1} tries ({last_error})"
        if limited is not None:
            error = RateLimited(message + " (rate limited)", retry_after=limited[0])
            hits = _RATE_LIMITS.get()
            if hits is not None:
                hits.append(error)
            raise error
        raise LLMError(message)

    def _invoker(self) -> Any:
        """The chat model for calls that are not streamed on purpose. LangChain streams an invoke()
        whenever a streaming callback is attached (LangGraph's `messages` stream mode attaches
        one), which would change the requests of the recognizer and critic with the live view on;
        a copy with streaming disabled sends the same request either way."""
        chat = self.chat
        if getattr(chat, "disable_streaming", True) is not False or not hasattr(chat, "model_copy"):
            return chat
        if self._quiet is None or self._quiet[0] is not chat:
            try:
                quiet = chat.model_copy(update={"disable_streaming": True})
            except Exception:  # a model that cannot be copied streams as LangChain decides
                quiet = chat
            self._quiet = (chat, quiet)
        return self._quiet[1]

    def _server_sent(self) -> str:
        seen = self.transport.last() if self.transport else None
        return f"; the server sent {seen}" if seen else ""


    def _stream(self, messages, stop, guard, kwargs) -> tuple[str, dict, bool]:
        parts: list[str] = []
        usage: dict = {}
        chunks = 0
        stream = self.chat.stream(list(messages), stop=stop, **kwargs)
        try:
            for chunk in stream:
                content = chunk.content if isinstance(chunk.content, str) else _join_parts(chunk.content)
                parts.append(content)
                chunks += 1 if content else 0
                usage = getattr(chunk, "usage_metadata", None) or usage
                if chunks % 16 == 0 and guard("".join(parts)):
                    # closing the stream drops the connection, and llama.cpp/vLLM stop generating
                    return "".join(parts), usage or {"output_tokens": chunks}, True
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()
        return "".join(parts), usage or {"output_tokens": chunks}, False


class BoundedTransport(httpx2.BaseTransport):
    """httpx transport for model servers: one total deadline per request and a cap on the answer.

    httpx's own timeouts count per read, so a server that trickles bytes or streams forever never
    trips them; here a timer closes the response when the deadline passes, and the body is cut at
    `max_bytes`. Either ends the call with a clear error instead of hanging the run or filling memory.
    It also keeps, per thread, the status, content type and first bytes of the last response, so an
    HTML error page or broken JSON can be reported as what it is."""

    def __init__(self, deadline: float, max_bytes: int | None = None):
        self.inner = httpx2.HTTPTransport()
        self.deadline, self.max_bytes = deadline, max_bytes or MAX_ANSWER_BYTES
        self._seen = threading.local()

    def handle_request(self, request: "httpx2.Request") -> "httpx2.Response":
        expires = time.monotonic() + self.deadline
        response = self.inner.handle_request(request)
        self._seen.info = {"status": response.status_code,
                           "type": response.headers.get("content-type", "no content type"), "head": b""}
        body = _BoundedBody(response.stream, expires, self.max_bytes, self._seen.info, self.deadline)
        return httpx2.Response(response.status_code, headers=response.headers, stream=body,
                               extensions=response.extensions, request=request)

    def forget(self) -> None:
        self._seen.info = None

    def last(self) -> str | None:
        info = getattr(self._seen, "info", None)
        if not info:
            return None
        head = info["head"][:120].decode("utf-8", "replace")
        return f"HTTP {info['status']} ({info['type']}), starting {clean_text(head)!r}"

    def close(self) -> None:
        self.inner.close()


class _BoundedBody(httpx2.SyncByteStream):
    def __init__(self, inner, expires: float, max_bytes: int, info: dict, deadline: float):
        self.inner, self.max_bytes, self.info, self.deadline = inner, max_bytes, info, deadline
        self.expired = False
        self.timer = threading.Timer(max(0.0, expires - time.monotonic()), self._expire)
        self.timer.daemon = True
        self.timer.start()

    def _expire(self) -> None:
        self.expired = True
        self.inner.close()   # unblocks a read that is waiting on a trickling server

    def __iter__(self) -> Iterator[bytes]:
        size = 0
        try:
            for chunk in self.inner:
                if self.expired:
                    break
                size += len(chunk)
                if len(self.info["head"]) < 256:
                    self.info["head"] += chunk[:256 - len(self.info["head"])]
                if size > self.max_bytes:
                    raise AnswerTooLarge(f"the answer passed {self.max_bytes // 2**20} MiB; the server is not "
                                         "answering a drawing request")
                yield chunk
        except httpx2.HTTPError:
            if not self.expired:
                raise
        if self.expired:
            raise httpx2.ReadTimeout(f"no complete answer within {self.deadline:g} s (DRAWLOOP_TIMEOUT)")

    def close(self) -> None:
        self.timer.cancel()
        self.inner.close()


class AnswerTooLarge(Exception):
    """The server sent more than any drawing answer could need."""


def ask_json(llm, messages, schema: dict, name: str) -> tuple[dict | None, "Completion | None"]:
    """ChatLLM.complete_json for any llm-like object; (None, None) for ones that only `complete`."""
    method = getattr(llm, "complete_json", None)
    return method(messages, schema, name) if method else (None, None)


def degenerate_repetition(text: str, window: int = 480, min_span: int = 160, min_repeats: int = 8,
                          max_period: int = 60) -> bool:
    """True when the text ends in one short unit repeated over and over ("L256 256L256 256...")."""
    tail = text[-window:]
    for period in range(1, max_period + 1):
        unit = tail[-period:]
        repeats = 1
        while repeats * period + period <= len(tail) and tail[-(repeats + 1) * period:-repeats * period] == unit:
            repeats += 1
        if repeats >= min_repeats and repeats * period >= min_span:
            return True
    return False


def _join_parts(content: list) -> str:
    return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)


def parse_model_spec(spec: str) -> tuple[str, str]:
    """'local' -> ('local', default model); 'local:x' -> ('local', x); 'openai:gpt-4o' -> ('openai', 'gpt-4o');
    'anthropic:claude-3-5-haiku-latest' -> ('anthropic', ...): any LangChain provider (providers.py).
    Only the name is checked here; whether the provider's package is installed, when the model opens."""
    from drawloop import providers
    from drawloop.local_model import DEFAULT_MODEL

    spec = (spec or "local").strip()
    provider, _, name = spec.partition(":")
    if provider == "local":
        return "local", name or DEFAULT_MODEL
    if provider == "openai":
        if not name:
            raise ValueError("--model openai:NAME needs a model name, e.g. openai:gpt-4o-mini")
        return "openai", name
    if name and providers.known(provider):
        return providers.canonical(provider), name
    if providers.known(provider):
        raise ValueError(f"--model {provider}:NAME needs a model name")
    raise ValueError(f"unknown model spec {spec!r}: use local, local:/path.gguf, openai:NAME (with --base-url "
                     f"for any OpenAI-compatible server), or PROVIDER:NAME for a LangChain provider "
                     f"({', '.join(providers.PROVIDERS)})")


def chat_model_name(chat: Any) -> str:
    """What a chat model calls itself: its model name, else its class."""
    for attr in ("model_name", "model", "model_id"):
        value = getattr(chat, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(chat).__name__


def check_reachable(base_url: str, api_key: str | None = None, timeout: float = 5.0) -> None:
    """Fail fast with a clear message when an OpenAI-compatible server cannot be reached."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        httpx.get(base_url.rstrip("/") + "/models", headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise LLMError(f"cannot reach the model server at {base_url} ({_describe(exc)}). "
                       "Is it running, and is --base-url right (it usually ends in /v1)?") from exc


ROLES = ("drawer", "recognizer", "critic")


LOCAL_DEADLINE = 900.0   # seconds per request to the embedded server (at least; DRAWLOOP_TIMEOUT may raise it)


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
            from drawloop.local_model import LocalServer, model_path

            # One slot per request that can be in flight: each thread drafts its candidates at once.
            # llama.cpp splits its context among the slots, so each parallel slot gets its own 4k.
            parallel = min(8, self.settings.parallel * self.settings.candidates)
            self.server = LocalServer(model_path(self.model_name), threads=self.settings.threads,
                                      parallel=parallel, ctx=max(8192, 4096 * parallel),
                                      speculation=self.settings.speculation).start()
            self.base_url, self.api_key = self.server.base_url, "sk-local"
        elif self.provider not in ("local", "openai"):
            from drawloop import providers

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
            return f"{self.provider}:{self.model_name} (embedded llama.cpp, speculation {self.settings.speculation})"
        return f"{self.provider}:{self.model_name} ({self.base_url or 'api.openai.com'})"

    @property
    def rate_limiter(self):
        """One token bucket for every call through this handle (--rpm requests a minute), or None."""
        rpm = getattr(self.settings, "rpm", None)
        if rpm and self._rate_limiter is None:
            from langchain_core.rate_limiters import InMemoryRateLimiter

            self._rate_limiter = InMemoryRateLimiter(requests_per_second=rpm / 60.0,
                                                     check_every_n_seconds=min(0.1, 15.0 / rpm), max_bucket_size=1)
        return self._rate_limiter

    def chat(self, max_tokens: int | None = None, temperature: float | None = None, role: str = "drawer") -> ChatLLM:
        settings = self.settings
        given = self.chat_models.get(role) or self.chat_models.get("default")
        if given is not None:   # the caller's model, with its own sampling settings
            return ChatLLM(given, retries=settings.retries, name=chat_model_name(given),
                           rate_limiter=self.rate_limiter)
        max_tokens = max_tokens or settings.max_tokens
        temperature = settings.temperature if temperature is None else temperature
        if self.provider not in ("local", "openai"):
            return self._provider_chat(max_tokens, temperature)
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
        return ChatLLM(ChatOpenAI(**kwargs), retries=settings.retries, name=f"{self.provider}:{self.model_name}",
                       transport=transport, rate_limiter=self.rate_limiter)

    def _provider_chat(self, max_tokens: int, temperature: float) -> ChatLLM:
        from drawloop import providers

        settings = self.settings
        # The OpenAI key Settings falls back to is not another provider's: theirs come from their
        # own variables (ANTHROPIC_API_KEY, ...), unless DRAWLOOP_API_KEY or api_key= says otherwise.
        key = settings.api_key
        if key and key == os.environ.get("OPENAI_API_KEY") and not os.environ.get("DRAWLOOP_API_KEY"):
            key = None
        chat = providers.chat_model(self.provider, self.model_name, temperature=temperature, max_tokens=max_tokens,
                                    timeout=settings.request_timeout, max_retries=0, base_url=self.base_url,
                                    api_key=key)
        return ChatLLM(chat, retries=settings.retries, name=f"{self.provider}:{self.model_name}",
                       rate_limiter=self.rate_limiter)


def open_model(settings: Settings, chat_models: dict[str, BaseChatModel | None] | None = None) -> ModelHandle:
    return ModelHandle(settings, chat_models)


ChatFactory = Callable[..., ChatLLM]
