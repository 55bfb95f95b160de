"""Search at city scale: 1,000,000 track vectors in one index shard, as the search service builds it.

Vectors are colour-histogram-like (square roots of sparse Dirichlet histograms, 256-d, the default
``colour`` embedder's shape); queries are gallery vectors with noise added (a new photo of a seen
object). Measured in one run:

- build time and memory of the approximate shard (``search.approximate_index``, HNSW by default,
  through ``ShardedIndex.build_shard``) and, as the baseline, of an exact ``Flat`` index;
- latency p50/p99 for k=10 without filters, on both indexes (ratio = exact / approximate);
- recall@10 of the approximate index against exact search;
- latency with metadata filters through ``SearchEngine.search`` (store in SQLite): a narrow filter
  (one camera of 1,000: scored exactly from the store) and a wide one (family + 100 cameras: index
  search, then filtered).

Usage (about 5 minutes and 3 GB of memory on 2 cores):
    python benchmarks/search_index.py [--vectors 1000000] [--kind hnsw|ivf]
    python benchmarks/search_index.py --smoke   # 3,000 vectors, approximate beyond 1,000: seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from retina.services.core.config import RetinaConfig, SearchConfig
from retina.services.search.engine import SearchEngine
from retina.services.search.index import ShardedIndex
from retina.services.search.store import Filters

DIM = 256
CAMERAS = 1000
QUERIES = 200
SMOKE_EXACT_MAX_VECTORS = 1000  # the least search.exact_max_vectors allows
K = 10


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def synthetic_vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((n, DIM), np.float32)
    for start in range(0, n, 100_000):
        chunk = np.sqrt(rng.dirichlet(np.full(DIM, 0.05), size=min(100_000, n - start)))
        out[start : start + len(chunk)] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def percentiles(samples: list[float]) -> tuple[float, float]:
    return float(np.percentile(samples, 50) * 1000), float(np.percentile(samples, 99) * 1000)


def timed(fn, queries: np.ndarray) -> tuple[list[float], list]:
    times, results = [], []
    for query in queries:
        started = time.perf_counter()
        results.append(fn(query.reshape(1, -1)))
        times.append(time.perf_counter() - started)
    return times, results


def fill_store(engine: SearchEngine, vectors: np.ndarray, shard: int, rng: np.random.Generator) -> None:
    """Write tracks and vectors straight into the store's tables (what a million records would)."""
    db = sqlite3.connect(engine.store.crop_dir.parent / "features.sqlite")
    now = time.time()
    cameras = rng.integers(0, CAMERAS, len(vectors))
    families = np.array(["person", "vehicle", "non_motor"])[rng.integers(0, 3, len(vectors))]
    with db:
        db.executemany(
            "INSERT INTO tracks (key, camera_id, department, tracker_id, family, class_name, first_seen,"
            " last_seen, ended, revision, crop_revision, crop_path, colours, scope, shard)"
            " VALUES (?, ?, 'police', ?, ?, 'x', ?, ?, 1, 0, 0, 'x.jpg', '[]', '[\"police\"]', ?)",
            ((f"t{i}", f"cam-{cameras[i]}", i, families[i], now - 3600, now - 3000, shard)
             for i in range(len(vectors))),
        )  # fmt: skip
        db.executemany(
            "INSERT INTO vectors (id, track_key, crop_revision, shard, embedding) VALUES (?, ?, 0, ?, ?)",
            ((i + 1, f"t{i}", shard, vectors[i].tobytes()) for i in range(len(vectors))),
        )
        db.executemany(  # each track's sharing scope, as recorded (FeatureStore.apply)
            "INSERT INTO track_scope (department, track_key) VALUES ('police', ?)",
            ((f"t{i}",) for i in range(len(vectors))),
        )
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=QUERIES)
    parser.add_argument("--kind", choices=["hnsw", "ivf"], default=SearchConfig().approximate_index)
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny run (3,000 vectors) that checks the benchmark works"
    )
    args = parser.parse_args()
    search = SearchConfig(approximate_index=args.kind)
    if args.smoke:  # the smallest shard that still turns approximate
        args.vectors, args.queries = 3 * SMOKE_EXACT_MAX_VECTORS, 50
        search.exact_max_vectors = SMOKE_EXACT_MAX_VECTORS
    rng = np.random.default_rng(0)
    vectors = synthetic_vectors(args.vectors, rng)
    ids = np.arange(1, args.vectors + 1, dtype=np.int64)
    picks = rng.choice(args.vectors, args.queries, replace=False)
    queries = vectors[picks] + rng.normal(0, 0.02, (args.queries, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    with tempfile.TemporaryDirectory() as tmp:
        config = RetinaConfig(features={"embedder": "colour"}, search=search)
        engine = SearchEngine(Path(tmp), config)
        shard = engine.store.shard_of(time.time())

        before = rss_mb()
        started = time.perf_counter()
        exact = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
        exact.add_with_ids(vectors, ids)
        exact_build, exact_mb = time.perf_counter() - started, rss_mb() - before

        index = ShardedIndex(Path(tmp) / "bench", DIM, "colour@1", config.search)
        before = rss_mb()
        started = time.perf_counter()
        index.build_shard(shard, ids, vectors)
        approx_build, approx_mb = time.perf_counter() - started, rss_mb() - before
        kind = index.stats()[0][1]

        exact_times, exact_hits = timed(lambda q: exact.search(q, K)[1][0], queries)
        approx_times, approx_hits = timed(lambda q: [i for i, _ in index.search(q, K)], queries)
        recall = np.mean(
            [len(set(a) & set(e.tolist())) / K for a, e in zip(approx_hits, exact_hits, strict=True)]
        )

        fill_store(engine, vectors, shard, rng)
        engine.index = index
        narrow = Filters(camera_ids=frozenset({"cam-7"}))
        wide = Filters(camera_ids=frozenset(f"cam-{c}" for c in range(100)), families=frozenset({"vehicle"}))
        narrow_times, _ = timed(lambda q: engine.search(q, K, "police", narrow), queries[:50])
        wide_times, wide_hits = timed(lambda q: engine.search(q, K, "police", wide), queries[:50])
        wide_ok = all(
            h.track.family == "vehicle" and int(h.track.camera_id[4:]) < 100 for r in wide_hits for h in r
        )

    e50, e99 = percentiles(exact_times)
    a50, a99 = percentiles(approx_times)
    n50, n99 = percentiles(narrow_times)
    w50, w99 = percentiles(wide_times)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, faiss {faiss.__version__}")
    print(
        f"| index ({args.vectors:,} x {DIM}-d) | build s | memory MB | p50 ms (k={K}) | p99 ms | recall@10 |"
    )
    print("|---|---|---|---|---|---|")
    print(f"| exact Flat (baseline) | {exact_build:.1f} | {exact_mb:.0f} | {e50:.1f} | {e99:.1f} | 1.00 |")
    print(f"| {kind} (retina shard) | {approx_build:.1f} | {approx_mb:.0f} | {a50:.2f} | {a99:.2f} |", end="")
    print(f" {recall:.3f} |")
    print(f"| {kind} + filter: 1 camera of {CAMERAS} | | | {n50:.1f} | {n99:.1f} | exact |")
    print(f"| {kind} + filter: 100 cameras, vehicles | | | {w50:.1f} | {w99:.1f} | filters held: {wide_ok} |")
    print(f"speed-up of {kind} over exact search (p50): {e50 / a50:.1f}x")
    print(
        json.dumps(
            {"kind": kind, "recall_at_10": round(float(recall), 4), "speedup_p50": round(e50 / a50, 1)}
        )
    )


if __name__ == "__main__":
    main()
