"""The LLM critic and code recognizer ask for json_schema output, and fall back to reading text."""

from langchain_openai import ChatOpenAI

from conftest import APPLE, FakeOpenAI
from drawloop.agents.critic import LLMCodeCritic
from drawloop.agents.recognizer import CodeRecognizer
from drawloop.llm.chat import ChatLLM
from drawloop.renderers import render
from drawloop.state import Drawing

CHOICES = ["a dog", "a red apple", "a tree"]


def chat(url):
    return ChatLLM(ChatOpenAI(model="fake", api_key="x", base_url=url, max_retries=0, timeout=10), retries=0)


def apple():
    return Drawing(concept="a red apple", code=APPLE, png=render(APPLE, "svg", 64).png, choices=CHOICES)


def formats():
    return [r.get("response_format", {}).get("json_schema", {}).get("name") for r in FakeOpenAI.requests]


def test_a_server_that_honours_json_schema_gets_json_and_is_read_as_json(fake_server):
    FakeOpenAI.concept, FakeOpenAI.structured = "a red apple", "json"
    llm = chat(fake_server)
    result = LLMCodeCritic(llm).score(apple())
    assert result.score == 0.6 and result.details["structured"] and result.feedback == "- add more detail"
    recognition = CodeRecognizer(llm).recognize(apple())
    assert recognition["label"] == "a red apple" and recognition["correct"]
    assert formats() == ["critique", "choice"] and llm.structured is True
    schema = FakeOpenAI.requests[1]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["answer"]["enum"] == ["A", "B", "C"]


def test_a_server_that_refuses_it_is_asked_in_text_from_then_on(fake_server):
    FakeOpenAI.concept, FakeOpenAI.structured = "a red apple", "refuse"
    llm = chat(fake_server)
    result = LLMCodeCritic(llm).score(apple())
    assert result.score == 0.6 and "structured" not in result.details
    assert CodeRecognizer(llm).recognize(apple())["label"] == "a red apple"
    assert formats() == ["critique", None, None] and llm.structured is False  # one refusal, then text only


def test_a_server_that_ignores_it_is_read_as_text_without_asking_twice(fake_server):
    FakeOpenAI.concept = "a red apple"
    llm = chat(fake_server)
    assert LLMCodeCritic(llm).score(apple()).score == 0.6
    assert CodeRecognizer(llm).recognize(apple())["label"] == "a red apple"
    # one request each, the same prompt every time: nothing about the server is guessed from an answer
    assert formats() == ["critique", "choice"] and llm.structured is None
