"""Incident sinks: where incident events go once the rules have produced them (Savant's sinks are
the model).

The analysis thread only analyses. It hands each frame's events to :meth:`IncidentSink.deliver`,
which never blocks it; drawing the snapshot, the two JPEG encodes and writing the event out happen
on the sink's own delivery thread, as embedding track crops happens on the feature thread.

- :class:`OutboxSink` (``retina worker``): the durable SQLite outbox, then the publisher's wake-up.
- :class:`JsonLinesSink` (``retina analyze``): one JSON line per event, media files in a folder.
- :class:`MemorySink` (``retina eval``): the events in a list.

Queued sinks (the first two) keep one bounded FIFO and one delivery thread each, so events leave in
the order the rules produced them and every incident's events stay in order. The bound counts
events, like the outbox's bytes: ``update`` events are refused past ``max_queue``, ``new`` and
``end`` up to twice that; a refused event is counted (``retina_incident_sink_dropped_total``) and
logged with its msg id. Each queued event holds its frame while it carries a snapshot (one 720p
frame is 2.7 MB; the events of one frame share it).

Evidence clips are asked for in ``deliver`` itself, on the analysis thread (a cheap append to the
camera's decode thread): the clip window is the same however far the queue lags.

:meth:`IncidentSink.close` stops accepting and drains what was accepted within a deadline. Events
still queued after it are logged one by one (msg id, reason ``shutdown``), counted as dropped and
discarded; the event in hand is finished by the (daemon) thread if the process lives long enough.
For the worker that takes an outbox disk that cannot store hundreds of events in 10 seconds.
"""

from __future__ import annotations

import logging
import sys
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from prometheus_client import Counter, Gauge

from retina.algorithms.sdk import IncidentEvent
from retina.services.core.config import CameraConfig, EvidenceConfig
from retina.services.core.incident import IncidentMessage, build_message, clip_key, incident_msg_id
from retina.services.core.outbox import Outbox
from retina.services.worker import metrics
from retina.services.worker.evidence import ClipRequest, clip_window

log = logging.getLogger(__name__)
# The per-event lines of the worker keep the service's logger name: operators' log queries, the
# cluster tests and benchmarks/faults.py select accepted events by it.
incident_log = logging.getLogger("retina.services.worker.service")

CLOSE_SECONDS = 10.0
DEFAULT_MAX_QUEUE = 256
FLUSH_EVERY = 64  # a queued sink flushes (the worker: wakes its publisher) at least this often

QUEUE_DEPTH = Gauge(
    "retina_incident_sink_queue_depth", "Incident events waiting for a sink's delivery thread", ["sink"]
)
DROPPED = Counter(
    "retina_incident_sink_dropped_total",
    "Incident events a sink did not take: queue full, sink closed, or still queued at its shutdown deadline",
    ["sink", "reason"],
)
ERRORS = Counter(
    "retina_incident_sink_errors_total", "Incident events whose delivery failed (logged)", ["sink"]
)

ClipCallback = Callable[[ClipRequest, bytes | None, str], None]
# (camera id, incident id, moment the incident opened, callback): Analyzer / DeviceLanes.request_clip
ClipRequester = Callable[[str, str, float, ClipCallback], None]


def msg_id(event: IncidentEvent) -> str:
    """The event's Nats-Msg-Id, for logs about events never built into a message."""
    return incident_msg_id(event.incident_id, event.event, event.revision)


def plate_crop(message: IncidentMessage, event: IncidentEvent) -> tuple[str, bytes] | None:
    """(media path, JPEG) of the plate crop an event brings first; None when it brings none."""
    plate = event.plate
    if plate is None or plate.crop_jpeg is None or message.plate is None or message.plate.crop is None:
        return None
    return message.plate.crop.path, plate.crop_jpeg


class IncidentSink(ABC):
    """Where incident events go. ``deliver`` is called on the analysis thread and never blocks."""

    name = "sink"

    @abstractmethod
    def deliver(self, camera: CameraConfig, events: list[IncidentEvent]) -> None:
        """Accept one frame's events of ``camera`` (in order); return at once."""

    def close(self, timeout: float | None = CLOSE_SECONDS) -> int:
        """Stop accepting; deliver what was accepted within ``timeout``; return how many were not."""
        return 0

    def __enter__(self) -> IncidentSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class QueuedSink(IncidentSink):
    """A bounded FIFO and one delivery thread; subclasses implement :meth:`write` (see module doc).

    ``blocking``: when the queue is full, :meth:`deliver` waits for room instead of refusing — for
    offline analysis, where slowing the analysis down is right and losing an event is not."""

    blocking = False

    def __init__(
        self,
        name: str,
        *,
        evidence: EvidenceConfig | None = None,
        request_clip: ClipRequester | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ):
        self.name = name
        self.evidence = evidence if evidence is not None and evidence.enabled else None
        self.request_clip = request_clip
        self.max_queue = max_queue
        self._items: deque[tuple[CameraConfig, IncidentEvent]] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closing = False
        self._abandoned = False
        self._depth = QUEUE_DEPTH.labels(name)
        self._depth.set(0)
        self._thread = threading.Thread(target=self._run, name=f"sink-{name}", daemon=True)
        self._thread.start()

    # -- to implement (delivery thread) ----------------------------------------------------------

    @abstractmethod
    def write(self, camera: CameraConfig, event: IncidentEvent) -> None:
        """Deliver one event (delivery thread); an exception is logged and counted."""

    def flush(self) -> None:
        """Called after a run of writes, when the queue is empty (or every ``FLUSH_EVERY``)."""

    def on_clip(self, request: ClipRequest, data: bytes | None, reason: str) -> None:
        """An evidence clip was cut (decode thread), or could not be (``data`` None)."""

    def clip_window(self, event: IncidentEvent) -> tuple[float, float] | None:
        """The evidence clip window a ``new`` event's message carries (None without clips)."""
        if self.evidence is None or event.event != "new":
            return None
        return clip_window(self.evidence, event.last_seen_at)

    # -- the analysis thread ---------------------------------------------------------------------

    def deliver(self, camera: CameraConfig, events: list[IncidentEvent]) -> None:
        refused: list[tuple[IncidentEvent, str]] = []
        accepted: list[IncidentEvent] = []
        with self._cond:
            for event in events:
                limit = self.max_queue if event.event == "update" else 2 * self.max_queue
                if self.blocking:  # offline analysis: wait for room (back-pressure), never refuse
                    self._cond.wait_for(lambda limit=limit: len(self._items) < limit or self._closing)
                if self._closing:
                    refused.append((event, "closed"))
                elif len(self._items) >= limit:
                    refused.append((event, "queue_full"))
                else:
                    self._items.append((camera, event))
                    accepted.append(event)
            self._depth.set(len(self._items) + self._busy)
            self._cond.notify_all()
        for event, reason in refused:
            self._drop(camera, event, reason)
        if self.evidence is not None and self.request_clip is not None:
            for event in accepted:
                if event.event == "new":
                    try:
                        self.request_clip(camera.id, event.incident_id, event.last_seen_at, self.on_clip)
                    except Exception:
                        log.exception("evidence clip could not be requested", extra={"camera_id": camera.id})

    # -- the delivery thread ---------------------------------------------------------------------

    def _run(self) -> None:
        unflushed = 0
        while True:
            with self._cond:
                while not self._items and not self._closing and not unflushed:
                    self._cond.wait()
                item = self._items.popleft() if self._items and not self._abandoned else None
                self._busy = item is not None
            if item is None:
                if unflushed:
                    self._flush()
                    unflushed = 0
                with self._cond:
                    self._depth.set(len(self._items))
                    self._cond.notify_all()
                    if self._abandoned or (self._closing and not self._items):
                        return
                continue
            camera, event = item
            try:
                self.write(camera, event)
            except Exception:
                ERRORS.labels(self.name).inc()
                extra = {"camera_id": camera.id, "incident_id": event.incident_id, "msg_id": msg_id(event)}
                log.exception("incident event could not be delivered", extra={"sink": self.name, **extra})
            unflushed += 1
            if unflushed >= FLUSH_EVERY:
                self._flush()
                unflushed = 0
            with self._cond:
                self._busy = False
                self._depth.set(len(self._items))
                self._cond.notify_all()

    def _flush(self) -> None:
        try:
            self.flush()
        except Exception:
            log.exception("incident sink flush failed", extra={"sink": self.name})

    def _drop(self, camera: CameraConfig, event: IncidentEvent, reason: str) -> None:
        DROPPED.labels(self.name, reason).inc()
        extra = {"camera_id": camera.id, "incident_id": event.incident_id, "event": event.event}
        log.error(
            f"incident event not delivered: {reason}",
            extra={"sink": self.name, "msg_id": msg_id(event), "reason": reason, **extra},
        )

    # -- any thread ------------------------------------------------------------------------------

    def pending(self) -> int:
        """Events accepted and not yet written (queued, plus the one in hand)."""
        with self._cond:
            return len(self._items) + self._busy

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every accepted event is written (or the thread is gone); False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: (not self._items and not self._busy) or not self._thread.is_alive(), timeout
            )

    def close(self, timeout: float | None = CLOSE_SECONDS) -> int:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            return 0
        with self._cond:
            left = list(self._items)
            self._items.clear()
            self._abandoned = True
            self._depth.set(0)
        log.error(
            "incident sink did not drain before its deadline; queued events dropped",
            extra={"sink": self.name, "dropped": len(left), "deadline_seconds": timeout},
        )
        for camera, event in left:
            self._drop(camera, event, "shutdown")
        return len(left)


class OutboxSink(QueuedSink):
    """The worker's sink: each event durably into the outbox (one fsync'd SQLite transaction), then
    ``wake`` the publisher; a ``new`` event asks its camera for an evidence clip (``request_clip``),
    queued in the same outbox once cut."""

    def __init__(
        self,
        outbox: Outbox,
        wake: Callable[[], None],
        media_bucket: str,
        *,
        evidence: EvidenceConfig | None = None,
        request_clip: ClipRequester | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
        name: str = "outbox",
    ):
        super().__init__(name, evidence=evidence, request_clip=request_clip, max_queue=max_queue)
        self.outbox = outbox
        self.wake = wake
        self.media_bucket = media_bucket

    def write(self, camera: CameraConfig, event: IncidentEvent) -> None:
        message, jpeg = build_message(event, camera, self.media_bucket, self.clip_window(event))
        accepted = self.outbox.append(
            message.msg_id,
            message.event,
            message.subject,
            message.to_json(),
            media_name=message.snapshot.path if message.snapshot else None,
            media=jpeg,
        )
        extra = {
            "camera_id": camera.id,
            "incident_id": message.id,
            "event": message.event,
            "msg_id": message.msg_id,
        }
        if not accepted:
            metrics.OUTBOX_REFUSED.labels("incidents").inc()
            incident_log.error("outbox full: incident event refused", extra=extra)
            return
        crop = plate_crop(message, event)  # like a clip: uploaded, then fetched by the incident store
        plate_id = f"{message.id}:plate:{event.plate.crop_revision}" if crop is not None else ""
        if crop is not None and not self.outbox.append(plate_id, "media", "", b"", crop[0], crop[1]):
            metrics.OUTBOX_REFUSED.labels("incidents").inc()
            incident_log.error("outbox full: plate crop refused", extra=extra)
        metrics.INCIDENT_EVENTS.labels(camera.id, message.algorithm, message.event).inc()
        incident_log.info(
            f"incident {message.event}", extra={**extra, "dwell_seconds": message.dwell_seconds}
        )

    def flush(self) -> None:
        self.wake()

    def on_clip(self, request: ClipRequest, data: bytes | None, reason: str) -> None:
        """Queue the clip's upload like any incident message (decode thread)."""
        extra = {"camera_id": request.camera_id, "incident_id": request.incident_id}
        if data is None:
            incident_log.warning(f"no evidence clip: {reason}", extra=extra)
            return
        key = clip_key(request.camera_id, request.incident_id)
        if not self.outbox.append(
            f"{request.incident_id}:clip", "media", "", b"", media_name=key, media=data
        ):
            metrics.OUTBOX_REFUSED.labels("incidents").inc()
            incident_log.error("outbox full: evidence clip refused", extra=extra)
            return
        incident_log.info("evidence clip queued", extra={**extra, "bytes": len(data)})
        self.wake()


class JsonLinesSink(QueuedSink):
    """``retina analyze``: every event as one JSON line on ``out``; snapshots and clips written under
    ``media_dir`` when given (evidence is on only then). A slow reader slows the analysis down."""

    blocking = True

    def __init__(
        self,
        out: TextIO,
        media_dir: Path | None = None,
        *,
        evidence: EvidenceConfig | None = None,
        request_clip: ClipRequester | None = None,
        media_bucket: str = "local",
        max_queue: int = DEFAULT_MAX_QUEUE,
        errors: TextIO | None = None,
    ):
        super().__init__(
            "jsonl",
            evidence=evidence if media_dir is not None else None,
            request_clip=request_clip,
            max_queue=max_queue,
        )
        self.out = out
        self.media_dir = media_dir
        self.media_bucket = media_bucket
        self.errors = errors

    def write(self, camera: CameraConfig, event: IncidentEvent) -> None:
        message, jpeg = build_message(event, camera, self.media_bucket, self.clip_window(event))
        if jpeg is not None and self.media_dir is not None and message.snapshot is not None:
            self._save(message.snapshot.path, jpeg)
        crop = plate_crop(message, event)
        if crop is not None and self.media_dir is not None:
            self._save(*crop)
        self.out.write(message.model_dump_json(by_alias=True) + "\n")
        self.out.flush()

    def on_clip(self, request: ClipRequest, data: bytes | None, reason: str) -> None:
        if data is None:
            print(
                f"camera {request.camera_id}: no evidence clip for {request.incident_id}: {reason}",
                file=self.errors or sys.stderr,
            )
            return
        self._save(clip_key(request.camera_id, request.incident_id), data)

    def _save(self, path: str, data: bytes) -> None:
        target = self.media_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


class MemorySink(IncidentSink):
    """``retina eval``: keeps every event in :attr:`events`, in order (appending never blocks)."""

    name = "memory"

    def __init__(self) -> None:
        self.events: list[IncidentEvent] = []
        self._lock = threading.Lock()

    def deliver(self, camera: CameraConfig, events: list[IncidentEvent]) -> None:
        with self._lock:
            self.events.extend(events)
