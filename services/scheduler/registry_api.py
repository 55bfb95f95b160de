"""The gRPC face of the camera registry: ``retina.v1.RegistryService`` over a :class:`CameraRegistry`.

Host it in any grpc.aio server::

    registry = CameraRegistry(sqlite_url(data_dir / "registry.sqlite"))  # or a SchedulerDatabase
    servicer = RegistryServicer(registry, defaults=config.defaults)
    server, health, port = await start_grpc_server(
        listen, port,
        lambda s: add_guarded(s, registry_pb2_grpc.add_RegistryServiceServicer_to_server, servicer),
        "retina.v1.RegistryService",
    )
    ...
    servicer.close()          # ends the watch streams cleanly
    await server.stop(grace=5)

How WatchCameras learns about changes: every write committed through the same
:class:`CameraRegistry` object (through this servicer or directly, e.g. an import by the scheduler)
wakes the watchers at once through :meth:`CameraRegistry.add_listener`. Writes by other processes
sharing the database are picked up by polling the change log every ``poll_seconds``.

Every request is checked before any work: ids must be camera-id tokens, texts have length limits,
timestamps must be valid; a bad field raises :class:`~services.core.validation.InvalidArgument`,
which :func:`~services.core.validation.add_guarded` (as above) answers with INVALID_ARGUMENT naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import json_format

from retina.services.core.config import CameraConfig, CameraDefaults, ConfigError, validate_camera
from retina.services.core.convert import (
    camera_from_proto,
    camera_state_from_proto,
    camera_state_to_proto,
    camera_to_proto,
)
from retina.services.core.health import CameraState
from retina.services.core.quality import check_quality, check_reference
from retina.services.core.serving import to_timestamp
from retina.services.core.validation import (
    InvalidArgument,
    check_text,
    check_timestamp,
    check_token,
    is_token,
)
from retina.services.scheduler.camera_records import (
    CameraChange,
    CameraExists,
    CameraHealthRecord,
    CameraNotFound,
    CameraRecord,
    ReferenceRecord,
    RegistryError,
    RevisionConflict,
    StoredCameraInvalid,
)
from retina.services.scheduler.cameras import CameraRegistry
from retina.v1 import common_pb2, registry_pb2, registry_pb2_grpc, worker_pb2

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
POLL_SECONDS = 1.0
MAX_LABEL_LENGTH = 128  # scene types, algorithm names and worker ids
MAX_TEXT_LENGTH = 1024  # search text
MAX_REASON_LENGTH = 8192  # a health reason quotes the camera's URL (up to 4096 characters)

_STATUS_CODES: dict[type[RegistryError], grpc.StatusCode] = {
    CameraNotFound: grpc.StatusCode.NOT_FOUND,
    CameraExists: grpc.StatusCode.ALREADY_EXISTS,
    RevisionConflict: grpc.StatusCode.ABORTED,
    StoredCameraInvalid: grpc.StatusCode.FAILED_PRECONDITION,
}

T = TypeVar("T")
# Takes a camera's current view as its reference on the worker running it and stores it; raises
# CaptureFailed when it cannot (the scheduler provides it: services/scheduler/reconcile.py).
CaptureReference = Callable[[str], Awaitable[worker_pb2.QualityReference]]


class CaptureFailed(Exception):
    """A reference view could not be captured; ``code`` is the gRPC status to answer with."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------
# Conversions to the wire
# ---------------------------------------------------------------------------------------------


def health_record_to_proto(health: CameraHealthRecord) -> registry_pb2.CameraHealth:
    """The CameraHealth message of a stored health report."""
    quality = None
    if health.quality is not None:  # stored as reported; a field a newer worker added is skipped
        quality = json_format.ParseDict(
            health.quality, worker_pb2.CameraQuality(), ignore_unknown_fields=True
        )
    return registry_pb2.CameraHealth(
        camera_id=health.camera_id,
        status=camera_state_to_proto(health.status),
        reason=health.reason,
        last_frame_at=to_timestamp(health.last_frame_at),
        worker_id=health.worker_id,
        updated_at=to_timestamp(health.updated_at),
        quality=quality,
    )


def quality_to_json(quality: worker_pb2.CameraQuality) -> dict[str, Any]:
    """How the registry stores a camera's quality: the message as a JSON mapping."""
    return json_format.MessageToDict(quality, preserving_proto_field_name=True)


def reference_record_to_proto(record: ReferenceRecord) -> worker_pb2.QualityReference:
    """The QualityReference message of a stored reference view."""
    return worker_pb2.QualityReference(
        camera_id=record.camera_id,
        image=record.image,
        captured_at=to_timestamp(record.captured_at),
        source=record.source,
        worker_id=record.worker_id,
    )


def record_to_proto(record: CameraRecord) -> registry_pb2.CameraRecord:
    """The CameraRecord message of a registered camera."""
    return registry_pb2.CameraRecord(
        camera=camera_to_proto(record.camera),
        enabled=record.enabled,
        health=health_record_to_proto(record.health) if record.health else None,
        revision=record.revision,
        created_at=to_timestamp(record.created_at),
        updated_at=to_timestamp(record.updated_at),
    )


def change_to_proto(change: CameraChange) -> registry_pb2.CameraChange:
    """The CameraChange message of a change-log entry (a delete carries only the camera id)."""
    if change.kind == "delete" or change.record is None:
        return registry_pb2.CameraChange(
            kind=registry_pb2.CameraChange.KIND_DELETE,
            record=registry_pb2.CameraRecord(
                camera=common_pb2.Camera(id=change.camera_id), revision=change.revision
            ),
            revision=change.revision,
        )
    return registry_pb2.CameraChange(
        kind=registry_pb2.CameraChange.KIND_UPSERT,
        record=record_to_proto(change.record),
        revision=change.revision,
    )


# ---------------------------------------------------------------------------------------------
# The servicer
# ---------------------------------------------------------------------------------------------


class RegistryServicer(registry_pb2_grpc.RegistryServiceServicer):
    """``retina.v1.RegistryService`` over a :class:`CameraRegistry` (grpc.aio).

    ``defaults`` fill in what an incoming camera leaves unset (the cluster's ``defaults:`` section);
    ``poll_seconds`` is how often watch streams look for changes written by other processes.
    """

    def __init__(
        self,
        registry: CameraRegistry,
        defaults: CameraDefaults | None = None,
        poll_seconds: float = POLL_SECONDS,
        capture_reference: CaptureReference | None = None,
    ):
        self.registry = registry
        self.defaults = defaults or CameraDefaults()
        self.poll_seconds = poll_seconds
        self.capture_reference = capture_reference  # None: no scheduler beside the registry
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()  # set, then replaced, on every change; see _wake_watchers
        self._closed = False
        self._remove_listener = registry.add_listener(self._on_registry_change)

    def close(self) -> None:
        """End every watch stream (they finish with OK) and stop listening to the registry.

        Call it on the event loop's thread, before ``server.stop()``.
        """
        self._closed = True
        self._remove_listener()
        self._wake_watchers()

    # --- change notification ------------------------------------------------------------------

    def _on_registry_change(self, _revision: int) -> None:
        """Registry listener; runs on whichever thread wrote, so it hands over to the event loop."""
        loop = self._loop
        if loop is None:  # no watch stream has started yet: nobody to wake
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is gone
            loop.call_soon_threadsafe(self._wake_watchers)

    def _wake_watchers(self) -> None:
        # Each watcher waits on the event it picked up *before* reading the registry, so a change
        # committed after its read always wakes it.
        self._changed.set()
        self._changed = asyncio.Event()

    # --- helpers ------------------------------------------------------------------------------

    async def _call(self, context: grpc.aio.ServicerContext, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking registry call on a thread; registry errors become gRPC status codes."""
        try:
            return await asyncio.to_thread(function, *args)
        except RegistryError as exc:
            await _abort(context, _STATUS_CODES.get(type(exc), grpc.StatusCode.FAILED_PRECONDITION), str(exc))

    async def _validated(self, context: grpc.aio.ServicerContext, message: Any) -> CameraConfig:
        """The validated camera, or INVALID_ARGUMENT with one ``camera.<field>: problem`` per line."""
        try:
            return validate_camera(camera_from_proto(message, "camera"), "camera", self.defaults)
        except ConfigError as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "\n".join(exc.errors))

    # --- rpcs ---------------------------------------------------------------------------------

    async def CreateCamera(self, request, context):
        """Register a camera (enabled unless the request says otherwise)."""
        camera = await self._validated(context, request.camera)
        enabled = request.enabled if request.HasField("enabled") else True
        record = await self._call(context, self.registry.create, camera, enabled)
        log.info("camera created", extra={"camera_id": camera.id, "revision": record.revision})
        return record_to_proto(record)

    async def UpdateCamera(self, request, context):
        """Replace a camera's configuration, optionally only at an expected revision."""
        camera = await self._validated(context, request.camera)
        enabled = request.enabled if request.HasField("enabled") else None
        expected = request.expected_revision if request.HasField("expected_revision") else None
        record = await self._call(context, self.registry.update, camera, enabled, expected)
        log.info("camera updated", extra={"camera_id": camera.id, "revision": record.revision})
        return record_to_proto(record)

    async def DeleteCamera(self, request, context):
        """Remove a camera, optionally only at an expected revision."""
        check_token(request.camera_id, "camera_id")
        expected = request.expected_revision if request.HasField("expected_revision") else None
        revision = await self._call(context, self.registry.delete, request.camera_id, expected)
        log.info("camera deleted", extra={"camera_id": request.camera_id, "revision": revision})
        return registry_pb2.DeleteCameraResponse(revision=revision)

    async def GetCamera(self, request, context):
        """One camera by id."""
        check_token(request.camera_id, "camera_id")
        return record_to_proto(await self._call(context, self.registry.get, request.camera_id))

    async def ListCameras(self, request, context):
        """One page of the cameras matching the request's filters, ordered by id."""
        if request.page_size < 0 or request.page_size > MAX_PAGE_SIZE:
            await _abort(
                context, grpc.StatusCode.INVALID_ARGUMENT, f"page_size: use 0 to {MAX_PAGE_SIZE} (0: default)"
            )
        if request.page_token and not is_token(request.page_token):
            raise InvalidArgument("page_token", "not a next_page_token of this API")
        check_token(request.department, "department", required=False)
        check_text(request.scene_type, "scene_type", max_length=MAX_LABEL_LENGTH)
        check_text(request.algorithm, "algorithm", max_length=MAX_LABEL_LENGTH)
        check_text(request.text, "text", max_length=MAX_TEXT_LENGTH)
        size = request.page_size or DEFAULT_PAGE_SIZE
        records = await self._call(
            context,
            self.registry.list,
            request.department or None,
            request.scene_type or None,
            request.algorithm or None,
            request.enabled if request.HasField("enabled") else None,
            request.text or None,
            size + 1,  # one more than asked for tells whether another page follows
            request.page_token or None,
        )
        next_token = records[size - 1].camera_id if len(records) > size else ""
        return registry_pb2.ListCamerasResponse(
            cameras=[record_to_proto(r) for r in records[:size]], next_page_token=next_token
        )

    async def WatchCameras(self, request, context) -> AsyncIterator[registry_pb2.CameraChange]:
        """Replay the changes after ``since_revision``, then stream changes as they happen."""
        self._loop = asyncio.get_running_loop()
        cursor = request.since_revision
        head = await self._call(context, self.registry.current_revision)
        if cursor > head:
            await _abort(
                context,
                grpc.StatusCode.OUT_OF_RANGE,
                f"since_revision {cursor} is ahead of the registry (revision {head}): "
                "it was reset or replaced; watch again from 0",
            )
        first = True
        while not self._closed:
            changed = self._changed  # picked up before reading, see _wake_watchers
            head = await self._call(context, self.registry.current_revision)
            if first or head > cursor:
                # head was read first, so these changes include every one up to head.
                changes = await self._call(context, self.registry.changes_since, cursor)
                for change in changes:
                    yield change_to_proto(change)
                cursor = max([cursor, head, *(change.revision for change in changes)])
                first = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=self.poll_seconds)

    async def ReportHealth(self, request, context):
        """Store the health a worker reports for a camera."""
        check_token(request.camera_id, "camera_id")
        status = camera_state_from_proto(request.status)
        if status is None:
            choices = ", ".join(state.name for state in CameraState)
            raise InvalidArgument("status", f"set one of {choices}")
        check_text(request.reason, "reason", max_length=MAX_REASON_LENGTH, single_line=False)
        check_text(request.worker_id, "worker_id", max_length=MAX_LABEL_LENGTH)
        last_frame_at = (
            check_timestamp(request.last_frame_at, "last_frame_at")
            if request.HasField("last_frame_at")
            else None
        )
        quality = None
        if request.HasField("quality"):
            check_quality(request.quality)
            quality = quality_to_json(request.quality)
        health = await self._call(
            context,
            self.registry.report_health,
            request.camera_id,
            status,
            request.reason,
            last_frame_at,
            request.worker_id,
            quality,
        )
        return health_record_to_proto(health)

    async def CaptureReference(self, request, context):
        """Take a camera's current view as its reference view (on its worker) and store it."""
        camera_id = check_token(request.camera_id, "camera_id")
        await self._call(context, self.registry.get, camera_id)  # NOT_FOUND for an unknown camera
        if self.capture_reference is None:
            await _abort(
                context, grpc.StatusCode.FAILED_PRECONDITION, "no scheduler runs beside this registry"
            )
        try:
            reference = await self.capture_reference(camera_id)
        except CaptureFailed as exc:
            await _abort(context, exc.code, str(exc))
        _, captured_at = check_reference(reference, "worker answer")
        await self._call(
            context,
            self.registry.set_reference,
            camera_id,
            reference.image,
            captured_at,
            reference.source,
            reference.worker_id,
        )
        log.info(
            "reference view confirmed: the camera's rules judge this view now",
            extra={"camera_id": camera_id, "worker_id": reference.worker_id, "captured_at": captured_at},
        )
        return reference

    async def SetReference(self, request, context):
        """Store the reference view a worker took of a camera that had none."""
        camera_id = check_token(request.camera_id, "camera_id")
        _, captured_at = check_reference(request)
        check_text(request.worker_id, "worker_id", max_length=MAX_LABEL_LENGTH)
        record = await self._call(
            context,
            self.registry.set_reference,
            camera_id,
            request.image,
            captured_at,
            request.source,
            request.worker_id,
        )
        log.info("reference view stored", extra={"camera_id": camera_id, "source": request.source})
        return reference_record_to_proto(record)


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    """End the call with ``code``; ``context.abort`` always raises."""
    await context.abort(code, message)
    raise AssertionError("unreachable: context.abort raises")
