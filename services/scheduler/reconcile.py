"""The scheduler's core: worker leases, and the reconcile loop that makes the workers run what the
placement says.

Workers register their devices and measured capacity and heartbeat every ``heartbeat_seconds``.
A reconcile pass (every second, and at once after a registration or a registry change) places every
enabled camera on one worker and device (:mod:`retina.services.scheduler.placement`) and makes the
workers match: it assigns, moves and releases cameras over the workers' gRPC API.

A camera that moves keeps its open incidents: the old worker hands them over (``ReleaseCamera``
with ``handover``); if the old worker is dead, they are read from the incident store. The next
worker continues them under the same ids, so dispatchers never see the same situation twice.

A worker that shuts down cleanly (scale-in, node drain) calls ``DrainWorker`` first
(:meth:`Scheduler.drain`): it gets nothing more, its cameras move at once with their incidents
handed over, and it is forgotten, without waiting for its lease to run out.

Workers and assignments are persisted (:class:`~retina.services.scheduler.workers.WorkerStore`);
after a restart of the scheduler, workers keep analysing and simply heartbeat again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, field

import grpc
from prometheus_client import Counter, Gauge, Histogram

from retina.algorithms.sdk import HandedOverIncident
from retina.services.core import service_auth
from retina.services.core.config import CameraConfig, SchedulerConfig
from retina.services.core.convert import (
    camera_state_name,
    camera_to_proto,
    open_incident_from_proto,
    open_incident_to_proto,
)
from retina.services.core.incident import IncidentMessage, handed_over
from retina.services.core.serving import to_timestamp
from retina.services.scheduler import placement
from retina.services.scheduler.cameras import CameraRegistry
from retina.services.scheduler.registry_api import CaptureFailed, quality_to_json, reference_record_to_proto
from retina.services.scheduler.workers import WorkerStore
from retina.v1 import incidents_pb2, incidents_pb2_grpc, scheduler_pb2, worker_pb2, worker_pb2_grpc

log = logging.getLogger(__name__)

RECONCILE_SECONDS = 1.0
QUALITY_REFRESH_SECONDS = 30.0  # stored quality scores are at most this old (problems: at once)
DRAIN_SECONDS = 30.0  # the longest a DrainWorker call waits for the worker's cameras to move
WORKERS_ALIVE = Gauge("retina_scheduler_workers_alive", "Workers holding a lease")
CAMERAS_PLACED = Gauge("retina_scheduler_cameras_placed", "Enabled cameras placed on a worker")
CAMERAS_UNPLACED = Gauge("retina_scheduler_cameras_unplaced", "Enabled cameras no worker can take")
LOAD_MAX_OVER_MEAN = Gauge("retina_scheduler_load_max_over_mean", "Busiest device's load over the mean")
LOAD_MAX = Gauge("retina_scheduler_load_max", "Planned load of the busiest device (1.0 = full)")
LOAD_MEAN = Gauge("retina_scheduler_load_mean", "Mean planned load of the live workers' devices")
# Cameras that need what no live worker offers read as this (a finite number: autoscalers add
# workers as fast as their policy allows, and do not choke on +Inf).
DEMAND_RATIO_CAP = 10.0
DEMAND_RATIO = Gauge(
    "retina_scheduler_demand_ratio",
    "Capacity every enabled camera would take, placed or not, over the live workers' (1.0 = all): "
    "the autoscaling signal",
)
WORKERS_DRAINING = Gauge("retina_scheduler_workers_draining", "Workers leaving: their cameras are moving")
DRAINS = Counter("retina_scheduler_drains_total", "Workers that left cleanly (DrainWorker)", ["outcome"])
MOVES = Counter("retina_scheduler_camera_moves_total", "Cameras moved between workers or devices", ["why"])
LEASES_EXPIRED = Counter("retina_scheduler_leases_expired_total", "Workers that stopped heartbeating")
ASSIGN_ERRORS = Counter("retina_scheduler_assign_errors_total", "Assign/release calls that failed")
RECONCILE_SECONDS_HIST = Histogram("retina_scheduler_reconcile_seconds", "Duration of one reconcile pass")


class WorkerIdTaken(ValueError):
    """Another live worker registered under this id; maps to ALREADY_EXISTS."""


@dataclass
class WorkerState:
    """What the scheduler knows of one live worker: its lease, last heartbeat and what it runs.

    Stored as a :class:`~retina.services.scheduler.workers.WorkerRecord`; offered to the placement
    as a :class:`~retina.services.scheduler.placement.WorkerCapacity`.
    """

    worker_id: str
    address: str
    devices: list[placement.Device]
    decode_capacity: float
    model_key: str
    last_heartbeat: float  # time.monotonic()
    alive: bool = True
    running: set[str] | None = None  # cameras in its last heartbeat (None: none received yet)
    device_fps: dict[str, float] = field(default_factory=dict)
    health: dict[str, worker_pb2.CameraStatus] = field(default_factory=dict)
    heartbeat_wall: float = field(default_factory=time.time)
    draining: bool = False  # leaving (DrainWorker): placed on no more, its cameras move now


class Scheduler:
    """Leases and placement; :meth:`reconcile` makes the workers run what the placement says."""

    def __init__(
        self,
        registry: CameraRegistry,
        store: WorkerStore,
        config: SchedulerConfig,
        incidents_address: str | None,
    ):
        self.registry = registry
        self.store = store
        self.config = config
        self.incidents_address = incidents_address
        self.workers: dict[str, WorkerState] = {}
        self.assignments: dict[str, placement.Placement] = {}
        self.applied: dict[str, tuple[str, str, int]] = {}  # camera → (worker, device, camera revision)
        self.unplaced: dict[str, str] = {}
        self.last_result: placement.PlacementResult | None = None
        self.wake = asyncio.Event()
        self.reconciled = asyncio.Event()  # set after every pass (DrainWorker waits on it)
        self._health_seen: dict[str, tuple[tuple, float]] = {}  # camera → (what was stored, when)
        self._restore()

    def _restore(self) -> None:
        """After a restart: the workers get one lease period to heartbeat; assignments are kept."""
        now = time.monotonic()
        for saved in self.store.load_workers():
            self.workers[saved.worker_id] = WorkerState(
                saved.worker_id,
                saved.address,
                [placement.Device(**d) for d in saved.devices],
                saved.decode_capacity,
                saved.model_key,
                last_heartbeat=now,
            )
        for camera_id, (worker_id, device_id) in self.store.load_assignments().items():
            self.assignments[camera_id] = placement.Placement(worker_id, device_id)
        if self.workers or self.assignments:
            log.info(
                "scheduler state restored",
                extra={"workers": len(self.workers), "assignments": len(self.assignments)},
            )

    # -- workers ----------------------------------------------------------------------------------

    def register(self, request: scheduler_pb2.RegisterWorkerRequest) -> list[str]:
        """Add or refresh a worker (a request :func:`check_register_request` accepted); return the
        problems of devices that were left out."""
        host = request.address.rsplit(":", 1)[0]
        if host in ("0.0.0.0", "::", "[::]", ""):
            raise ValueError(
                f"address: {request.address!r} is not reachable; start the worker with --advertise"
            )
        current = self.workers.get(request.worker_id)
        if current is not None and current.alive and current.address != request.address:
            raise WorkerIdTaken(
                f"worker_id: {request.worker_id!r} is held by a live worker at {current.address};"
                " give each worker its own --worker-id"
            )
        devices = [
            placement.Device(
                worker_id=request.worker_id,
                device_id=d.device_id,
                capacity_fps=dict(d.capacity_fps),
                memory_mb=d.memory_mb,
            )
            for d in request.devices
        ]
        if not math.isfinite(request.decode_capacity) or request.decode_capacity <= 0:
            raise ValueError(f"decode_capacity: must be a positive number, got {request.decode_capacity}")
        # Devices with bad capacity data are reported back and left out by the placement.
        problems = placement.validate_worker(
            placement.WorkerCapacity(request.worker_id, devices, request.decode_capacity)
        )
        for problem in problems:
            log.error("worker reported bad capacity; device left out",
                      extra={"worker_id": request.worker_id, "problem": problem})  # fmt: skip

        state = WorkerState(
            request.worker_id, request.address, devices, request.decode_capacity, request.model_key,
            last_heartbeat=time.monotonic(), running=set(),  # a (re)started worker runs nothing yet
        )  # fmt: skip
        previous = self.workers.get(request.worker_id)
        self.workers[request.worker_id] = state
        for camera_id, applied in list(self.applied.items()):  # a (re)started worker runs nothing yet
            if applied[0] == request.worker_id:
                del self.applied[camera_id]
        self.store.save_worker(
            request.worker_id,
            request.address,
            [vars(d) for d in devices],
            request.decode_capacity,
            request.model_key,
        )
        log.info(
            "worker registered" if previous is None else "worker registered again",
            extra={"worker_id": request.worker_id, "address": request.address, "devices": len(devices)},
        )
        self.wake.set()
        return problems

    def heartbeat(self, request: scheduler_pb2.HeartbeatRequest) -> bool:
        """Renew a lease; False if the worker is unknown (it must register)."""
        worker = self.workers.get(request.worker_id)
        if worker is None:
            return False
        if not worker.alive:  # it came back after its lease expired: its cameras were moved away
            return False
        worker.last_heartbeat = time.monotonic()
        worker.heartbeat_wall = time.time()
        worker.running = {c.camera_id for c in request.cameras}
        worker.device_fps = dict(request.device_fps)
        worker.health = {c.camera_id: c for c in request.cameras}
        for camera in request.cameras:
            self._record_health(request.worker_id, camera)
        for camera_id, applied in list(self.applied.items()):  # it lost a camera (restarted, released)
            if applied[0] == request.worker_id and camera_id not in worker.running:
                del self.applied[camera_id]
                self.wake.set()
        return True

    def _record_health(self, worker_id: str, status: worker_pb2.CameraStatus) -> None:
        """Keep the registry's health record current: written when the state, the reason, the video
        quality's problems or rules hold change, and every QUALITY_REFRESH_SECONDS for fresh scores."""
        quality = status.quality if status.HasField("quality") else None
        problems = (tuple(quality.problems), quality.rules, quality.reference_at.seconds) if quality else ()
        key = (status.state, status.reason, worker_id, problems)
        seen = self._health_seen.get(status.camera_id)
        now = time.monotonic()
        if (
            seen is not None
            and seen[0] == key
            and (quality is None or now - seen[1] < QUALITY_REFRESH_SECONDS)
        ):
            return
        self._health_seen[status.camera_id] = (key, now)
        last_frame = status.last_frame_at.ToNanoseconds() / 1e9 if status.HasField("last_frame_at") else None
        try:
            state = camera_state_name(status.state)
            stored_quality = quality_to_json(quality) if quality is not None else None
            self.registry.report_health(
                status.camera_id, state, status.reason, last_frame, worker_id, stored_quality
            )
        except Exception as exc:  # a camera deleted from the registry meanwhile
            log.debug("health not recorded", extra={"camera_id": status.camera_id, "error": str(exc)})

    def expire_leases(self) -> list[str]:
        now = time.monotonic()
        expired = []
        for worker in self.workers.values():
            if worker.draining:  # it stopped heartbeating to leave; drain() forgets it
                continue
            if worker.alive and now - worker.last_heartbeat > self.config.lease_seconds:
                worker.alive = False
                expired.append(worker.worker_id)
                LEASES_EXPIRED.inc()
                log.warning("worker lease expired; its cameras move", extra={"worker_id": worker.worker_id})
        for worker_id in expired:  # forget it; if it comes back it registers as new
            self._forget(worker_id)
        return expired

    def _forget(self, worker_id: str) -> None:
        del self.workers[worker_id]
        self.store.remove_worker(worker_id)

    async def drain(
        self, worker_id: str, timeout: float = DRAIN_SECONDS
    ) -> tuple[list[str], list[str]] | None:
        """A worker is leaving: place nothing more on it, move its cameras now (each with its open
        incidents handed over, as a rebalance does), then forget it. Returns (cameras moved to
        other workers, cameras no other worker could take) once it holds none, or at ``timeout``;
        None if the worker is unknown. Cameras it still holds then are moved by later passes (their
        incidents read from the incident store, as after a failover)."""
        worker = self.workers.get(worker_id)
        if worker is None or not worker.alive:
            return None
        held = {c for c, p in self.assignments.items() if p.worker_id == worker_id}
        worker.draining = True
        WORKERS_DRAINING.inc()
        log.info("worker draining; its cameras move", extra={"worker_id": worker_id, "cameras": len(held)})
        deadline = time.monotonic() + timeout
        try:
            while self._holds(worker_id) and time.monotonic() < deadline:
                self.reconciled.clear()
                self.wake.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.reconciled.wait(), max(deadline - time.monotonic(), 0.01))
        finally:
            WORKERS_DRAINING.dec()
            if self.workers.get(worker_id) is worker:
                self._forget(worker_id)
                self.wake.set()
        left = self._holds(worker_id)
        DRAINS.labels("timeout" if left else "drained").inc()
        moved = sorted(c for c in held if c in self.assignments and c not in left)
        unplaced = sorted(c for c in held if c not in self.assignments)
        log.info(
            "worker drained" if not left else "worker left before its cameras could move",
            extra={"worker_id": worker_id, "moved": len(moved), "unplaced": len(unplaced), "left": len(left)},
        )
        return moved, unplaced

    def _holds(self, worker_id: str) -> list[str]:
        """Cameras placed on the worker, or that it last said it runs."""
        placed = {c for c, p in self.assignments.items() if p.worker_id == worker_id}
        worker = self.workers.get(worker_id)
        return sorted(placed | (worker.running or set() if worker is not None else set()))

    # -- placement --------------------------------------------------------------------------------

    async def reconcile(self) -> None:
        """One pass: expire leases, place every enabled camera, make the workers match."""
        started = time.perf_counter()
        self.expire_leases()
        records = {r.camera.id: r for r in await asyncio.to_thread(self.registry.list, enabled=True)}
        alive = [w for w in self.workers.values() if w.alive]
        staying = [w for w in alive if not w.draining]
        model_key = (staying or alive)[0].model_key if alive else ""
        demands = [
            placement.CameraDemand(
                camera_id=camera_id,
                model_key=model_key,
                analysis_fps=record.camera.analysis_fps,
                decode_cost=self.config.camera_decode_cost,
            )
            for camera_id, record in records.items()
        ]
        workers = [
            placement.WorkerCapacity(w.worker_id, w.devices, w.decode_capacity, alive=True) for w in staying
        ]
        previous = {c: p for c, p in self.assignments.items() if c in records}
        result = placement.place(
            workers, demands, previous, rebalance_threshold=self.config.rebalance_threshold
        )
        self.last_result = result
        self.unplaced = dict(result.unplaced)

        for camera_id, old in list(self.assignments.items()):
            gone = camera_id not in result.assignments  # deleted, disabled or no longer placeable
            # A leaving worker's camera that fits nowhere else keeps its incidents open (in the
            # incident store) for the worker that takes it later.
            handover = camera_id in records and self._draining(old.worker_id)
            if gone and await self._release(old, camera_id, handover=handover) is not None:
                self.applied.pop(camera_id, None)
        await self._release_strays(alive, result, records)
        for camera_id, target in sorted(result.assignments.items()):
            record = records[camera_id]
            wanted = (target.worker_id, target.device_id, record.revision)
            if self.applied.get(camera_id) == wanted:
                continue
            old = self.assignments.get(camera_id)
            holder = self.workers.get(target.worker_id)
            if old == target and holder is not None and holder.running is None:
                continue  # restored after a scheduler restart: wait for the worker to say what it runs
            handed = await self._take_open_incidents(camera_id, old, target)
            if handed is None:
                continue  # the old holder could not be told to let go: never run a camera twice
            if await self._assign(target, record.camera, handed):
                self.applied[camera_id] = wanted
                if old is not None and old != target:
                    MOVES.labels(self._move_reason(old.worker_id)).inc()
        if result.assignments != self.assignments:
            self.assignments = dict(result.assignments)
            await asyncio.to_thread(
                self.store.set_assignments,
                {c: (p.worker_id, p.device_id) for c, p in self.assignments.items()},
            )
        WORKERS_ALIVE.set(len(alive))
        CAMERAS_PLACED.set(len(result.assignments))
        CAMERAS_UNPLACED.set(len(result.unplaced))
        LOAD_MAX_OVER_MEAN.set(result.max_over_mean)
        LOAD_MAX.set(result.max_load)
        LOAD_MEAN.set(result.mean_load)
        DEMAND_RATIO.set(min(placement.demand_ratio(workers, demands), DEMAND_RATIO_CAP))
        RECONCILE_SECONDS_HIST.observe(time.perf_counter() - started)
        self.reconciled.set()

    def _draining(self, worker_id: str) -> bool:
        worker = self.workers.get(worker_id)
        return worker is not None and worker.draining

    def _move_reason(self, worker_id: str) -> str:
        """Why a camera left ``worker_id``: the ``why`` label of camera_moves_total."""
        if worker_id not in self.workers:
            return "failover"
        return "drain" if self.workers[worker_id].draining else "rebalance"

    async def _release_strays(
        self, alive: list[WorkerState], result: placement.PlacementResult, records: dict
    ) -> None:
        """Stop what workers run but should not (as their heartbeats tell): a camera deleted,
        disabled or unplaced ends its incidents; a camera placed on another worker (this one was
        cut off, or a release failed) hands its incidents to that worker."""
        for worker in alive:
            for camera_id in sorted(worker.running or ()):
                target = result.assignments.get(camera_id)
                believed = self.assignments.get(camera_id)
                if target is not None and target.worker_id == worker.worker_id:
                    continue
                if target is not None and believed is not None and believed.worker_id == worker.worker_id:
                    continue  # a planned move: the assignment loop hands over from this worker
                here = placement.Placement(worker.worker_id, "")
                handover = target is not None or (worker.draining and camera_id in records)
                handed = await self._release(here, camera_id, handover=handover)
                if handed is None:
                    continue
                worker.running.discard(camera_id)
                if handed and target is not None and target.worker_id in self.workers:
                    await self._assign(target, records[camera_id].camera, handed)

    async def _take_open_incidents(
        self, camera_id: str, old: placement.Placement | None, target: placement.Placement
    ) -> list[HandedOverIncident] | None:
        """The camera's open incidents for its next worker: handed over by a live previous holder
        (None if it could not be reached: the camera must not run twice), else read from the
        incident store (the holder died)."""
        holder = self.workers.get(old.worker_id) if old is not None else None
        if holder is not None and holder.alive and old.worker_id != target.worker_id:
            handed = await self._release(old, camera_id, handover=True)
            if handed is None or handed:
                return handed
            return await self._incidents_from_store(camera_id)  # it was not running there
        if holder is not None and holder.alive and camera_id in (holder.running or set()):
            return []  # same worker: it moves the camera between its devices and keeps the incidents
        return await self._incidents_from_store(camera_id)

    async def _incidents_from_store(self, camera_id: str) -> list[HandedOverIncident]:
        if not self.incidents_address:
            return []
        try:
            async with service_auth.aio_channel(self.incidents_address, service_auth.own_token()) as channel:
                reply = await incidents_pb2_grpc.IncidentServiceStub(channel).ListIncidents(
                    incidents_pb2.ListIncidentsRequest(camera_id=camera_id, state="open", limit=1000),
                    timeout=5,
                )
        except grpc.aio.AioRpcError as exc:
            log.warning(
                "incident store unreachable; open incidents of a moved camera cannot continue",
                extra={"camera_id": camera_id, "error": exc.code().name},
            )
            return []
        return [
            handed_over(IncidentMessage.model_validate_json(incident.message_json))
            for incident in reply.incidents
        ]

    async def _assign(
        self, target: placement.Placement, camera: CameraConfig, handed: list[HandedOverIncident]
    ) -> bool:
        worker = self.workers.get(target.worker_id)
        if worker is None:
            return False
        reference = await asyncio.to_thread(self.registry.reference, camera.id)  # it keeps its view
        request = worker_pb2.AssignCameraRequest(
            camera=camera_to_proto(camera),
            device_id=target.device_id,
            resume=[open_incident_to_proto(i) for i in handed],
            reference=reference_record_to_proto(reference) if reference is not None else None,
        )
        try:
            async with service_auth.aio_channel(worker.address, service_auth.own_token()) as channel:
                await worker_pb2_grpc.WorkerServiceStub(channel).AssignCamera(request, timeout=30)
        except grpc.aio.AioRpcError as exc:
            ASSIGN_ERRORS.inc()
            log.warning(
                "assign failed; retrying next pass",
                extra={"camera_id": camera.id, "worker_id": worker.worker_id, "error": exc.details()},
            )
            return False
        log.info(
            "camera assigned",
            extra={"camera_id": camera.id, "worker_id": worker.worker_id, "device_id": target.device_id,
                   "resumed_incidents": len(handed)},
        )  # fmt: skip
        return True

    async def capture_reference(self, camera_id: str) -> worker_pb2.QualityReference:
        """Have the worker running ``camera_id`` take its current view as the reference view (the
        registry stores it: RegistryService.CaptureReference). Raises CaptureFailed with the status
        to answer when no live worker runs the camera or the worker cannot take it."""
        where = self.assignments.get(camera_id)
        worker = self.workers.get(where.worker_id) if where is not None else None
        if worker is None or not worker.alive:
            why = self.unplaced.get(camera_id, "it is not placed yet, or disabled")
            raise CaptureFailed(
                grpc.StatusCode.FAILED_PRECONDITION, f"camera {camera_id!r} runs on no worker: {why}"
            )
        request = worker_pb2.CaptureReferenceRequest(camera_id=camera_id)
        try:
            async with service_auth.aio_channel(worker.address, service_auth.own_token()) as channel:
                return await worker_pb2_grpc.WorkerServiceStub(channel).CaptureReference(request, timeout=10)
        except grpc.aio.AioRpcError as exc:
            raise CaptureFailed(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"worker {worker.worker_id}: {exc.code().name}: {exc.details()}",
            ) from None

    async def _release(
        self, where: placement.Placement, camera_id: str, handover: bool
    ) -> list[HandedOverIncident] | None:
        """Stop a camera on a worker: its handed-over incidents; [] if it did not run there (or the
        worker is gone); None if the worker could not be reached (tried again next pass)."""
        worker = self.workers.get(where.worker_id)
        if worker is None or not worker.alive:
            return []
        try:
            async with service_auth.aio_channel(worker.address, service_auth.own_token()) as channel:
                reply = await worker_pb2_grpc.WorkerServiceStub(channel).ReleaseCamera(
                    worker_pb2.ReleaseCameraRequest(camera_id=camera_id, handover=handover), timeout=30
                )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                ASSIGN_ERRORS.inc()
                log.warning(
                    "release failed; retrying next pass",
                    extra={"camera_id": camera_id, "worker_id": worker.worker_id, "error": exc.details()},
                )
                return None
            if worker.running is not None:
                worker.running.discard(camera_id)
            return []
        if worker.running is not None:  # until its next heartbeat says so
            worker.running.discard(camera_id)
        log.info("camera released", extra={"camera_id": camera_id, "worker_id": worker.worker_id,
                                           "handover": handover})  # fmt: skip
        return [open_incident_from_proto(m) for m in reply.open_incidents]

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile every second, and at once when woken (registration, registry change)."""
        while not stop.is_set():
            self.wake.clear()
            try:
                await self.reconcile()
            except Exception:
                log.exception("reconcile pass failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=RECONCILE_SECONDS)

    # -- status -------------------------------------------------------------------------------

    def status(self) -> scheduler_pb2.ClusterStatus:
        result = self.last_result
        loads = result.device_load if result is not None else {}
        by_device: dict[tuple[str, str], list[str]] = {}
        for camera_id, p in self.assignments.items():
            by_device.setdefault((p.worker_id, p.device_id), []).append(camera_id)
        workers = []
        for w in sorted(self.workers.values(), key=lambda w: w.worker_id):
            devices = [
                scheduler_pb2.DeviceStatus(
                    device_id=d.device_id,
                    load=loads.get((w.worker_id, d.device_id), 0.0),
                    capacity_fps=sum(d.capacity_fps.values()),
                    analysed_fps=w.device_fps.get(d.device_id, 0.0),
                    camera_ids=sorted(by_device.get((w.worker_id, d.device_id), [])),
                )
                for d in w.devices
            ]
            workers.append(
                scheduler_pb2.WorkerInfo(
                    worker_id=w.worker_id, address=w.address, alive=w.alive,
                    last_heartbeat=to_timestamp(w.heartbeat_wall), devices=devices,
                )
            )  # fmt: skip
        assignments = []
        since = self.store.assignment_times()
        for camera_id, p in sorted(self.assignments.items()):
            health = self.workers[p.worker_id].health.get(camera_id) if p.worker_id in self.workers else None
            assignments.append(
                scheduler_pb2.Assignment(camera_id=camera_id, worker_id=p.worker_id, device_id=p.device_id,
                                         since=to_timestamp(since.get(camera_id)), health=health)
            )  # fmt: skip
        return scheduler_pb2.ClusterStatus(
            workers=workers,
            assignments=assignments,
            unplaced=self.unplaced,
            max_load=result.max_load if result else 0.0,
            mean_load=result.mean_load if result else 0.0,
        )
