"""Batch throughput: a simulated model of fixed latency, K threads at once, the real build path.

    .venv/bin/python bench/batch.py                       # latency 1 s, concurrency 32, 160 drawings
    .venv/bin/python bench/batch.py --concurrency 8 --jobs 40 --latency 0.5

A loopback OpenAI-compatible server (a separate process, so it takes no GIL from the batch) answers
every request after exactly `latency` seconds: SVG for drawing prompts (different per seed), a
letter for recognition, a score for critique. `drawloop.dataset.build_dataset` then runs the whole
product path against it: threads, LangGraph with the shared SQLite checkpointer, the guarded
renderer's worker pool, durable commits, the manifest, curation (thumbnail embedder) and export.

Figures:
- sustained throughput: drawings committed per second between 10% and 90% of the batch, as a
  fraction of the ideal K / (calls per drawing x latency); target >= 0.9
- whole-batch fraction (ramp-up and the last, partly empty wave included), curation seconds
- peak memory of this process (ru_maxrss)
- checkpoint store: one shared SQLite DB vs one file per thread, with zero-latency agents, as
  graph steps per second (why build.py uses the shared DB)
Writes bench/results/batch.json.
"""

from __future__ import annotations

import argparse
import http.server
import io
import json
import random
import resource
import shutil
import socketserver
import statistics
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------- the simulated model (server process)

def svg_for(h: int) -> str:
    r = random.Random(h)
    return ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" fill="#fff"/>'
            f'<circle cx="{r.randint(12, 52)}" cy="{r.randint(12, 52)}" r="{r.randint(5, 14)}" '
            f'fill="#{r.randrange(1 << 24):06x}"/><rect x="{r.randint(0, 40)}" y="{r.randint(0, 40)}" '
            f'width="{r.randint(6, 24)}" height="{r.randint(6, 24)}" fill="#{r.randrange(1 << 24):06x}"/></svg>')


class SimulatedModel(http.server.BaseHTTPRequestHandler):
    latency = 1.0
    protocol_version = "HTTP/1.1"   # keep-alive, as real servers do

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._send(200, "application/json", json.dumps({"data": [{"id": "sim"}]}).encode())

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(self.latency)
        prompt = body["messages"][-1]["content"]
        h = zlib.crc32(f"{prompt}|{body.get('seed')}".encode())
        if "Choose exactly one option" in prompt:
            text = "A"
        elif "SCORE:" in prompt:
            text = f"SCORE: {h % 11}\nFIXES:\n- make it larger"
        else:
            text = f"```svg\n{svg_for(h)}\n```"
        usage = {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}
        if body.get("stream"):
            base = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "sim"}
            events = [{**base, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
                      {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}]
            payload = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
            return self._send(200, "text/event-stream", payload.encode())
        answer = {"id": "x", "object": "chat.completion", "created": 0, "model": "sim", "usage": usage,
                  "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]}
        self._send(200, "application/json", json.dumps(answer).encode())

    def _send(self, status, kind, data):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 256


def serve(latency: float) -> None:
    SimulatedModel.latency = latency
    server = Server(("127.0.0.1", 0), SimulatedModel)
    print(server.server_address[1], flush=True)
    server.serve_forever()


# ---------------------------------------------------------------- throughput through the product path

def throughput(args) -> dict:
    from drawloop.config import Settings
    from drawloop.dataset import build_dataset

    server = subprocess.Popen([sys.executable, __file__, "--serve", "--latency", str(args.latency)],
                              stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline())
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="drawloop-bench-batch-"))
    shutil.rmtree(work / "data", ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    concepts = work / "concepts.txt"
    concepts.write_text("".join(f"a bench shape number {i}\n" for i in range(args.concepts)))
    samples = -(-args.jobs // args.concepts)
    commits: list[float] = []
    settings = Settings(model="openai:sim", base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-sim",
                        max_iters=args.iters, patience=args.iters + 1, size=64, retries=0)
    try:
        start = time.monotonic()
        result = build_dataset(str(concepts), samples, work / "data", settings, concurrency=args.concurrency,
                               embedder="thumbnail", on_drawing=lambda _: commits.append(time.monotonic()))
        total = time.monotonic() - start
    finally:
        server.terminate()
        server.wait()
    n = len(commits)
    calls = 3 * args.iters            # draw, recognize, LLM critique per iteration
    ideal = args.concurrency / (calls * args.latency)
    lo, hi = commits[int(0.1 * n)], commits[int(0.9 * n) - 1]
    sustained = (int(0.9 * n) - 1 - int(0.1 * n)) / (hi - lo)
    drawing_end = commits[-1] - start
    figures = {
        "drawings": n, "concurrency": args.concurrency, "latency_s": args.latency, "llm_calls_per_drawing": calls,
        "ideal_per_s": round(ideal, 3), "sustained_per_s": round(sustained, 3),
        "sustained_fraction_of_ideal": round(sustained / ideal, 3),
        "whole_batch_fraction_of_ideal": round(n / drawing_end / ideal, 3),
        "drawing_seconds": round(drawing_end, 2), "curation_export_seconds": round(total - drawing_end, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "done": result.counts["done"], "failed": result.counts["failed"],
    }
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return figures


# ---------------------------------------------------------------- checkpoint store: shared vs per thread

class InstantDrawer:
    def draw(self, concept, language, history, seed=None):
        from drawloop.agents.base import Draft

        return Draft(code=svg_for(seed or 0), raw="x" * 2000)  # raw answers are kept in state, like a model's


class FlatRenderer:
    def render(self, code, language="svg", size=64):
        from PIL import Image

        from drawloop.renderers.base import RenderResult

        buffer = io.BytesIO()
        Image.new("RGB", (size, size), "#" + code.split('fill="#')[2][:6]).save(buffer, format="PNG")
        return RenderResult(ok=True, png=buffer.getvalue())


class YesRecognizer:
    def recognize(self, drawing):
        return {"label": drawing.concept, "correct": True, "choices": drawing.choices, "source": "bench"}


def _saver(path: Path):
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(path, check_same_thread=False, timeout=60)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return SqliteSaver(conn)


def checkpoint_stores(threads: int, per_thread_jobs: int, iters: int, rounds: int = 3) -> dict:
    from drawloop.agents.critic import Critic, RenderSanityScorer
    from drawloop.graphs.refine import build_refine_graph
    from drawloop.graphs.stopping import StopRule
    from drawloop.runs import ArtifactStore

    def graph(saver, store):
        return build_refine_graph(InstantDrawer(), FlatRenderer(), YesRecognizer(), Critic([(RenderSanityScorer(), 1.0)]),
                                  stop_rule=StopRule(max_iters=iters, patience=iters + 1), store=store, size=64,
                                  n_distractors=2, distractors=lambda c, n, s: ["a dog", "a car"][:n],
                                  checkpointer=saver)

    rates: dict[str, list[float]] = {"shared": [], "per-thread": []}
    for _ in range(rounds):              # alternate the two, since the machine's load drifts
        for mode in rates:
            work = Path(tempfile.mkdtemp(prefix="drawloop-bench-ck-"))
            store = ArtifactStore(work)
            shared = _saver(work / "all.sqlite") if mode == "shared" else None
            graphs = [graph(shared or _saver(work / f"t{i}.sqlite"), store) for i in range(threads)]

            def worker(i):
                for j in range(per_thread_jobs):
                    config = {"configurable": {"thread_id": f"t{i}-{j}", "seed": i * 1000 + j}}
                    for _ in graphs[i].stream({"concept": "a shape", "attempts": []}, config, stream_mode="custom"):
                        pass

            start = time.perf_counter()
            pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            steps = threads * per_thread_jobs * (1 + 5 * iters)   # prepare + 5 nodes per iteration
            rates[mode].append(steps / (time.perf_counter() - start))
            shutil.rmtree(work, ignore_errors=True)
    median = {mode: statistics.median(values) for mode, values in rates.items()}
    return {"graph_steps_per_s": {mode: [round(v, 1) for v in values] for mode, values in rates.items()},
            "median_shared": round(median["shared"], 1), "median_per_thread": round(median["per-thread"], 1),
            "shared_over_per_thread": round(median["shared"] / median["per-thread"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per simulated model call")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--jobs", type=int, default=160, help="drawings to make")
    parser.add_argument("--concepts", type=int, default=8)
    parser.add_argument("--iters", type=int, default=2, help="loop iterations per drawing (3 model calls each)")
    parser.add_argument("--skip-checkpoints", action="store_true")
    parser.add_argument("--keep", help="build the dataset here and keep it (its work/trace.jsonl has node timings)")
    args = parser.parse_args()
    if args.serve:
        return serve(args.latency)

    figures = {"throughput": throughput(args)}
    t = figures["throughput"]
    print(f"{t['drawings']} drawings, concurrency {t['concurrency']}, {t['latency_s']} s per model call, "
          f"{t['llm_calls_per_drawing']} calls per drawing")
    print(f"  sustained throughput {t['sustained_per_s']:.2f}/s of ideal {t['ideal_per_s']:.2f}/s: "
          f"{t['sustained_fraction_of_ideal']:.3f} of ideal (target >= 0.9); whole batch "
          f"{t['whole_batch_fraction_of_ideal']:.3f}")
    print(f"  drawing {t['drawing_seconds']} s, curation + export {t['curation_export_seconds']} s, "
          f"peak RSS {t['peak_rss_mb']} MB, done {t['done']}, failed {t['failed']}")
    if not args.skip_checkpoints:
        figures["checkpoints"] = c = checkpoint_stores(threads=32, per_thread_jobs=2, iters=2)
        print(f"  checkpoints, zero-latency agents, 32 threads, median of 3: shared DB {c['median_shared']} "
              f"graph steps/s, one file per thread {c['median_per_thread']} (ratio {c['shared_over_per_thread']})")
    out = ROOT / "bench" / "results" / "batch.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
