"""The analysis worker service: gRPC control (assign/release/status, frame capture), NATS out, SIGTERM-safe.

Threads: one decode thread per camera, one analysis thread (detector, trackers, rules), and the
asyncio loop (gRPC server, NATS connection, outbox publishers, camera status), plus the feature
thread that embeds track crops, and the incident sink's delivery thread (snapshots, JPEGs, the
outbox insert: :class:`~retina.services.worker.sinks.OutboxSink`). Incident events go to the
on-disk outbox before they are published from there, so neither a NATS outage nor a SIGTERM loses
one; track features have an outbox of their own so they never crowd incidents out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc
import numpy as np

from retina.algorithms.sdk import HandedOverIncident
from retina.services.core import bus, service_auth
from retina.services.core.config import CameraConfig, ConfigError, RetinaConfig, validate_camera
from retina.services.core.convert import (
    camera_from_proto,
    camera_state_to_proto,
    open_incident_from_proto,
    open_incident_to_proto,
)
from retina.services.core.features import FeatureRecord, make_family_embedders
from retina.services.core.incident import draw_zone, encode_jpeg, parse_incident_msg_id
from retina.services.core.metrics import serve_metrics
from retina.services.core.outbox import Outbox
from retina.services.core.quality import effective_quality, quality_subject
from retina.services.core.serving import pause, run_until_signalled, start_grpc_server, to_timestamp
from retina.services.core.settings import WorkerSettings
from retina.services.core.validation import (
    MAX_DEVICE_ID_LENGTH,
    InvalidArgument,
    add_guarded,
    check_text,
    check_token,
)
from retina.services.worker import metrics
from retina.services.worker.features import FeatureExtractor
from retina.services.worker.ingest import CameraHealth
from retina.services.worker.lanes import DeviceLanes
from retina.services.worker.lease import SchedulerLease
from retina.services.worker.publisher import OutboxPublisher
from retina.services.worker.quality import (
    QualityReport,
    Reference,
    reference_from_proto,
    reference_to_proto,
    report_to_event,
    report_to_proto,
)
from retina.services.worker.sinks import OutboxSink
from retina.v1 import registry_pb2_grpc, worker_pb2, worker_pb2_grpc

log = logging.getLogger(__name__)

STATUS_REPUBLISH_SECONDS = 15.0
SHUTDOWN_DRAIN_SECONDS = 10.0
HANDOVER_FLUSH_SECONDS = 5.0  # a released camera's events reach the outbox before the reply
MAX_RESUMED_INCIDENTS = 1000
MAX_ZONE_NAME_LENGTH = 64  # as algorithms.sdk.config.Zone allows


def health_to_proto(
    camera_id: str, health_: CameraHealth, device_id: str = "", quality: QualityReport | None = None
) -> worker_pb2.CameraStatus:
    return worker_pb2.CameraStatus(
        camera_id=camera_id,
        device_id=device_id,
        state=camera_state_to_proto(health_.state),
        reason=health_.reason,
        since=to_timestamp(health_.since),
        last_frame_at=to_timestamp(health_.last_frame_at),
        frames_decoded=health_.frames_decoded,
        frames_analysed=health_.frames_analysed,
        reconnects=health_.reconnects,
        quality=report_to_proto(quality) if quality is not None else None,
    )


def health_to_json(camera_id: str, worker_id: str, health_: CameraHealth) -> bytes:
    def iso(epoch: float | None) -> str | None:
        return datetime.fromtimestamp(epoch, UTC).isoformat() if epoch else None

    return json.dumps(
        {
            "camera_id": camera_id,
            "worker_id": worker_id,
            "state": health_.state.value,
            "reason": health_.reason,
            "since": iso(health_.since),
            "last_frame_at": iso(health_.last_frame_at),
            "frames_decoded": health_.frames_decoded,
            "frames_analysed": health_.frames_analysed,
            "reconnects": health_.reconnects,
        }
    ).encode()


def zone_polygon(camera: CameraConfig, name: str) -> list[tuple[float, float]] | None:
    """The polygon of the camera's zone called ``name`` (the first rule that has one), or None."""
    zones = (zone for spec in camera.algorithms for zone in spec.zones if zone.name == name)
    return next((zone.polygon for zone in zones), None)


def render_frame(image: np.ndarray, polygon: list[tuple[float, float]] | None) -> bytes:
    """JPEG of a frame with the zone's outline, when given, drawn on a copy (frames are shared)."""
    if polygon is not None:
        image = image.copy()
        draw_zone(image, polygon)
    return encode_jpeg(image)


class Worker:
    """One worker process: owns the detector, the cameras assigned to it and its outbox."""

    def __init__(self, config: RetinaConfig, data_dir: Path, worker_id: str | None = None):
        self.config = config
        self.worker_id = worker_id or socket.gethostname()
        self.data_dir = data_dir
        self.outbox = Outbox(data_dir / f"outbox-{self.worker_id}.sqlite", remember_sent=True)  # resumable
        self.incidents = OutboxPublisher(self.outbox, "incidents")
        self.features: FeatureExtractor | None = None
        self.feature_publisher: OutboxPublisher | None = None
        if config.features.enabled:
            embedder = make_family_embedders(config.features, config.detector)
            feature_outbox = Outbox(data_dir / f"features-{self.worker_id}.sqlite", max_bytes=256 * 1024**2)
            self.feature_publisher = OutboxPublisher(feature_outbox, "features")
            self.features = FeatureExtractor(embedder, self._accept_features)
        self.sink = OutboxSink(
            self.outbox,
            self.incidents.wake,
            bus.MEDIA_BUCKET,
            evidence=config.evidence,
            request_clip=lambda *request: self.lanes.request_clip(*request),
        )
        self.lanes = DeviceLanes(config, self.sink.deliver, self._on_status, self.features, self.on_quality)
        self._scheduler_address: str | None = None  # where reference views taken here are stored
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_analysis = threading.Event()
        self._status_tasks: set[asyncio.Future] = set()
        self._nc = None

    # -- called from the feature and ingest threads --------------------------------------------

    def _accept_features(self, records: list[FeatureRecord]) -> None:
        """Queue track feature records (feature thread) for the FEATURES stream."""
        outbox = self.feature_publisher.outbox
        for record in records:
            if not outbox.append(record.msg_id, "feature", record.subject, record.to_json()):
                metrics.OUTBOX_REFUSED.labels("features").inc()
                log.warning("feature outbox full: record refused", extra={"camera_id": record.camera_id})
        self.feature_publisher.wake()

    def _on_status(self, camera_id: str, health_: CameraHealth) -> None:
        if self._loop is not None:
            payload = health_to_json(camera_id, self.worker_id, health_)
            self._loop.call_soon_threadsafe(self._publish_status, camera_id, payload)

    def on_quality(self, camera_id: str, report: QualityReport) -> None:
        """A camera's video quality changed (decode thread): publish it; store a view just taken."""
        if self._loop is None:
            return
        payload = report_to_event(report, self.worker_id).to_json()
        self._loop.call_soon_threadsafe(self._publish, quality_subject(camera_id), payload)
        if report.new_reference is not None and self._scheduler_address:
            self._loop.call_soon_threadsafe(self._store_reference, camera_id, report.new_reference)

    # -- asyncio side --------------------------------------------------------------------------

    def _publish_status(self, camera_id: str, payload: bytes) -> None:
        self._publish(bus.camera_status_subject(camera_id), payload)

    def _publish(self, subject: str, payload: bytes) -> None:
        """Publish on core NATS (camera status and quality: the next one replaces a lost one)."""
        if self._nc is not None and self._nc.is_connected:
            task = asyncio.ensure_future(self._nc.publish(subject, payload))
            self._status_tasks.add(task)
            task.add_done_callback(self._status_tasks.discard)

    def _store_reference(self, camera_id: str, reference: Reference) -> None:
        task = asyncio.ensure_future(self._send_reference(camera_id, reference))
        self._status_tasks.add(task)
        task.add_done_callback(self._status_tasks.discard)

    async def _send_reference(self, camera_id: str, reference: Reference) -> None:
        """Store a reference view taken here in the registry (RegistryService.SetReference), so the
        camera keeps it on any worker; retried for a minute, then the camera's next worker takes its
        own first clean view."""
        message = reference_to_proto(camera_id, reference, self.worker_id)
        for attempt in range(6):
            try:
                async with service_auth.aio_channel(
                    self._scheduler_address, service_auth.own_token()
                ) as channel:
                    await registry_pb2_grpc.RegistryServiceStub(channel).SetReference(message, timeout=10)
                log.info("reference view stored in the registry", extra={"camera_id": camera_id})
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:  # the camera was deleted meanwhile
                    return
                log.warning(
                    "reference view not stored yet; retrying",
                    extra={"camera_id": camera_id, "error": exc.code().name, "attempt": attempt + 1},
                )
                await asyncio.sleep(10)
        log.error("reference view could not be stored in the registry", extra={"camera_id": camera_id})

    async def _connect_nats(self, stop: asyncio.Event) -> None:
        self._nc = await bus.connect(self.config.nats.url, f"retina-worker-{self.worker_id}", stop)
        js = self._nc.jetstream()
        while not stop.is_set():
            try:
                media = await bus.ensure_all(js)
                break
            except Exception as exc:
                log.warning("JetStream not ready, retrying", extra={"error": str(exc)})
                await asyncio.sleep(1)
        else:
            return
        log.info("connected to NATS", extra={"nats_url": self.config.nats.url})
        self.incidents.connected(self._nc, js, media)
        if self.feature_publisher is not None:
            self.feature_publisher.connected(self._nc, js, None)

    async def _status_heartbeat(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for camera_id, (_, health_) in self.lanes.health().items():
                self._publish_status(camera_id, health_to_json(camera_id, self.worker_id, health_))
            for camera_id, report in self.lanes.quality_reports().items():
                self._publish(quality_subject(camera_id), report_to_event(report, self.worker_id).to_json())
            await pause(stop, STATUS_REPUBLISH_SECONDS)

    def status(self) -> list[worker_pb2.CameraStatus]:
        quality = self.lanes.quality_reports()
        return [
            health_to_proto(camera_id, health_, device_id, quality.get(camera_id))
            for camera_id, (device_id, health_) in sorted(self.lanes.health().items())
        ]

    async def serve(
        self,
        listen: str,
        grpc_port: int,
        metrics_port: int,
        stop: asyncio.Event,
        scheduler_address: str | None = None,
        advertise: str | None = None,
        *,
        auth: service_auth.Authenticator | None,
    ) -> None:
        """Run until ``stop`` is set, then shut down cleanly (see module doc).

        With ``scheduler_address`` the worker registers its devices and keeps a lease alive there;
        cameras then come from the scheduler. If the scheduler is down, analysis goes on.
        """
        self._loop = asyncio.get_running_loop()
        self._scheduler_address = scheduler_address
        if scheduler_address:
            await asyncio.to_thread(self.lanes.calibrate)
        serve_metrics(metrics_port, listen)
        server, health_servicer, port = await start_grpc_server(
            listen,
            grpc_port,
            lambda s: add_guarded(
                s, worker_pb2_grpc.add_WorkerServiceServicer_to_server, _WorkerServicer(self)
            ),
            "retina.v1.WorkerService",
            auth=auth,
        )
        log.info("worker serving", extra={"grpc_port": port, "worker_id": self.worker_id})

        self.lanes.start(self._stop_analysis)
        if self.features is not None:
            self.features.start()
        publisher_stop = asyncio.Event()
        tasks = [
            asyncio.create_task(self._connect_nats(stop)),
            asyncio.create_task(self._status_heartbeat(stop)),
        ]
        if scheduler_address:
            host = socket.getfqdn() if listen in ("0.0.0.0", "::") else listen
            lease = SchedulerLease(
                self.worker_id, self.lanes, self.status, scheduler_address, advertise or f"{host}:{port}"
            )
            lease_task = asyncio.create_task(lease.run(stop))
            tasks.append(lease_task)
        publishers = [p for p in (self.incidents, self.feature_publisher) if p is not None]
        publishing = asyncio.gather(*(asyncio.create_task(p.run(publisher_stop)) for p in publishers))
        await stop.wait()

        log.info("worker stopping")
        if scheduler_address:
            # Leave the scheduler while still serving: it moves the cameras now, each handing its
            # open incidents over through ReleaseCamera, so none waits for the lease to expire.
            lease_task.cancel()
            await lease.leave()
        await health_servicer.enter_graceful_shutdown()
        await server.stop(grace=2)
        # Stop the cameras first, then the analysis loop, then drain the incident sink: every event
        # produced so far is then in the outbox (each append is one SQLite transaction), so nothing
        # is half-written; what the sink could not write within its deadline is logged by msg id.
        # Under a scheduler the cameras move to other workers: their incidents stay open and continue
        # there under the same ids. A stand-alone worker ends them (``shutdown``).
        await asyncio.to_thread(self.lanes.release_all, "shutdown", bool(scheduler_address))
        self._stop_analysis.set()
        await asyncio.to_thread(self.lanes.join, 10)
        await asyncio.to_thread(self.sink.close, SHUTDOWN_DRAIN_SECONDS)
        if self.features is not None:
            await asyncio.to_thread(self.features.stop)  # the tracks' last records join the outbox
        publisher_stop.set()
        for publisher in publishers:
            publisher.wake()
        try:
            await asyncio.wait_for(publishing, timeout=SHUTDOWN_DRAIN_SECONDS)
        except TimeoutError:
            pending = {p.name: len(p.outbox) for p in publishers}
            log.warning(
                "NATS unreachable at shutdown; messages stay in the outbox", extra={"pending": pending}
            )
        for task in tasks:
            task.cancel()
        if self._nc is not None and self._nc.is_connected:
            await self._nc.drain()
        pending = len(self.outbox)
        for publisher in publishers:
            publisher.outbox.close()
        log.info("worker stopped", extra={"outbox_pending": pending})


def resumable(outbox: Outbox, camera_id: str, resume: list[HandedOverIncident]) -> list[HandedOverIncident]:
    """``resume`` as the worker's ``outbox`` corrects it. Events it accepted before a restart (still
    waiting, or published moments ago) can be newer than what the scheduler passed on, which came
    from the store, or from a worker that took the camera from the store meanwhile: an incident
    whose end is there stays ended, one with a later revision there continues after it (only the
    revision is taken; its box and times are the store's), so no ended incident comes back and no
    revision is used twice. Acknowledged ids are kept for 15 minutes (``Outbox.recent_ids``)."""
    if not resume:
        return resume
    waiting: dict[str, tuple[int, str]] = {}  # incident id -> its latest waiting (revision, event)
    for msg_id in outbox.recent_ids():
        parsed = parse_incident_msg_id(msg_id)
        if parsed is not None and parsed[2] >= waiting.get(parsed[0], (-1, ""))[0]:
            waiting[parsed[0]] = (parsed[2], parsed[1])
    kept = []
    for incident in resume:
        revision, event = waiting.get(incident.incident_id, (-1, ""))
        if revision < incident.revision:
            kept.append(incident)
        elif event == "end":
            log.info(
                "incident not resumed: the worker's outbox holds its end",
                extra={"camera_id": camera_id, "incident_id": incident.incident_id},
            )
        else:
            kept.append(dataclasses.replace(incident, revision=revision))
    return kept


class _WorkerServicer(worker_pb2_grpc.WorkerServiceServicer):
    """``retina.v1.WorkerService``, registered with ``add_guarded`` (services.core.validation)."""

    def __init__(self, worker: Worker):
        self.worker = worker

    async def AssignCamera(self, request, context):
        check_text(request.device_id, "device_id", max_length=MAX_DEVICE_ID_LENGTH)
        if len(request.resume) > MAX_RESUMED_INCIDENTS:
            raise InvalidArgument(
                "resume", f"at most {MAX_RESUMED_INCIDENTS} incidents (got {len(request.resume)})"
            )
        try:
            camera = validate_camera(camera_from_proto(request.camera), "camera", self.worker.config.defaults)
        except ConfigError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:  # the camera's quality thresholds must hold together with this worker's section
            effective_quality(self.worker.config.quality, camera.quality, "camera.quality")
        except ConfigError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        reference = reference_from_proto(request.reference) if request.HasField("reference") else None
        resume = [open_incident_from_proto(m, f"resume[{i}]") for i, m in enumerate(request.resume)]
        resume = await asyncio.to_thread(resumable, self.worker.outbox, camera.id, resume)
        try:
            health_ = await asyncio.to_thread(
                self.worker.lanes.assign, camera, request.device_id, resume, reference
            )
        except KeyError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.args[0])
        device_id = request.device_id or next(iter(self.worker.lanes.lanes))
        return worker_pb2.AssignCameraResponse(status=health_to_proto(camera.id, health_, device_id))

    async def ReleaseCamera(self, request, context):
        check_token(request.camera_id, "camera_id")
        handed = await asyncio.to_thread(self.worker.lanes.release, request.camera_id, request.handover)
        if handed is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"camera {request.camera_id!r} is not assigned here"
            )
        # The incidents continue elsewhere: their events so far must be in the outbox first.
        if not await asyncio.to_thread(self.worker.sink.wait_idle, HANDOVER_FLUSH_SECONDS):
            log.warning("incident sink still busy at handover", extra={"camera_id": request.camera_id})
        return worker_pb2.ReleaseCameraResponse(
            released=True, open_incidents=[open_incident_to_proto(i) for i in handed]
        )

    async def CaptureFrame(self, request, context):
        camera_id = check_token(request.camera_id, "camera_id")
        zone = check_text(request.zone, "zone", max_length=MAX_ZONE_NAME_LENGTH)
        found = self.worker.lanes.latest_frame(camera_id)
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"camera {camera_id!r} is not assigned here")
        camera, frame = found
        polygon = zone_polygon(camera, zone) if zone else None
        if zone and polygon is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"camera {camera_id!r} has no zone {zone!r}")
        if frame is None:
            _, health_ = self.worker.lanes.health().get(camera_id, ("", CameraHealth()))
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"camera {camera_id!r} has no frame yet ({health_.state.value}: {health_.reason})",
            )
        jpeg = await asyncio.to_thread(render_frame, frame.image, polygon)
        height, width = frame.image.shape[:2]
        return worker_pb2.CapturedFrame(
            jpeg=jpeg, captured_at=to_timestamp(frame.timestamp), width=width, height=height
        )

    async def CaptureReference(self, request, context):
        camera_id = check_token(request.camera_id, "camera_id")
        if self.worker.lanes.lane_of(camera_id) is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"camera {camera_id!r} is not assigned here")
        monitor = self.worker.lanes.quality_monitor(camera_id)
        if monitor is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, f"camera {camera_id!r}: the quality monitor is off"
            )
        try:
            reference = await asyncio.to_thread(monitor.capture_reference)
        except LookupError:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, f"camera {camera_id!r} has no sampled frame yet"
            )
        self.worker.on_quality(camera_id, monitor.report())  # rules resumed, scene change ended: say so
        return reference_to_proto(camera_id, reference, self.worker.worker_id)

    async def GetStatus(self, request, context):
        return worker_pb2.WorkerStatus(
            worker_id=self.worker.worker_id,
            model=self.worker.lanes.model_key,
            cameras=self.worker.status(),
            outbox_pending=len(self.worker.outbox) + self.worker.sink.pending(),
        )


def run_worker(settings: WorkerSettings, config: RetinaConfig) -> None:
    """Entry point of ``retina worker``: serve until SIGTERM/SIGINT.

    ``settings``: ports, address, data folder, NATS URL (which wins over ``config``'s ``nats.url``).
    """
    config = config.model_copy(update={"nats": config.nats.model_copy(update={"url": settings.nats_url})})
    auth = service_auth.configure(settings)

    async def main(stop: asyncio.Event) -> None:
        worker = Worker(config, settings.data_dir, settings.worker_id)
        started = time.time()
        await worker.serve(
            settings.listen,
            settings.grpc_port,
            settings.metrics_port,
            stop,
            settings.scheduler,
            settings.advertise,
            auth=auth,
        )
        log.info("worker exited", extra={"uptime_seconds": round(time.time() - started, 1)})

    run_until_signalled(main)
