"""Benchmark: image embedding throughput, and VectorIndex add/search/dedup against raw FAISS calls.

    .venv/bin/python bench/index.py                   # 10k and 1M vectors (d=128, ~1.5 GB peak)
    .venv/bin/python bench/index.py --sizes 10000 --images 32   # quick

Prints one line per figure and writes bench/results/index.json. Ratios (wrapper / raw) are
measured in the same run on the same data, so they hold on any machine; absolute rates depend on
the cores and on whatever else is running. d=128 keeps 1M vectors at 512 MB per copy (the index
keeps a numpy copy beside FAISS's own); 1280-d EfficientNet features would be 5 GB per copy.
Synthetic vectors are a mixture of 2,000 Gaussian clusters on the unit sphere (IVF on uniform
noise would be meaninglessly hard), with 1% planted near-duplicates for the dedup pass.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def synthetic(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """Unit vectors in clusters, the last 1% near-copies of earlier ones; returns (x, planted)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2000, dim)).astype(np.float32)
    x = centres[rng.integers(0, 2000, n)] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    planted = n // 100
    x[n - planted:] = x[rng.integers(0, n - planted, planted)] + 0.005 * rng.normal(size=(planted, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), planted


def bench_embedding(n_images: int) -> dict:
    from PIL import Image, ImageDraw

    from drawloop.vision.features import default_embedder, prepare

    rng = np.random.default_rng(0)
    images = []
    for _ in range(n_images):
        image = Image.new("RGB", (256, 256), "white")
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            box = sorted(rng.integers(10, 246, 2)), sorted(rng.integers(10, 246, 2))
            draw.ellipse((box[0][0], box[1][0], box[0][1], box[1][1]), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        images.append(image)
    embedder = default_embedder()
    embedder.embed(images[:8])                       # load + warm up the batch shape
    _, prep_s = timed(lambda: [prepare(im) for im in images])
    out = {"images": n_images, "prepare_per_s": n_images / prep_s}
    for threads in (1, 2):
        embedder.threads = threads
        embedder.embed(images[:8])                   # warm up this thread count
        _, seconds = timed(lambda: embedder.embed(images))
        out[f"embed_per_s_{threads}_threads"] = n_images / seconds
    embedder.threads = 1
    return out


def bench_index(n: int, dim: int, queries: int, k: int) -> dict:
    import faiss

    from drawloop.vision import index as index_module
    from drawloop.vision.index import NPROBE, VectorIndex

    x, planted = synthetic(n, dim)
    q = x[np.random.default_rng(1).choice(n, queries, replace=False)]
    metas = [{"concept": f"c{i % 500}"} for i in range(n)]
    kind = "flat" if n < index_module.FLAT_LIMIT else "ivf"

    # add: the wrapper stores vectors + metadata and builds FAISS at the first search
    index = VectorIndex(dim)
    _, add_s = timed(lambda: index.add(x, metas))
    _, build_s = timed(lambda: index.search(q[:1], k))

    def raw_build():   # the same structure, built with plain FAISS calls
        if kind == "flat":
            raw = faiss.IndexFlatIP(dim)
        else:
            nlist = max(1, min(4096, int(np.sqrt(n))))
            raw = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            raw.train(x[np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False)])
            raw.nprobe = NPROBE
        raw.add(x)
        return raw

    raw, raw_build_s = timed(raw_build)

    # search: k nearest for `queries` queries; the wrapper also returns metadata per hit
    _, search_s = timed(lambda: index.search(q, k))
    (raw_sims, raw_rows), raw_search_s = timed(lambda: raw.search(q, k))

    exact = np.concatenate([np.argsort(-(q[i:i + 100] @ x.T), axis=1)[:, :k] for i in range(0, queries, 100)])
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(raw_rows, exact)]))

    # dedup: every vector's neighbours at threshold 0.97
    pairs, dedup_s = timed(lambda: index.near_duplicates(0.97, k=8))

    def raw_dedup():
        if hasattr(raw, "nprobe"):
            raw.nprobe = 4
        found = 0
        for start in range(0, n, 4096):
            sims, rows = raw.search(x[start:start + 4096], 9)
            found += int(((sims >= 0.97) & (rows > np.arange(start, start + len(rows))[:, None])).sum())
        return found

    raw_pairs, raw_dedup_s = timed(raw_dedup)
    return {
        "n": n, "dim": dim, "kind": kind, "queries": queries, "k": k,
        "add_per_s": n / add_s, "build_s": build_s, "add_plus_build_per_s": n / (add_s + build_s),
        "raw_add_plus_build_per_s": n / raw_build_s, "add_ratio": raw_build_s / (add_s + build_s),
        "search_qps": queries / search_s, "raw_search_qps": queries / raw_search_s,
        "search_ratio": raw_search_s / search_s, "recall_at_k_vs_exact": recall,
        "dedup_per_s": n / dedup_s, "raw_dedup_per_s": n / raw_dedup_s, "dedup_ratio": raw_dedup_s / dedup_s,
        "dedup_pairs": len(pairs), "raw_dedup_pairs": raw_pairs, "planted_duplicates": planted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000", help="comma-separated index sizes")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--images", type=int, default=64, help="images for the embedding throughput")
    args = parser.parse_args()

    results = {"embedding": bench_embedding(args.images)}
    e = results["embedding"]
    print(f"embedding: prepare {e['prepare_per_s']:.0f} img/s; EfficientNet-Lite0 " +
          ", ".join(f"{v:.1f} img/s ({k.split('_')[3]} threads)" for k, v in e.items() if k.startswith("embed_per_s")))
    for n in (int(s) for s in args.sizes.split(",")):
        r = bench_index(n, args.dim, args.queries, args.k)
        results[f"index_{n}"] = r
        recall = f", IVF recall@{r['k']} {r['recall_at_k_vs_exact']:.3f}" if r["kind"] == "ivf" else ""
        print(f"index n={n:,} d={r['dim']} ({r['kind']}): add+build {r['add_plus_build_per_s']:,.0f}/s "
              f"(raw {r['raw_add_plus_build_per_s']:,.0f}/s, ratio {r['add_ratio']:.2f}); "
              f"search {r['search_qps']:,.0f} q/s (raw {r['raw_search_qps']:,.0f}, ratio {r['search_ratio']:.2f}){recall}; "
              f"dedup {r['dedup_per_s']:,.0f} vec/s (raw {r['raw_dedup_per_s']:,.0f}, ratio {r['dedup_ratio']:.2f}), "
              f"{r['dedup_pairs']} pairs for {r['planted_duplicates']} planted")
    out = Path(__file__).parent / "results" / "index.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
