"""Shared test helpers: fake chat models (unit tests only) and tiny SVGs."""

from __future__ import annotations

import itertools

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from drawloop.llm import ChatLLM

RED_CIRCLE = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">'
              '<rect width="100" height="100" fill="white"/><circle cx="50" cy="50" r="30" fill="red"/></svg>')
APPLE = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100"><rect width="100" height="100" fill="#fff"/>'
         '<circle cx="50" cy="55" r="30" fill="#d22"/><rect x="48" y="15" width="4" height="15" fill="#630"/>'
         '<ellipse cx="60" cy="22" rx="9" ry="4" fill="#2a2"/></svg>')
BLANK = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100"></svg>'
BROKEN = '<svg xmlns="http://www.w3.org/2000/svg"><circle r="10"'  # truncated, cannot be repaired to XML? (it can)
NOT_SVG = "<html><body>hi</body></html>"


def fake_llm(*answers: str, cycle: bool = False, retries: int = 0) -> ChatLLM:
    """A ChatLLM whose model replies with `answers` in order (or forever, with cycle=True)."""
    source = itertools.cycle(answers) if cycle else iter(answers)
    chat = GenericFakeChatModel(messages=(AIMessage(content=a) for a in source))
    return ChatLLM(chat, retries=retries, backoff=0.0, name="fake")


@pytest.fixture
def fixed_distractors():
    return lambda concept, n, seed: ["a dog", "a tree", "a car", "a house"][:n]
