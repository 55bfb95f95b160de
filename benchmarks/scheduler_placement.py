"""The scheduler at county scale, simulated (no video): 10,000 cameras on 200 GPUs across 50 nodes.

Measured in one run, for retina's placement (``services/scheduler/placement.py``) and, as the
baseline, a naive round-robin placement recomputed from scratch (what a scheduler without
stability or affinity would do):

- time to place every camera, and the load balance (busiest device's load / mean load);
- after 10 % of the nodes fail: time to re-place, cameras moved, balance after.

Usage (a few seconds):
    python benchmarks/scheduler_placement.py [--cameras 10000 --nodes 50 --gpus-per-node 4]
"""

from __future__ import annotations

import argparse
import platform
import random
import time
from collections import defaultdict

from services.scheduler.placement import CameraDemand, Device, Placement, Worker, place

MODELS = {"yolov8n@640": (200, 400), "yolo11n@320": (500, 900)}  # capacity range per GPU, fps


def cluster(nodes: int, gpus: int, rng: random.Random) -> list[Worker]:
    return [
        Worker(
            f"node-{n:03d}",
            [
                Device(f"node-{n:03d}", f"cuda:{g}", {m: rng.uniform(*span) for m, span in MODELS.items()})
                for g in range(gpus)
            ],
            decode_capacity=rng.uniform(9000, 12000),  # NVDEC on 4 GPUs plus the CPUs
        )
        for n in range(nodes)
    ]


def cameras(count: int, rng: random.Random) -> list[CameraDemand]:
    return [
        CameraDemand(
            f"cam-{i:05d}",
            rng.choices(list(MODELS), weights=[3, 1])[0],
            rng.choice([1, 2, 2, 5]),
            rng.choice([52.0, 23.0]),  # 1080p or 720p at 25 fps
        )
        for i in range(count)
    ]


def round_robin(workers: list[Worker], demands: list[CameraDemand]) -> dict[str, Placement]:
    """The baseline: cameras dealt to live devices in turn, ignoring models, budgets and history."""
    devices = [Placement(w.worker_id, d.device_id) for w in workers if w.alive for d in w.devices]
    return {c.camera_id: devices[i % len(devices)] for i, c in enumerate(demands)}


def balance(workers: list[Worker], demands: list[CameraDemand], assignments: dict[str, Placement]) -> float:
    capacity = {(w.worker_id, d.device_id): d.capacity_fps for w in workers for d in w.devices}
    load: dict[tuple[str, str], float] = defaultdict(float)
    for camera in demands:
        p = assignments.get(camera.camera_id)
        if p is not None:
            load[(p.worker_id, p.device_id)] += (
                camera.analysis_fps / capacity[(p.worker_id, p.device_id)][camera.model_key]
            )
    live = [load[(w.worker_id, d.device_id)] for w in workers if w.alive for d in w.devices]
    mean = sum(live) / len(live)
    return max(live) / mean


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cameras", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--gpus-per-node", type=int, default=4)
    parser.add_argument("--fail", type=float, default=0.1, help="share of nodes that fail")
    args = parser.parse_args()
    rng = random.Random(7)
    workers = cluster(args.nodes, args.gpus_per_node, rng)
    demands = cameras(args.cameras, rng)

    started = time.perf_counter()
    first = place(workers, demands)
    place_s = time.perf_counter() - started
    started = time.perf_counter()
    baseline_first = round_robin(workers, demands)
    baseline_place_s = time.perf_counter() - started

    failed = {w.worker_id for w in rng.sample(workers, int(args.nodes * args.fail))}
    survivors = [
        Worker(w.worker_id, w.devices, w.decode_capacity, alive=w.worker_id not in failed) for w in workers
    ]
    orphaned = sum(1 for p in first.assignments.values() if p.worker_id in failed)
    started = time.perf_counter()
    second = place(survivors, demands, first.assignments)
    replace_s = time.perf_counter() - started
    baseline_second = round_robin(survivors, demands)
    baseline_moved = sum(1 for c, p in baseline_second.items() if baseline_first[c] != p)

    gpus = args.nodes * args.gpus_per_node
    print(f"machine: {platform.machine()}; {args.cameras:,} cameras, {gpus} GPUs on {args.nodes} nodes")
    placed = len(first.assignments)
    print(f"{placed:,} placed, {len(first.unplaced)} unplaced; mean device load {first.mean_load:.2f}")
    print(f"{len(failed)} nodes fail, holding {orphaned:,} cameras")
    print("| placement | place all, s | max/mean load | re-place after failure, s | moved | max/mean after |")
    print("|---|---|---|---|---|---|")
    print(
        f"| baseline: round-robin from scratch | {baseline_place_s:.3f} | "
        f"{balance(workers, demands, baseline_first):.2f} | {baseline_place_s:.3f} | {baseline_moved:,} | "
        f"{balance(survivors, demands, baseline_second):.2f} |"
    )
    print(
        f"| retina (`placement.place`) | {place_s:.2f} | {first.max_over_mean:.2f} | {replace_s:.2f} | "
        f"{len(second.moved):,} | {second.max_over_mean:.2f} |"
    )
    print(f"cameras moved, retina / baseline: {len(second.moved) / max(baseline_moved, 1):.2f}")
    print(f"unplaced after the failure: {len(second.unplaced)}")


if __name__ == "__main__":
    main()
