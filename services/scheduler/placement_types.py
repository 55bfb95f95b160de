"""What the placement works on: workers' devices and capacity, cameras' demands, the result, and
the checks that keep bad reported numbers out of it (:func:`validate_worker`).

Pure data and checks, no I/O; :func:`retina.services.scheduler.placement.place` is the algorithm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TypeGuard

UNLIMITED_MODELS = 1 << 30
"""Default :attr:`Device.max_models`: no limit (a CPU lane loads its models into host memory)."""

DeviceKey = tuple[str, str]
"""A device's address: ``(worker_id, device_id)``."""


@dataclass(frozen=True)
class Device:
    """One GPU (``"cuda:0"``) or CPU lane (``"cpu:0"``) of a worker.

    ``capacity_fps`` maps a model key (model path + input size, e.g. ``"yolov8n.onnx@640"``) to the
    inference frames per second this device sustains with that model, as measured by its worker; a
    model without an entry cannot run here. ``memory_mb`` is informative (0 for CPU lanes);
    ``max_models`` is how many distinct models fit in its memory at once.
    """

    worker_id: str
    device_id: str
    capacity_fps: dict[str, float]
    memory_mb: int = 0
    max_models: int = UNLIMITED_MODELS


@dataclass(frozen=True)
class WorkerCapacity:
    """What a worker offers the placement: its devices, how much video its CPU can decode, and
    whether its lease is live (a dead worker offers nothing).

    ``decode_capacity`` is in megapixel-frames per second (1080p at 25 fps costs 25 × 2.07 ≈ 52).
    Not the worker process (:class:`retina.services.worker.service.Worker`), nor the scheduler's
    view of it (:class:`~retina.services.scheduler.reconcile.WorkerState`).
    """

    worker_id: str
    devices: list[Device]
    decode_capacity: float
    alive: bool = True


@dataclass(frozen=True)
class CameraDemand:
    """What one camera needs: ``analysis_fps`` inference frames per second of ``model_key``, and
    ``decode_cost`` megapixel-frames per second of decoding on its worker. A camera with
    ``pinned_worker`` set runs on that worker or nowhere."""

    camera_id: str
    model_key: str
    analysis_fps: float
    decode_cost: float
    pinned_worker: str | None = None


@dataclass(frozen=True, order=True)
class Placement:
    """Where one camera runs."""

    worker_id: str
    device_id: str


Assignment = dict[str, Placement]
"""Camera id → where it runs."""


@dataclass
class PlacementResult:
    """The outcome of :func:`place`.

    - ``assignments``: every placed camera, by camera id (sorted).
    - ``unplaced``: camera id → why it could not be placed (human-readable, names model and fps).
    - ``moved``: cameras placed both before and now whose placement changed, sorted. A camera that
      was placed before and is unplaced now is in ``unplaced``, not here.
    - ``device_load``: load (utilisation, 0..1) of every usable device, idle ones included.
    - ``ignored_devices``: devices of live workers left out because of bad reported data → why.
    - ``input_problems``: every problem found in the input, one line each (dropped capacity entries
      of devices still in use, duplicate ids, ...), in :func:`validate_worker`'s style.
    """

    assignments: Assignment
    unplaced: dict[str, str] = field(default_factory=dict)
    moved: list[str] = field(default_factory=list)
    device_load: dict[DeviceKey, float] = field(default_factory=dict)
    ignored_devices: dict[DeviceKey, str] = field(default_factory=dict)
    input_problems: list[str] = field(default_factory=list)

    @property
    def max_load(self) -> float:
        """The busiest device's load (0.0 without devices)."""
        return max(self.device_load.values(), default=0.0)

    @property
    def mean_load(self) -> float:
        """The mean load over all usable devices (0.0 without devices)."""
        return sum(self.device_load.values()) / len(self.device_load) if self.device_load else 0.0

    @property
    def max_over_mean(self) -> float:
        """Busiest over mean load: 1.0 is perfectly even (and is reported when nothing is loaded)."""
        mean = self.mean_load
        return self.max_load / mean if mean > 0 else 1.0


# -- input validation -----------------------------------------------------------------------------


def is_finite(value: object) -> TypeGuard[float]:
    """A real number (not a bool), neither NaN nor infinite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_positive_finite(value: object) -> TypeGuard[float]:
    return is_finite(value) and value > 0


def is_positive_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass
class WorkerReport:
    """What of one worker's report can be used: ``usable`` maps a device id to the device and its
    good capacity entries, ``ignored`` a device id to why it is left out; ``problems`` lists every
    problem in order."""

    problems: list[str] = field(default_factory=list)
    usable: dict[str, tuple[Device, dict[str, float]]] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)


def inspect_worker(worker: WorkerCapacity) -> WorkerReport:
    report = WorkerReport()
    prefix = f"workers[{worker.worker_id}]"
    worker_problem = None
    if not is_positive_finite(worker.decode_capacity):
        worker_problem = (
            f"{prefix}.decode_capacity: must be a positive finite number, got {worker.decode_capacity!r}"
        )
        report.problems.append(worker_problem)
    for device in sorted(worker.devices, key=lambda d: d.device_id):
        where = f"{prefix}.devices[{device.device_id}]"
        if device.device_id in report.usable or device.device_id in report.ignored:
            report.problems.append(f"{where}: duplicate device id; only the first is used")
            continue
        lines: list[str] = []  # this device's problems
        fatal = False
        if device.worker_id != worker.worker_id:
            lines.append(f"{where}.worker_id: {device.worker_id!r} differs from its worker's id")
            fatal = True
        if not is_positive_int(device.max_models):
            lines.append(f"{where}.max_models: must be a positive integer, got {device.max_models!r}")
            fatal = True
        if not (is_finite(device.memory_mb) and device.memory_mb >= 0):
            lines.append(f"{where}.memory_mb: must be a finite number >= 0, got {device.memory_mb!r}")
            fatal = True
        capacity: dict[str, float] = {}
        for model in sorted(device.capacity_fps, key=str):
            fps = device.capacity_fps[model]
            if not isinstance(model, str) or not model:
                lines.append(f"{where}.capacity_fps[{model!r}]: a model key must be a non-empty string")
            elif not is_positive_finite(fps):
                lines.append(f"{where}.capacity_fps[{model}]: must be a positive finite number, got {fps!r}")
            else:
                capacity[model] = float(fps)
        if not capacity:
            lines.append(f"{where}.capacity_fps: no usable entry")
            fatal = True
        report.problems += lines
        if worker_problem is not None:
            lines.append(worker_problem)
            fatal = True
        if fatal:
            report.ignored[device.device_id] = "; ".join(lines)
        else:
            report.usable[device.device_id] = (device, capacity)
    return report


def validate_worker(worker: WorkerCapacity) -> list[str]:
    """Every problem in a worker's report, one line each, or ``[]`` if it is sound.

    Lines name the field, e.g.
    ``workers[w1].devices[cuda:0].capacity_fps[yolov8n@640]: must be a positive finite number, got nan``.
    :func:`place` drops what these lines name: a bad capacity entry; a device with no good entry
    left, a bad ``max_models`` or ``memory_mb``, or a ``worker_id`` other than its worker's; every
    device of a worker whose ``decode_capacity`` is bad.
    """
    return inspect_worker(worker).problems


def camera_problem(camera: CameraDemand) -> str | None:
    if not is_positive_finite(camera.analysis_fps):
        return f"analysis_fps: must be a positive finite number, got {camera.analysis_fps!r}"
    if not (is_finite(camera.decode_cost) and camera.decode_cost >= 0):
        return f"decode_cost: must be a finite number >= 0, got {camera.decode_cost!r}"
    return None
