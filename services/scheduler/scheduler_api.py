"""``retina.v1.SchedulerService``: the gRPC face of the scheduler
(:class:`~retina.services.scheduler.reconcile.Scheduler`): worker registration, heartbeats, a
worker's clean departure (drain), status.

Every request is checked before any work (:func:`check_register_request`,
:func:`check_heartbeat_request`); a bad field raises
:class:`~retina.services.core.validation.InvalidArgument`, which
:func:`~retina.services.core.validation.add_guarded` answers with INVALID_ARGUMENT naming it.
"""

from __future__ import annotations

import logging

import grpc

from retina.services.core.convert import camera_state_name
from retina.services.core.quality import check_quality
from retina.services.core.validation import (
    MAX_DEVICE_ID_LENGTH,
    InvalidArgument,
    check_number,
    check_text,
    check_timestamp,
    check_token,
)
from retina.services.scheduler.reconcile import Scheduler, WorkerIdTaken
from retina.services.scheduler.registry_api import MAX_REASON_LENGTH
from retina.v1 import scheduler_pb2, scheduler_pb2_grpc

log = logging.getLogger(__name__)

MAX_WORKER_ID_LENGTH = 128
MAX_ADDRESS_LENGTH = 256
MAX_DEVICES = 64
MAX_MODEL_KEY_LENGTH = 256
MAX_HEARTBEAT_CAMERAS = 10_000


def check_register_request(request: scheduler_pb2.RegisterWorkerRequest) -> None:
    """Raise InvalidArgument for a malformed registration. Capacity figures are not judged here:
    a device with bad ones is left out and reported back (placement.validate_worker)."""
    check_text(request.worker_id, "worker_id", max_length=MAX_WORKER_ID_LENGTH, required=True)
    check_text(request.address, "address", max_length=MAX_ADDRESS_LENGTH, required=True)
    _, _, port = request.address.rpartition(":")
    if not (port.isdigit() and 0 < int(port) < 65536):
        raise InvalidArgument("address", "use host:port")
    check_text(request.model_key, "model_key", max_length=MAX_MODEL_KEY_LENGTH)
    if len(request.devices) > MAX_DEVICES:
        raise InvalidArgument("devices", f"at most {MAX_DEVICES} (got {len(request.devices)})")
    for index, device in enumerate(request.devices):
        check_text(
            device.device_id, f"devices[{index}].device_id", max_length=MAX_DEVICE_ID_LENGTH, required=True
        )
        for model_key in device.capacity_fps:
            check_text(model_key, f"devices[{index}].capacity_fps", max_length=MAX_MODEL_KEY_LENGTH)


def check_heartbeat_request(request: scheduler_pb2.HeartbeatRequest) -> None:
    """Raise InvalidArgument for a malformed heartbeat."""
    check_text(request.worker_id, "worker_id", max_length=MAX_WORKER_ID_LENGTH, required=True)
    if len(request.cameras) > MAX_HEARTBEAT_CAMERAS:
        raise InvalidArgument("cameras", f"at most {MAX_HEARTBEAT_CAMERAS} (got {len(request.cameras)})")
    for index, camera in enumerate(request.cameras):
        field = f"cameras[{index}]"
        check_token(camera.camera_id, f"{field}.camera_id")
        check_text(camera.device_id, f"{field}.device_id", max_length=MAX_DEVICE_ID_LENGTH)
        if camera_state_name(camera.state) == "unknown":
            raise InvalidArgument(f"{field}.state", f"not a known camera state (got {camera.state})")
        if len(camera.reason) > MAX_REASON_LENGTH:  # only its size: an odd character must not cost a lease
            raise InvalidArgument(f"{field}.reason", f"at most {MAX_REASON_LENGTH} characters")
        for name in ("since", "last_frame_at"):
            if camera.HasField(name):
                check_timestamp(getattr(camera, name), f"{field}.{name}")
        if camera.HasField("quality"):
            try:
                check_quality(camera.quality, f"{field}.quality")
            except InvalidArgument as exc:  # a bad quality report must not cost the lease: dropped
                log.warning(
                    "heartbeat quality dropped", extra={"camera_id": camera.camera_id, "error": str(exc)}
                )
                camera.ClearField("quality")
    for device_id, fps in request.device_fps.items():
        check_text(device_id, "device_fps", max_length=MAX_DEVICE_ID_LENGTH)
        check_number(fps, f"device_fps[{device_id}]")


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServiceServicer):
    """``retina.v1.SchedulerService``; register it with ``add_guarded`` (services.core.validation)."""

    def __init__(self, scheduler: Scheduler):
        self.scheduler = scheduler

    async def RegisterWorker(self, request, context):
        check_register_request(request)
        try:
            ignored = self.scheduler.register(request)
        except WorkerIdTaken as exc:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, str(exc))
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        config = self.scheduler.config
        return scheduler_pb2.RegisterWorkerResponse(
            heartbeat_seconds=config.heartbeat_seconds, lease_seconds=config.lease_seconds, ignored=ignored
        )

    async def Heartbeat(self, request, context):
        check_heartbeat_request(request)
        if not self.scheduler.heartbeat(request):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown worker {request.worker_id!r}: register")
        return scheduler_pb2.HeartbeatResponse()

    async def GetClusterStatus(self, request, context):
        return self.scheduler.status()

    async def DrainWorker(self, request, context):
        check_text(request.worker_id, "worker_id", max_length=MAX_WORKER_ID_LENGTH, required=True)
        drained = await self.scheduler.drain(request.worker_id)
        if drained is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown worker {request.worker_id!r}")
        moved, unplaced = drained
        return scheduler_pb2.DrainWorkerResponse(moved=moved, unplaced=unplaced)
