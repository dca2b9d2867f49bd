import socket

import pytest
from conftest import FakeOpenAI, fake_llm

from drawloop.config import Settings
from drawloop.llm import ModelHandle, check_reachable, parse_model_spec
from drawloop.llm.chat import LLMError


def test_parse_model_spec():
    assert parse_model_spec("local") == ("local", "qwen2.5-coder-1.5b")
    assert parse_model_spec("local:/tmp/x.gguf") == ("local", "/tmp/x.gguf")
    assert parse_model_spec("openai:gpt-4o-mini") == ("openai", "gpt-4o-mini")
    with pytest.raises(ValueError, match="openai:NAME"):
        parse_model_spec("openai:")
    assert parse_model_spec("anthropic:claude") == ("anthropic", "claude")   # any LangChain provider
    assert parse_model_spec("ollama:qwen2.5-coder:7b") == ("ollama", "qwen2.5-coder:7b")
    with pytest.raises(ValueError, match="unknown model spec"):
        parse_model_spec("nosuchprovider:x")


def test_retries_empty_answers_then_succeeds():
    llm = fake_llm("", "  ", "<svg/>", retries=2)
    answer = llm.complete([("user", "draw")])
    assert answer.text == "<svg/>" and answer.attempts == 3


def test_gives_up_with_clear_error_after_retries():
    llm = fake_llm("", "", "", retries=2)
    with pytest.raises(LLMError, match="no usable answer after 3 tries \\(empty answer\\)"):
        llm.complete([("user", "draw")])


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_base_url_fails_fast_with_a_clear_message():
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    with pytest.raises(LLMError, match="cannot reach the model server"):
        check_reachable(url, timeout=2)
    with pytest.raises(LLMError, match="cannot reach"):
        ModelHandle(Settings(model="openai:x", base_url=url)).open()


def test_openai_without_key_says_what_to_do(monkeypatch):
    with pytest.raises(LLMError, match="OPENAI_API_KEY"):
        ModelHandle(Settings(model="openai:gpt-4o-mini", api_key=None)).open()


def test_compatible_server_gets_token_cap_stop_and_usage_is_counted(fake_server):
    FakeOpenAI.answers = [(500, "overloaded"), (200, "<svg/>")]
    handle = ModelHandle(Settings(model="openai:my-model", base_url=fake_server, retries=1)).open()
    llm = handle.chat(max_tokens=321)
    llm.backoff = 0.0
    answer = llm.complete([("user", "draw")], stop=["</svg>"])
    assert answer.text == "<svg/>" and answer.tokens_in == 11 and answer.tokens_out == 7 and answer.attempts == 2
    sent = FakeOpenAI.requests[-1]
    assert sent["model"] == "my-model" and sent["stop"] == ["</svg>"]
    assert sent["max_tokens"] == 321  # honoured by every compatible server, unlike max_completion_tokens


def test_bad_request_is_not_retried(fake_server):
    FakeOpenAI.answers = [(400, "context too long"), (200, "never sent")]
    handle = ModelHandle(Settings(model="openai:m", base_url=fake_server, retries=3)).open()
    with pytest.raises(LLMError, match="refused the request"):
        handle.chat().complete([("user", "draw")])
    assert len(FakeOpenAI.requests) == 1


# --- servers that misbehave ---------------------------------------------------------------------

import http.server
import json
import threading
import time

import drawloop.llm.chat as chat_module
import drawloop.llm.transport as transport_module


class _Misbehaving(http.server.BaseHTTPRequestHandler):
    """One bad habit per test: trickle, stream forever, rate-limit, send HTML or broken JSON."""

    mode = ""
    calls = 0

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._send(200, "application/json", b'{"data": []}')

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        _Misbehaving.calls += 1
        mode = _Misbehaving.mode
        try:
            if mode == "trickle":         # headers, then a byte now and then, never finishing
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                for _ in range(600):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.1)
            elif mode == "endless":       # a stream of answer chunks that never ends
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                         "choices": [{"index": 0, "delta": {"content": "<g>" * 50}, "finish_reason": None}]}
                line = f"data: {json.dumps(chunk)}\n\n".encode()
                while True:
                    self.wfile.write(line)
            elif mode == "ratelimit" and _Misbehaving.calls == 1:
                self._send(429, "application/json", b'{"error": {"message": "slow down"}}', {"Retry-After": "7"})
            elif mode == "html":
                self._send(200, "text/html", b"<html><title>Sign in to the proxy</title></html>")
            elif mode == "garbage":
                self._send(200, "application/json", b"not json at all {")
            else:                         # escape codes and a lone surrogate inside a good answer
                text = "<svg>\x1b]0;owned\x07\x1b[2J<circle r='4'/>\\ud800</svg>"
                body = ('{"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": '
                        '[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "'
                        + text.replace("\x1b", "\\u001b").replace("\x07", "\\u0007") + '"}}]}')
                self._send(200, "application/json", body.encode())
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _send(self, status, kind, body, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def misbehaving():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Misbehaving)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def chat(mode, retries=0, timeout=1.5, **settings):
        _Misbehaving.mode, _Misbehaving.calls = mode, 0
        handle = ModelHandle(Settings(model="openai:m", base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
                                      retries=retries, request_timeout=timeout, **settings)).open()
        llm = handle.chat()
        llm.backoff = 0.0
        return llm

    yield chat
    server.shutdown()


def test_a_trickling_server_meets_one_total_deadline(misbehaving):
    llm = misbehaving("trickle", timeout=1.0)   # each byte arrives well within a read timeout
    start = time.monotonic()
    with pytest.raises(LLMError, match=r"no complete answer within 1 s"):
        llm.complete([("user", "draw")])
    assert time.monotonic() - start < 30      # before: it waited for the whole minute of trickle


def test_an_endless_stream_ends_the_call(misbehaving, monkeypatch):
    monkeypatch.setattr(transport_module, "MAX_ANSWER_BYTES", 256 * 1024)
    llm = misbehaving("endless", timeout=60.0)
    with pytest.raises(LLMError, match=r"passed 0 MiB|the server is not answering"):
        llm.complete([("user", "draw")], guard=lambda text: False)


def test_retry_after_is_honoured(misbehaving, monkeypatch):
    waits = []
    monkeypatch.setattr(chat_module.time, "sleep", waits.append)
    llm = misbehaving("ratelimit", retries=1)
    assert "<circle" in llm.complete([("user", "draw")]).text
    assert waits == [7.0]


def test_retry_after_as_a_date_and_garbage():
    class Response:
        def __init__(self, value):
            self.headers = {"retry-after": value}

    class RateLimited(Exception):
        def __init__(self, value):
            self.response = Response(value)

    soon = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 20 <= chat_module._retry_after(RateLimited(soon)) <= 31
    assert chat_module._retry_after(RateLimited("next tuesday")) is None
    assert chat_module._retry_after(RateLimited("99999")) == chat_module.MAX_RETRY_AFTER


@pytest.mark.parametrize("mode, shown", [("html", r"text/html.*Sign in to the proxy"),
                                         ("garbage", r"application/json.*not json at all")])
def test_errors_say_what_the_server_sent(misbehaving, mode, shown):
    with pytest.raises(LLMError, match=shown):
        misbehaving(mode).complete([("user", "draw")])


def test_answers_lose_control_sequences_and_invalid_unicode(misbehaving):
    text = misbehaving("clean").complete([("user", "draw")]).text
    assert text == "<svg><circle r='4'/></svg>"
    text.encode("utf-8")   # before: a lone surrogate, and writing the drawing raised UnicodeEncodeError


def test_the_model_label_says_which_speculation_the_embedded_server_used():
    for mode in ("ngram-mod", "off"):
        handle = ModelHandle(Settings(speculation=mode))
        handle.server = object()          # as after open(): the embedded server is running
        assert handle.label == f"local:qwen2.5-coder-1.5b (embedded llama.cpp, speculation {mode})"


def test_the_embedded_server_gets_a_deadline_a_busy_machine_can_meet():
    handle = ModelHandle(Settings(request_timeout=180.0))
    handle.base_url, handle.api_key = "http://127.0.0.1:9/v1", "sk-local"
    assert handle.chat().transport.deadline == 180.0          # a remote endpoint: the setting
    handle.server = object()                                    # the embedded llama.cpp server
    assert handle.chat().transport.deadline == 900.0
    handle.settings = Settings(request_timeout=1200.0)
    assert handle.chat().transport.deadline == 1200.0           # DRAWLOOP_TIMEOUT may raise it
