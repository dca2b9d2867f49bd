"""ChatLLM: a chat model plus the calling discipline every model call in drawloop goes through.

    from drawloop.llm.chat import ChatLLM, LLMError
    llm = ChatLLM(GenericFakeChatModel(messages=iter(["<svg/>"])), retries=2)
    answer = llm.complete([("system", "..."), ("user", "Draw a cat")], stop=["</svg>"])
    answer.text, answer.tokens_out, answer.seconds, answer.usage()
    data, answer = llm.complete_json(messages, schema, "verdict")   # (None, None): ask the text way

Timeouts come from the transport (drawloop.llm.transport); here: retries with backoff that honour
Retry-After, the --rpm limiter, empty-answer handling, token accounting and `clean_text` on every
answer. A call still rate-limited after its retries raises `RateLimited` and is noted in
`watch_rate_limits()`, so a graph node can let LangGraph's RetryPolicy run it again
(graphs/refine.py). Unit tests pass any langchain chat model (e.g. GenericFakeChatModel) directly.
"""

from __future__ import annotations

import contextlib
import contextvars
import email.utils
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from langchain_core.language_models.chat_models import BaseChatModel

from drawloop.text import clean_text

if TYPE_CHECKING:
    from drawloop.llm.transport import BoundedTransport

logger = logging.getLogger("drawloop.llm")   # the name -v logs have always shown for retries

MAX_RETRY_AFTER = 120.0              # seconds: a longer Retry-After is a server to give up on, not wait for


class ChatLLM:
    """A chat model plus the calling discipline: retries, backoff, empty answers, usage."""

    def __init__(self, chat: BaseChatModel, retries: int = 2, backoff: float = 1.0, name: str = "",
                 transport: "BoundedTransport | None" = None, rate_limiter: Any = None):
        self.chat = chat
        self.retries = retries
        self.backoff = backoff
        self.name = name or chat_model_name(chat)
        self.transport = transport            # what the server last sent, for error messages
        # a langchain BaseRateLimiter shared by every call to one endpoint
        self.rate_limiter = rate_limiter
        self.structured: bool | None = None   # does the server honour json_schema? None: not known yet
        self._quiet: tuple[Any, Any] | None = None

    def complete_json(self, messages, schema: dict, name: str,
                      **kwargs: Any) -> tuple[dict | None, Completion | None]:
        """Ask for JSON matching `schema` (OpenAI's json_schema response format, which is what
        langchain's with_structured_output(method="json_schema") sends; vLLM and llama.cpp turn it
        into a grammar, so even a 1.5B model answers in shape). Returns (data, answer); (None,
        answer) when the server ignored the format (parse answer.text yourself); (None, None) when
        it refused it, or refused it before: ask the text way then. Only a refusal is remembered:
        the same call must send the same prompt whatever ran before it (resumed runs, threads)."""
        if self.structured is False:
            return None, None
        response_format = {"type": "json_schema",
                           "json_schema": {"name": name, "schema": schema, "strict": True}}
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
                    content = message.content
                    text = content if isinstance(content, str) else _join_parts(content)
                    usage, cut = getattr(message, "usage_metadata", None) or {}, False
                else:
                    text, usage, cut = self._stream(messages, stop, guard, kwargs)
                text = clean_text(text)
            except Exception as exc:  # the client raises many types; classify, don't crash
                last_error = describe_error(exc) + self._server_sent()
                if not _is_retryable(exc):
                    raise LLMError(f"model {self.name} refused the request: {last_error}") from exc
                asked = _retry_after(exc)
                wait = asked if asked is not None else wait
                limited = (asked,) if _is_rate_limit(exc) else None
            else:
                if text.strip():
                    return Completion(text, int(usage.get("input_tokens", 0)),
                                      int(usage.get("output_tokens", 0)),
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


class LLMError(RuntimeError):
    """The model could not give a usable answer (unreachable, refused, empty) after retries."""


class RateLimited(LLMError):
    """The server still answered 429 (rate limited) after every retry; `retry_after` is its advice."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


_RATE_LIMITS: contextvars.ContextVar[list | None] = contextvars.ContextVar("drawloop_rate_limits",
                                                                          default=None)


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
        while (repeats * period + period <= len(tail)
               and tail[-(repeats + 1) * period:-repeats * period] == unit):
            repeats += 1
        if repeats >= min_repeats and repeats * period >= min_span:
            return True
    return False


def chat_model_name(chat: Any) -> str:
    """What a chat model calls itself: its model name, else its class."""
    for attr in ("model_name", "model", "model_id"):
        value = getattr(chat, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(chat).__name__


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a provider's error (openai, anthropic, ... all carry one of these)."""
    for value in (getattr(exc, "status_code", None),
                  getattr(getattr(exc, "response", None), "status_code", None)):
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


def describe_error(exc: BaseException) -> str:
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


def _join_parts(content: list) -> str:
    return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
