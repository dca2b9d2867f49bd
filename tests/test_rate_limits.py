"""Rate limits: 429 + Retry-After from the server, a client-side --rpm, and LangGraph's RetryPolicy
running a node again when its model stayed rate-limited, always with the job's seed."""

import time
import types

import pytest
from conftest import APPLE, FakeOpenAI, fake_llm
from langgraph.types import RetryPolicy

import drawloop.graphs.refine as refine
import drawloop.llm.chat as chat_module
from drawloop.config import Settings
from drawloop.llm import ModelHandle
from drawloop.llm.chat import LLMError, RateLimited, watch_rate_limits

SLOW_DOWN = (429, "slow down", {"Retry-After": "3"})


@pytest.fixture
def waits(monkeypatch):
    """ChatLLM's pauses, recorded instead of slept (only drawloop.llm.chat's clock is replaced)."""
    seen: list[float] = []
    clock = types.SimpleNamespace(sleep=seen.append, perf_counter=time.perf_counter, time=time.time,
                                  monotonic=time.monotonic)
    monkeypatch.setattr(chat_module, "time", clock)
    return seen


@pytest.fixture
def quick_node_retries(monkeypatch):
    monkeypatch.setattr(refine, "RATE_LIMIT_RETRY", RetryPolicy(initial_interval=0.01, jitter=False, max_attempts=3,
                                                                 retry_on=refine.NodeRateLimited))


def drawing_requests():
    return [r for r in FakeOpenAI.requests if r["messages"][0]["role"] == "system"]


def test_a_429_is_retried_after_its_retry_after_with_the_same_seed(fake_server, waits):
    FakeOpenAI.answers = [SLOW_DOWN, SLOW_DOWN]
    llm = ModelHandle(Settings(model="openai:m", base_url=fake_server, retries=2)).open().chat()
    answer = llm.complete([("user", "draw")], seed=41)
    assert answer.attempts == 3 and waits == [3.0, 3.0]
    assert [r["seed"] for r in FakeOpenAI.requests] == [41, 41, 41]


def test_still_rate_limited_after_the_retries_raises_rate_limited_and_is_noted(fake_server, waits):
    FakeOpenAI.answers = [SLOW_DOWN] * 3
    llm = ModelHandle(Settings(model="openai:m", base_url=fake_server, retries=1)).open().chat()
    with watch_rate_limits() as hits, pytest.raises(RateLimited, match="rate limited") as caught:
        llm.complete([("user", "draw")])
    assert isinstance(caught.value, LLMError) and caught.value.retry_after == 3.0 and hits == [caught.value]
    FakeOpenAI.answers = [(500, "overloaded")] * 2
    with watch_rate_limits() as hits, pytest.raises(LLMError) as caught:
        llm.complete([("user", "draw")])
    assert not isinstance(caught.value, RateLimited) and hits == []   # only 429s count


def test_rpm_spaces_the_requests():
    llm = fake_llm("a", "b", "c", "d")
    llm.rate_limiter = ModelHandle(Settings(rpm=600)).rate_limiter   # 10 a second, no burst
    start = time.monotonic()
    for _ in range(4):
        llm.complete([("user", "draw")])
    assert time.monotonic() - start >= 0.3


def test_rpm_is_a_setting_an_option_and_an_environment_variable(monkeypatch):
    monkeypatch.setenv("DRAWLOOP_RPM", "30")
    assert Settings.from_env().rpm == 30.0
    assert Settings.from_env(rpm=5).rpm == 5
    with pytest.raises(ValueError, match=r"--rpm \(DRAWLOOP_RPM\) must be"):
        Settings.from_env(rpm=0)
    handle = ModelHandle(Settings(rpm=120))
    assert handle.rate_limiter is handle.rate_limiter and ModelHandle(Settings()).rate_limiter is None


def test_a_draw_node_still_rate_limited_runs_again_with_the_same_seed(fake_server, tmp_path, waits,
                                                                      quick_node_retries):
    import drawloop

    FakeOpenAI.concept = "a red apple"
    FakeOpenAI.answers = [SLOW_DOWN] * 2          # retries=1: the first node attempt gives up rate-limited
    result = drawloop.draw("a red apple", model="openai:fake", base_url=fake_server, runs_dir=str(tmp_path),
                           max_iters=1, retries=1, seed=7)
    assert result.best["code"] == APPLE and not result.best.get("draw_error")
    draws = drawing_requests()
    assert len(draws) == 3 and {r["seed"] for r in draws} == {7}   # 2 rate-limited + the node's second attempt
    trace = (result.run_dir / "trace.jsonl").read_text()
    assert "rate limited: draw runs again (attempt 2 of 3)" in trace


def test_the_last_node_attempt_keeps_what_the_agent_made_of_it(fake_server, tmp_path, waits, quick_node_retries):
    import drawloop

    FakeOpenAI.answers = [SLOW_DOWN] * 6          # every try of all three node attempts
    result = drawloop.draw("a red apple", model="openai:fake", base_url=fake_server, runs_dir=str(tmp_path),
                           max_iters=1, retries=1, seed=7)
    assert "rate limited" in result.attempts[0]["draw_error"]   # recorded, the loop did not crash
    assert len(drawing_requests()) == 6 and {r["seed"] for r in drawing_requests()} == {7}


def test_review_nodes_are_guarded_and_retried(tmp_path, fixed_distractors, quick_node_retries):
    from drawloop.agents.critic import Critic, RenderSanityScorer
    from drawloop.agents.drawer import Drawer
    from drawloop.agents.recognizer import CodeRecognizer
    from drawloop.graphs.stopping import StopRule
    from drawloop.runs import ArtifactStore
    from drawloop.trace.events import traced

    calls = []

    def flaky(state):
        calls.append(1)
        if len(calls) == 1:   # a review whose model call stayed rate-limited: LangGraph runs it again
            with pytest.raises(RateLimited):
                fake = fake_llm("x")
                fake.chat = types.SimpleNamespace(invoke=_raise_429, disable_streaming=True)
                fake.complete([("user", "review")])
            return {}
        raise RuntimeError("reviewer crashed")   # the second time it crashes: recorded, the round goes on

    def quiet_crash(state):
        raise KeyError("no such key")

    events = []
    graph = refine.build_refine_graph(
        drawer=Drawer(fake_llm(APPLE, cycle=True)), renderer=None, recognizer=CodeRecognizer(fake_llm("A", cycle=True)),
        critic=Critic([(RenderSanityScorer(), 1.0)]), stop_rule=StopRule(max_iters=1), store=ArtifactStore(tmp_path),
        distractors=fixed_distractors, review_nodes=[("flaky", traced("flaky")(flaky)), ("quiet", quiet_crash)])
    for chunk in graph.stream({"concept": "a red apple"}, stream_mode="custom"):
        events.append(chunk)
    assert len(calls) == 2
    infos = [e for e in events if e["phase"] == "info"]
    assert [e["node"] for e in infos] == ["flaky"] and "attempt 2 of 3" in infos[0]["message"]
    ends = [(e["node"], e["error"]) for e in events if e["phase"] == "end" and e.get("error")]
    assert ends == [("flaky", "RuntimeError: reviewer crashed"), ("quiet", "KeyError: 'no such key'")]
    assert any(e["node"] == "decide" for e in events)   # the loop went on to the judge and decide


class _TooMany(Exception):
    status_code = 429


def _raise_429(*args, **kwargs):
    raise _TooMany("rate limited")
