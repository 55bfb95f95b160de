"""Where each camera runs: a pure, deterministic placement of cameras on workers' devices.

No I/O and no clock: :func:`place` maps workers, cameras and the previous assignments to new ones.
Rules, in order:

1. **Budgets are hard.** A device's *load* (utilisation) is the sum, over its cameras, of the
   camera's ``analysis_fps`` divided by the device's ``capacity_fps`` for that camera's model; it
   never exceeds 1.0. A device never runs more than ``max_models`` distinct models, never a model it
   has no capacity entry for, and a worker's cameras never need more than its ``decode_capacity``.
   Dead workers get nothing.
2. **Stability.** A camera keeps its previous device while that is still valid (worker alive, device
   still reported, budgets still hold, pin respected). Only orphans are placed: new cameras, cameras
   of dead or vanished workers and devices, cameras that no longer fit.
3. **Affinity, then spread.** An orphan goes, in order of preference, to a device already running
   its model (one model instance batches frames across streams), or to an idle device while its
   model holds fewer devices than its *fair share* (devices in proportion to the model's demand, so
   load spreads from the start instead of filling one device at a time); failing those, to any idle
   device; last, to a device running other models. Within the first acceptable group it takes the
   device whose load after placing it is lowest. Pinned cameras go first, then bigger demands first
   (first-fit decreasing), each group in camera-id order.
4. **Rebalance sparingly.** Only when the busiest device's load is over ``rebalance_threshold``
   times the mean: move the biggest camera off the busiest device whose move leaves its target no
   busier than the source becomes, one at a time, until the ratio is under the threshold or the
   busiest device has nothing that helps to move.
5. **Deterministic.** Inputs are ordered by id, ties go to the lowest (worker id, device id), so the
   same input (in any order) gives the same result.
6. **Bad input is contained.** Capacity entries that are not positive finite numbers are dropped, a
   device left with none (or with a bad ``max_models``, ``memory_mb`` or ``worker_id``) and every
   device of a worker with a bad ``decode_capacity`` are left out and reported in
   :attr:`PlacementResult.ignored_devices`; a camera with bad numbers is reported in
   :attr:`PlacementResult.unplaced`. Everything else is placed.

The data types and the input checks live in :mod:`~retina.services.scheduler.placement_types` and
are re-exported here, so callers import everything placement from this module.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping

from retina.services.scheduler.placement_types import (
    UNLIMITED_MODELS,
    Assignment,
    CameraDemand,
    Device,
    DeviceKey,
    Placement,
    PlacementResult,
    WorkerCapacity,
    camera_problem,
    inspect_worker,
    is_positive_finite,
    validate_worker,
)

__all__ = [
    "UNLIMITED_MODELS",
    "Assignment",
    "CameraDemand",
    "Device",
    "DeviceKey",
    "Placement",
    "PlacementResult",
    "WorkerCapacity",
    "demand_ratio",
    "place",
    "validate_worker",
]

_EPS = 1e-9  # float slack on budgets, so a device can be filled exactly to 1.0

# -- the cluster while placing ---------------------------------------------------------------------


class _Cluster:
    """Usable devices (indexed 0..n-1 in (worker id, device id) order) and their loads while placing."""

    def __init__(self, workers: Iterable[WorkerCapacity], result: PlacementResult):
        self.keys: list[DeviceKey] = []
        self.index: dict[DeviceKey, int] = {}
        self.capacity: list[dict[str, float]] = []
        self.max_models: list[int] = []
        self.worker_of: list[str] = []
        self.decode_capacity: dict[str, float] = {}
        alive: dict[str, WorkerCapacity] = {}
        for worker in workers:
            if not worker.alive:
                continue
            if worker.worker_id in alive:
                result.input_problems.append(
                    f"workers[{worker.worker_id}]: duplicate worker id; only the first is used"
                )
                continue
            alive[worker.worker_id] = worker
        for worker_id in sorted(alive):
            worker = alive[worker_id]
            report = inspect_worker(worker)
            result.input_problems += report.problems
            for device_id, why in report.ignored.items():
                result.ignored_devices[(worker_id, device_id)] = why
            for device_id, (device, capacity) in report.usable.items():
                self.index[(worker_id, device_id)] = len(self.keys)
                self.keys.append((worker_id, device_id))
                self.capacity.append(capacity)
                self.max_models.append(device.max_models)
                self.worker_of.append(worker_id)
            if report.usable:
                self.decode_capacity[worker_id] = float(worker.decode_capacity)

        n = len(self.keys)
        self.load: list[float] = [0.0] * n
        self.models: list[dict[str, int]] = [{} for _ in range(n)]  # model → cameras of it on the device
        self.cameras_on: list[set[str]] = [set() for _ in range(n)]
        self.decode_used: dict[str, float] = dict.fromkeys(self.decode_capacity, 0.0)
        self.location: dict[str, int] = {}  # camera id → device index
        self.by_model: dict[str, list[int]] = defaultdict(list)  # devices able to run a model, in order
        for d, capacity in enumerate(self.capacity):
            for model in capacity:
                self.by_model[model].append(d)
        self.running: dict[str, set[int]] = defaultdict(set)  # devices running a model now
        self.idle: set[int] = set(range(n))  # devices running nothing
        self.fair_share: dict[str, int] = {}
        self.mean_capacity = {
            model: sum(self.capacity[d][model] for d in devices) / len(devices)
            for model, devices in self.by_model.items()
        }

    # -- loads ---------------------------------------------------------------------------------------

    def cost(self, camera: CameraDemand, d: int) -> float:
        """The load ``camera`` puts on device ``d``."""
        return camera.analysis_fps / self.capacity[d][camera.model_key]

    def add(self, camera: CameraDemand, d: int) -> None:
        model = camera.model_key
        self.load[d] += self.cost(camera, d)
        count = self.models[d].get(model, 0)
        if count == 0:
            self.running[model].add(d)
            self.idle.discard(d)
        self.models[d][model] = count + 1
        self.decode_used[self.worker_of[d]] += camera.decode_cost
        self.cameras_on[d].add(camera.camera_id)
        self.location[camera.camera_id] = d

    def remove(self, camera: CameraDemand, d: int) -> None:
        model = camera.model_key
        self.load[d] -= self.cost(camera, d)
        self.models[d][model] -= 1
        if self.models[d][model] == 0:
            del self.models[d][model]
            self.running[model].discard(d)
        self.decode_used[self.worker_of[d]] -= camera.decode_cost
        self.cameras_on[d].discard(camera.camera_id)
        del self.location[camera.camera_id]
        if not self.cameras_on[d]:
            self.load[d] = 0.0  # no float residue on an emptied device
            self.idle.add(d)

    def fits(self, camera: CameraDemand, d: int) -> bool:
        """Whether device ``d`` can take ``camera`` within every budget (used for previous placements)."""
        model = camera.model_key
        if model not in self.capacity[d]:
            return False
        worker_id = self.worker_of[d]
        if camera.pinned_worker is not None and camera.pinned_worker != worker_id:
            return False
        if model not in self.models[d] and len(self.models[d]) >= self.max_models[d]:
            return False
        if self.decode_used[worker_id] + camera.decode_cost > self.decode_capacity[worker_id] + _EPS:
            return False
        return self.load[d] + self.cost(camera, d) <= 1.0 + _EPS

    # -- choosing a device ---------------------------------------------------------------------------

    def set_fair_shares(self, cameras: Iterable[CameraDemand]) -> None:
        """Give each model a number of devices in proportion to its demand (at least one)."""
        demand: dict[str, float] = defaultdict(float)  # in units of "one average device"
        for camera in cameras:
            if camera.model_key in self.mean_capacity:
                demand[camera.model_key] += camera.analysis_fps / self.mean_capacity[camera.model_key]
        total = sum(demand.values())
        for model, units in demand.items():
            share = max(1, round(len(self.keys) * units / total))
            self.fair_share[model] = min(share, len(self.by_model[model]))

    def size(self, camera: CameraDemand) -> float:
        """A camera's demand on an average device able to run its model (for first-fit decreasing)."""
        mean = self.mean_capacity.get(camera.model_key)
        return camera.analysis_fps / mean if mean else 0.0

    def candidates(self, camera: CameraDemand) -> list[int]:
        """Devices able to run the camera's model, on its pinned worker if it has one."""
        devices = self.by_model.get(camera.model_key, [])
        if camera.pinned_worker is None:
            return devices
        return [d for d in devices if self.worker_of[d] == camera.pinned_worker]

    def _lowest(
        self, camera: CameraDemand, devices: Iterable[int], limit: float, exclude: int | None
    ) -> tuple[float, int] | None:
        """The (load after placing, device) with the lowest load after, within ``limit`` and the
        decode budget, among ``devices`` (already filtered for model support, pin and model count)."""
        best: tuple[float, int] | None = None
        fps = camera.analysis_fps
        model = camera.model_key
        decode = camera.decode_cost
        for d in devices:
            if d == exclude:
                continue
            after = self.load[d] + fps / self.capacity[d][model]
            if after > limit + _EPS:
                continue
            worker_id = self.worker_of[d]
            if self.decode_used[worker_id] + decode > self.decode_capacity[worker_id] + _EPS:
                continue
            if best is None or (after, d) < best:
                best = (after, d)
        return best

    def choose(self, camera: CameraDemand, *, limit: float = 1.0, exclude: int | None = None) -> int | None:
        """The device for ``camera`` by the affinity rule (module doc, rule 3), or None.

        ``limit`` caps the device's load after placing (1.0: its budget; lower when rebalancing).
        """
        model = camera.model_key
        able = None if camera.pinned_worker is None else set(self.candidates(camera))
        warm: Iterable[int] = self.running.get(model, ())
        if able is not None:
            warm = [d for d in warm if d in able]
        idle = [d for d in self.idle if (model in self.capacity[d] if able is None else d in able)]
        if len(self.running.get(model, ())) < self.fair_share.get(model, 1):
            groups: list[Iterable[int]] = [[*warm, *idle]]  # still opening devices for this model
        else:
            groups = [warm, idle]
        groups.append(  # last resort: a device running other models, if it has room for one more
            d
            for d in (able if able is not None else self.by_model.get(model, ()))
            if self.models[d] and model not in self.models[d] and len(self.models[d]) < self.max_models[d]
        )
        for group in groups:
            best = self._lowest(camera, group, limit, exclude)
            if best is not None:
                return best[1]
        return None

    def why_unplaced(self, camera: CameraDemand) -> str:
        """Why no device can take ``camera``, naming its model and fps."""
        model, need = camera.model_key, camera.analysis_fps
        pinned = camera.pinned_worker
        if pinned is not None and pinned not in self.decode_capacity:
            return f"pinned to worker {pinned!r}, which is not alive or has no usable device"
        devices = self.candidates(camera)
        where = f" on its pinned worker {pinned!r}" if pinned is not None else ""
        if not devices:
            return f"no live device{where} runs model {model!r}"
        open_devices = [
            d for d in devices if model in self.models[d] or len(self.models[d]) < self.max_models[d]
        ]
        if not open_devices:
            return f"every device{where} able to run model {model!r} already holds its max_models models"
        spare = max(max(0.0, 1.0 - self.load[d]) * self.capacity[d][model] for d in open_devices)
        if spare + _EPS >= need:
            return (
                f"devices{where} with {need:g} fps of model {model!r} to spare are on workers without "
                f"{camera.decode_cost:g} megapixel-frames/s of decode budget left"
            )
        shown = math.floor(spare * 10 + 1e-6) / 10  # rounded down: never shown as enough
        return (
            f"no device{where} runs model {model!r} with {need:g} fps to spare; "
            f"largest free capacity {shown:.1f} fps"
        )

    # -- rebalancing ---------------------------------------------------------------------------------

    def rebalance(self, cameras: Mapping[str, CameraDemand], threshold: float) -> None:
        """Move cameras off the busiest device while max/mean load is over ``threshold`` (rule 4).

        Every move leaves both devices below the busiest device's load before it, so the sorted
        loads fall lexicographically and this ends; the move budget is only a safeguard.
        """
        n = len(self.keys)
        if n < 2:
            return
        for _ in range(len(self.location)):
            total = sum(self.load)
            if total <= 0:
                return
            busiest = min(range(n), key=lambda d: (-self.load[d], d))
            if self.load[busiest] * n <= threshold * total + _EPS:
                return
            move = self._best_move_from(busiest, cameras)
            if move is None:
                return
            camera, target = move
            self.remove(camera, busiest)
            self.add(camera, target)

    def _best_move_from(
        self, source: int, cameras: Mapping[str, CameraDemand]
    ) -> tuple[CameraDemand, int] | None:
        """The biggest camera on ``source`` that can move to a device left no busier than ``source``
        is after the move, and that device; cameras alike (same model, fps, decode cost and pin) are
        tried once, by their smallest id."""
        alike: dict[tuple[str, float, float, str | None], CameraDemand] = {}
        for camera_id in self.cameras_on[source]:
            camera = cameras[camera_id]
            shape = (camera.model_key, camera.analysis_fps, camera.decode_cost, camera.pinned_worker)
            held = alike.get(shape)
            if held is None or camera_id < held.camera_id:
                alike[shape] = camera
        level = self.load[source]
        for camera in sorted(alike.values(), key=lambda c: (-self.cost(c, source), c.camera_id)):
            relief = self.cost(camera, source)
            self.remove(camera, source)
            target = self.choose(camera, limit=level - relief, exclude=source)
            self.add(camera, source)
            if target is not None:
                return camera, target
        return None

    def loads(self, cameras: Mapping[str, CameraDemand]) -> dict[DeviceKey, float]:
        """Every device's load, summed afresh (no drift from moves) in camera-id order."""
        totals = [0.0] * len(self.keys)
        for camera_id in sorted(self.location):
            d = self.location[camera_id]
            totals[d] += self.cost(cameras[camera_id], d)
        return dict(zip(self.keys, totals, strict=True))


# -- the entry point -------------------------------------------------------------------------------


def place(
    workers: Iterable[WorkerCapacity],
    cameras: Iterable[CameraDemand],
    previous: Mapping[str, Placement] | None = None,
    *,
    rebalance_threshold: float = 1.25,
) -> PlacementResult:
    """Place every camera on one (worker, device), keeping ``previous`` placements that are still valid.

    ``previous`` entries for cameras not in ``cameras`` are ignored. ``rebalance_threshold`` (>= 1):
    cameras are moved for balance only while the busiest device's load is over this many times the
    mean. Pure and deterministic; see the module doc for the rules. Raises ``ValueError`` only for a
    bad ``rebalance_threshold``; bad workers and cameras are reported in the result.
    """
    if not (isinstance(rebalance_threshold, int | float) and rebalance_threshold >= 1.0):
        raise ValueError(f"rebalance_threshold: must be a number >= 1.0, got {rebalance_threshold!r}")
    result = PlacementResult(assignments={})
    cluster = _Cluster(workers, result)

    demands: dict[str, CameraDemand] = {}
    for camera in cameras:
        if camera.camera_id in demands or camera.camera_id in result.unplaced:
            result.input_problems.append(
                f"cameras[{camera.camera_id}]: duplicate camera id; only the first is used"
            )
            continue
        problem = camera_problem(camera)
        if problem is not None:
            result.unplaced[camera.camera_id] = problem
        else:
            demands[camera.camera_id] = camera
    ordered = [demands[camera_id] for camera_id in sorted(demands)]

    previous = previous or {}
    orphans: list[CameraDemand] = []
    for camera in ordered:  # rule 2: keep what is still valid, in camera-id order
        old = previous.get(camera.camera_id)
        d = cluster.index.get((old.worker_id, old.device_id)) if old is not None else None
        if d is not None and cluster.fits(camera, d):
            cluster.add(camera, d)
        else:
            orphans.append(camera)

    cluster.set_fair_shares(ordered)
    orphans.sort(key=lambda c: (c.pinned_worker is None, -cluster.size(c), -c.decode_cost, c.camera_id))
    for camera in orphans:
        d = cluster.choose(camera)
        if d is None:
            result.unplaced[camera.camera_id] = cluster.why_unplaced(camera)
        else:
            cluster.add(camera, d)

    cluster.rebalance(demands, rebalance_threshold)

    result.assignments = {
        camera_id: Placement(*cluster.keys[cluster.location[camera_id]])
        for camera_id in sorted(cluster.location)
    }
    result.unplaced = dict(sorted(result.unplaced.items()))
    result.moved = [
        camera_id
        for camera_id, where in result.assignments.items()
        if camera_id in previous and previous[camera_id] != where
    ]
    result.device_load = cluster.loads(demands)
    return result


def demand_ratio(workers: Iterable[WorkerCapacity], cameras: Iterable[CameraDemand]) -> float:
    """How much of the live workers' capacity every camera would take, placed or not (1.0: all of it).

    The tighter of two budgets: inference (per model, the cameras' analysis fps over the summed
    ``capacity_fps`` of every device for that model) and decoding (the cameras' decode cost over
    the workers' summed ``decode_capacity``). Unlike the device loads of :func:`place`, cameras that
    could not be placed count too, so the ratio says when more workers are needed. ``math.inf``
    when cameras need a model, or decoding, that no live worker offers; 0.0 without cameras.
    Cameras and capacity entries with bad numbers are left out, as :func:`place` leaves them.
    """
    live = [worker for worker in workers if worker.alive]
    demand_fps: dict[str, float] = defaultdict(float)
    decode = 0.0
    for camera in cameras:
        if camera_problem(camera) is None:
            demand_fps[camera.model_key] += camera.analysis_fps
            decode += camera.decode_cost
    capacity_fps: dict[str, float] = defaultdict(float)
    for worker in live:
        for device in worker.devices:
            for model_key, fps in device.capacity_fps.items():
                if is_positive_finite(fps):
                    capacity_fps[model_key] += fps
    decode_capacity = sum(w.decode_capacity for w in live if is_positive_finite(w.decode_capacity))
    ratios = [_ratio(fps, capacity_fps[model_key]) for model_key, fps in demand_fps.items()]
    ratios.append(_ratio(decode, decode_capacity))
    return max(ratios)


def _ratio(demand: float, capacity: float) -> float:
    if demand <= 0:
        return 0.0
    return demand / capacity if capacity > 0 else math.inf
