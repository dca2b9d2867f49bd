"""Ray vs threads: the same dataset build through RayExecutor and through the thread executor.

    .venv/bin/python bench/cluster.py                    # latency 1 s, concurrency 32, 192 drawings, ABBA
    .venv/bin/python bench/cluster.py --jobs 64 --latency 0.5 --workers-per-node 2

The simulated model is bench/batch.py's (a separate process answering every request after exactly
`latency` seconds). Each build is `drawloop.dataset.build_dataset` end to end: planning, the
manifest, loops with the shared SQLite checkpointer, rendering, durable commits, curation
(thumbnail embedder) and export. Builds alternate A B B A (threads, Ray, Ray, threads) so a drift
in the machine's load hits both alike, and each runs in a fresh process, as a `drawloop dataset
build` command does: the thread build loads its critics (torch, the gallery) in that process, the
Ray build starts its worker processes, which load them there. Ray runs on this machine, started
once by this script (dashboard off), as a cluster that is already up; every Ray build joins it.

The critic is the default one without its gallery scorer ("concept"), unless --critic default:
loading that gallery (torch, thousands of reference vectors) costs every fresh process the same
seconds, minutes on a loaded 2-core machine, which says nothing about the executor; the three
model calls an iteration (draw, recognize, critique) stay.

Figures, each as Ray / threads (target >= 0.9):
- sustained: drawings committed per second between 10% and 90% of the build;
- whole build: drawings per second of the whole build_dataset call, worker start-up included.
Writes bench/results/cluster.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LIGHT_CRITIC = {"sanity": 0.5, "llm": 1.0, "structure": 1.0}   # the default weights without "concept"


def one_build(kind: str, url: str, args, ray_address: str | None = None) -> dict:
    from drawloop.config import Settings
    from drawloop.dataset import build_dataset

    work = Path(tempfile.mkdtemp(prefix=f"drawloop-bench-cluster-{kind}-"))
    concepts = work / "concepts.txt"
    concepts.write_text("".join(f"a bench shape number {i}\n" for i in range(args.concepts)))
    samples = -(-args.jobs // args.concepts)
    extra = {} if args.critic == "default" else {"weights": LIGHT_CRITIC}
    settings = Settings(model="openai:sim", base_url=url, api_key="sk-sim", max_iters=args.iters,
                        patience=args.iters + 1, size=64, retries=0, extra=extra)
    executor = None
    if kind == "ray":
        from drawloop.graphs.ray_executor import RayExecutor

        executor = RayExecutor(address=ray_address, workers_per_node=args.workers_per_node)
    commits: list[float] = []
    try:
        start = time.monotonic()
        result = build_dataset(str(concepts), samples, work / "data", settings, concurrency=args.concurrency,
                               embedder="thumbnail", executor=executor,
                               on_drawing=lambda _: commits.append(time.monotonic()))
        total = time.monotonic() - start
    finally:
        if executor is not None:
            executor.close()
        shutil.rmtree(work, ignore_errors=True)
    n = len(commits)
    lo, hi = commits[int(0.1 * n)], commits[int(0.9 * n) - 1]
    return {"executor": kind, "drawings": n, "done": result.counts["done"], "failed": result.counts["failed"],
            "sustained_per_s": round((int(0.9 * n) - 1 - int(0.1 * n)) / (hi - lo), 3),
            "whole_per_s": round(n / total, 3), "first_commit_s": round(commits[0] - start, 2),
            "seconds": round(total, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per simulated model call")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--jobs", type=int, default=192, help="drawings per build")
    parser.add_argument("--concepts", type=int, default=8)
    parser.add_argument("--iters", type=int, default=2, help="loop iterations per drawing (3 model calls each)")
    parser.add_argument("--workers-per-node", type=int, default=1)
    parser.add_argument("--critic", choices=("light", "default"), default="light",
                        help="light: the default critic without its gallery scorer; default: with it")
    parser.add_argument("--one", choices=("thread", "ray"), help=argparse.SUPPRESS)   # one build, in a child
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--ray-address", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one_build(args.one, args.url, args, args.ray_address)), flush=True)
        return

    import ray

    load = os.getloadavg()[0]   # the machine may be shared: say how busy it was
    server = subprocess.Popen([sys.executable, str(ROOT / "bench" / "batch.py"), "--serve", "--latency",
                               str(args.latency)], stdout=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{int(server.stdout.readline())}/v1"
    os.environ.pop("RAY_ADDRESS", None)
    temp = tempfile.mkdtemp(prefix="dlray-")
    ray.init(include_dashboard=False, log_to_driver=False, _temp_dir=temp)
    address = ray.get_runtime_context().gcs_address
    runs = []
    try:
        for kind in ("thread", "ray", "ray", "thread"):      # ABBA
            child = subprocess.run([sys.executable, __file__, "--one", kind, "--url", url, "--ray-address", address,
                                    *sys.argv[1:]], capture_output=True, text=True, timeout=3600, check=False)
            lines = [line for line in child.stdout.splitlines() if line.startswith("RESULT ")]
            if child.returncode or not lines:
                raise SystemExit(f"the {kind} build failed:\n{child.stderr[-3000:]}")
            runs.append(json.loads(lines[-1][len("RESULT "):]))
            r = runs[-1]
            print(f"  {kind:6s} {r['drawings']} drawings in {r['seconds']} s: sustained {r['sustained_per_s']}/s, "
                  f"whole build {r['whole_per_s']}/s, first commit after {r['first_commit_s']} s", flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        server.terminate()
        server.wait()

    def ratio(key: str) -> float:
        mean = {kind: statistics.mean(r[key] for r in runs if r["executor"] == kind) for kind in ("thread", "ray")}
        return round(mean["ray"] / mean["thread"], 3)

    calls = 3 * args.iters
    figures = {"latency_s": args.latency, "concurrency": args.concurrency, "drawings": args.jobs,
               "llm_calls_per_drawing": calls, "ideal_per_s": round(args.concurrency / (calls * args.latency), 3),
               "workers_per_node": args.workers_per_node, "critic": args.critic, "cpus": os.cpu_count(),
               "load_average_at_start": round(load, 2), "order": "ABBA", "runs": runs,
               "sustained_ray_over_thread": ratio("sustained_per_s"),
               "whole_build_ray_over_thread": ratio("whole_per_s")}
    print(f"Ray / threads at concurrency {args.concurrency}, {args.latency} s per model call: sustained "
          f"{figures['sustained_ray_over_thread']}, whole build {figures['whole_build_ray_over_thread']} "
          f"(target >= 0.9; ideal {figures['ideal_per_s']}/s)")
    out = ROOT / "bench" / "results" / "cluster.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
