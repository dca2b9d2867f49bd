"""BoundedTransport: the httpx transport drawloop's OpenAI-compatible clients use, because a
model server is not trusted to behave.

    transport = BoundedTransport(deadline=180.0)                 # max_bytes: MAX_ANSWER_BYTES
    client = httpx2.Client(transport=transport, timeout=180.0)  # handed to ChatOpenAI(http_client=...)
    transport.last()   # "HTTP 502 (text/html), starting '<html>...'" for an error message

Every request gets one total deadline and a cap on the answer's size (an endless stream or body
ends the call, it does not hang the run), and what the server last sent is remembered per thread.
"""

from __future__ import annotations

import threading
import time
from typing import Iterator

import httpx2  # the fork of httpx that the openai client is built on

from drawloop.text import clean_text

MAX_ANSWER_BYTES = 8 * 1024 * 1024   # a 4k-token SSE stream is ~1.5 MB; beyond this a server is not answering


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
                    raise AnswerTooLarge(f"the answer passed {self.max_bytes // 2**20} MiB; the server "
                                         "is not answering a drawing request")
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
