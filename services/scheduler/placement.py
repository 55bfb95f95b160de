"""Where each camera runs: a pure, deterministic placement of cameras on workers' devices.

Rules, in order:

1. **Budgets are hard.** A device's load — the sum of its cameras' ``analysis_fps`` over its measured
   ``capacity_fps`` for their model — never exceeds 1.0; a device never runs more than
   ``max_models`` distinct models; a worker's decode load never exceeds its ``decode_capacity``.
2. **Stability.** A camera stays where it is while that placement is still valid; only new cameras
   and cameras of dead workers (or that no longer fit) are placed.
3. **Affinity, then spread.** A camera goes to a device that runs its model already or runs nothing
   yet (a device loading a second model costs memory and batches less), and among those to the one
   least loaded after placing it. Bigger cameras are placed first.
4. **Rebalance sparingly.** Only when the busiest device is ``rebalance_threshold`` times over the
   mean are cameras moved, from the busiest devices to the idlest, one at a time, while it helps.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Device:
    """One GPU ("cuda:0") or CPU lane ("cpu:0") of a worker, with its measured capacity per model."""

    worker_id: str
    device_id: str
    capacity_fps: dict[str, float]
    memory_mb: int = 0
    max_models: int = 4


@dataclass(frozen=True)
class Worker:
    worker_id: str
    devices: list[Device]
    decode_capacity: float  # megapixel-frames per second
    alive: bool = True


@dataclass(frozen=True)
class CameraDemand:
    camera_id: str
    model_key: str
    analysis_fps: float
    decode_cost: float  # megapixel-frames per second


@dataclass(frozen=True, order=True)
class Placement:
    worker_id: str
    device_id: str


@dataclass
class PlacementResult:
    assignments: dict[str, Placement]
    unplaced: dict[str, str] = field(default_factory=dict)  # camera → why
    moved: list[str] = field(default_factory=list)  # cameras whose placement changed
    device_load: dict[tuple[str, str], float] = field(default_factory=dict)  # (worker, device) → load

    @property
    def max_load(self) -> float:
        return max(self.device_load.values(), default=0.0)

    @property
    def mean_load(self) -> float:
        return sum(self.device_load.values()) / len(self.device_load) if self.device_load else 0.0

    @property
    def max_over_mean(self) -> float:
        mean = self.mean_load
        return self.max_load / mean if mean > 0 else 1.0


def _valid_fps(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


class _State:
    """Loads while placing."""

    def __init__(self, workers: list[Worker]):
        self.devices: dict[tuple[str, str], Device] = {}
        self.decode_capacity: dict[str, float] = {}
        for worker in workers:
            if not worker.alive or not _valid_fps(worker.decode_capacity):
                continue
            self.decode_capacity[worker.worker_id] = worker.decode_capacity
            for device in worker.devices:
                capacity = {m: fps for m, fps in device.capacity_fps.items() if _valid_fps(fps)}
                if capacity:
                    self.devices[(worker.worker_id, device.device_id)] = Device(
                        worker.worker_id, device.device_id, capacity, device.memory_mb, device.max_models
                    )
        self.load: dict[tuple[str, str], float] = dict.fromkeys(self.devices, 0.0)
        self.models: dict[tuple[str, str], dict[str, int]] = {key: defaultdict(int) for key in self.devices}
        self.decode: dict[str, float] = dict.fromkeys(self.decode_capacity, 0.0)
        self.quota: dict[str, int] = {}  # devices each model should spread over (see set_quotas)
        self.by_model: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for key, device in sorted(self.devices.items()):
            for model in device.capacity_fps:
                self.by_model[model].append(key)

    def set_quotas(self, cameras: list[CameraDemand]) -> None:
        """Share the devices between models in proportion to their demand (at least one each)."""
        demand: dict[str, float] = defaultdict(float)
        for camera in cameras:
            keys = self.by_model.get(camera.model_key)
            if keys:
                mean_capacity = sum(self.devices[k].capacity_fps[camera.model_key] for k in keys) / len(keys)
                demand[camera.model_key] += camera.analysis_fps / mean_capacity
        total = sum(demand.values())
        for model, load in demand.items():
            self.quota[model] = max(1, round(len(self.devices) * load / total)) if total else 1

    def cost(self, key: tuple[str, str], camera: CameraDemand) -> float:
        return camera.analysis_fps / self.devices[key].capacity_fps[camera.model_key]

    def fits(self, key: tuple[str, str], camera: CameraDemand) -> bool:
        device = self.devices.get(key)
        if device is None or camera.model_key not in device.capacity_fps:
            return False
        models = self.models[key]
        if camera.model_key not in models and len(models) >= device.max_models:
            return False
        if self.decode[key[0]] + camera.decode_cost > self.decode_capacity[key[0]] + 1e-9:
            return False
        return self.load[key] + self.cost(key, camera) <= 1.0 + 1e-9

    def add(self, key: tuple[str, str], camera: CameraDemand) -> None:
        self.load[key] += self.cost(key, camera)
        self.models[key][camera.model_key] += 1
        self.decode[key[0]] += camera.decode_cost

    def remove(self, key: tuple[str, str], camera: CameraDemand) -> None:
        self.load[key] -= self.cost(key, camera)
        self.models[key][camera.model_key] -= 1
        if not self.models[key][camera.model_key]:
            del self.models[key][camera.model_key]
        self.decode[key[0]] -= camera.decode_cost

    def best(self, camera: CameraDemand, exclude: tuple[str, str] | None = None) -> tuple[str, str] | None:
        """The device for a camera: one already running its model if any has room, least loaded."""
        candidates = [
            k for k in self.by_model.get(camera.model_key, []) if k != exclude and self.fits(k, camera)
        ]
        if not candidates:
            return None
        # Devices running the model first; an idle device while the model has fewer than its share of
        # devices; a device running another model only when nothing else can take the camera.
        warm = [k for k in candidates if camera.model_key in self.models[k]]
        running = sum(1 for models in self.models.values() if camera.model_key in models)
        idle = (
            [k for k in candidates if not self.models[k]]
            if running < self.quota.get(camera.model_key, 1)
            else []
        )
        pool = warm + idle or candidates
        return min(pool, key=lambda k: (self.load[k] + self.cost(k, camera), k))

    def why_not(self, camera: CameraDemand) -> str:
        keys = self.by_model.get(camera.model_key, [])
        if not keys:
            return f"no live device runs model {camera.model_key!r}"
        spare = max((1.0 - self.load[k]) * self.devices[k].capacity_fps[camera.model_key] for k in keys)
        return (
            f"no device has {camera.analysis_fps:g} fps of {camera.model_key!r} to spare "
            f"(most free: {max(spare, 0):.1f} fps) within its worker's decode budget"
        )


def place(
    workers: list[Worker],
    cameras: list[CameraDemand],
    previous: dict[str, Placement] | None = None,
    *,
    rebalance_threshold: float = 1.25,
) -> PlacementResult:
    """Place every camera (see the module doc); deterministic for the same input."""
    previous = previous or {}
    state = _State(workers)
    state.set_quotas([c for c in cameras if _valid_fps(c.analysis_fps)])
    result = PlacementResult(assignments={})
    demands = {c.camera_id: c for c in cameras}
    orphans = []
    for camera in sorted(cameras, key=lambda c: c.camera_id):
        if not _valid_fps(camera.analysis_fps) or camera.decode_cost < 0:
            result.unplaced[camera.camera_id] = "analysis_fps: must be a positive number"
            continue
        old = previous.get(camera.camera_id)
        key = (old.worker_id, old.device_id) if old else None
        if key is not None and state.fits(key, camera):
            state.add(key, camera)
            result.assignments[camera.camera_id] = old
        else:
            orphans.append(camera)
    for camera in sorted(orphans, key=lambda c: (-c.analysis_fps, c.camera_id)):
        key = state.best(camera)
        if key is None:
            result.unplaced[camera.camera_id] = state.why_not(camera)
            continue
        state.add(key, camera)
        result.assignments[camera.camera_id] = Placement(*key)
    _rebalance(state, result, demands, rebalance_threshold)
    result.moved = sorted(c for c, p in result.assignments.items() if previous.get(c) not in (None, p))
    result.device_load = {key: round(load, 6) for key, load in state.load.items()}
    return result


def _rebalance(
    state: _State, result: PlacementResult, demands: dict[str, CameraDemand], threshold: float
) -> None:
    """Move single cameras from the busiest device to others while the spread is over ``threshold``."""
    if len(state.devices) < 2:
        return
    on_device: dict[tuple[str, str], list[str]] = defaultdict(list)
    for camera_id, p in result.assignments.items():
        on_device[(p.worker_id, p.device_id)].append(camera_id)
    for _ in range(len(result.assignments)):
        mean = sum(state.load.values()) / len(state.load)
        if mean <= 0:
            return
        busiest = max(state.load, key=lambda k: (state.load[k], k))
        if state.load[busiest] / mean <= threshold:
            return
        moved = False
        # Smallest cameras first: they move the load most finely.
        for camera_id in heapq.nsmallest(
            len(on_device[busiest]), on_device[busiest], key=lambda c: (demands[c].analysis_fps, c)
        ):
            camera = demands[camera_id]
            state.remove(busiest, camera)
            target = state.best(camera, exclude=busiest)
            if target is not None and state.load[target] + state.cost(target, camera) < state.load[
                busiest
            ] + (state.cost(busiest, camera) * 0.5):
                state.add(target, camera)
                on_device[busiest].remove(camera_id)
                on_device[target].append(camera_id)
                result.assignments[camera_id] = Placement(*target)
                moved = True
                break
            state.add(busiest, camera)
        if not moved:
            return
