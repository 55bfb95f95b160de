"""The analysis loop: frames from every camera → one detector call → per-camera tracking → rules.

Each camera has its own decode thread (:mod:`retina.services.worker.ingest`), tracker and algorithm
instances; the detector is shared and called once per round with one frame from each camera that
has one (so the detector never runs twice on the same frame, whatever the number of rules).
Incident events leave through ``on_events``, which must not block: the worker, ``retina analyze``
and ``retina eval`` pass an :class:`~retina.services.worker.sinks.IncidentSink`'s ``deliver``, so
snapshots, JPEGs and writes happen on the sink's thread, never under the analysis lock.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from retina.algorithms.sdk import (
    Algorithm,
    AlgorithmSpec,
    AnalysedFrame,
    CameraContext,
    HandedOverIncident,
    IncidentEvent,
    available_algorithms,
    ended_handover,
)
from retina.services.core.config import (
    CameraConfig,
    EvidenceConfig,
    FeaturesConfig,
    IngestConfig,
    TrackerConfig,
)
from retina.services.core.errors import ConfigError
from retina.services.core.motion_config import MotionConfig, effective_motion
from retina.services.core.plate_text import PlateEvidence
from retina.services.core.plates import PlateReader, PlatesUnavailable
from retina.services.core.plates_config import PlatesConfig
from retina.services.core.quality import QualityConfig, effective_quality, same_view
from retina.services.worker import metrics
from retina.services.worker.detector import CameraTracker, Detector
from retina.services.worker.evidence import ClipRequest, clip_window
from retina.services.worker.features import FeatureExtractor, FeatureJob, TrackFeatures
from retina.services.worker.ingest import (
    NO_QUALITY,
    CameraHealth,
    CameraSource,
    FrameBuffer,
    QualityCallback,
    SampledFrame,
    StatusCallback,
)
from retina.services.worker.motion import MotionGate
from retina.services.worker.plates import TrackPlates
from retina.services.worker.quality import QualityMonitor, QualityReport, QualityStatus, Reference

log = logging.getLogger(__name__)

# Called on the analysis thread with one frame's events of a camera: must return at once
# (IncidentSink.deliver does).
EventsCallback = Callable[[CameraConfig, list[IncidentEvent]], None]


class CameraPipeline:
    """Tracking and rules for one camera (everything after the shared detector)."""

    def __init__(
        self,
        camera: CameraConfig,
        tracker_config: TrackerConfig,
        detector: Detector,
        features: TrackFeatures | None = None,
        plates: TrackPlates | None = None,
    ):
        self.camera = camera
        self.tracker = CameraTracker(tracker_config, camera.analysis_fps, detector)
        self.features = features
        self.plates = plates
        self._plates: dict[str, tuple[PlateEvidence, int]] = {}  # open incident id → its plate, track id
        self._context = CameraContext(camera.id, camera.tz())
        self.algorithms: list[Algorithm] = [self._build(spec) for spec in camera.algorithms]
        self.last_timestamp: float | None = None
        self._track_keys: dict[str, str] = {}  # open incident id → feature track key of its object
        self.held: str = ""  # "suspended" or "paused" while the video quality holds the rules
        self._held_incidents: list[HandedOverIncident] = []  # open when the hold began; continue after
        self.quality: QualityMonitor | None = None  # its reference view reaches the rules on each frame

    def _build(self, spec: AlgorithmSpec) -> Algorithm:
        return available_algorithms()[spec.name].from_spec(self._context, spec)

    def _give_up(self, algorithm: Algorithm) -> list[HandedOverIncident]:
        """A rule's open incidents, given up without ending them, each naming its feature track."""
        return [
            incident
            if incident.track_key is not None
            else dataclasses.replace(incident, track_key=self._track_keys.get(incident.incident_id))
            for incident in algorithm.hand_over()
        ]

    def analyse(
        self, frame: SampledFrame, detections, quality: QualityStatus = NO_QUALITY, fresh: bool = True
    ) -> tuple[list[IncidentEvent], list[FeatureJob]]:
        """Track and run the rules on one frame: incident events, and the track features now due.

        ``quality`` is the camera's video quality now: while it holds the rules (the camera moved,
        or its view is covered) they do not see the frame (:meth:`_hold`); every event carries the
        problems the camera had (``camera_quality``). ``fresh`` False: the detections are an earlier
        frame's, re-used by the motion gate; track features wait for a frame the detector saw.
        """
        objects = self.tracker.update(detections)
        reference = self.quality.reference if self.quality is not None else None
        analysed = AnalysedFrame(
            self.camera.id, frame.timestamp, frame.image, objects, reference.view if reference else None
        )
        self.last_timestamp = frame.timestamp
        if self.plates is not None and fresh:  # before the features: their records carry plates read now
            self.plates.observe(analysed)
        jobs = self.features.observe(analysed) if self.features is not None and fresh else []  # its tracks
        if quality.hold:
            self._hold(quality)
            return [], jobs
        events: list[IncidentEvent] = self._release_hold() if self.held else []
        for algorithm in self.algorithms:
            events += algorithm.process(analysed)
            events += algorithm.expire_handovers(frame.timestamp)
        for event in events:
            event.camera_quality = list(quality.problems)
        return self._with_track_keys(events), jobs

    def _hold(self, quality: QualityStatus) -> None:
        """Stop the rules without ending their incidents: no new incident opens, and none ends as
        "moved" or "left" because the view is gone. Rules that keep their incidents in an
        IncidentLifecycle (every built-in one) give them up as on a move to another worker and are
        built afresh (what they learnt of the old view is void); the incidents continue under their
        ids once the rules see the same situations again after the hold, or end ``lost`` (the rule's
        handover time). Other rules just miss the frames."""
        if self.held:
            self.held = quality.hold
            return
        self.held = quality.hold
        for index, algorithm in enumerate(self.algorithms):
            if algorithm.lifecycle is None:
                continue
            self._held_incidents += self._give_up(algorithm)
            self.algorithms[index] = self._build(self.camera.algorithms[index])
        log.warning(
            f"rules {quality.hold}: {quality.note}",
            extra={"camera_id": self.camera.id, "open_incidents": len(self._held_incidents)},
        )

    def _release_hold(self) -> list[IncidentEvent]:
        """The rules run again; the incidents open when they stopped wait to be seen again."""
        held, self._held_incidents, self.held = self._held_incidents, [], ""
        log.info("rules resumed", extra={"camera_id": self.camera.id, "open_incidents": len(held)})
        return self.resume(held)

    def _track_key(self, event: IncidentEvent) -> str | None:
        """The feature track of an event's object. Once an incident has named one (its first event
        here, or its previous worker's), it keeps it: the track may end before the incident, and a
        handed-over incident's tracker id is another worker's. Otherwise its tracker id's track, if
        that track was already seen when the event's object was last seen."""
        known = self._track_keys.get(event.incident_id)
        if known is not None or self.features is None:
            return known
        return self.features.track_key(event.track_id, event.last_seen_at)

    def _with_track_keys(self, events: list[IncidentEvent]) -> list[IncidentEvent]:
        """Attach each event's ``track_key`` (one already set, by a handed-over incident, is kept)
        and its object's plate."""
        for event in events:
            if event.track_key is None:
                event.track_key = self._track_key(event)
            event.plate = self._plate(event)
            if event.event == "end":
                self._track_keys.pop(event.incident_id, None)
                self._plates.pop(event.incident_id, None)
            elif event.track_key is not None:
                self._track_keys[event.incident_id] = event.track_key
        return events

    def _plate(self, event: IncidentEvent) -> PlateEvidence | None:
        """The plate of the event's object as now voted, or the last one the incident carried; its
        crop JPEG only on the first event of the incident with that crop. Only a track already seen
        when the incident began can be its object (a handed-over incident's tracker id is another
        worker's; the incident store keeps the plate its first worker read)."""
        known = self._plates.get(event.incident_id)
        track = self.plates.plate(event.track_id, event.started_at) if self.plates is not None else None
        if track is None or track.facts is None or (known is not None and known[1] != event.track_id):
            return dataclasses.replace(known[0], crop_jpeg=None) if known is not None else None
        revision = track.crop_revision
        new_crop = track.crop_jpeg is not None and (known is None or known[0].crop_revision != revision)
        plate = PlateEvidence(track.facts, revision, track.crop_jpeg if new_crop else None)
        self._plates[event.incident_id] = (plate, event.track_id)
        return plate

    def resume(self, incidents: list[HandedOverIncident]) -> list[IncidentEvent]:
        """Continue the incidents the camera had open on its previous worker (see Algorithm.resume).

        Incidents of a rule no longer enabled on the camera end at once (``algorithm_removed``).
        """
        for incident in incidents:  # their later events name the same track
            if incident.track_key is not None:
                self._track_keys[incident.incident_id] = incident.track_key
        by_name = {algorithm.manifest.name: algorithm for algorithm in self.algorithms}
        events: list[IncidentEvent] = []
        for name in {incident.algorithm for incident in incidents}:
            mine = [incident for incident in incidents if incident.algorithm == name]
            if name in by_name:
                events += by_name[name].resume(mine)
            else:
                events += [ended_handover(incident, "", "algorithm_removed") for incident in mine]
        return self._with_track_keys(events)

    def hand_over(self) -> tuple[list[HandedOverIncident], list[FeatureJob]]:
        """Stop without ending incidents (the camera moves): the open incidents (those a quality hold
        keeps waiting included), and the tracks' ends."""
        held, self._held_incidents = self._held_incidents, []
        incidents = [incident for algorithm in self.algorithms for incident in self._give_up(algorithm)]
        return held + incidents, self.features.finish() if self.features is not None else []

    def finish(self, reason: str) -> tuple[list[IncidentEvent], list[FeatureJob]]:
        """End open incidents (with ``reason``) and open tracks."""
        if self.last_timestamp is None:
            return [], []
        versions = {algorithm.manifest.name: algorithm.manifest.version for algorithm in self.algorithms}
        held, self._held_incidents = self._held_incidents, []
        events = [ended_handover(i, versions.get(i.algorithm, ""), reason) for i in held]
        for algorithm in self.algorithms:
            events += algorithm.finish(self.last_timestamp, reason)
        events = self._with_track_keys(events)
        return events, self.features.finish() if self.features is not None else []


@dataclass
class _Camera:
    config: CameraConfig
    source: CameraSource
    buffer: FrameBuffer
    pipeline: CameraPipeline
    finished: bool = False
    gate: MotionGate | None = None  # None: every frame goes to the detector


class Analyzer:
    """Owns the cameras of one worker and runs the shared detection loop in one thread."""

    def __init__(
        self,
        detector: Detector,
        tracker_config: TrackerConfig,
        ingest_config: IngestConfig,
        on_events: EventsCallback,
        on_status: StatusCallback,
        *,
        realtime: bool,
        retry_files: bool,
        max_batch: int = 8,
        max_wait_seconds: float = 0.0,
        file_start_epoch: float | None = None,
        evidence: EvidenceConfig | None = None,
        features: FeatureExtractor | None = None,
        features_config: FeaturesConfig | None = None,
        quality: QualityConfig | None = None,
        on_quality: QualityCallback | None = None,
        motion: MotionConfig | None = None,
        plates: PlatesConfig | None = None,
    ):
        self.detector = detector
        self.tracker_config = tracker_config
        self.ingest_config = ingest_config
        self.on_events = on_events
        self.on_status = on_status
        self.realtime = realtime
        self.retry_files = retry_files
        self.max_batch = max_batch
        self.max_wait_seconds = max_wait_seconds
        self.frames_analysed = 0  # read by the worker's heartbeat (device load)
        self.file_start_epoch = file_start_epoch  # fixed stream-time origin for files (evaluation)
        self.evidence = evidence or EvidenceConfig(clip_before_seconds=0, clip_after_seconds=0)
        self.features = features
        self.features_config = features_config
        self.quality = quality  # the cluster's quality section; None: no quality monitor
        self.on_quality = on_quality
        self.motion = motion  # the cluster's motion section; None: no motion gate
        # The plate models, loaded once (PlatesUnavailable names the setting when they cannot be).
        # Tracks' plates are read with both models; a detector alone serves redaction only.
        self.plates_config = plates if plates is not None and plates.enabled and plates.reader_model else None
        self.plate_reader = None
        if self.plates_config is not None:
            try:
                self.plate_reader = PlateReader(self.plates_config)
            except PlatesUnavailable as exc:
                raise ConfigError([str(exc)]) from None
        self._cameras: dict[str, _Camera] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._analysis_lock = threading.Lock()  # a camera is never finished while its frame is analysed
        self._manage_lock = threading.RLock()  # assign/release of cameras happen one at a time
        self._round_robin = 0

    # -- camera management (any thread) ------------------------------------------------------

    def assign(
        self,
        camera: CameraConfig,
        resume: list[HandedOverIncident] | None = None,
        reference: Reference | None = None,
    ) -> CameraHealth:
        """Start a camera, or restart it with a changed configuration.

        ``resume``: incidents it had open on its previous worker, continued here under their ids.
        ``reference``: its reference view for the quality monitor (from the registry); without one,
        a camera restarted on the same view keeps the one it had, others take their first clean view.
        Raises ConfigError when the camera's quality settings do not hold with the cluster's.
        """
        with self._manage_lock:
            return self._assign(camera, resume or [], reference)

    def _assign(
        self, camera: CameraConfig, resume: list[HandedOverIncident], reference: Reference | None
    ) -> CameraHealth:
        with self._lock:
            existing = self._cameras.get(camera.id)
        monitor = self._monitor(camera, reference)
        if existing is not None:
            if existing.config == camera:
                if resume:  # incidents handed over late (the camera ran in two places for a moment)
                    with self._analysis_lock:
                        events = existing.pipeline.resume(resume)
                    self._deliver(camera, events, [])
                return existing.source.health
            kept = existing.source.quality
            if (
                monitor is not None
                and reference is None
                and kept is not None
                and same_view(existing.config, camera)
            ):
                monitor.reference = kept.reference  # same view, new settings: the reference stays
            resume = resume + self.release(camera.id, handover=True)  # same situations, new settings
        track_plates = None
        if self.plate_reader is not None and self.plates_config is not None:
            lost = self.tracker_config.lost_seconds
            track_plates = TrackPlates(camera.id, self.plate_reader, self.plates_config, lost)
        track_features = None
        if self.features is not None and self.features_config is not None:
            track_features = TrackFeatures(
                camera,
                self.features_config,
                self.features.embedder_keys,
                self.tracker_config.lost_seconds,
                track_plates,
            )
        pipeline = CameraPipeline(camera, self.tracker_config, self.detector, track_features, track_plates)
        pipeline.quality = monitor
        # Live: only the newest sampled frame waits, so a busy worker analyses the freshest picture and
        # an alert is never late by a queue of stale frames. Flat out over a file: two, decoder blocked.
        capacity = 1 if self.realtime else 2
        buffer = FrameBuffer(camera.id, capacity=capacity, drop_oldest=self.realtime, ready=self._ready)
        source = CameraSource(
            camera,
            self.ingest_config,
            buffer,
            self.on_status,
            realtime=self.realtime,
            retry_files=self.retry_files,
            file_start_epoch=self.file_start_epoch,
            clip_ring_seconds=self.evidence.clip_before_seconds + self.evidence.clip_after_seconds + 5
            if self.evidence.enabled
            else 0.0,
            quality=monitor,
            on_quality=self.on_quality,
        )
        self._deliver(camera, pipeline.resume(resume), [])
        with self._lock:
            self._cameras[camera.id] = _Camera(camera, source, buffer, pipeline, gate=self._gate(camera))
        source.start()
        log.info("camera assigned", extra={"camera_id": camera.id, "url": camera.url})
        return source.health

    def _gate(self, camera: CameraConfig) -> MotionGate | None:
        """A motion gate for ``camera`` (None when the gate is off for it)."""
        if self.motion is None:
            return None
        config = effective_motion(self.motion, camera.motion)
        return MotionGate(camera.id, config, camera.algorithms) if config.enabled else None

    @staticmethod
    def _needs_detection(entry: _Camera, frame: SampledFrame) -> bool:
        """Whether the frame goes to the detector (always without a gate, or when the gate fails)."""
        if entry.gate is None:
            return True
        try:
            return entry.gate.needs_detection(frame.image, frame.timestamp)
        except Exception:
            log.exception("motion gate failed on a frame; detecting", extra={"camera_id": entry.config.id})
            return True

    def _monitor(self, camera: CameraConfig, reference: Reference | None) -> QualityMonitor | None:
        """A quality monitor for ``camera`` (None when quality is off for it)."""
        if self.quality is None:
            return None
        config = effective_quality(self.quality, camera.quality, "camera.quality")
        if not config.enabled:
            return None
        return QualityMonitor(camera.id, config, reference)

    def release(
        self, camera_id: str, reason: str = "camera_removed", handover: bool = False
    ) -> list[HandedOverIncident] | None:
        """Stop a camera; None if it was not here.

        Its open incidents end with ``reason``; with ``handover`` they stay open and are returned
        instead, for the camera's next worker.
        """
        with self._manage_lock:
            if handover:
                with self._lock:
                    entry = self._cameras.pop(camera_id, None)
                if entry is None:
                    return None
                entry.source.stop()
                entry.source.join(timeout=10.0)
                return self._hand_over(entry)
            return [] if self.release_all(reason, [camera_id]) else None

    def release_all(
        self, reason: str, camera_ids: list[str] | None = None, timeout: float = 10.0, handover: bool = False
    ) -> list[str]:
        """Stop cameras (all by default) together, then end their open incidents with ``reason`` —
        or, with ``handover``, leave them open for the cameras' next worker.

        Every source is told to stop first and all are joined within one ``timeout``, so a camera
        stuck in a network read cannot hold up the others' end events.
        """
        with self._manage_lock:
            with self._lock:
                ids = list(self._cameras) if camera_ids is None else camera_ids
                entries = [e for e in (self._cameras.pop(cid, None) for cid in ids) if e is not None]
            for entry in entries:
                entry.source.stop()
            deadline = time.monotonic() + timeout
            for entry in entries:
                entry.source.join(timeout=max(0.0, deadline - time.monotonic()))
            for entry in entries:
                if handover:
                    self._hand_over(entry)
                else:
                    self._finish(entry, reason)
                log.info("camera released", extra={"camera_id": entry.config.id, "reason": reason})
            return [e.config.id for e in entries]

    def _finish(self, entry: _Camera, reason: str) -> None:
        """End a camera's open incidents once (never while one of its frames is being analysed)."""
        with self._analysis_lock:
            if entry.finished:
                return
            entry.finished = True
            try:
                events, jobs = entry.pipeline.finish(reason)
            except Exception:
                log.exception("ending open incidents failed", extra={"camera_id": entry.config.id})
                return
        self._deliver(entry.config, events, jobs)

    def _hand_over(self, entry: _Camera) -> list[HandedOverIncident]:
        """Stop a camera's rules without ending their incidents; return those incidents."""
        with self._analysis_lock:
            entry.finished = True
            try:
                incidents, jobs = entry.pipeline.hand_over()
            except Exception:
                log.exception("handing over open incidents failed", extra={"camera_id": entry.config.id})
                return []
        self._deliver(entry.config, [], jobs)
        log.info("camera handed over", extra={"camera_id": entry.config.id, "open_incidents": len(incidents)})
        return incidents

    def _deliver(self, camera: CameraConfig, events: list[IncidentEvent], jobs: list[FeatureJob]) -> None:
        """Hand events to the sink and feature jobs to the extractor (both queue and return); a
        failing sink is logged and never stops the analysis loop."""
        if jobs and self.features is not None:
            self.features.submit(jobs)
        if not events:
            return
        try:
            self.on_events(camera, events)
        except Exception:
            log.exception("incident events could not be accepted", extra={"camera_id": camera.id})

    def request_clip(self, camera_id: str, incident_id: str, around: float, on_ready) -> None:
        """Ask a camera's decode thread for the evidence clip around ``around`` (epoch seconds)."""
        request = ClipRequest(camera_id, incident_id, *clip_window(self.evidence, around), on_ready)
        with self._lock:
            entry = self._cameras.get(camera_id)
        if entry is None:
            on_ready(request, None, "camera no longer assigned")
        else:
            entry.source.request_clip(request)

    def health(self) -> dict[str, CameraHealth]:
        with self._lock:
            return {cid: entry.source.health for cid, entry in self._cameras.items()}

    def quality_reports(self) -> dict[str, QualityReport]:
        """The video quality of every camera with a quality monitor."""
        with self._lock:
            monitors = {cid: entry.source.quality for cid, entry in self._cameras.items()}
        return {cid: monitor.report() for cid, monitor in monitors.items() if monitor is not None}

    def quality_monitor(self, camera_id: str) -> QualityMonitor | None:
        """A camera's quality monitor; None when the camera is not here or has none."""
        with self._lock:
            entry = self._cameras.get(camera_id)
        return entry.source.quality if entry is not None else None

    def latest_frame(self, camera_id: str) -> tuple[CameraConfig, SampledFrame | None] | None:
        """A camera's configuration and newest decoded frame (None before the first); None if the
        camera is not here."""
        with self._lock:
            entry = self._cameras.get(camera_id)
        return None if entry is None else (entry.config, entry.source.latest)

    def all_finished(self) -> bool:
        """True once every camera's source has ended and its last frame was analysed."""
        with self._lock:
            return all(entry.finished for entry in self._cameras.values())

    # -- the loop (its own thread) -----------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Analyse until ``stop`` is set. Nothing one camera does can end this loop."""
        while not stop.is_set():
            self._ready.clear()
            try:
                batch = self._collect()
                if not batch:
                    self._ready.wait(0.5)
                    continue
                self._analyse(batch)
            except Exception:
                log.exception("analysis round failed; continuing")
                stop.wait(0.5)

    def _collect(self) -> list[tuple[_Camera, SampledFrame]]:
        """One frame from each camera that has one (at most ``max_batch``).

        Dynamic batching: once a first frame is there, wait up to ``max_wait_seconds`` for other
        cameras' frames, so one detector call serves several streams.
        """
        batch = self._take_ready(set())
        if not batch or self.max_wait_seconds <= 0:
            return batch
        deadline = time.monotonic() + self.max_wait_seconds
        while len(batch) < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._ready.clear()
            more = self._take_ready({entry.config.id for entry, _ in batch}, self.max_batch - len(batch))
            if more:
                batch += more
            else:
                self._ready.wait(left)
        return batch

    def _take_ready(self, taken: set[str], limit: int | None = None) -> list[tuple[_Camera, SampledFrame]]:
        with self._lock:
            cameras = [e for e in self._cameras.values() if e.config.id not in taken]
        if not cameras:
            return []
        limit = limit or self.max_batch
        start = self._round_robin % len(cameras)
        self._round_robin += 1
        batch = []
        for entry in cameras[start:] + cameras[:start]:
            frame = entry.buffer.get()
            if frame is not None:
                batch.append((entry, frame))
            elif entry.buffer.ended and not entry.finished and len(entry.buffer) == 0:
                self._finish(entry, "end_of_stream")
            if len(batch) >= limit:
                break
        return batch

    def _analyse(self, batch: list[tuple[_Camera, SampledFrame]]) -> None:
        with self._analysis_lock:
            self._analyse_locked(batch)

    def _analyse_locked(self, batch: list[tuple[_Camera, SampledFrame]]) -> None:
        fresh = [self._needs_detection(entry, frame) for entry, frame in batch]  # False: nothing moved
        images = [frame.image for (_, frame), new in zip(batch, fresh, strict=True) if new]
        try:
            found = iter(self.detector.detect(images) if images else [])
        except Exception:
            log.exception("detector failed on a batch; frames skipped", extra={"batch": len(batch)})
            return
        for (entry, frame), new in zip(batch, fresh, strict=True):
            dets = next(found) if new else entry.gate.detections
            if new and entry.gate is not None:
                entry.gate.detected(frame.timestamp, dets)
            if entry.finished:  # released while the detector ran
                continue
            camera_id = entry.config.id
            entry.source.health.frames_analysed += 1
            entry.source.health.frames_skipped += 0 if new else 1
            self.frames_analysed += 1
            metrics.FRAMES_ANALYSED.labels(camera_id).inc()
            try:
                events, jobs = entry.pipeline.analyse(frame, dets, entry.source.quality_status(), fresh=new)
            except Exception:
                log.exception("analysis failed on a frame", extra={"camera_id": camera_id})
                continue
            self._deliver(entry.config, events, jobs)
