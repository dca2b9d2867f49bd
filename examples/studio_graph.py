"""Open the loop the way LangGraph Studio does: langgraph.json names a factory, the factory compiles it.

    python examples/studio_graph.py                      # the schemas, with the offline local model
    python examples/studio_graph.py --run "a kite"       # ... and one thread run through it, as Studio would
    python examples/studio_graph.py --model openai:gpt-4o-mini --run "a kite"
    langgraph dev                                         # Studio itself (pip install "langgraph-cli[inmem]")

`langgraph dev` reads langgraph.json in the repo root, imports the file it names, and calls the
factory (drawloop/graphs/studio.py:make_graph) with the run's config; settings come from the
environment (DRAWLOOP_MODEL, DRAWLOOP_BASE_URL, OPENAI_API_KEY, ...) and the run's configurable
(max_iters, candidates, critic, ...). The graph has no checkpointer of its own: the server keeps
the threads. This script does the same steps and prints what Studio shows: the input and output
schemas and the nodes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_factory():
    spec = json.loads((ROOT / "langgraph.json").read_text())
    name, target = next(iter(spec["graphs"].items()))
    path, _, attribute = target.partition(":")
    module_spec = importlib.util.spec_from_file_location(f"langgraph_{name}", ROOT / path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return name, getattr(module, attribute)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", metavar="CONCEPT", help="also run one thread for this concept")
    parser.add_argument("--model")
    parser.add_argument("--base-url")
    parser.add_argument("--runs-dir")
    parser.add_argument("--max-iters", type=int, default=2)
    args = parser.parse_args(argv)
    for variable, value in (("DRAWLOOP_MODEL", args.model), ("DRAWLOOP_BASE_URL", args.base_url),
                            ("DRAWLOOP_RUNS_DIR", args.runs_dir)):
        if value:
            os.environ[variable] = value   # what `langgraph dev` would read from the environment or .env

    name, factory = load_factory()
    graph = factory({"configurable": {"max_iters": args.max_iters}})
    inputs, outputs = graph.get_input_jsonschema(), graph.get_output_jsonschema()
    nodes = [n for n in graph.get_graph().nodes if not n.startswith("__")]
    print(f"graph {name!r}: nodes {', '.join(nodes)}; checkpointer: {graph.checkpointer or 'the server'}")
    print("input:", ", ".join(inputs["properties"]))
    print("output:", ", ".join(outputs["properties"]))
    outcome = {"example": "studio_graph", "graph": name, "nodes": nodes, "input": sorted(inputs["properties"]),
               "output": sorted(outputs["properties"]), "checkpointer": graph.checkpointer is not None}
    if args.run:
        state = graph.invoke({"concept": args.run}, {"configurable": {"thread_id": "studio-example", "seed": 0}})
        best = state["attempts"][state["best"]]
        print(f"{args.run}: stopped ({state['stop_reason']}) after {len(state['attempts'])} attempt(s), best "
              f"{best['critique']['score']:.2f}, seen as {best['recognition']['label']}")
        outcome.update(stop_reason=state["stop_reason"], attempts=len(state["attempts"]),
                       recognized=best["recognition"]["label"], image=best.get("image"))
    print(json.dumps(outcome))
    return outcome


if __name__ == "__main__":
    main()
