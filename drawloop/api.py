"""`draw()`: one concept, the whole loop, a run directory with everything in it.

    from drawloop import draw
    result = draw("a row of bicycles", model="local", max_iters=6)
    result.best["image"], result.best_score, result.scores, result.stop_reason, result.run_dir

    result = draw(resume="runs/20261125-101500-a-row-of-bicycles-1a2b")   # continue a killed run

Pass `on_event` to watch trace events live (the CLI's rich view does), `on_token` to watch the
drawer write (its answer as it streams), or agent instances / registered names
(`critic=MyCritic()`) to swap any part of the loop.

Any LangChain chat model can do the drawing, recognizing and critiquing:

    from langchain_anthropic import ChatAnthropic
    result = draw("a lighthouse", chat_model=ChatAnthropic(model="claude-3-5-haiku-latest"),
                  recognizer_chat_model=cheaper_model)     # critic_chat_model= for the critic's code scorer

With LANGSMITH_TRACING=true every run is traced to LangSmith as one thread (the run id) named
"drawloop draw", tagged with its concept, level and model; `config=` adds your own callbacks,
tags and metadata.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from drawloop.agents.registry import AgentContext, check_names
from drawloop.config import Settings
from drawloop.graphs.refine import build_refine_graph
from drawloop.graphs.stopping import StopRule
from drawloop.llm import ModelHandle, open_model
from drawloop.graphs.thread import run_thread, trace_config
from drawloop.runs import Run
from drawloop.state import Attempt, attempt_score
from drawloop.trace.events import TraceEvent, TraceWriter

MAX_CONCEPT_CHARS = 300
LEGACY_THREAD = "main"   # the thread id of runs made before the thread id became the run id


def validate_concept(concept: str | None) -> str:
    """The concept with whitespace collapsed and invisible characters (control, zero-width,
    bidi overrides, invalid Unicode) removed; an error when nothing visible is left."""
    text = " ".join(_visible(concept or "").split())
    if not text and (concept or "").strip():
        raise ValueError(f"the concept {concept!r} has no visible characters: say what to draw")
    if not text:
        raise ValueError("the concept is empty: say what to draw, e.g. drawloop draw \"a red apple\"")
    if len(text) > MAX_CONCEPT_CHARS:
        raise ValueError(f"the concept is {len(text)} characters long; keep it under {MAX_CONCEPT_CHARS}")
    return text


def _visible(text: str) -> str:
    import unicodedata

    from drawloop.text import clean_text

    # Cf (format: zero-width spaces, joiners, bidi overrides) and Cc/Cs never draw a concept.
    return "".join(ch for ch in clean_text(text) if unicodedata.category(ch) not in ("Cf", "Cc", "Cs", "Co"))


@dataclass
class DrawResult:
    concept: str
    run_dir: Path
    attempts: list[Attempt]
    best_index: int | None
    stop_reason: str | None
    model: str
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    rounds: list[dict] = field(default_factory=list)   # the judge's verdict per round (state["rounds"])

    @property
    def best(self) -> Attempt | None:
        return self.attempts[self.best_index] if self.best_index is not None else None

    @property
    def best_score(self) -> float:
        return attempt_score(self.best) if self.best else 0.0

    @property
    def best_image_path(self) -> Path | None:
        best = self.best
        return self.run_dir / best["image"] if best and best.get("image") else None

    @property
    def scores(self) -> list[float]:
        return [attempt_score(a) for a in self.attempts]

    @property
    def history(self) -> list[float]:
        return self.scores

    def usage(self) -> dict[str, int]:
        totals = {"tokens_in": 0, "tokens_out": 0}
        for attempt in self.attempts:
            parts = [attempt.get("usage") or {}, (attempt.get("recognition") or {}).get("usage") or {},
                     (attempt.get("critique") or {}).get("usage") or {}]
            for part in parts:
                for key in totals:
                    totals[key] += int(part.get(key) or 0)
        return totals

    def to_dict(self) -> dict[str, Any]:
        best = self.best or {}
        return {
            "concept": self.concept,
            "run_dir": str(self.run_dir),
            "model": self.model,
            "stop_reason": self.stop_reason,
            "iterations": len(self.attempts),
            "best_iteration": self.best_index,
            "best_score": round(self.best_score, 4),
            "best_image": str(self.best_image_path) if self.best_image_path else None,
            "best_recognized_as": (best.get("recognition") or {}).get("label"),
            "scores": [round(s, 4) for s in self.scores],
            "recognized": [(a.get("recognition") or {}).get("label") for a in self.attempts],
            "errors": [a.get("draw_error") or a.get("render_error") for a in self.attempts],
            "usage": self.usage(),
            "seconds": round(self.seconds, 2),
            "candidates": self.settings.get("candidates", 1),
            "rounds": [{k: r.get(k) for k in ("round", "winner", "replaced", "best", "best_score", "reason")}
                       for r in self.rounds],
            "first_draft_replaced": self.best_index not in (None, 0),
        }


def _stop_rule(settings: Settings) -> StopRule:
    return StopRule(max_iters=settings.max_iters, patience=settings.patience, min_delta=settings.min_delta,
                    target=settings.target)


def draw(concept: str | None = None, model: str | None = None, *, settings: Settings | None = None,
         resume: str | Path | None = None, run_dir: str | Path | None = None,
         on_event: Callable[[TraceEvent], None] | None = None, models: ModelHandle | None = None,
         drawer: Any = None, renderer: Any = None, recognizer: Any = None, critic: Any = None,
         review_nodes: list | None = None, chat_model: Any = None, recognizer_chat_model: Any = None,
         critic_chat_model: Any = None, on_token: Callable[[str, dict], None] | None = None,
         config: dict | None = None, **overrides: Any) -> DrawResult:
    """Run the loop for one concept (or resume a run) and return the result.

    `models` lets a caller reuse one open model backend across many draws (the demo does).
    `chat_model` (any LangChain BaseChatModel) draws, and recognizes and critiques unless
    `recognizer_chat_model` / `critic_chat_model` say otherwise; nothing is started for
    `model` then. `on_token(text, metadata)` gets the drawer's answer as it streams (metadata:
    LangGraph's, `langgraph_checkpoint_ns` tells drafts apart). `config` is merged into the
    graph's LangChain config (callbacks, tags, metadata).
    """
    run = Run.open(resume) if resume else None
    if run is not None:
        concept = run.meta["concept"]
        saved = {k: v for k, v in run.meta["settings"].items() if k != "api_key"}
        settings = settings or Settings.from_env(**{**saved, **{k: v for k, v in overrides.items() if v is not None},
                                                    **({"model": model} if model else {})})
    else:
        concept = validate_concept(concept)
        settings = settings or Settings.from_env(model=model, **overrides)
    check_names(critic=critic or settings.critic, recognizer=recognizer or settings.recognizer,
                drawer=drawer or "llm", renderer=renderer or "default")
    chat_models = {"default": chat_model, "recognizer": recognizer_chat_model, "critic": critic_chat_model}
    if run is not None and chat_model is None and str(run.meta.get("model", "")).startswith("langchain:"):
        raise ValueError(f"{resume} was drawn by a chat model passed to draw() ({run.meta['model']}); "
                         "pass it again as chat_model= to resume the run")
    if models is not None and any(chat_models.values()):
        raise ValueError("pass either models= (an open backend) or chat models, not both")
    owned = models is None
    models = models or open_model(settings, chat_models)
    if owned:
        models.open()
    try:
        return _run(run, concept, settings, models, run_dir, on_event,
                    dict(drawer=drawer, renderer=renderer, recognizer=recognizer, critic=critic), review_nodes,
                    on_token=on_token, extra_config=config)
    finally:
        if owned:
            models.close()


def _merge_config(config: dict, extra: dict | None) -> dict:
    """The caller's LangChain config on top of drawloop's: tags add up, metadata and configurable
    merge (drawloop's thread and run ids win: resuming depends on them), callbacks and the rest pass."""
    if not extra:
        return config
    merged = {**extra, **config}
    merged["tags"] = [*(config.get("tags") or []), *(extra.get("tags") or [])]
    merged["metadata"] = {**(extra.get("metadata") or {}), **(config.get("metadata") or {})}
    merged["configurable"] = {**(extra.get("configurable") or {}), **config["configurable"]}
    if extra.get("run_name"):
        merged["run_name"] = extra["run_name"]
    return merged


def _run(run: Run | None, concept: str, settings: Settings, models: ModelHandle, run_dir, on_event,
         agents: dict[str, Any], review_nodes, on_token=None, extra_config: dict | None = None) -> DrawResult:
    run = run or Run.create(settings.runs_dir, concept, settings, model_label=models.label, run_dir=run_dir)
    # The run id is the thread id (LangSmith shows each run as its own thread); runs made before
    # that kept their checkpoints under "main", and resume there.
    thread = run.meta.get("thread_id") or LEGACY_THREAD
    if settings.language == "python":  # start the sandbox while the model writes the first draft
        from drawloop.renderers.sandbox import get_sandbox_pool

        get_sandbox_pool().prestart()
    context = AgentContext(settings=settings, models=models)
    config = _merge_config(trace_config({"configurable": {"thread_id": thread, "run_id": run.id, "seed": settings.seed}},
                                        kind="draw", concept=concept, model=getattr(models, "spec", settings.model),
                                        thread=run.id, language=settings.language, candidates=settings.candidates),
                           extra_config)
    start = time.perf_counter()
    with run.checkpointer() as saver, TraceWriter(run.trace_path) as writer:
        graph = build_refine_graph(**agents, stop_rule=_stop_rule(settings), store=run.store, size=settings.size,
                                   language=settings.language, n_distractors=settings.n_distractors,
                                   review_nodes=review_nodes, checkpointer=saver, context=context)
        def record(chunk: dict) -> None:
            event = TraceEvent.from_dict(chunk)
            writer.write(event)
            if on_event:
                on_event(event)

        first_input = {"concept": concept, "language": settings.language, "attempts": []}
        state = run_thread(graph, config, first_input, on_event=record, on_token=on_token).state
    result = DrawResult(concept=concept, run_dir=run.dir, attempts=list(state.get("attempts") or []),
                        best_index=state.get("best"), stop_reason=state.get("stop_reason"),
                        model=run.meta.get("model", models.label), seconds=time.perf_counter() - start,
                        settings=settings.public(), rounds=list(state.get("rounds") or []))
    run.finish(state, result.to_dict())
    return result
