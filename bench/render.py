"""Rendering throughput and overhead: guard + isolation vs the raw engines, render_many scaling,
and the Python sandbox's cost per drawing on a warm server.

    .venv/bin/python bench/render.py            # prints the figures, writes bench/results/render.json
    .venv/bin/python bench/render.py --quick    # fewer rounds (a smoke run)
    .venv/bin/python bench/render.py --guard    # only the guard's time on 1 MB worst-case inputs

Targets (issue 3): guarded+isolated >= 0.85x the raw engine at 256x256 on one core; render_many on
2 cores >= 1.8x one worker; Python sandbox overhead <= 40 ms per drawing. The machine is shared, so
every ratio is measured in the same run, rounds are interleaved, and medians are reported; the
2-core figure is printed next to what the raw engine itself scales to on the same cores right now.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZE = 256


def llm_like_drawings(count: int, seed: int = 0) -> list[str]:
    """Drawings shaped like what models write: 10-60 shapes and paths in a square viewBox, some
    gradients, some strokes, a blur on one in four, a text label on one in five."""
    rng = random.Random(seed)
    colours = ["#d22", "#2a2", "#24f", "#fc0", "#630", "#888", "hsl(30, 80%, 50%)", "#fff", "#000", "#f9a"]
    drawings = []
    for index in range(count):
        parts = ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 200" width="200" height="200">',
                 '<defs><linearGradient id="sky" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="#8cf"/>'
                 '<stop offset="1" stop-color="#fff"/></linearGradient>'
                 '<filter id="glow"><feGaussianBlur stdDeviation="4"/></filter></defs>',
                 '<rect width="200" height="200" fill="url(#sky)"/>']
        for _ in range(rng.randint(10, 60)):
            x, y, r = rng.uniform(10, 190), rng.uniform(10, 190), rng.uniform(3, 40)
            fill, kind = rng.choice(colours), rng.random()
            if kind < 0.3:
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{fill}"/>')
            elif kind < 0.5:
                parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{r:.1f}" height="{r / 2:.1f}" fill="{fill}" '
                             f'transform="rotate({rng.randint(0, 90)} {x:.1f} {y:.1f})"/>')
            elif kind < 0.7:
                parts.append(f'<ellipse cx="{x:.1f}" cy="{y:.1f}" rx="{r:.1f}" ry="{r / 3:.1f}" fill="{fill}" '
                             'stroke="#000" stroke-width="1.5"/>')
            else:
                points = " ".join(f"{rng.uniform(0, 200):.1f},{rng.uniform(0, 200):.1f}" for _ in range(6))
                parts.append(f'<path d="M{points.replace(" ", " L")} Z" fill="{fill}" stroke="#333" '
                             'stroke-width="2" stroke-linejoin="round"/>')
        if index % 4 == 0:
            parts.append('<circle cx="100" cy="70" r="30" fill="#ffd54f" filter="url(#glow)"/>')
        if index % 5 == 0:
            parts.append('<text x="100" y="190" font-family="sans-serif" font-size="14" text-anchor="middle">'
                         'a drawing</text>')
        drawings.append("".join(parts) + "</svg>")
    return drawings


# --- raw engines, no guard, no isolation ---------------------------------------------------------

def raw_cairosvg(code: str) -> bytes:
    import cairosvg

    return cairosvg.svg2png(bytestring=code.encode(), output_width=SIZE, output_height=SIZE,
                            background_color="white")


def raw_resvg(code: str) -> bytes:
    from drawloop.renderers.svg import _font_arguments, resvg_binary

    command = [resvg_binary(), *_font_arguments(), "--background", "white", "-w", str(SIZE), "-h", str(SIZE),
               "-", "-c"]
    return subprocess.run(command, input=code.encode(), capture_output=True, check=True).stdout


def guarded(engine: str):
    from drawloop.renderers import render

    def run(code: str) -> bytes:
        result = render(code, size=SIZE, engine=engine)
        assert result.ok, result.error
        return result.png
    return run


def throughput(function, codes: list[str]) -> float:
    started = time.perf_counter()
    for code in codes:
        function(code)
    return len(codes) / (time.perf_counter() - started)


def one_core(codes: list[str], rounds: int) -> dict:
    """Renders/s on one pinned core, raw and guarded interleaved round by round."""
    figures = {}
    for engine, raw in (("resvg", raw_resvg), ("cairosvg", raw_cairosvg)):
        run = guarded(engine)
        run(codes[0]), raw(codes[0])  # warm: worker started, fonts cached
        raw_rates, guarded_rates, ratios = [], [], []
        for _ in range(rounds):
            raw_rate, guarded_rate = throughput(raw, codes), throughput(run, codes)
            raw_rates.append(raw_rate)
            guarded_rates.append(guarded_rate)
            ratios.append(guarded_rate / raw_rate)
        figures[engine] = {"raw_per_s": statistics.median(raw_rates),
                           "guarded_isolated_per_s": statistics.median(guarded_rates),
                           "ratio": statistics.median(ratios), "ratios": ratios}
    return figures


def guard_cost(codes: list[str]) -> float:
    from drawloop.renderers.guard import check_svg

    started = time.perf_counter()
    for code in codes:
        check_svg(code, canvas=SIZE)
    return (time.perf_counter() - started) / len(codes) * 1000


def guard_worst_cases() -> dict:
    """Guard time on 1 MB inputs shaped like the red team's worst cases (exponential in leading
    comments; quadratic in runs of `url(`, `/*`, dropped elements; markers on a huge path), next to a
    benign 1 MB drawing; best of 3. Linear time means each stays within a small factor of benign.
    The size cap (256 KB) is lifted here so the scanners, not the cap, meet the input."""
    from drawloop.renderers.guard import GuardLimits, check_svg

    sys.path.insert(0, str(ROOT / "tests"))
    from hostile.guard_worst_cases import BENIGN, MB, WORST_CASES   # the same inputs as tests/test_guard.py

    limits = GuardLimits(max_bytes=4 * MB, max_elements=1_000_000, max_depth=100_000)

    cases = {"benign: 18k shapes with url(#g)": BENIGN, **WORST_CASES}
    figures = {}
    for name, code in cases.items():
        times = []
        for _ in range(3):
            started = time.perf_counter()
            check_svg(code, limits, canvas=SIZE)
            times.append(time.perf_counter() - started)
        figures[name] = min(times) * 1000
    benign = next(iter(figures.values()))
    return {name: {"ms": ms, "vs_benign": ms / benign} for name, ms in figures.items()}


# --- 2 cores ---------------------------------------------------------------------------------------

def scaling(codes: list[str], rounds: int) -> dict:
    from drawloop.renderers import render_many

    def many(workers: int) -> float:
        started = time.perf_counter()
        results = render_many(codes, size=SIZE, workers=workers)
        assert all(r.ok for r in results)
        return len(codes) / (time.perf_counter() - started)

    def raw_threads(workers: int) -> float:  # the raw engine's own scaling on these cores, right now
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(raw_resvg, codes))
        return len(codes) / (time.perf_counter() - started)

    many(2)  # start both workers
    one, two, raw_one, raw_two = [], [], [], []
    for _ in range(rounds):
        one.append(many(1))
        two.append(many(2))
        raw_one.append(raw_threads(1))
        raw_two.append(raw_threads(2))
    return {"render_many_1_worker_per_s": statistics.median(one), "render_many_2_workers_per_s": statistics.median(two),
            "speedup": statistics.median(b / a for a, b in zip(one, two)),
            "raw_resvg_speedup_same_cores": statistics.median(b / a for a, b in zip(raw_one, raw_two)),
            "speedup_relative_to_raw": statistics.median((b / a) / (d / c) for a, b, c, d
                                                         in zip(one, two, raw_one, raw_two))}


# --- the Python sandbox ----------------------------------------------------------------------------

PYTHON_DRAWINGS = {
    "matplotlib_scene": """
import matplotlib.pyplot as plt
import numpy as np
fig, ax = plt.subplots()
ax.add_patch(plt.Circle((0.5, 0.55), 0.3, color="red"))
ax.add_patch(plt.Rectangle((0.48, 0.8), 0.04, 0.12, color="brown"))
t = np.linspace(0, np.pi, 50)
ax.plot(0.5 + 0.1 * np.cos(t), 0.9 + 0.05 * np.sin(t), color="green", linewidth=3)
ax.set_xlim(0, 1); ax.set_ylim(0, 1); ax.set_aspect("equal"); ax.axis("off")
""",
    "pil_scene": """
from PIL import Image, ImageDraw
image = Image.new("RGB", (256, 256), "skyblue")
draw = ImageDraw.Draw(image)
draw.ellipse((60, 60, 196, 196), fill="red")
draw.rectangle((120, 20, 136, 70), fill="brown")
""",
}


def sandbox_overhead(rounds: int) -> dict:
    """Sandboxed time minus the same code run in this process the same way (exec + capture)."""
    sys.path.insert(0, str(ROOT / "drawloop" / "renderers"))
    import sandbox_server  # the in-process baseline uses the very same draw() the sandbox runs

    from drawloop.renderers.python import render_python
    from drawloop.renderers.sandbox import get_sandbox_pool

    import matplotlib.pyplot as plt

    get_sandbox_pool().prestart(1)
    figures = {}
    for name, code in PYTHON_DRAWINGS.items():
        sandbox_server.draw(code, SIZE, 512)
        assert render_python(code, size=SIZE).ok  # warm
        inside, local = [], []
        for _ in range(rounds):
            plt.close("all")  # each sandboxed job starts without figures; so does the baseline
            started = time.perf_counter()
            sandbox_server.draw(code, SIZE, 512)
            local.append(time.perf_counter() - started)
            started = time.perf_counter()
            result = render_python(code, size=SIZE)
            inside.append(time.perf_counter() - started)
            assert result.ok, result.error
        figures[name] = {"in_process_ms": statistics.median(local) * 1000,
                         "sandboxed_ms": statistics.median(inside) * 1000,
                         "overhead_ms": (statistics.median(inside) - statistics.median(local)) * 1000}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--guard", action="store_true", help="only the guard's time on 1 MB worst cases")
    args = parser.parse_args()
    if args.guard:
        for name, f in guard_worst_cases().items():
            print(f"guard, 1 MB {name:40}: {f['ms']:8.1f} ms  ({f['vs_benign']:.2f}x benign)")
        return
    rounds, count = (3, 20) if args.quick else (7, 40)
    codes = llm_like_drawings(count)
    cores = sorted(os.sched_getaffinity(0))
    report = {"size": SIZE, "drawings": count, "rounds": rounds, "cores": len(cores),
              "load_average": os.getloadavg()}

    os.sched_setaffinity(0, {cores[0]})  # one core: this process, its workers and resvg children
    report["guard_ms_per_drawing"] = guard_cost(codes)
    report["guard_worst_cases_1mb"] = guard_worst_cases()
    report["one_core"] = one_core(codes, rounds)
    from drawloop.renderers.isolation import get_pool

    get_pool().close()  # its workers are pinned; the next pool starts unpinned
    import drawloop.renderers.isolation as isolation

    isolation._POOL = None
    os.sched_setaffinity(0, set(cores))
    if len(cores) >= 2:
        report["two_cores"] = scaling(codes, rounds)
    report["python_sandbox"] = sandbox_overhead(rounds * 3)

    print(f"renders at {SIZE}x{SIZE}, {count} LLM-like drawings, median of {rounds} interleaved rounds "
          f"(load average {report['load_average'][0]:.1f} on {len(cores)} cores)")
    print(f"guard alone: {report['guard_ms_per_drawing']:.2f} ms per drawing")
    for engine, f in report["one_core"].items():
        status = "ok" if f["ratio"] >= 0.85 else "BELOW TARGET"
        print(f"one core, {engine:8}: raw {f['raw_per_s']:6.1f}/s   guarded+isolated "
              f"{f['guarded_isolated_per_s']:6.1f}/s   ratio {f['ratio']:.2f} (target >= 0.85: {status})")
    if "two_cores" in report:
        f = report["two_cores"]
        print(f"render_many: 1 worker {f['render_many_1_worker_per_s']:.1f}/s, 2 workers "
              f"{f['render_many_2_workers_per_s']:.1f}/s -> {f['speedup']:.2f}x (target >= 1.8x); the raw "
              f"resvg binary itself scaled {f['raw_resvg_speedup_same_cores']:.2f}x on the same cores "
              f"(render_many reaches {f['speedup_relative_to_raw']:.0%} of that)")
    for name, f in report["python_sandbox"].items():
        status = "ok" if f["overhead_ms"] <= 40 else "ABOVE TARGET"
        print(f"python sandbox, {name}: in-process {f['in_process_ms']:.1f} ms, sandboxed "
              f"{f['sandboxed_ms']:.1f} ms -> overhead {f['overhead_ms']:.1f} ms (target <= 40 ms: {status})")
    out = ROOT / "bench" / "results" / "render.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
