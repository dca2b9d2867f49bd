"""How fast the embedded model draws: speculation on/off, revision prompt work, drawings a minute.

    .venv/bin/python bench/local_model.py                 # everything (about 40 min on 2 cores)
    .venv/bin/python bench/local_model.py --part speed    # tokens/s and prompt work only (~6 min)
    .venv/bin/python bench/local_model.py --part build    # the 20-concept dataset build, before vs after

Writes bench/results/local_model.json. The machine is shared and back-to-back heavy runs swing by up
to 1.8x, so every figure is a ratio measured in the same run, in ABBA order, as medians.

speed: two llama.cpp servers on the same GGUF, one with n-gram self-speculation (ngram-mod, the
  default) and one without, asked in turn: a first draft (temperature 0.7, seeded) and a revision of
  it (temperature 0: the two servers must answer byte-identical text). Then the revision's prompt
  work as the loop sends it now (the draft's conversation continued, so the server's prefix cache
  holds the previous drawing) against the old layout (previous code pasted into a fresh user
  message), each after a critic-like call in between, with and without pinning the slot (id_slot).
build: refined drawings a minute for a 20-concept `drawloop dataset build` slice (1 sample, up to 3
  rounds, 2 threads): a commit (--after, default HEAD) against the commit before the speed work
  (--before, default ba09d39) run with speculation off, as it was when the issue was filed; four
  groups of five concepts in ABBA order. Both run from git worktrees, so edits in the checkout
  during the run cannot leak into it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONCEPTS = ["a red circle", "a blue square", "a green triangle", "a yellow star", "a heart", "a crescent moon",
            "an apple", "a house", "a tree", "the sun", "a fish", "a flower", "a car", "a cat", "a sailboat",
            "a snowman", "a bicycle", "an umbrella", "a cup of coffee", "a clock"]
FEEDBACK = ("Critic's score: 0.40 out of 1.\nCritic's feedback:\n- The main shape is too small; make it fill "
            "the canvas.\n- Add the parts that make it recognisable.\n\nRewrite the code to draw {concept} better. "
            "Keep what works, fix what is wrong. Answer with the complete new code only.")


def chat(server, messages, temperature: float, max_tokens: int, seed: int = 1, slot: int | None = None) -> dict:
    body = {"messages": [{"role": r, "content": c} for r, c in messages], "temperature": temperature,
            "max_tokens": max_tokens, "seed": seed}
    if slot is not None:
        body["id_slot"] = slot
    answer = httpx.post(server.base_url + "/chat/completions", json=body, timeout=900).json()
    timings = answer.get("timings") or {}
    return {"text": answer["choices"][0]["message"]["content"], "tokens": timings.get("predicted_n", 0),
            "tok_s": timings.get("predicted_per_second", 0.0), "prompt_n": timings.get("prompt_n", 0),
            "prompt_s": timings.get("prompt_ms", 0.0) / 1000}


def speed(rounds: int) -> dict:
    from drawloop import prompts
    from drawloop.local_model import LocalServer, model_path

    gguf = model_path()
    system = prompts.system_prompt("svg", 256)
    servers = {name: LocalServer(gguf, threads=2, parallel=2, ctx=8192, speculation=mode).start()
               for name, mode in (("on", "ngram-mod"), ("off", "off"))}
    rows = {"on": {"draft": [], "revision": []}, "off": {"draft": [], "revision": []}}
    identical, layouts = [], {"conversation": [], "conversation_pinned": [], "pasted": []}
    try:
        for r in range(rounds):
            concept = CONCEPTS[6 + r % 14]
            first = [("system", system), ("user", prompts.FIRST_DRAFT.format(concept=concept))]
            order = ("on", "off") if r % 4 in (0, 3) else ("off", "on")      # ABBA
            drafts, revisions = {}, {}
            for name in order:
                drafts[name] = chat(servers[name], first, 0.7, 300, seed=r)
            base = drafts["on"]["text"]       # both revise the same drawing
            revise = first + [("assistant", base), ("user", FEEDBACK.format(concept=concept))]
            for name in order:
                revisions[name] = chat(servers[name], revise, 0.0, 300)
            for name in order:
                rows[name]["draft"].append(drafts[name]["tok_s"])
                rows[name]["revision"].append(revisions[name]["tok_s"])
            identical.append(revisions["on"]["text"] == revisions["off"]["text"])
            # revision prompt work on the speculating server, after a critic-like call in between
            pasted = [("system", system), ("user", f'Here is your previous drawing code for "{concept}":\n\n'
                                                   f"```svg\n{base}\n```\n\n" + FEEDBACK.format(concept=concept))]
            server = servers["on"]
            for label, messages, slot in (("conversation", revise, None), ("pasted", pasted, None),
                                          ("conversation_pinned", revise, 0)):
                # the slot holds the draft's conversation, as after drawing it (the prompt with the
                # answer; decoding it again would cost minutes)
                chat(server, first + [("assistant", base), ("user", "Thanks.")], 0.0, 1, slot=0)
                chat(server, [("system", "You are an art critic."),
                              ("user", f"Rate this drawing of {concept} 1-10:\n{base}")], 0.0, 24)
                answer = chat(server, messages, 0.0, 1, slot=slot)
                layouts[label].append({"prompt_n": answer["prompt_n"], "prompt_s": answer["prompt_s"]})
            print(f"round {r + 1}/{rounds} {concept}: draft on {drafts['on']['tok_s']:.1f} / off "
                  f"{drafts['off']['tok_s']:.1f} tok/s; revision on {revisions['on']['tok_s']:.1f} / off "
                  f"{revisions['off']['tok_s']:.1f}; identical {identical[-1]}; prompt s conversation "
                  f"{layouts['conversation'][-1]['prompt_s']:.2f} vs pasted {layouts['pasted'][-1]['prompt_s']:.2f}",
                  flush=True)
    finally:
        for server in servers.values():
            server.stop()
    med = {name: {kind: statistics.median(v) for kind, v in kinds.items()} for name, kinds in rows.items()}
    return {
        "rounds": rounds, "tok_s": med,
        "draft_speedup": med["on"]["draft"] / med["off"]["draft"],
        "revision_speedup": med["on"]["revision"] / med["off"]["revision"],
        "revision_identical": f"{sum(identical)}/{len(identical)}",
        "revision_prompt": {label: {"prompt_n": statistics.median(x["prompt_n"] for x in v),
                                    "prompt_s": statistics.median(x["prompt_s"] for x in v)}
                            for label, v in layouts.items()},
    }


def build(before: str, after: str, concepts: list[str]) -> dict:
    groups = [concepts[i:i + 5] for i in range(0, len(concepts), 5)]
    work = Path(tempfile.mkdtemp(prefix="drawloop-bench-build-"))
    trees = {}
    for arm, commit in (("before", before), ("after", after)):   # both from commits: a tree being edited
        trees[arm] = work / arm                                   # cannot change a run halfway
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-f", "--detach", str(trees[arm]), commit],
                       check=True, capture_output=True)
    arms = {"before": {"tree": trees["before"], "env": {"DRAWLOOP_SPECULATION": "off"}},
            "after": {"tree": trees["after"], "env": {}}}
    totals = {arm: {"drawings": 0, "seconds": 0.0, "tokens_out": 0} for arm in arms}
    try:
        for index, group in enumerate(groups):
            order = ("before", "after") if index % 4 in (0, 3) else ("after", "before")   # ABBA
            for arm in order:
                listing = work / f"{arm}-{index}.txt"
                listing.write_text("\n".join(group) + "\n")
                env = {**os.environ, **arms[arm]["env"], "PYTHONPATH": str(arms[arm]["tree"]), "DRAWLOOP_THREADS": "2"}
                start = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "drawloop", "dataset", "build", "--concepts", str(listing),
                                       "--samples", "1", "--out", str(work / f"{arm}-{index}"), "--max-iters", "3",
                                       "--concurrency", "2", "--seed", str(index), "--json"],
                                      env=env, capture_output=True, text=True, cwd=arms[arm]["tree"])
                seconds = time.perf_counter() - start
                stats = (_summary(done.stdout) or {}).get("stats") or {}
                drawings = stats.get("done", 0)
                totals[arm]["drawings"] += drawings
                totals[arm]["seconds"] += seconds          # everything: server start, drawing, export
                totals[arm]["tokens_out"] += stats.get("tokens_out", 0) or 0
                print(f"group {index + 1}/{len(groups)} {arm}: {drawings} drawings in {seconds:.0f} s "
                      f"(exit {done.returncode})", flush=True)
                if done.returncode != 0:
                    print(done.stderr[-2000:], flush=True)
    finally:
        for tree in trees.values():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
    for arm in totals.values():
        arm["per_minute"] = arm["drawings"] / (arm["seconds"] / 60) if arm["seconds"] else 0.0
    return {"before_commit": before, "after_commit": after, "concepts": len(concepts), "work_dir": str(work), "arms": totals,
            "ratio": totals["after"]["per_minute"] / max(1e-9, totals["before"]["per_minute"])}


def _summary(stdout: str) -> dict | None:
    """The JSON summary `dataset build --json` prints last (after any log lines)."""
    start = stdout.find("{")
    try:
        return json.loads(stdout[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        return None


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("speed", "build", "all"), default="all")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--before", default="ba09d39", help="the commit before the speed work")
    parser.add_argument("--after", default="HEAD", help="the commit to measure against it")
    parser.add_argument("--concepts", type=int, default=20)
    args = parser.parse_args()
    out = ROOT / "bench" / "results" / "local_model.json"
    report = json.loads(out.read_text()) if out.exists() else {}
    report["model"] = "local:qwen2.5-coder-1.5b (embedded llama.cpp, 2 threads)"
    if args.part in ("speed", "all"):
        report["speed"] = speed(args.rounds)
        s = report["speed"]
        print(f"speculation: first drafts {s['draft_speedup']:.2f}x, revisions {s['revision_speedup']:.2f}x "
              f"(identical greedy revisions {s['revision_identical']})")
        for label, row in s["revision_prompt"].items():
            print(f"revision prompt, {label}: {row['prompt_n']:.0f} new tokens, {row['prompt_s']:.2f} s")
    if args.part in ("build", "all"):
        after = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.after], check=True,
                               capture_output=True, text=True).stdout.strip()
        report["build"] = build(args.before, after, CONCEPTS[:args.concepts])
        b = report["build"]
        print(f"refined drawings a minute: before {b['arms']['before']['per_minute']:.2f}, "
              f"after {b['arms']['after']['per_minute']:.2f} ({b['ratio']:.2f}x)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
