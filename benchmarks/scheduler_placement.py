"""The scheduler at county scale, simulated (no video): 10,000 cameras on 200 GPUs across 50 nodes.

Measured in one run, for retina's placement (``services/scheduler/placement.py``) and, as the
baseline, a naive round-robin placement recomputed from scratch (what a scheduler without stability
or affinity does: cameras dealt to live GPUs in turn, ignoring models and budgets):

- time to place every camera; load balance (busiest GPU's load / mean load); GPUs over budget;
  distinct models loaded per GPU (fewer: bigger batches, less memory);
- after 10 % of the nodes fail: time to re-place, cameras moved, balance after.

GPUs get a capacity per model drawn at random (200-400 fps); cameras get 1, 2 or 5 analysis fps,
one of three models and a 1080p or 720p stream; demand is about two thirds of capacity.

Usage (a few seconds):
    python benchmarks/scheduler_placement.py [--cameras 10000 --nodes 50 --gpus-per-node 4]
    python benchmarks/scheduler_placement.py --smoke   # 300 cameras on 5 nodes: checks it works
"""

from __future__ import annotations

import argparse
import platform
import random
import time
from collections import defaultdict

from retina.services.scheduler.placement import (
    Assignment,
    CameraDemand,
    Device,
    Placement,
    WorkerCapacity,
    place,
)

# Model key → (share of cameras, range of a GPU's capacity for it in fps).
MODELS = {
    "yolov8n.onnx@640": (0.6, (250.0, 400.0)),
    "yolo11n.onnx@640": (0.3, (220.0, 350.0)),
    "yolov8s.onnx@640": (0.1, (200.0, 300.0)),
}
ANALYSIS_FPS = {1.0: 0.15, 2.0: 0.2, 5.0: 0.65}  # fps → share of cameras
DECODE_COST = {"1080p": 25 * 1920 * 1080 / 1e6, "720p": 25 * 1280 * 720 / 1e6}  # megapixel-frames/s
GPU_MAX_MODELS = 2


def simulated_cluster(nodes: int, gpus_per_node: int, rng: random.Random) -> list[WorkerCapacity]:
    """Nodes with GPUs of varied measured capacity, and a decode budget per node."""
    workers = []
    for n in range(nodes):
        worker_id = f"node-{n:03d}"
        devices = [
            Device(
                worker_id,
                f"cuda:{g}",
                {model: round(rng.uniform(*span), 1) for model, (_, span) in MODELS.items()},
                memory_mb=24_576,
                max_models=GPU_MAX_MODELS,
            )
            for g in range(gpus_per_node)
        ]
        workers.append(WorkerCapacity(worker_id, devices, decode_capacity=rng.uniform(12_000, 14_000)))
    return workers


def simulated_cameras(count: int, rng: random.Random) -> list[CameraDemand]:
    models = list(MODELS)
    model_weights = [share for share, _ in MODELS.values()]
    return [
        CameraDemand(
            f"cam-{i:05d}",
            rng.choices(models, weights=model_weights)[0],
            rng.choices(list(ANALYSIS_FPS), weights=list(ANALYSIS_FPS.values()))[0],
            DECODE_COST[rng.choice(["1080p", "720p"])],
        )
        for i in range(count)
    ]


def round_robin(workers: list[WorkerCapacity], cameras: list[CameraDemand]) -> Assignment:
    """The baseline: cameras, in id order, dealt to live devices in turn; no models, budgets or history."""
    devices = [
        Placement(w.worker_id, d.device_id)
        for w in sorted(workers, key=lambda w: w.worker_id)
        if w.alive
        for d in w.devices
    ]
    ordered = sorted(cameras, key=lambda c: c.camera_id)
    return {c.camera_id: devices[i % len(devices)] for i, c in enumerate(ordered)}


def measure(
    workers: list[WorkerCapacity], cameras: list[CameraDemand], assignments: Assignment
) -> dict[str, float]:
    """Balance and budget figures of any assignment, computed the same way for retina and baseline."""
    capacity = {(w.worker_id, d.device_id): d.capacity_fps for w in workers if w.alive for d in w.devices}
    load: dict[tuple[str, str], float] = dict.fromkeys(capacity, 0.0)
    models: dict[tuple[str, str], set[str]] = defaultdict(set)
    for camera in cameras:
        where = assignments.get(camera.camera_id)
        if where is not None:
            key = (where.worker_id, where.device_id)
            load[key] += camera.analysis_fps / capacity[key][camera.model_key]
            models[key].add(camera.model_key)
    mean = sum(load.values()) / len(load)
    used = [len(m) for m in models.values()]
    return {
        "max_over_mean": max(load.values()) / mean,
        "over_budget": sum(1 for v in load.values() if v > 1.0 + 1e-9),
        "models_per_gpu": sum(used) / len(used),
    }


def demand_share(workers: list[WorkerCapacity], cameras: list[CameraDemand]) -> float:
    """Total inference demand over total capacity (each camera against the mean GPU for its model)."""
    devices = [d for w in workers for d in w.devices]
    mean_capacity = {m: sum(d.capacity_fps[m] for d in devices) / len(devices) for m in MODELS}
    return sum(c.analysis_fps / mean_capacity[c.model_key] for c in cameras) / len(devices)


def moved_between(before: Assignment, after: Assignment) -> int:
    return sum(1 for camera_id, where in after.items() if camera_id in before and before[camera_id] != where)


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cameras", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--gpus-per-node", type=int, default=4)
    parser.add_argument("--fail", type=float, default=0.1, help="share of nodes that fail (default 0.1)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="a tiny run (300 cameras, 5 nodes)")
    args = parser.parse_args()
    if args.smoke:
        args.cameras, args.nodes = 300, 5

    rng = random.Random(args.seed)
    workers = simulated_cluster(args.nodes, args.gpus_per_node, rng)
    cameras = simulated_cameras(args.cameras, rng)
    failed = {w.worker_id for w in rng.sample(workers, max(1, round(args.nodes * args.fail)))}
    survivors = [
        WorkerCapacity(w.worker_id, w.devices, w.decode_capacity, alive=w.worker_id not in failed)
        for w in workers
    ]

    first, place_s = timed(place, workers, cameras)
    second, replace_s = timed(place, survivors, cameras, first.assignments)
    baseline_first, baseline_place_s = timed(round_robin, workers, cameras)
    baseline_second, baseline_replace_s = timed(round_robin, survivors, cameras)

    orphaned = sum(1 for where in first.assignments.values() if where.worker_id in failed)
    ours_moved = len(second.moved)
    baseline_moved = moved_between(baseline_first, baseline_second)
    ours = (measure(workers, cameras, first.assignments), measure(survivors, cameras, second.assignments))
    base = (measure(workers, cameras, baseline_first), measure(survivors, cameras, baseline_second))

    gpus = args.nodes * args.gpus_per_node
    print(
        f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}: "
        f"{args.cameras:,} cameras, {gpus} GPUs on {args.nodes} nodes, "
        f"demand {demand_share(workers, cameras):.0%} of capacity (seed {args.seed})"
    )
    print(
        f"retina: {len(first.assignments):,} placed, {len(first.unplaced)} unplaced; "
        f"{len(failed)} nodes fail holding {orphaned:,} cameras; "
        f"after re-placing {len(second.unplaced)} unplaced"
    )
    print()
    print(
        "| placement | place all, s | max/mean load | GPUs over budget | models per GPU "
        f"| re-place after {len(failed)} of {args.nodes} nodes fail, s | cameras moved | max/mean after |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = [
        ("baseline: round-robin from scratch", baseline_place_s, base, baseline_replace_s, baseline_moved),
        ("retina `placement.place`", place_s, ours, replace_s, ours_moved),
    ]
    for name, place_time, (before, after), replace_time, moved in rows:
        print(
            f"| {name} | {place_time:.3f} | {before['max_over_mean']:.2f} | {before['over_budget']} "
            f"| {before['models_per_gpu']:.2f} | {replace_time:.3f} | {moved:,} "
            f"| {after['max_over_mean']:.2f} |"
        )
    print()
    print(
        f"cameras moved after the failure, retina / baseline: {ours_moved:,} / {baseline_moved:,} = "
        f"{ours_moved / max(baseline_moved, 1):.3f} (the failed nodes held {orphaned:,})"
    )


if __name__ == "__main__":
    main()
