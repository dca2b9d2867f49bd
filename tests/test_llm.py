import socket

import pytest

from conftest import FakeOpenAI, fake_llm
from drawloop.config import Settings
from drawloop.llm import LLMError, ModelHandle, check_reachable, parse_model_spec


def test_parse_model_spec():
    assert parse_model_spec("local") == ("local", "qwen2.5-coder-1.5b")
    assert parse_model_spec("local:/tmp/x.gguf") == ("local", "/tmp/x.gguf")
    assert parse_model_spec("openai:gpt-4o-mini") == ("openai", "gpt-4o-mini")
    with pytest.raises(ValueError, match="openai:NAME"):
        parse_model_spec("openai:")
    with pytest.raises(ValueError, match="unknown model spec"):
        parse_model_spec("anthropic:claude")


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
