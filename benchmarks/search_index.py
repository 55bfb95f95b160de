"""Search at city scale: 1,000,000 track vectors in one daily shard, as the search service holds them,
against exact search under the same filters, in the same run.

Vectors are colour-histogram-like (square roots of sparse Dirichlet histograms, 256-d, the default
``colour`` embedder's shape), one per track; tracks are spread over 1,000 cameras, three families
and one day. Queries are gallery vectors with noise added (a new photo of a seen object), one at a
time (as a dispatcher's search arrives), k=10. The store is filled in a fresh data directory and the
search service's engine loads it (``SearchEngine.load``: reads the store, builds the approximate
index). Each row of the table is one query set:

- exact search (the baseline): a ``Flat`` index over every vector, the filter applied as an
  ``IDSelectorBitmap`` computed from the tracks' attributes (included in the time);
- retina: ``SearchEngine.search`` — the index selects the rows that pass the department's scope and
  the filters, scores them exactly when there are at most ``exact_filtered_max_vectors`` (else IVF
  with an ID selector), groups hits per track and checks them against the store;
- recall@10: the share of the exact top 10 (under the same filter) that retina returns.

Usage (2 minutes on 2 quiet cores, up to 7 under load, and 4 GB of memory at the default size):
    python benchmarks/search_index.py [--vectors 1000000] [--kind ivf|hnsw] [--nprobe 768]
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
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from retina.services.core.config import RetinaConfig, SearchConfig
from retina.services.search.engine import SearchEngine
from retina.services.search.store import Filters

DIM = 256
CAMERAS = 1000
FAMILIES = ("person", "vehicle", "non_motor")
QUERIES = 200
SMOKE_EXACT_MAX_VECTORS = 1000  # the least search.exact_max_vectors allows
K = 10
DAY = 86400.0


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def synthetic_vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((n, DIM), np.float32)
    for start in range(0, n, 100_000):
        chunk = np.sqrt(rng.dirichlet(np.full(DIM, 0.05), size=min(100_000, n - start)))
        out[start : start + len(chunk)] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def fill_store(data_dir: Path, vectors: np.ndarray, cameras, families, first_seen, shard: int) -> None:
    """Write tracks and vectors straight into the store's tables (what a million records would)."""
    db = sqlite3.connect(data_dir / "features.sqlite")
    with db:
        db.executemany(
            "INSERT INTO tracks (key, camera_id, department, tracker_id, family, class_name, first_seen,"
            " last_seen, ended, revision, crop_revision, crop_path, colours, scope, shard)"
            " VALUES (?, ?, 'police', ?, ?, 'x', ?, ?, 1, 0, 0, 'x.jpg', '[]', '[\"police\"]', ?)",
            ((f"t{i}", f"cam-{cameras[i]}", i, FAMILIES[families[i]], first_seen[i], first_seen[i] + 60,
              shard) for i in range(len(vectors))),
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


def timed(fn: Callable[[np.ndarray], list[int]], queries: np.ndarray) -> tuple[list[float], list[list[int]]]:
    """Each query alone; (seconds, vector ids found) per query."""
    times, results = [], []
    for query in queries:
        started = time.perf_counter()
        results.append(fn(query.reshape(1, -1)))
        times.append(time.perf_counter() - started)
    return times, results


def ms(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=QUERIES)
    defaults = SearchConfig()
    parser.add_argument("--kind", choices=["hnsw", "ivf"], default=defaults.approximate_index)
    parser.add_argument("--nprobe", type=int, default=defaults.ivf_nprobe, help="search.ivf_nprobe")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="faiss threads")
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny run (3,000 vectors) that checks the benchmark works"
    )
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    search = SearchConfig(approximate_index=args.kind, ivf_nprobe=args.nprobe)
    if args.smoke:  # the smallest shard that still turns approximate
        args.vectors, args.queries = 3 * SMOKE_EXACT_MAX_VECTORS, 50
        search.exact_max_vectors = SMOKE_EXACT_MAX_VECTORS
    rng = np.random.default_rng(0)
    vectors = synthetic_vectors(args.vectors, rng)
    cameras = rng.integers(0, CAMERAS, args.vectors)
    families = rng.integers(0, len(FAMILIES), args.vectors)
    day = (time.time() // DAY - 1) * DAY  # yesterday: one daily shard
    first_seen = np.sort(day + rng.uniform(0, DAY - 120, args.vectors))  # ids grow with time, as recorded
    picks = rng.choice(args.vectors, args.queries, replace=False)
    queries = vectors[picks] + rng.normal(0, 0.02, (args.queries, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    hour = day + 14 * 3600  # 14:00-15:00
    cases = {  # name: (filters, which tracks pass them)
        "no filter": (Filters(), np.ones(args.vectors, bool)),
        f"1 camera of {CAMERAS}": (Filters(camera_ids=frozenset({"cam-7"})), cameras == 7),
        "100 cameras, vehicles": (
            Filters(camera_ids=frozenset(f"cam-{c}" for c in range(100)), families=frozenset({"vehicle"})),
            (cameras < 100) & (families == FAMILIES.index("vehicle")),
        ),
        "1 hour of the day": (
            Filters(start=hour, end=hour + 3600),
            (first_seen + 60 >= hour) & (first_seen <= hour + 3600),
        ),
    }

    with tempfile.TemporaryDirectory() as tmp:
        config = RetinaConfig(features={"embedder": "colour"}, search=search)
        engine = SearchEngine(Path(tmp), config)
        shard = engine.store.shard_of(day)
        fill_store(Path(tmp), vectors, cameras, families, first_seen, shard)

        before = rss_mb()
        started = time.perf_counter()
        exact = faiss.IndexFlatIP(DIM)  # rows = vector id - 1
        exact.add(vectors)
        exact_build, exact_mb = time.perf_counter() - started, rss_mb() - before
        before = rss_mb()
        started = time.perf_counter()
        report = engine.load()  # reads the store, builds the approximate index
        retina_build, retina_mb = time.perf_counter() - started, rss_mb() - before
        assert report.rebuilt, "the engine should have built its shard from the store"
        kind = engine.index.stats()[0][1]

        def exact_search(name: str) -> Callable[[np.ndarray], list[int]]:
            def run(query: np.ndarray) -> list[int]:
                mask = cases[name][1]
                bitmap = np.packbits(mask, bitorder="little")
                params = faiss.SearchParameters(sel=faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap)))
                return [int(i) + 1 for i in exact.search(query, K, params=params)[1][0] if i >= 0]

            return run

        def retina_search(name: str) -> Callable[[np.ndarray], list[int]]:
            def run(query: np.ndarray) -> list[int]:
                hits = engine.search(query, K, "police", cases[name][0])
                return [int(h.track.key[1:]) + 1 for h in hits]

            return run

        rows = []
        for name, (_, mask) in cases.items():
            exact_times, exact_hits = timed(exact_search(name), queries)
            retina_times, retina_hits = timed(retina_search(name), queries)
            recall = np.mean(
                [len(set(r) & set(e)) / max(1, len(e)) for r, e in zip(retina_hits, exact_hits, strict=True)]
            )
            held = all(mask[i - 1] for hits in retina_hits for i in hits)
            rows.append((name, int(mask.sum()), exact_times, retina_times, float(recall), held))
        engine.store.close()

    threads = f"{args.threads} faiss threads"
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, faiss {faiss.__version__}, {threads}")
    settings = (
        f"search.ivf_nprobe {args.nprobe}, rerank_factor {search.rerank_factor},"
        f" exact_filtered_max_vectors {search.exact_filtered_max_vectors}"
    )
    print(f"index: {kind} ({settings}); one query at a time, k={K}")
    print(f"build: exact Flat {exact_build:.1f} s, {exact_mb:.0f} MB; retina (load from the store +"
          f" {kind}) {retina_build:.1f} s, {retina_mb:.0f} MB")  # fmt: skip
    print(
        f"| {args.vectors:,} x {DIM}-d, filter | vectors passing | exact p50 ms | exact p99 ms"
        " | retina p50 ms | retina p99 ms | retina recall@10 vs exact | filters held |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, passing, exact_times, retina_times, recall, held in rows:
        print(
            f"| {name} | {passing:,} | {ms(exact_times, 50):.1f} | {ms(exact_times, 99):.1f}"
            f" | {ms(retina_times, 50):.2f} | {ms(retina_times, 99):.2f} | {recall:.3f} | {held} |"
        )
    speedup = ms(rows[0][2], 50) / ms(rows[0][3], 50)
    print(f"speed-up of retina over exact search, no filter (p50): {speedup:.1f}x")
    print(
        json.dumps(
            {
                "kind": kind,
                "recall_at_10": {name: round(recall, 4) for name, _, _, _, recall, _ in rows},
                "p99_ms": {name: round(ms(times, 99), 2) for name, _, _, times, _, _ in rows},
                "filters_held": all(held for *_, held in rows),
                "speedup_p50": round(speedup, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
