"""The refine loop for LangGraph Studio and `langgraph dev`: a graph factory (langgraph.json names it).

    langgraph dev                                   # in the repo root; opens Studio on the loop
    {"graphs": {"drawloop": "./drawloop/graphs/studio.py:make_graph"}}      # langgraph.json

    from drawloop.graphs.studio import make_graph
    graph = make_graph({"configurable": {"model": "openai:gpt-4o-mini", "max_iters": 3}})
    graph.get_input_jsonschema(), graph.get_output_jsonschema()
    graph.invoke({"concept": "a lighthouse"}, {"configurable": {"thread_id": "t1", "seed": 0}})

Settings come from the environment (Settings.from_env: DRAWLOOP_MODEL, DRAWLOOP_BASE_URL,
OPENAI_API_KEY, ...), and a run's `configurable` may override the ones in STUDIO_SETTINGS. The
graph is compiled without a checkpointer: the LangGraph server keeps the threads. Pictures go to
<runs_dir>/studio/artifacts, and the state names them relative to that folder. One model
backend per distinct model setting is opened on first use (the local llama.cpp server starts
once, not per run) and closed when the process exits.
"""

from __future__ import annotations

import atexit
import threading
from pathlib import Path
from typing import Any

from drawloop.config import Settings

# What a Studio run's configurable may set; the rest comes from the environment.
STUDIO_SETTINGS = ("model", "base_url", "max_iters", "patience", "min_delta", "target", "candidates", "language",
                   "critic", "recognizer", "judge", "feedback", "temperature", "size", "rpm")
_MODELS: dict[tuple, Any] = {}
_LOCK = threading.Lock()


def studio_settings(config: dict | None = None) -> Settings:
    conf = (config or {}).get("configurable") or {}
    return Settings.from_env(**{k: conf[k] for k in STUDIO_SETTINGS if conf.get(k) is not None})


def _models(settings: Settings):
    from drawloop.llm import open_model

    key = (settings.model, settings.base_url, settings.api_key, settings.critic_model, settings.rpm,
           settings.parallel * settings.candidates)
    with _LOCK:
        if key not in _MODELS:
            _MODELS[key] = open_model(settings).open()
        return _MODELS[key]


@atexit.register
def close_models() -> None:
    with _LOCK:
        for models in _MODELS.values():
            models.close()
        _MODELS.clear()


def make_graph(config: dict | None = None):
    """The compiled loop (no checkpointer) with settings from the environment and `config`."""
    from drawloop.agents.registry import AgentContext, check_language, check_names
    from drawloop.graphs.refine import build_refine_graph
    from drawloop.graphs.stopping import StopRule
    from drawloop.runs import ArtifactStore

    settings = studio_settings(config)
    check_names(critic=settings.critic, recognizer=settings.recognizer, judge=settings.judge)
    check_language(settings.language)
    context = AgentContext(settings=settings, models=_models(settings))
    store = ArtifactStore(Path(settings.runs_dir) / "studio")
    rule = StopRule(max_iters=settings.max_iters, patience=settings.patience, min_delta=settings.min_delta,
                    target=settings.target)
    return build_refine_graph(stop_rule=rule, store=store, size=settings.size, language=settings.language,
                              n_distractors=settings.n_distractors, context=context)
