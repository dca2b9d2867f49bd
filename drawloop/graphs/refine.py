"""The self-refinement loop as a LangGraph StateGraph: rounds of N candidates, judged pairwise.

    START -> prepare -> schedule -> draw xN (Send) -> schedule -> render xN -> schedule -> recognize xN
             -> schedule -> critique xN -> schedule -> [review nodes] -> judge -> decide -+-> schedule
                                                                                         +-> END

    graph = build_refine_graph(drawer=Drawer(llm), renderer=RendererAgent(), recognizer=CodeRecognizer(llm),
                               critic=Critic([...]), judge=ScoreJudge(), candidates=3,
                               stop_rule=StopRule(max_iters=6), store=run.store, checkpointer=saver)
    graph.invoke({"concept": "a glowing light bulb"}, {"configurable": {"thread_id": "bulb-1"}})

A round drafts `candidates` drawings side by side. `schedule` is the barrier between steps: it
sends every unfinished candidate of the round to its next step (a failed draft or render goes
straight to critique, which records the failure). Once all are critiqued, the review nodes may
amend them, the judge compares the round's top-scoring candidate with the best so far (pairwise:
"is B better than A, and why?") and only a "B" verdict replaces it, so the best never regresses;
`decide` applies the stop rule, counted in rounds. Revisions build on the best so far.

Each candidate's step is its own LangGraph task, so with a checkpointer a killed run resumes at
the step it was in: no finished candidate step is lost or repeated. Agents that raise are
recorded as failures, never crash the loop; so are review nodes that raise. The nodes that call
models (draw, recognize, critique, judge, review nodes) have a LangGraph RetryPolicy for rate
limits: when a model call in the node still got 429 after its own retries (llm.RateLimited,
even one the agent caught and recorded), the node is run again after a pause, with the same
seed, up to the policy's attempts; the last attempt keeps what the agents made of it. Every step emits start/end trace events on
LangGraph's custom stream, labelled with the attempt index (`iteration`), round and candidate.
With candidates=1 this is the study's single self-correcting chain.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import RetryPolicy, Send

from drawloop.agents.recognizer import make_choices
from drawloop.graphs.stopping import StopRule
from drawloop.runs import CODE_SUFFIX, ArtifactStore
from drawloop.state import Attempt, DrawState, Drawing, RoundOutcome, attempt_score
from drawloop.trace.events import TraceEvent, emit, node_event

ReviewNode = Callable[[DrawState], dict]
STEPS = ("draw", "render", "recognize", "critique")
MODEL_NODES = ("draw", "recognize", "critique", "judge")   # nodes whose agents call models


class NodeRateLimited(RuntimeError):
    """A model call in the node stayed rate-limited; LangGraph's RetryPolicy runs the node again."""

    def __init__(self, node: str, cause: Exception):
        super().__init__(f"{node}: {cause}")
        self.retry_after = getattr(cause, "retry_after", None)


# Rate limits only: everything else the nodes record as a failure. Minutes apart at most, since a
# provider's quota resets by the minute; jitter keeps parallel candidates from returning together.
RATE_LIMIT_RETRY = RetryPolicy(initial_interval=5.0, backoff_factor=2.0, max_interval=60.0, max_attempts=3,
                               jitter=True, retry_on=NodeRateLimited)


def node_attempt() -> int:
    """This node's attempt under its RetryPolicy (1 on the first run; 1 outside a graph)."""
    try:
        from langgraph.runtime import get_runtime

        info = get_runtime().execution_info
    except Exception:
        return 1
    return getattr(info, "node_attempt", 1) or 1


def _configurable(config: dict | None) -> dict:
    return (config or {}).get("configurable", {})


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:400]


def default_distractors(concept: str, n: int, seed: int | None) -> list[str]:
    from drawloop.concepts import distractors_for

    return distractors_for(concept, n=n, seed=seed or 0)


def next_step(candidate: Attempt | None) -> str | None:
    """The step a candidate needs next; None once it is critiqued."""
    if candidate is None:
        return "draw"
    if candidate.get("critique") is not None:
        return None
    if candidate.get("draw_error") or candidate.get("render_error"):
        return "critique"
    if not candidate.get("image"):
        return "render"
    return "recognize" if candidate.get("recognition") is None else "critique"


class RefineNodes:
    """The node functions, bound to one set of agents and one artifact store."""

    def __init__(self, drawer, renderer, recognizer, critic, judge, stop_rule: StopRule, store: ArtifactStore,
                 size: int, language: str, n_distractors: int, candidates: int = 1,
                 distractors: Callable = default_distractors, after_critique: str = "judge",
                 retry_policy: RetryPolicy | None = RATE_LIMIT_RETRY):
        self.drawer, self.renderer, self.recognizer, self.critic, self.judge = drawer, renderer, recognizer, critic, judge
        self.stop_rule, self.store, self.size, self.candidates = stop_rule, store, size, candidates
        self.language, self.n_distractors, self.distractors = language, n_distractors, distractors
        self.after_critique = after_critique
        self.retry_policy = retry_policy

    # -- helpers ---------------------------------------------------------------------------
    def _event(self, node: str, phase: str, candidate: Attempt, config: dict | None, **fields: Any) -> None:
        self._emit(node, phase, config, iteration=candidate["iteration"], round=candidate.get("round"),
                   candidate=candidate.get("candidate"), **fields)

    @staticmethod
    def _emit(node: str, phase: str, config: dict | None, **fields: Any) -> None:
        conf = _configurable(config)
        emit(TraceEvent(node=node, phase=phase, run=str(conf.get("run_id", "")), thread=str(conf.get("thread_id", "")),
                        **fields))

    def drawing(self, task: dict, attempt: Attempt) -> Drawing:
        png = self.store.read(attempt["image"]) if attempt.get("image") else None
        return Drawing(concept=task["concept"], code=attempt.get("code", ""), language=attempt["language"],
                       png=png, render_error=attempt.get("render_error"), draw_error=attempt.get("draw_error"),
                       choices=list(task.get("choices") or []), recognition=attempt.get("recognition"),
                       iteration=attempt["iteration"], critique=attempt.get("critique"),
                       extra={"image": attempt.get("image"), "seen": task.get("seen") or []})

    def _watched(self, node: str, config, call: Callable[[], Any], **where: Any) -> Any:
        """call(), and when a model call in it stayed rate-limited and the RetryPolicy has attempts
        left, an "info" trace event and NodeRateLimited instead of the spoilt result."""
        from drawloop.llm.chat import watch_rate_limits

        with watch_rate_limits() as hits:
            result = call()
        attempts = self.retry_policy.max_attempts if self.retry_policy else 1
        attempt = node_attempt()
        if hits and attempt < attempts:
            self._emit(node, "info", config, error=str(hits[-1])[:400],
                       message=f"rate limited: {node} runs again (attempt {attempt + 1} of {attempts})", **where)
            raise NodeRateLimited(node, hits[-1])
        return result

    def _timed(self, step: str, task: dict, work: Callable[[dict], dict], config) -> dict:
        """Run one step of one candidate: its trace events, its wall time, its slot in the round."""
        candidate = dict(task["candidate"])
        self._event(step, "start", candidate, config)
        start = time.perf_counter()
        fields = self._watched(step, config, lambda: work(candidate), iteration=candidate["iteration"],
                               round=candidate.get("round"), candidate=candidate.get("candidate"))
        candidate["seconds"] = {**candidate.get("seconds", {}), step: round(time.perf_counter() - start, 3)}
        self._event(step, "end", candidate, config, seconds=candidate["seconds"][step], **fields)
        return {"candidates": [candidate]}

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

    def schedule(self, state: DrawState) -> dict:
        return {}  # a barrier: `dispatch` below sends the round's candidates on

    def dispatch(self, state: DrawState) -> list[Send] | str:
        attempts = list(state.get("attempts") or [])
        slots = {c["candidate"]: c for c in state.get("candidates") or []}
        round_ = len(state.get("rounds") or [])
        task = {"concept": state["concept"], "language": state.get("language") or self.language,
                "choices": list(state.get("choices") or [])}
        sends = []
        for index in range(self.candidates):
            candidate = slots.get(index)
            step = next_step(candidate)
            if step is None:
                continue
            if candidate is None:
                candidate = Attempt(iteration=len(attempts) + index, round=round_, candidate=index,
                                    language=task["language"], parent=state.get("best"))
                sends.append(Send("draw", {**task, "candidate": candidate,
                                           "history": _best_last(attempts, state.get("best"))}))
            elif step == "critique":  # the critic compares with the thread's earlier pictures
                sends.append(Send(step, {**task, "candidate": candidate, "seen": _seen(attempts)}))
            else:
                sends.append(Send(step, {**task, "candidate": candidate}))
        return sends or self.after_critique

    def draw(self, task: dict, config: RunnableConfig = None) -> dict:
        seed = _configurable(config).get("seed")

        def work(candidate: Attempt) -> dict:
            try:
                draft = self.drawer.draw(task["concept"], task["language"], task["history"],
                                         seed=None if seed is None else seed + candidate["iteration"])
                code, raw, error, usage = draft.code, draft.raw, draft.error, dict(draft.usage)
            except Exception as exc:  # a custom drawer that raises costs one candidate, not the run
                code, raw, error, usage = "", "", _describe(exc), {}
            code_path = self.store.put(code, CODE_SUFFIX.get(task["language"], ".txt")) if code else None
            candidate.update(code=code, raw=raw[:8000], code_path=code_path, image=None, render_error=None,
                             draw_error=error, recognition=None, critique=None, usage=usage)
            return dict(error=error, tokens_in=usage.get("tokens_in"), tokens_out=usage.get("tokens_out"),
                        artifact=code_path)

        return self._timed("draw", task, work, config)

    def render(self, task: dict, config: RunnableConfig = None) -> dict:
        def work(candidate: Attempt) -> dict:
            try:
                result = self.renderer.render(candidate["code"], language=candidate["language"], size=self.size)
                candidate["render_error"] = None if result.ok else (result.error or "render failed")
                candidate["image"] = self.store.put(result.png, ".png") if result.ok else None
            except Exception as exc:
                candidate["render_error"], candidate["image"] = _describe(exc), None
            return dict(error=candidate["render_error"], artifact=candidate["image"])

        return self._timed("render", task, work, config)

    def recognize(self, task: dict, config: RunnableConfig = None) -> dict:
        def work(candidate: Attempt) -> dict:
            try:
                recognition = self.recognizer.recognize(self.drawing(task, candidate))
            except Exception as exc:
                recognition = {"label": None, "correct": False, "choices": list(task.get("choices") or []),
                               "source": "error", "error": _describe(exc)}
            candidate["recognition"] = recognition
            usage = recognition.get("usage") or {}
            return dict(recognition={k: recognition.get(k) for k in ("label", "correct", "confidence", "source")},
                        error=recognition.get("error"), tokens_in=usage.get("tokens_in"),
                        tokens_out=usage.get("tokens_out"))

        return self._timed("recognize", task, work, config)

    def critique(self, task: dict, config: RunnableConfig = None) -> dict:
        def work(candidate: Attempt) -> dict:
            try:
                critique = self.critic.critique(self.drawing(task, candidate))
            except Exception as exc:
                critique = {"score": 0.0, "scores": {}, "feedback": f"critic failed: {_describe(exc)}"}
            candidate["critique"] = critique
            usage = critique.get("usage") or {}
            return dict(score=critique.get("score"), scores=critique.get("scores"), message=critique.get("feedback"),
                        notes=critique.get("notes"), tokens_in=usage.get("tokens_in"), tokens_out=usage.get("tokens_out"))

        return self._timed("critique", task, work, config)

    def judge_round(self, state: DrawState, config: RunnableConfig = None) -> dict:
        """Close the round: its top candidate against the best so far; only a better one replaces it."""
        attempts = list(state.get("attempts") or [])
        round_ = sorted(state.get("candidates") or [], key=lambda c: c["candidate"])
        scores = [attempt_score(c) for c in round_]
        top = max(range(len(round_)), key=lambda i: (scores[i], -i))  # ties keep the earliest
        winner, best = len(attempts) + top, state.get("best")
        task = {"concept": state["concept"], "choices": state.get("choices")}
        if best is None:
            replaced, reason = True, "the first round's best"
        else:
            verdict = self._watched("judge", config, lambda: self._compare(
                self.drawing(task, attempts[best]), self.drawing(task, round_[top])), iteration=winner)
            replaced, reason = verdict.better == "b", verdict.reason
        new_best = winner if replaced else best
        everything = attempts + round_
        outcome = RoundOutcome(round=len(state.get("rounds") or []), winner=winner, replaced=replaced,
                               best=new_best, best_score=attempt_score(everything[new_best]), reason=reason,
                               failed=all(c.get("draw_error") for c in round_))
        self._emit("judge", "end", config, iteration=winner, round=outcome["round"], candidate=top,
                   score=scores[top], message=("kept: " if replaced else "rejected: ") + reason,
                   artifact=round_[top].get("image"))
        return {"attempts": round_, "candidates": [], "rounds": [outcome], "best": new_best}

    def _compare(self, a: Drawing, b: Drawing):
        """The judge's verdict; a judge that raises keeps the best so far, and says why."""
        try:
            return self.judge.compare(a, b)
        except Exception as exc:
            from drawloop.agents.judge import Verdict

            return Verdict("a", f"the judge failed ({_describe(exc)}); the best so far stays", "error")

    def review(self, name: str, fn: ReviewNode) -> Callable:
        """A review node guarded like the built-in ones: one that raises leaves the round as the
        critic scored it (an end event with the error says so, unless `traced` already did), and
        one whose model calls stay rate-limited is run again by the RetryPolicy."""
        import inspect

        try:
            wants_config = len(inspect.signature(fn).parameters) >= 2
        except (TypeError, ValueError):
            wants_config = False
        reports_errors = getattr(fn, "traced", False)

        def node(state: DrawState, config: RunnableConfig = None) -> dict:
            def call() -> dict:
                try:
                    return fn(state, config) if wants_config else fn(state)
                except Exception as exc:
                    if not reports_errors:
                        emit(node_event(name, "end", state, config, error=_describe(exc),
                                        message="the review failed; the round goes on as the critic scored it"))
                    return {}

            return self._watched(name, config, call, iteration=len(state.get("attempts") or []))

        node.__name__, node.__doc__ = getattr(fn, "__name__", name), fn.__doc__
        return node

    def decide(self, state: DrawState, config: RunnableConfig = None) -> dict:
        rounds = list(state.get("rounds") or [])
        reason = self.stop_rule.evaluate_rounds(rounds)
        best = state.get("best")
        attempts = state.get("attempts") or []
        self._emit("decide", "end", config, iteration=len(attempts) - 1, round=len(rounds) - 1,
                   score=rounds[-1]["best_score"], message=reason or "continue",
                   artifact=attempts[best].get("image") if best is not None else None)
        return {"stop_reason": reason}

    @staticmethod
    def after_decide(state: DrawState) -> str:
        return END if state.get("stop_reason") else "schedule"


def _seen(attempts: list[Attempt]) -> list[dict]:
    return [{"image": a["image"], "scores": (a.get("critique") or {}).get("scores") or {}}
            for a in attempts if a.get("image") and a.get("critique")]


def _best_last(attempts: list[Attempt], best: int | None) -> list[Attempt]:
    """The history the drawer revises: every attempt, with the best so far last (it revises that one)."""
    if best is None or not 0 <= best < len(attempts):
        return attempts
    return attempts[:best] + attempts[best + 1:] + [attempts[best]]


def build_refine_graph(drawer=None, renderer=None, recognizer=None, critic=None, *, judge=None,
                       candidates: int | None = None, stop_rule: StopRule | None = None,
                       store: ArtifactStore | None = None, size: int = 256, language: str = "svg",
                       n_distractors: int = 4, distractors: Callable = default_distractors,
                       review_nodes: list[tuple[str, ReviewNode]] | None = None, checkpointer=None,
                       context: Any = None, retry_policy: RetryPolicy | None | str = "default"):
    """Compile the loop. Agents are instances or registered names (see agents/registry.py);
    names need `context` (an AgentContext with settings and models) to be built. Review nodes see
    the round's critiqued `candidates` and may return amended ones before the judge.
    `retry_policy` is the LangGraph RetryPolicy of the nodes that call models (rate limits
    only; "default": RATE_LIMIT_RETRY; None: no node-level retries)."""
    from drawloop.agents.registry import resolve

    settings = getattr(context, "settings", None)
    retry_policy = RATE_LIMIT_RETRY if retry_policy == "default" else retry_policy
    stop_rule = stop_rule or StopRule()
    candidates = candidates or getattr(settings, "candidates", None) or 1
    if candidates < 1:
        raise ValueError("candidates must be at least 1")
    drawer = resolve("drawer", drawer or "llm", context)
    renderer = resolve("renderer", renderer or "default", context)
    recognizer = resolve("recognizer", recognizer or getattr(settings, "recognizer", None) or "code", context)
    critic = resolve("critic", critic or getattr(settings, "critic", None) or "default", context)
    judge = resolve("judge", judge or getattr(settings, "judge", None) or "default", context)
    store = store or ArtifactStore(Path(tempfile.mkdtemp(prefix="drawloop-artifacts-")))
    reviews = list(review_nodes or [])
    nodes = RefineNodes(drawer, renderer, recognizer, critic, judge, stop_rule, store, size, language, n_distractors,
                        candidates, distractors, after_critique=reviews[0][0] if reviews else "judge",
                        retry_policy=retry_policy)
    retry = {"retry_policy": retry_policy} if retry_policy else {}

    graph = StateGraph(DrawState)
    graph.add_node("prepare", nodes.prepare)
    graph.add_node("schedule", nodes.schedule)
    for step in STEPS:
        graph.add_node(step, getattr(nodes, step), **(retry if step in MODEL_NODES else {}))
        graph.add_edge(step, "schedule")
    graph.add_node("judge", nodes.judge_round, **retry)
    graph.add_node("decide", nodes.decide)
    graph.add_edge(START, "prepare")
    graph.add_edge("prepare", "schedule")
    graph.add_conditional_edges("schedule", nodes.dispatch, [*STEPS, nodes.after_critique])
    for (name, fn), following in zip(reviews, [name for name, _ in reviews[1:]] + ["judge"]):
        graph.add_node(name, nodes.review(name, fn), **retry)
        graph.add_edge(name, following)
    graph.add_edge("judge", "decide")
    graph.add_conditional_edges("decide", nodes.after_decide, ["schedule", END])
    # ~11 supersteps a round (a barrier between steps); LangGraph's default limit of 25 is too short.
    compiled = graph.compile(checkpointer=checkpointer)
    return compiled.with_config(recursion_limit=stop_rule.max_iters * (12 + len(reviews)) + 10)
