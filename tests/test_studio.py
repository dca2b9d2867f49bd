"""LangGraph Studio: langgraph.json names a factory that compiles the loop from the environment,
without a checkpointer, with JSON schemas for its input and output."""

import importlib.util
import json
from pathlib import Path

import pytest

from conftest import APPLE, FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def studio_env(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("DRAWLOOP_MODEL", "openai:fake")
    monkeypatch.setenv("DRAWLOOP_BASE_URL", fake_server)
    monkeypatch.setenv("DRAWLOOP_RUNS_DIR", str(tmp_path / "runs"))
    import drawloop.graphs.studio as studio

    yield studio
    studio.close_models()


def factory_from_langgraph_json():
    """Load the graph the way `langgraph dev` does: file path and attribute from langgraph.json."""
    spec = json.loads((ROOT / "langgraph.json").read_text())
    path, _, attribute = spec["graphs"]["drawloop"].partition(":")
    module_spec = importlib.util.spec_from_file_location("studio_graph", ROOT / path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, attribute), spec


def test_langgraph_json_names_the_factory_and_the_package():
    factory, spec = factory_from_langgraph_json()
    assert callable(factory) and spec["dependencies"] == ["."]


def test_the_factory_compiles_without_a_checkpointer_and_has_schemas(studio_env):
    graph = studio_env.make_graph({"configurable": {"max_iters": 1, "candidates": 2}})
    assert graph.checkpointer is None
    inputs, outputs = graph.get_input_jsonschema(), graph.get_output_jsonschema()
    assert {"concept", "language", "attempts", "best", "stop_reason"} <= set(inputs["properties"])
    assert {"attempts", "rounds", "best", "stop_reason"} <= set(outputs["properties"])
    json.dumps(inputs), json.dumps(outputs)
    assert {"prepare", "draw", "render", "recognize", "critique", "judge", "decide"} <= set(graph.get_graph().nodes)
    again = studio_env.make_graph({"configurable": {"max_iters": 3, "candidates": 2}})
    assert again is not graph   # a fresh graph per call; the model backend is shared
    assert len(studio_env._MODELS) == 1


def test_a_studio_run_draws_with_the_environments_model(studio_env, tmp_path):
    FakeOpenAI.concept = "a red apple"
    factory, _ = factory_from_langgraph_json()
    graph = factory({"configurable": {"max_iters": 1}})
    state = graph.invoke({"concept": "a red apple"}, {"configurable": {"thread_id": "studio-1", "seed": 3}})
    assert state["stop_reason"] == "max_iters" and state["attempts"][0]["code"] == APPLE
    assert (tmp_path / "runs" / "studio" / state["attempts"][0]["image"]).is_file()
    assert all(r["model"] == "fake" for r in FakeOpenAI.requests)


def test_state_schemas_are_typing_extensions_typeddicts():
    import typing_extensions

    from drawloop import state

    for schema in (state.DrawState, state.Attempt, state.Critique, state.Recognition):
        assert typing_extensions.is_typeddict(schema)
    assert state.TypedDict is typing_extensions.TypedDict
