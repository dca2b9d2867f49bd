"""Any LangChain chat model draws: PROVIDER:NAME specs, and chat models handed to draw()."""

import sys
import types

import pytest
from conftest import APPLE, SmartChat
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from typer.testing import CliRunner

from drawloop import providers
from drawloop.config import Settings
from drawloop.llm import ModelHandle, parse_model_spec
from drawloop.llm.chat import ChatLLM


class FakeProviderChat(GenericFakeChatModel):
    """Stands in for an integration package's class: Ollama-like field names."""

    messages: object = iter(())
    model: str = ""
    temperature: float | None = None
    num_predict: int | None = None      # Ollama's name for max_tokens
    max_retries: int = 2


@pytest.fixture
def fake_provider(monkeypatch):
    module = types.ModuleType("langchain_fakeprov")
    module.FakeProviderChat = FakeProviderChat
    monkeypatch.setitem(sys.modules, "langchain_fakeprov", module)
    monkeypatch.setitem(providers.PROVIDERS, "fakeprov", ("langchain_fakeprov", "FakeProviderChat", "langchain-fakeprov"))
    monkeypatch.setattr(providers.importlib.util, "find_spec",
                        lambda name: object() if name == "langchain_fakeprov" else None)
    return "fakeprov"


def test_a_provider_spec_builds_its_class_with_the_settings_it_takes(fake_provider):
    assert parse_model_spec("fakeprov:tiny-1") == ("fakeprov", "tiny-1")
    handle = ModelHandle(Settings(model="fakeprov:tiny-1", max_tokens=77, temperature=0.3, retries=1)).open()
    llm = handle.chat(role="drawer")
    assert isinstance(llm, ChatLLM) and isinstance(llm.chat, FakeProviderChat)
    chat = llm.chat
    assert (chat.model, chat.num_predict, chat.temperature, chat.max_retries) == ("tiny-1", 77, 0.3, 0)
    assert llm.retries == 1 and llm.name == "fakeprov:tiny-1"   # drawloop's retries, not the client's
    assert handle.label == "fakeprov:tiny-1" and handle.server is None


def test_a_provider_whose_package_is_missing_says_what_to_install(monkeypatch):
    monkeypatch.setattr(providers.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(providers, "_langchain_init", lambda: None)
    assert parse_model_spec("anthropic:claude-3-5-haiku-latest") == ("anthropic", "claude-3-5-haiku-latest")
    with pytest.raises(providers.ProviderNotInstalled, match="pip install langchain-anthropic"):
        ModelHandle(Settings(model="anthropic:claude-3-5-haiku-latest")).open()
    with pytest.raises(ValueError, match="pip install langchain-google-genai"):
        providers.chat_model("gemini", "gemini-2.0-flash")     # an alias of google_genai


def test_the_cli_names_the_missing_package(monkeypatch, tmp_path):
    from drawloop.cli import build_app

    monkeypatch.setattr(providers.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(providers, "_langchain_init", lambda: None)
    result = CliRunner().invoke(build_app(), ["draw", "a cat", "--model", "mistralai:mistral-small",
                                              "--out", str(tmp_path)])
    assert result.exit_code == 2 and "pip install langchain-mistralai" in result.output
    assert "Traceback" not in result.output


def test_installed_providers_include_openai():
    assert "openai" in providers.installed_providers() and providers.installed("openai")


def test_kwargs_fit_each_class():
    class Gemini(GenericFakeChatModel):
        max_output_tokens: int | None = None

    assert providers.fitting_kwargs(Gemini, max_tokens=9, timeout=3, nonsense=1) == {"max_output_tokens": 9}


def test_draw_with_a_chat_model_starts_no_backend(tmp_path):
    import drawloop

    chat = SmartChat()
    result = drawloop.draw("a red apple", chat_model=chat, runs_dir=str(tmp_path), max_iters=2)
    assert result.model == "langchain:SmartChat:smart-fake (passed in)"
    assert [kind for kind, _ in chat.calls][:3] == ["stream", "invoke", "invoke"]   # draw, recognize, critique
    assert result.best["code"] == APPLE and result.best["recognition"]["label"] == "a red apple"


def test_recognizer_and_critic_chat_models_take_their_roles(tmp_path):
    import drawloop

    drawer, recognizer, critic = SmartChat(), SmartChat(), SmartChat()
    drawloop.draw("a red apple", chat_model=drawer, recognizer_chat_model=recognizer, critic_chat_model=critic,
                  runs_dir=str(tmp_path), max_iters=1)
    assert all(kind == "stream" for kind, _ in drawer.calls) and len(drawer.calls) == 1
    assert [("Choose exactly one option" in prompt) for _, prompt in recognizer.calls] == [True]
    assert critic.calls and all("Choose exactly one option" not in prompt for _, prompt in critic.calls)


def test_resuming_a_run_drawn_by_a_passed_model_needs_it_again(tmp_path):
    import drawloop

    result = drawloop.draw("a red apple", chat_model=SmartChat(), runs_dir=str(tmp_path), max_iters=1)
    with pytest.raises(ValueError, match="pass it again as chat_model="):
        drawloop.draw(resume=result.run_dir)
    again = drawloop.draw(resume=result.run_dir, chat_model=SmartChat())
    assert again.scores == result.scores


def test_chat_models_against_the_openai_compatible_server(fake_server, tmp_path):
    """The OpenAI-compatible route is unchanged; a langchain ChatOpenAI passed in draws the same."""
    from conftest import FakeOpenAI
    from langchain_openai import ChatOpenAI

    import drawloop

    FakeOpenAI.concept = "a red apple"
    chat = ChatOpenAI(model="fake", base_url=fake_server, api_key="x", max_retries=0)
    result = drawloop.draw("a red apple", chat_model=chat, runs_dir=str(tmp_path), max_iters=1)
    assert result.best["code"] == APPLE and result.best["recognition"]["label"] == "a red apple"
    draws = [r for r in FakeOpenAI.requests if r["messages"][0]["role"] == "system"]
    others = [r for r in FakeOpenAI.requests if r["messages"][0]["role"] != "system"]
    assert draws and all(r.get("stream") for r in draws) and others and not any(r.get("stream") for r in others)
