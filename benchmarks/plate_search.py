"""Search by plate (车牌检索) on a feature store holding many plated vehicle tracks.

The store is filled straight into its tables with ``--tracks`` random plates (half of them in the
department searched), plus 浙B2V9L7 and its misread 浙82V9L7. Each query is timed (median and
worst of ``--repeats``) through :meth:`FeatureStore.plate_tracks` — retina's query, driven by the
plate index — and through the baseline measured in the same run: read every plate the department
may see and match it in Python (what a store without a plate index must do).

Usage (about 30 s):
    python benchmarks/plate_search.py [--tracks 100000] [--repeats 20]
    python benchmarks/plate_search.py --smoke      # 2,000 tracks: checks it works
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from retina.services.core.plate_text import PROVINCES, canonical, plate_query
from retina.services.search.store import FeatureStore, Filters

LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
CHARACTERS = LETTERS + "0123456789"
DEPARTMENT = "traffic-police"
QUERIES = ("浙B2V9L7", "浙B2V9L?", "浙B*", "*9L7")
LIMIT = 20


def fill(path: Path, tracks: int, seed: int = 1) -> None:
    """Write ``tracks`` plated vehicle tracks (and two known ones) into the store's tables."""
    rng = random.Random(seed)
    now = time.time()
    plates = [
        rng.choice(PROVINCES) + rng.choice(LETTERS) + "".join(rng.choices(CHARACTERS, k=5))
        for _ in range(tracks)
    ]
    plates += ["浙B2V9L7", "浙82V9L7"]
    rows = [
        (
            f"cam-{i % 50}:{i}",
            f"cam-{i % 50}",
            DEPARTMENT if i % 2 or i >= tracks else "urban-management",
            i,
            now - i,
        )
        for i in range(len(plates))
    ]
    db = sqlite3.connect(path)
    with db:
        db.executemany(
            "INSERT INTO tracks (key, camera_id, department, tracker_id, family, class_name, first_seen,"
            " last_seen, ended, revision, scope, shard)"
            " VALUES (?, ?, ?, ?, 'vehicle', 'car', ?, ?, 1, 0, ?, 0)",
            ((key, camera, department, n, seen, seen + 30, json.dumps([department]))
             for key, camera, department, n, seen in rows),
        )  # fmt: skip
        db.executemany(
            "INSERT INTO track_scope (department, track_key) VALUES (?, ?)", ((r[2], r[0]) for r in rows)
        )
        db.executemany(
            "INSERT INTO track_plates VALUES (?, ?, ?, 'blue', 0.9, 3)",
            ((row[0], plate, canonical(plate)) for row, plate in zip(rows, plates, strict=True)),
        )
    db.close()


def scan_baseline(path: Path) -> Callable[[str], list[str]]:
    """The baseline: every plate of the department's scope, matched in Python (tolerant)."""
    db = sqlite3.connect(path)

    def search(text: str) -> list[str]:
        pattern = plate_query(text).tolerant
        rows = db.execute(
            "SELECT p.track_key, p.canonical FROM track_scope s"
            " JOIN track_plates p ON p.track_key = s.track_key WHERE s.department = ?",
            (DEPARTMENT,),
        ).fetchall()
        return [key for key, form in rows if fnmatch.fnmatchcase(form, pattern)][:LIMIT]

    return search


def timed(search: Callable[[str], list], text: str, repeats: int) -> tuple[float, float, int]:
    """(median ms, worst ms, hits) of ``repeats`` calls."""
    search(text)  # warm
    times, hits = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        hits = len(search(text))
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times), hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="2,000 tracks, 3 repeats")
    args = parser.parse_args()
    if args.smoke:
        args.tracks, args.repeats = 2_000, 3
    with tempfile.TemporaryDirectory() as folder:
        store = FeatureStore(Path(folder) / "features.sqlite", Path(folder) / "crops", 86_400)
        fill(Path(folder) / "features.sqlite", args.tracks)
        baseline = scan_baseline(Path(folder) / "features.sqlite")

        def retina(text: str) -> list:
            return store.plate_tracks(DEPARTMENT, plate_query(text), Filters(), LIMIT)

        print(f"{args.tracks:,} plated tracks; {platform.machine()}, {os.cpu_count()} CPU cores")
        print(
            "| query | baseline: scan, p50 / max ms | retina, p50 / max ms | hits | ratio baseline / retina |"
        )
        print("|---|---|---|---|---|")
        for text in QUERIES:
            base_p50, base_max, base_hits = timed(baseline, text, args.repeats)
            p50, worst, hits = timed(retina, text, args.repeats)
            assert hits == base_hits, f"{text}: retina found {hits}, the scan {base_hits}"
            print(
                f"| `{text}` | {base_p50:.2f} / {base_max:.2f} | {p50:.2f} / {worst:.2f} | {hits} |"
                f" {base_p50 / max(p50, 1e-6):.1f}x |",
                flush=True,
            )
        store.close()


if __name__ == "__main__":
    main()
