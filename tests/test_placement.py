"""Placement of cameras on workers' devices: budgets, affinity, stability, failover, rebalancing,
bad input and determinism (``services/scheduler/placement.py``; pure, no I/O)."""

from __future__ import annotations

import math
import random
from collections import defaultdict

import pytest

from retina.services.scheduler.placement import (
    CameraDemand,
    Device,
    Placement,
    PlacementResult,
    WorkerCapacity,
    demand_ratio,
    place,
    validate_worker,
)

M1, M2, M3 = "yolov8n.onnx@640", "yolo11n.onnx@320", "yolov8s.onnx@640"
DECODE_1080P = 25 * 2.0736  # megapixel-frames per second


def gpu_workers(
    count: int, gpus: int = 2, capacity: float = 100.0, decode: float = 10_000.0, prefix: str = "w"
) -> list[WorkerCapacity]:
    """``count`` workers of ``gpus`` GPUs, each GPU running M1 at ``capacity`` fps and M2 at twice that."""
    return [
        WorkerCapacity(
            f"{prefix}{i}",
            [Device(f"{prefix}{i}", f"cuda:{g}", {M1: capacity, M2: 2 * capacity}) for g in range(gpus)],
            decode,
        )
        for i in range(count)
    ]


def cameras(count: int, model: str = M1, fps: float = 2.0, prefix: str = "cam") -> list[CameraDemand]:
    return [CameraDemand(f"{prefix}-{i:03d}", model, fps, DECODE_1080P) for i in range(count)]


def killed(workers: list[WorkerCapacity], dead: str) -> list[WorkerCapacity]:
    return [
        WorkerCapacity(w.worker_id, w.devices, w.decode_capacity, alive=w.worker_id != dead) for w in workers
    ]


def assert_budgets_hold(
    workers: list[WorkerCapacity], demands: list[CameraDemand], result: PlacementResult
) -> None:
    """Every rule 1 budget, checked from scratch against the raw input."""
    alive = {w.worker_id: w for w in workers if w.alive}
    devices = {(w.worker_id, d.device_id): d for w in alive.values() for d in w.devices}
    by_id = {c.camera_id: c for c in demands}
    load: dict[tuple[str, str], float] = defaultdict(float)
    models: dict[tuple[str, str], set[str]] = defaultdict(set)
    decode: dict[str, float] = defaultdict(float)
    assert set(result.assignments).isdisjoint(result.unplaced)
    assert set(result.assignments) | set(result.unplaced) == set(by_id)
    for camera_id, where in result.assignments.items():
        camera = by_id[camera_id]
        key = (where.worker_id, where.device_id)
        assert key in devices, f"{camera_id} placed on a dead or unknown device {key}"
        capacity = devices[key].capacity_fps[camera.model_key]  # KeyError: a model the device lacks
        assert math.isfinite(capacity) and capacity > 0
        assert camera.pinned_worker in (None, where.worker_id)
        load[key] += camera.analysis_fps / capacity
        models[key].add(camera.model_key)
        decode[where.worker_id] += camera.decode_cost
    for key, value in load.items():
        assert value <= 1.0 + 1e-9, f"{key} loaded {value}"
        assert result.device_load[key] == pytest.approx(value)
        assert len(models[key]) <= devices[key].max_models
    for worker_id, value in decode.items():
        assert value <= alive[worker_id].decode_capacity + 1e-9


def random_cluster(seed: int) -> tuple[list[WorkerCapacity], list[CameraDemand]]:
    """Mixed GPUs and CPU lanes, some lacking a model, some holding one model only, one dead worker,
    tight decode budgets and pinned cameras; more demand than capacity."""
    rng = random.Random(seed)
    workers = []
    for i in range(12):
        worker_id = f"node-{i:02d}"
        devices = []
        for g in range(rng.randint(1, 4)):
            capacity = {m: rng.uniform(40, 160) for m in (M1, M2, M3) if rng.random() < 0.8}
            devices.append(
                Device(
                    worker_id, f"cuda:{g}", capacity or {M1: 50.0}, 16_000, max_models=rng.choice([1, 2, 3])
                )
            )
        devices.append(Device(worker_id, "cpu:0", {M1: rng.uniform(5, 15)}))
        workers.append(WorkerCapacity(worker_id, devices, rng.uniform(2_000, 6_000), alive=i != 5))
    demands = [
        CameraDemand(
            f"cam-{i:04d}",
            rng.choice([M1, M1, M2, M3]),
            rng.choice([1.0, 2.0, 5.0]),
            rng.choice([DECODE_1080P, 23.04]),
            pinned_worker=f"node-{rng.randrange(12):02d}" if rng.random() < 0.05 else None,
        )
        for i in range(900)
    ]
    return workers, demands


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_budgets_hold_on_every_device_of_a_random_medium_instance(seed: int):
    workers, demands = random_cluster(seed)
    first = place(workers, demands)
    assert_budgets_hold(workers, demands, first)
    assert first.unplaced, "the instance has more demand than capacity"
    assert len(first.assignments) > 300
    assert all(where.worker_id != "node-05" for where in first.assignments.values())

    survivors = killed(workers, "node-03")
    second = place(survivors, demands, first.assignments)
    assert_budgets_hold(survivors, demands, second)


def test_cameras_sharing_a_model_land_together():
    ws = gpu_workers(4)  # 8 GPUs
    demands = cameras(40, M1) + cameras(8, M2, prefix="small")
    result = place(ws, demands)
    assert not result.unplaced and result.max_over_mean < 1.25
    with_m1 = {result.assignments[c.camera_id] for c in demands if c.model_key == M1}
    with_m2 = {result.assignments[c.camera_id] for c in demands if c.model_key == M2}
    assert with_m1.isdisjoint(with_m2), "no device loads a second model while others have room"
    assert len(with_m2) == 1, "8 small cameras (8 % of one GPU) share one model instance"
    assert len(with_m1) == 7


def test_a_camera_joins_a_device_running_its_model_rather_than_adding_a_model_elsewhere():
    ws = [
        WorkerCapacity(
            "w0", [Device("w0", "cuda:0", {M1: 100.0, M2: 100.0}), Device("w0", "cuda:1", {M1: 100.0})], 1e4
        )
    ]
    busy = cameras(25, M1)  # half of cuda:1
    light = cameras(1, M2, prefix="other")  # cuda:0 runs M2 only and is nearly idle
    previous = {c.camera_id: Placement("w0", "cuda:1") for c in busy} | {
        "other-000": Placement("w0", "cuda:0")
    }
    # (A threshold this high keeps rebalancing, which would spread cuda:1's load, out of the picture.)
    result = place(ws, [*busy, *light, CameraDemand("new", M1, 2.0, 1.0)], previous, rebalance_threshold=100)
    assert result.assignments["new"] == Placement("w0", "cuda:1")
    assert result.moved == []

    full = cameras(50, M1)  # cuda:1 has no room left: adding M1 to cuda:0 is the only way
    previous = {c.camera_id: Placement("w0", "cuda:1") for c in full} | {
        "other-000": Placement("w0", "cuda:0")
    }
    result = place(ws, [*full, *light, CameraDemand("new", M1, 2.0, 1.0)], previous, rebalance_threshold=100)
    assert result.assignments["new"] == Placement("w0", "cuda:0")


def test_a_device_never_holds_more_models_than_fit_in_its_memory():
    ws = [WorkerCapacity("w0", [Device("w0", "cuda:0", {M1: 100.0, M2: 100.0}, 8_000, max_models=1)], 1e4)]
    result = place(ws, [*cameras(2, M1), *cameras(2, M2, prefix="other")])
    assert sorted(result.assignments) == ["cam-000", "cam-001"]
    assert result.unplaced["other-000"] == (
        f"every device able to run model {M2!r} already holds its max_models models"
    )


def test_adding_one_camera_moves_nothing_else():
    ws = gpu_workers(3)
    demands = cameras(30)
    first = place(ws, demands)
    second = place(ws, [*demands, CameraDemand("cam-new", M1, 2.0, DECODE_1080P)], first.assignments)
    assert second.moved == []
    assert "cam-new" in second.assignments
    assert {c: second.assignments[c] for c in first.assignments} == first.assignments


def test_placing_again_with_the_same_input_changes_nothing():
    workers, demands = random_cluster(4)
    first = place(workers, demands)
    again = place(workers, demands, first.assignments)
    assert again.moved == [] and again.assignments == first.assignments


def test_killing_a_worker_moves_exactly_its_cameras_onto_live_workers():
    ws = gpu_workers(3)
    demands = cameras(30)
    first = place(ws, demands)
    held_by_w1 = sorted(c for c, where in first.assignments.items() if where.worker_id == "w1")
    assert len(held_by_w1) == 10

    survivors = killed(ws, "w1")
    second = place(survivors, demands, first.assignments)
    assert second.moved == held_by_w1
    assert not second.unplaced
    assert all(where.worker_id in ("w0", "w2") for where in second.assignments.values())
    assert_budgets_hold(survivors, demands, second)


def test_a_device_that_shrinks_keeps_the_cameras_that_still_fit():
    ws = gpu_workers(2, gpus=1)
    demands = cameras(20, fps=4.0)  # 10 per GPU: load 0.4
    first = place(ws, demands)
    on_w0 = sorted(c for c, where in first.assignments.items() if where.worker_id == "w0")
    # w0 now fits 7 of its 10
    slower = [WorkerCapacity("w0", [Device("w0", "cuda:0", {M1: 30.0})], 1e4), ws[1]]
    second = place(slower, demands, first.assignments, rebalance_threshold=100)
    assert second.moved == on_w0[7:]
    assert all(second.assignments[c].worker_id == "w1" for c in on_w0[7:])


def test_an_unplaceable_camera_gets_a_reason_naming_model_and_fps():
    ws = [WorkerCapacity("w0", [Device("w0", "cuda:0", {M1: 10.0})], 1e4)]
    demands = [*cameras(3, M1, fps=4.0), CameraDemand("odd", "unknown.onnx@999", 1.0, 1.0)]
    result = place(ws, demands)
    assert sorted(result.assignments) == ["cam-000", "cam-001"]
    assert result.unplaced == {
        "cam-002": f"no device runs model {M1!r} with 4 fps to spare; largest free capacity 2.0 fps",
        "odd": "no live device runs model 'unknown.onnx@999'",
    }

    tight = [WorkerCapacity("w0", [Device("w0", "cuda:0", {M1: 100.0})], decode_capacity=60.0)]
    result = place(tight, cameras(2, M1))
    assert "cam-001" in result.unplaced
    assert "decode budget" in result.unplaced["cam-001"] and M1 in result.unplaced["cam-001"]


def test_bad_capacity_from_one_worker_is_reported_and_the_others_are_still_used():
    ws = gpu_workers(2)
    bad = WorkerCapacity(
        "w-bad",
        [
            Device("w-bad", "cuda:0", {M1: math.nan}),
            Device("w-bad", "cuda:1", {M1: -5.0, M2: math.inf}),
            Device("w-bad", "cuda:2", {M1: 0.0, M2: 300.0}),  # one good entry: stays, runs M2 only
        ],
        1e4,
    )
    must = "must be a positive finite number"
    assert validate_worker(bad) == [
        f"workers[w-bad].devices[cuda:0].capacity_fps[{M1}]: {must}, got nan",
        "workers[w-bad].devices[cuda:0].capacity_fps: no usable entry",
        f"workers[w-bad].devices[cuda:1].capacity_fps[{M2}]: {must}, got inf",
        f"workers[w-bad].devices[cuda:1].capacity_fps[{M1}]: {must}, got -5.0",
        "workers[w-bad].devices[cuda:1].capacity_fps: no usable entry",
        f"workers[w-bad].devices[cuda:2].capacity_fps[{M1}]: {must}, got 0.0",
    ]
    assert validate_worker(gpu_workers(1)[0]) == []

    result = place([*ws, bad], cameras(20, M1))
    assert len(result.assignments) == 20 and not result.unplaced
    assert {where.worker_id for where in result.assignments.values()} == {"w0", "w1"}
    assert set(result.ignored_devices) == {("w-bad", "cuda:0"), ("w-bad", "cuda:1")}
    assert "got nan" in result.ignored_devices[("w-bad", "cuda:0")]
    assert result.input_problems == validate_worker(bad)
    assert ("w-bad", "cuda:2") in result.device_load


def test_a_worker_with_a_bad_decode_budget_is_left_out_whole():
    broken = WorkerCapacity("w-broken", [Device("w-broken", "cuda:0", {M1: 100.0})], decode_capacity=math.nan)
    result = place([*gpu_workers(1), broken], cameras(10))
    assert all(where.worker_id == "w0" for where in result.assignments.values())
    assert result.ignored_devices == {
        ("w-broken", "cuda:0"): "workers[w-broken].decode_capacity: must be a positive finite number, got nan"
    }


def test_a_camera_with_bad_numbers_is_unplaced_and_the_rest_are_placed():
    demands = [
        *cameras(5),
        CameraDemand("zero", M1, 0.0, 1.0),
        CameraDemand("negative", M1, -2.0, 1.0),
        CameraDemand("nan-decode", M1, 2.0, math.nan),
        CameraDemand("cam-000", M1, 2.0, 1.0),  # duplicate id
    ]
    result = place(gpu_workers(1), demands)
    assert sorted(result.assignments) == [f"cam-{i:03d}" for i in range(5)]
    assert result.unplaced == {
        "nan-decode": "decode_cost: must be a finite number >= 0, got nan",
        "negative": "analysis_fps: must be a positive finite number, got -2.0",
        "zero": "analysis_fps: must be a positive finite number, got 0.0",
    }
    assert result.input_problems == ["cameras[cam-000]: duplicate camera id; only the first is used"]


def test_a_pinned_camera_runs_on_its_worker_or_nowhere():
    ws = gpu_workers(3)
    pinned = CameraDemand("pinned", M1, 2.0, 1.0, pinned_worker="w2")
    result = place(ws, [*cameras(6), pinned], {"pinned": Placement("w0", "cuda:0")})
    assert result.assignments["pinned"].worker_id == "w2"
    assert result.moved == ["pinned"]

    result = place(killed(ws, "w2"), [*cameras(6), pinned])
    assert result.unplaced == {"pinned": "pinned to worker 'w2', which is not alive or has no usable device"}


def test_a_joining_worker_takes_some_load_and_most_cameras_stay():
    ws = gpu_workers(2)  # 4 GPUs
    demands = cameras(40)
    first = place(ws, demands)
    assert first.max_over_mean == pytest.approx(1.0)

    grown = [*ws, *gpu_workers(1, prefix="new")]  # 2 idle GPUs join: max/mean is now 1.5
    second = place(grown, demands, first.assignments)
    assert 0 < len(second.moved) <= len(demands) // 4
    assert all(second.assignments[c].worker_id == "new0" for c in second.moved)
    assert second.max_over_mean <= 1.25 < 1.5
    assert_budgets_hold(grown, demands, second)

    relaxed = place(grown, demands, first.assignments, rebalance_threshold=2.0)
    assert relaxed.moved == [], "under the threshold nothing moves"


def test_load_figures_cover_idle_devices():
    result = place(gpu_workers(1, gpus=4), cameras(10, fps=4.0))  # 0.4 of one GPU's worth
    assert len(result.device_load) == 4
    assert result.mean_load == pytest.approx(0.1)
    assert result.max_over_mean == pytest.approx(result.max_load / result.mean_load)
    empty = place(gpu_workers(1), [])
    assert empty.assignments == {} and empty.max_load == 0.0 and empty.max_over_mean == 1.0


def test_the_same_input_in_any_order_gives_the_same_result():
    workers, demands = random_cluster(5)
    first = place(workers, demands)
    previous = place(killed(workers, "node-01"), demands, first.assignments)
    rng = random.Random(0)
    shuffled_workers = [
        WorkerCapacity(w.worker_id, rng.sample(w.devices, len(w.devices)), w.decode_capacity, w.alive)
        for w in rng.sample(workers, len(workers))
    ]
    shuffled_demands = rng.sample(demands, len(demands))
    for a, b in [
        (first, place(shuffled_workers, shuffled_demands)),
        (previous, place(killed(shuffled_workers, "node-01"), shuffled_demands, first.assignments)),
    ]:
        assert a.assignments == b.assignments
        assert a.unplaced == b.unplaced
        assert a.moved == b.moved
        assert a.device_load == b.device_load


def test_a_threshold_below_one_is_refused():
    with pytest.raises(ValueError, match="rebalance_threshold"):
        place(gpu_workers(1), cameras(1), rebalance_threshold=0.9)


def test_demand_ratio_counts_unplaced_cameras_and_the_tighter_budget():
    """The autoscaling signal: what every camera would take, placed or not, of the live capacity."""
    workers = gpu_workers(2, gpus=1, capacity=100.0)  # 200 fps of M1 in all
    assert demand_ratio(workers, []) == 0.0
    assert demand_ratio(workers, cameras(50, fps=2.0)) == pytest.approx(0.5)
    # 150 cameras need 300 fps: only 100 fit, the rest are unplaced, and the ratio says 1.5
    demands = cameras(150, fps=2.0)
    result = place(workers, demands)
    assert len(result.unplaced) == 50 and result.max_load == pytest.approx(1.0)
    assert demand_ratio(workers, demands) == pytest.approx(1.5)
    # a dead worker's capacity does not count
    assert demand_ratio(killed(workers, "w0"), cameras(50, fps=2.0)) == pytest.approx(1.0)
    # decoding is the tighter budget: 4 cameras of 1080p on 100 megapixel-frames/s
    tight = gpu_workers(1, gpus=1, capacity=100.0, decode=100.0)
    assert demand_ratio(tight, cameras(4, fps=1.0)) == pytest.approx(4 * DECODE_1080P / 100.0)
    # a model no live device runs, or no live worker at all: unbounded
    assert demand_ratio(workers, cameras(1, model=M3)) == math.inf
    assert demand_ratio([], cameras(1)) == math.inf
    # bad numbers are left out, as place() leaves them out
    bad = CameraDemand("cam-bad", M1, math.nan, DECODE_1080P)
    assert demand_ratio(workers, [*cameras(50, fps=2.0), bad]) == pytest.approx(0.5)
