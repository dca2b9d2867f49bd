"""Streaming trace events into your own UI.

    python examples/stream_events.py                     # "a red apple" with the offline local model
    python examples/stream_events.py "a kite" --model openai:gpt-4o-mini

Every node emits a TraceEvent (drawloop/trace/events.py) when it starts and ends: run, thread,
iteration, node, seconds, tokens, score, recognition, error, artifact, message. `draw(on_event=)`
hands each one to your callback as it happens, the same stream that feeds `drawloop draw`'s live
view and the run's trace.jsonl. (Driving a graph yourself, `graph.stream(input, config,
stream_mode="custom")` yields the same events as dicts: `TraceEvent.from_dict(chunk)`.)

This "UI" prints one line per finished node and a time-per-node bar chart at the end.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict

import drawloop
from drawloop.trace.events import TraceEvent


class LineUI:
    def __init__(self):
        self.started = time.monotonic()
        self.seen: Counter = Counter()
        self.node_seconds: dict[str, float] = defaultdict(float)

    def __call__(self, event: TraceEvent) -> None:
        self.seen[(event.node, event.phase)] += 1
        if event.phase != "end":
            return
        self.node_seconds[event.node] += event.seconds or 0.0
        what = (event.error and f"error: {event.error[:60]}"
                or event.recognition and f"seen as {event.recognition.get('label')}"
                or event.score is not None and f"score {event.score:.2f}"
                or event.message or "")
        tokens = f"{event.tokens_out} tok" if event.tokens_out else ""
        print(f"[{time.monotonic() - self.started:6.1f}s] #{event.iteration} {event.node:<10}"
              f"{(event.seconds or 0):6.2f}s {tokens:>8}  {what}", flush=True)

    def summary(self) -> None:
        total = sum(self.node_seconds.values()) or 1.0
        for node, seconds in sorted(self.node_seconds.items(), key=lambda kv: -kv[1]):
            print(f"{node:<10} {'█' * max(1, round(30 * seconds / total)):<30} {seconds:6.2f}s")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("concept", nargs="?", default="a red apple")
    parser.add_argument("--model", default="local")
    parser.add_argument("--base-url")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--max-iters", type=int, default=2)
    args = parser.parse_args(argv)

    ui = LineUI()
    result = drawloop.draw(args.concept, model=args.model, base_url=args.base_url, runs_dir=args.runs_dir,
                           max_iters=args.max_iters, on_event=ui)
    ui.summary()
    outcome = {"example": "stream_events", "run_dir": str(result.run_dir), "iterations": len(result.attempts),
               "events": {f"{node}.{phase}": n for (node, phase), n in sorted(ui.seen.items())}}
    print(json.dumps(outcome))
    return outcome


if __name__ == "__main__":
    main()
