"""The self-refinement loop as a LangGraph StateGraph.

    START -> prepare -> draw -> render -(ok)-> recognize -> critique -> [review nodes] -> decide
                          |        \\-(error)-----------------^                             |
                          \\-(no code)--------------------------^      continue: back to draw
                                                                        stop: END

    graph = build_refine_graph(drawer=Drawer(llm), renderer=RendererAgent(), recognizer=CodeRecognizer(llm),
                               critic=Critic([...]), stop_rule=StopRule(max_iters=6), store=run.store,
                               checkpointer=saver)
    graph.invoke({"concept": "a glowing light bulb"}, {"configurable": {"thread_id": "bulb-1"}})

Each node builds the in-progress attempt in `state["current"]`; `decide` appends it to
`attempts`, picks the best and applies the stop rule. With a checkpointer, a killed run resumes
at the next node: no finished attempt is lost or repeated. Agents that raise are recorded as
failed attempts, never crash the loop. Every node emits start/end trace events on LangGraph's
custom stream. `review_nodes` insert extra steps (e.g. a reviewer that can veto) between critique
and decide without copying the graph.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

from drawloop.agents.recognizer import make_choices
from drawloop.graphs.stopping import StopRule
from drawloop.runs import CODE_SUFFIX, ArtifactStore
from drawloop.state import Attempt, DrawState, Drawing, attempt_score
from drawloop.trace.events import TraceEvent, emit

ReviewNode = Callable[[DrawState], dict]


def _configurable(config: dict | None) -> dict:
    return (config or {}).get("configurable", {})


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:400]


def default_distractors(concept: str, n: int, seed: int | None) -> list[str]:
    from drawloop.concepts import distractors_for

    return distractors_for(concept, n=n, seed=seed or 0)


class RefineNodes:
    """The node functions, bound to one set of agents and one artifact store."""

    def __init__(self, drawer, renderer, recognizer, critic, stop_rule: StopRule, store: ArtifactStore,
                 size: int, language: str, n_distractors: int, distractors: Callable = default_distractors):
        self.drawer, self.renderer, self.recognizer, self.critic = drawer, renderer, recognizer, critic
        self.stop_rule, self.store, self.size = stop_rule, store, size
        self.language, self.n_distractors, self.distractors = language, n_distractors, distractors

    # -- helpers ---------------------------------------------------------------------------
    def _event(self, node: str, phase: str, state: DrawState, config: dict | None, **fields: Any) -> None:
        conf = _configurable(config)
        iteration = len(state.get("attempts") or [])
        emit(TraceEvent(node=node, phase=phase, iteration=iteration, run=str(conf.get("run_id", "")),
                        thread=str(conf.get("thread_id", "")), **fields))

    def drawing(self, state: DrawState) -> Drawing:
        current = state["current"]
        png = self.store.read(current["image"]) if current.get("image") else None
        return Drawing(concept=state["concept"], code=current.get("code", ""), language=current["language"],
                       png=png, render_error=current.get("render_error"), draw_error=current.get("draw_error"),
                       choices=list(state.get("choices") or []), recognition=current.get("recognition"),
                       iteration=current["iteration"])

    # -- nodes -----------------------------------------------------------------------------
    def prepare(self, state: DrawState, config: RunnableConfig = None) -> dict:
        concept = (state.get("concept") or "").strip()
        if not concept:
            raise ValueError("the state needs a non-empty 'concept'")
        update: dict[str, Any] = {"concept": concept, "language": state.get("language") or self.language}
        if not state.get("choices"):
            seed = _configurable(config).get("seed")
            update["choices"] = make_choices(concept, self.distractors(concept, self.n_distractors, seed), seed)
        return update

    def draw(self, state: DrawState, config: RunnableConfig = None) -> dict:
        self._event("draw", "start", state, config)
        start = time.perf_counter()
        attempts = list(state.get("attempts") or [])
        language = state.get("language") or self.language
        seed = _configurable(config).get("seed")
        try:
            draft = self.drawer.draw(state["concept"], language, attempts,
                                     seed=None if seed is None else seed + len(attempts))
            code, raw, error, usage = draft.code, draft.raw, draft.error, dict(draft.usage)
        except Exception as exc:  # a custom drawer that raises costs one attempt, not the run
            code, raw, error, usage = "", "", _describe(exc), {}
        current = Attempt(iteration=len(attempts), code=code, language=language, raw=raw[:8000],
                          code_path=self.store.put(code, CODE_SUFFIX.get(language, ".txt")) if code else None,
                          image=None, render_error=None, draw_error=error, recognition=None, critique=None,
                          usage=usage, seconds={"draw": round(time.perf_counter() - start, 3)})
        self._event("draw", "end", state, config, seconds=current["seconds"]["draw"], error=error,
                    tokens_in=usage.get("tokens_in"), tokens_out=usage.get("tokens_out"),
                    artifact=current["code_path"])
        return {"current": current}

    def render(self, state: DrawState, config: RunnableConfig = None) -> dict:
        self._event("render", "start", state, config)
        start = time.perf_counter()
        current = dict(state["current"])
        try:
            result = self.renderer.render(current["code"], language=current["language"], size=self.size)
            current["render_error"] = None if result.ok else (result.error or "render failed")
            current["image"] = self.store.put(result.png, ".png") if result.ok else None
        except Exception as exc:
            current["render_error"], current["image"] = _describe(exc), None
        current["seconds"] = {**current["seconds"], "render": round(time.perf_counter() - start, 3)}
        self._event("render", "end", state, config, seconds=current["seconds"]["render"],
                    error=current["render_error"], artifact=current["image"])
        return {"current": current}

    def recognize(self, state: DrawState, config: RunnableConfig = None) -> dict:
        self._event("recognize", "start", state, config)
        start = time.perf_counter()
        current = dict(state["current"])
        try:
            recognition = self.recognizer.recognize(self.drawing(state))
        except Exception as exc:
            recognition = {"label": None, "correct": False, "choices": list(state.get("choices") or []),
                           "source": "error", "error": _describe(exc)}
        current["recognition"] = recognition
        current["seconds"] = {**current["seconds"], "recognize": round(time.perf_counter() - start, 3)}
        usage = recognition.get("usage") or {}
        self._event("recognize", "end", state, config, seconds=current["seconds"]["recognize"],
                    recognition={k: recognition.get(k) for k in ("label", "correct", "confidence", "source")},
                    error=recognition.get("error"), tokens_in=usage.get("tokens_in"),
                    tokens_out=usage.get("tokens_out"))
        return {"current": current}

    def critique(self, state: DrawState, config: RunnableConfig = None) -> dict:
        self._event("critique", "start", state, config)
        start = time.perf_counter()
        current = dict(state["current"])
        try:
            critique = self.critic.critique(self.drawing(state))
        except Exception as exc:
            critique = {"score": 0.0, "scores": {}, "feedback": f"critic failed: {_describe(exc)}"}
        current["critique"] = critique
        current["seconds"] = {**current["seconds"], "critique": round(time.perf_counter() - start, 3)}
        usage = critique.get("usage") or {}
        self._event("critique", "end", state, config, seconds=current["seconds"]["critique"],
                    score=critique.get("score"), scores=critique.get("scores"), message=critique.get("feedback"),
                    tokens_in=usage.get("tokens_in"), tokens_out=usage.get("tokens_out"))
        return {"current": current}

    def decide(self, state: DrawState, config: RunnableConfig = None) -> dict:
        current = state["current"]
        attempts = list(state.get("attempts") or []) + [current]
        scores = [attempt_score(a) for a in attempts]
        failures = [bool(a.get("draw_error")) for a in attempts]
        best, reason = self.stop_rule.evaluate(scores, failures)
        emit(TraceEvent(node="decide", phase="end", iteration=current["iteration"],
                        run=str(_configurable(config).get("run_id", "")),
                        thread=str(_configurable(config).get("thread_id", "")),
                        score=scores[-1], message=reason or "continue",
                        artifact=attempts[best].get("image") if best is not None else None))
        return {"attempts": [current], "current": None, "best": best, "stop_reason": reason}

    # -- routing ---------------------------------------------------------------------------
    @staticmethod
    def after_draw(state: DrawState) -> str:
        return "critique" if state["current"].get("draw_error") else "render"

    @staticmethod
    def after_render(state: DrawState) -> str:
        return "critique" if state["current"].get("render_error") else "recognize"

    @staticmethod
    def after_decide(state: DrawState) -> str:
        return END if state.get("stop_reason") else "draw"


def build_refine_graph(drawer=None, renderer=None, recognizer=None, critic=None, *, stop_rule: StopRule | None = None,
                       store: ArtifactStore | None = None, size: int = 256, language: str = "svg",
                       n_distractors: int = 4, distractors: Callable = default_distractors,
                       review_nodes: list[tuple[str, ReviewNode]] | None = None, checkpointer=None,
                       context: Any = None):
    """Compile the loop. Agents are instances or registered names (see agents/registry.py);
    names need `context` (an AgentContext with settings and models) to be built."""
    from drawloop.agents.registry import resolve

    settings = getattr(context, "settings", None)
    drawer = resolve("drawer", drawer or "llm", context)
    renderer = resolve("renderer", renderer or "default", context)
    recognizer = resolve("recognizer", recognizer or getattr(settings, "recognizer", None) or "code", context)
    critic = resolve("critic", critic or getattr(settings, "critic", None) or "default", context)
    stop_rule = stop_rule or StopRule()
    store = store or ArtifactStore(Path(tempfile.mkdtemp(prefix="drawloop-artifacts-")))
    nodes = RefineNodes(drawer, renderer, recognizer, critic, stop_rule, store, size, language, n_distractors,
                        distractors)

    graph = StateGraph(DrawState)
    graph.add_node("prepare", nodes.prepare)
    graph.add_node("draw", nodes.draw)
    graph.add_node("render", nodes.render)
    graph.add_node("recognize", nodes.recognize)
    graph.add_node("critique", nodes.critique)
    graph.add_node("decide", nodes.decide)
    graph.add_edge(START, "prepare")
    graph.add_edge("prepare", "draw")
    graph.add_conditional_edges("draw", nodes.after_draw, ["render", "critique"])
    graph.add_conditional_edges("render", nodes.after_render, ["recognize", "critique"])
    graph.add_edge("recognize", "critique")
    previous = "critique"
    for name, fn in review_nodes or []:
        graph.add_node(name, fn)
        graph.add_edge(previous, name)
        previous = name
    graph.add_edge(previous, "decide")
    graph.add_conditional_edges("decide", nodes.after_decide, ["draw", END])
    # ~6 steps per iteration; LangGraph's default limit of 25 would cut long runs short.
    compiled = graph.compile(checkpointer=checkpointer)
    return compiled.with_config(recursion_limit=stop_rule.max_iters * (8 + len(review_nodes or [])) + 10)
