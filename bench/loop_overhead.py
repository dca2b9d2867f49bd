"""Per-iteration framework overhead of the refine loop (graph + SQLite checkpoint + trace).

    .venv/bin/python bench/loop_overhead.py [--iters 40]

Both sides use an instant fake chat model and the real renderer/critic; the plain side calls the
same agent methods in a Python for-loop, so the difference is what LangGraph, the checkpointer
and the trace cost per iteration. Prints the figures and writes bench/results/loop_overhead.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.checkpoint.sqlite import SqliteSaver

from drawloop.agents.critic import Critic, RecognitionScorer, RenderSanityScorer
from drawloop.agents.drawer import Drawer
from drawloop.agents.recognizer import CodeRecognizer
from drawloop.agents.renderer import RendererAgent
from drawloop.graphs.refine import build_refine_graph
from drawloop.graphs.stopping import StopRule
from drawloop.runs import ArtifactStore
from drawloop.state import Attempt, Drawing, attempt_score
from drawloop.trace.events import TraceEvent, TraceWriter

SVG = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100"><rect width="100" height="100" fill="#fff"/>'
       '<circle cx="50" cy="55" r="30" fill="#d22"/><rect x="48" y="15" width="4" height="15" fill="#630"/></svg>')
DISTRACTORS = ["a dog", "a tree", "a car", "a house"]


def instant(text: str):
    from drawloop.llm.chat import ChatLLM

    return ChatLLM(GenericFakeChatModel(messages=(AIMessage(content=t) for t in itertools.repeat(text))), retries=0)


def agents():
    return (Drawer(instant(SVG)), RendererAgent(), CodeRecognizer(instant("A")),
            Critic([(RenderSanityScorer(), 1.0), (RecognitionScorer(), 1.0)]))


def plain_loop(n: int, store: ArtifactStore) -> float:
    drawer, renderer, recognizer, critic = agents()
    rule = StopRule(max_iters=n, patience=n + 1)
    attempts: list[Attempt] = []
    start = time.perf_counter()
    for i in range(n):
        draft = drawer.draw("a red apple", "svg", attempts)
        result = renderer.render(draft.code, "svg", 256)
        image = store.put(result.png, ".png")
        drawing = Drawing("a red apple", draft.code, png=store.read(image), choices=["a red apple"] + DISTRACTORS)
        drawing.recognition = recognizer.recognize(drawing)
        attempts.append(Attempt(iteration=i, code=draft.code, image=image, recognition=drawing.recognition,
                                critique=critic.critique(drawing)))
        rule.evaluate([attempt_score(a) for a in attempts])
    return time.perf_counter() - start


def graph_loop(n: int, workdir: Path) -> float:
    drawer, renderer, recognizer, critic = agents()
    conn = sqlite3.connect(workdir / "ckpt.sqlite", check_same_thread=False)
    graph = build_refine_graph(drawer, renderer, recognizer, critic, stop_rule=StopRule(max_iters=n, patience=n + 1),
                               store=ArtifactStore(workdir), distractors=lambda c, k, s: DISTRACTORS,
                               checkpointer=SqliteSaver(conn))
    config = {"configurable": {"thread_id": "bench"}}
    start = time.perf_counter()
    with TraceWriter(workdir / "trace.jsonl") as writer:
        for chunk in graph.stream({"concept": "a red apple"}, config, stream_mode="custom"):
            writer.write(TraceEvent.from_dict(chunk))
    elapsed = time.perf_counter() - start
    assert len(graph.get_state(config).values["attempts"]) == n
    conn.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iters", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    plain, graph = [], []
    for _ in range(args.repeats):  # interleaved, best of N: the machine may be shared
        with tempfile.TemporaryDirectory() as tmp:
            plain.append(plain_loop(args.iters, ArtifactStore(Path(tmp))))
        with tempfile.TemporaryDirectory() as tmp:
            graph.append(graph_loop(args.iters, Path(tmp)))
    p, g = min(plain) / args.iters, min(graph) / args.iters
    result = {"iterations": args.iters, "plain_ms_per_iter": round(p * 1000, 2), "graph_ms_per_iter": round(g * 1000, 2),
              "overhead_ms_per_iter": round((g - p) * 1000, 2), "ratio_graph_over_plain": round(g / p, 3)}
    print(f"plain loop      {result['plain_ms_per_iter']:8.2f} ms/iteration (render + critic, instant fake model)")
    print(f"LangGraph loop  {result['graph_ms_per_iter']:8.2f} ms/iteration (+ SQLite checkpoint per node + trace)")
    print(f"overhead        {result['overhead_ms_per_iter']:8.2f} ms/iteration   ratio {result['ratio_graph_over_plain']:.2f}x")
    out = Path(__file__).parent / "results" / "loop_overhead.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
