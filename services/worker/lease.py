"""The worker's side of the scheduler: register devices and capacity, keep the lease alive.

If the scheduler is unreachable the worker keeps analysing what it has and keeps trying; when the
scheduler answers NOT_FOUND (it lost the worker, e.g. after its lease expired) the worker
registers again. On a clean shutdown the worker leaves (:meth:`SchedulerLease.leave`): the
scheduler moves its cameras, with their open incidents, while it still serves them, instead of
waiting for its lease to expire.

The lease knows the worker only through what it reports (its id, its lanes and its cameras'
status), so it does not import the worker service that starts it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import grpc

from retina.services.core import service_auth
from retina.services.core.serving import pause
from retina.services.worker.lanes import DeviceLanes
from retina.v1 import scheduler_pb2, scheduler_pb2_grpc, worker_pb2

log = logging.getLogger(__name__)

LEAVE_SECONDS = 35.0  # the scheduler answers DrainWorker within 30 s


class SchedulerLease:
    """Registration and heartbeats of one worker."""

    def __init__(
        self,
        worker_id: str,
        lanes: DeviceLanes,
        status: Callable[[], list[worker_pb2.CameraStatus]],
        scheduler_address: str,
        advertise: str,
    ):
        self.worker_id = worker_id
        self.lanes = lanes
        self.status = status  # the cameras' status, as GetStatus reports it
        self.scheduler_address = scheduler_address
        self.advertise = advertise
        self.heartbeat_seconds = 2.0
        self._last_frames: dict[str, int] = {}
        self._last_at = time.monotonic()

    def registration(self) -> scheduler_pb2.RegisterWorkerRequest:
        lanes = self.lanes
        return scheduler_pb2.RegisterWorkerRequest(
            worker_id=self.worker_id,
            address=self.advertise,
            devices=[
                scheduler_pb2.Device(
                    device_id=lane.device_id, capacity_fps={lanes.model_key: lane.capacity_fps}
                )
                for lane in lanes.lanes.values()
            ],
            decode_capacity=lanes.decode_capacity,
            model_key=lanes.model_key,
        )

    def heartbeat(self) -> scheduler_pb2.HeartbeatRequest:
        now = time.monotonic()
        frames = self.lanes.frames_analysed()
        elapsed = max(now - self._last_at, 1e-3)
        fps = {d: (n - self._last_frames.get(d, n)) / elapsed for d, n in frames.items()}
        self._last_frames, self._last_at = frames, now
        return scheduler_pb2.HeartbeatRequest(worker_id=self.worker_id, cameras=self.status(), device_fps=fps)

    async def run(self, stop: asyncio.Event) -> None:
        registered = False
        async with service_auth.aio_channel(self.scheduler_address, service_auth.own_token()) as channel:
            stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)
            while not stop.is_set():
                try:
                    if not registered:
                        reply = await stub.RegisterWorker(self.registration(), timeout=5)
                        self.heartbeat_seconds = reply.heartbeat_seconds or self.heartbeat_seconds
                        registered = True
                        for problem in reply.ignored:
                            log.error("scheduler ignored a device", extra={"problem": problem})
                        log.info("registered with the scheduler", extra={"scheduler": self.scheduler_address})
                    else:
                        await stub.Heartbeat(self.heartbeat(), timeout=5)
                except grpc.aio.AioRpcError as exc:
                    if exc.code() == grpc.StatusCode.NOT_FOUND:
                        registered = False
                        log.warning("scheduler does not know this worker; registering again")
                        continue
                    log.warning(
                        "scheduler unreachable; analysis goes on",
                        extra={"scheduler": self.scheduler_address, "error": exc.code().name},
                    )
                await pause(stop, self.heartbeat_seconds)

    async def leave(self, timeout: float = LEAVE_SECONDS) -> bool:
        """Tell the scheduler this worker is leaving (``DrainWorker``) and wait while it moves the
        cameras away (it calls this worker's ReleaseCamera meanwhile, so keep serving gRPC until
        this returns). False if the scheduler could not be told: the cameras then move when the
        lease expires, their incidents read from the incident store."""
        request = scheduler_pb2.DrainWorkerRequest(worker_id=self.worker_id)
        try:
            async with service_auth.aio_channel(self.scheduler_address, service_auth.own_token()) as channel:
                reply = await scheduler_pb2_grpc.SchedulerServiceStub(channel).DrainWorker(
                    request, timeout=timeout
                )
        except grpc.aio.AioRpcError as exc:
            log.warning(
                "could not leave the scheduler; the cameras move when the lease expires",
                extra={"scheduler": self.scheduler_address, "error": exc.code().name},
            )
            return False
        log.info(
            "left the scheduler",
            extra={"moved": len(reply.moved), "unplaced": list(reply.unplaced)},
        )
        return True
