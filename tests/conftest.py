"""Shared test helpers: fake chat models (unit tests only) and tiny SVGs."""

from __future__ import annotations

import http.server
import itertools
import json
import re
import threading
import time

import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from drawloop.llm.chat import ChatLLM

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
def one_torch_thread():
    """On a shared 2-core machine, two OpenMP threads fighting other jobs run tiny ops many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def fixed_distractors():
    return lambda concept, n, seed: ["a dog", "a tree", "a car", "a house"][:n]


def smart_answer(body: dict) -> str:
    """Answers like a cooperative model: SVG for drawing prompts, the right letter for
    recognition prompts, a score for critique prompts."""
    prompt = body["messages"][-1]["content"]
    if isinstance(prompt, list):  # a vision-language request: text + image_url parts
        has_image = any(part.get("type") == "image_url" for part in prompt)
        return '{"score": 3, "feedback": "the picture needs wheels"}' if has_image else "SCORE: 0"
    if "Choose exactly one option" in prompt:
        options = dict(re.findall(r"^([A-Z])\. (.+)$", prompt, re.M))
        concept = FakeOpenAI.concept
        return next((k for k, v in options.items() if v == concept), "A")
    if "SCORE:" in prompt or "Rate how well" in prompt:
        return "SCORE: 6\nFIXES:\n- add more detail"
    return f"```svg\n{APPLE}\n```"


def structured_answer(body: dict, text: str) -> str:
    """What a server that honours json_schema sends: the smart answer, in the requested shape."""
    schema = body["response_format"]["json_schema"]
    if schema["name"] == "choice":
        return json.dumps({"answer": text.strip()[:1]})
    score = re.search(r"SCORE: (\d+)", text)
    return json.dumps({"score": int(score.group(1)) if score else 5, "fixes": ["add more detail", "add more detail"]})


class FakeOpenAI(http.server.BaseHTTPRequestHandler):
    """A minimal OpenAI-compatible server on loopback: records requests, answers scripted text."""

    concept = ""
    answers: list = []
    requests: list = []
    structured = None    # json_schema response_format: None ignores it, "json" honours it, "refuse" answers 400

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._json(200, {"data": [{"id": "fake"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.requests.append(body)
        # an answer is (status, text) or (status, text, headers), e.g. (429, "slow down", {"Retry-After": "3"})
        status, text, *headers = FakeOpenAI.answers.pop(0) if FakeOpenAI.answers else (200, smart_answer(body))
        if body.get("response_format") and FakeOpenAI.structured == "refuse":
            status, text = 400, "response_format json_schema is not supported"
        elif body.get("response_format") and FakeOpenAI.structured == "json":
            text = structured_answer(body, text)
        if status != 200:
            return self._json(status, {"error": {"message": text}}, *headers)
        self._answer(body, text)

    def _answer(self, body, text):
        """The answer as this server sends it: streamed or whole, as the request asked."""
        if body.get("stream"):
            return self._sse(text)
        self._json(200, {"id": "x", "object": "chat.completion", "created": 0, "model": "fake",
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": text}}],
                         "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}})

    def _sse(self, text):
        """Stream the answer as OpenAI server-sent events, a few characters per chunk."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        base = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "fake"}
        for i in range(0, len(text), 8):
            delta = {"choices": [{"index": 0, "delta": {"content": text[i:i + 8]}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps({**base, **delta})}\n\n".encode())
        usage = {"prompt_tokens": 11, "completion_tokens": (len(text) + 7) // 8, "total_tokens": 0}
        final = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}
        self.wfile.write(f"data: {json.dumps({**base, **final})}\n\ndata: [DONE]\n\n".encode())

    def _json(self, status, payload, headers=None):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def fake_server():
    """An OpenAI-compatible server on 127.0.0.1 (scripted answers first, then smart_answer)."""
    FakeOpenAI.answers, FakeOpenAI.requests, FakeOpenAI.concept, FakeOpenAI.structured = [], [], "", None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


class _StuckModel(http.server.BaseHTTPRequestHandler):
    """Lists its model, then never answers a completion (within a test's time)."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._reply(b'{"data": [{"id": "slow"}]}')

    def do_POST(self):
        time.sleep(60)

    def _reply(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def stuck_server():
    """An OpenAI-compatible server on 127.0.0.1 whose model takes a minute to answer: for Ctrl-C tests."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StuckModel)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


class SmartChat(BaseChatModel):
    """A LangChain chat model that answers like a cooperative model (smart_answer's rules: SVG for
    drawing prompts, the right letter, a score), streaming `chunk` characters at a time, and
    records every call (`calls`: "invoke" or "stream", the prompt's last message)."""

    concept: str = "a red apple"
    svg: str = APPLE
    chunk: int = 12
    model_name: str = "smart-fake"
    calls: list = []

    @property
    def _llm_type(self) -> str:
        return "smart-fake"

    def answer(self, messages) -> str:
        prompt = messages[-1].content
        if isinstance(prompt, list):
            return '{"score": 3, "feedback": "the picture needs wheels"}'
        if "Choose exactly one option" in prompt:
            options = dict(re.findall(r"^([A-Z])\. (.+)$", prompt, re.M))
            return next((k for k, v in options.items() if v == self.concept), "A")
        if "SCORE:" in prompt or "Rate how well" in prompt:
            return "SCORE: 6\nFIXES:\n- add more detail"
        return f"```svg\n{self.svg}\n```"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.calls.append(("invoke", messages[-1].content))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self.answer(messages)))])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        self.calls.append(("stream", messages[-1].content))
        text = self.answer(messages)
        for i in range(0, len(text), self.chunk):
            piece = ChatGenerationChunk(message=AIMessageChunk(content=text[i:i + self.chunk]))
            if run_manager:
                run_manager.on_llm_new_token(piece.text, chunk=piece)
            yield piece
