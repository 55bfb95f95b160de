"""Per-track appearance features for search by image: best crop, embedding, colours.

:class:`TrackFeatures` (one per camera, in the analysis thread) watches every searchable track and
keeps its best crop. It emits a :class:`FeatureJob` when a track is established, when a clearly better
crop appears, every ``refresh_seconds`` while the track lasts (times only) and when the track ends —
never per frame. :class:`FeatureExtractor` (its own thread, so embedding never slows detection)
embeds the crops of queued jobs in batches and hands finished :class:`FeatureRecord` objects on.
"""

from __future__ import annotations

import base64
import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from retina.algorithms.sdk import AnalysedFrame
from retina.algorithms.sdk.frames import family_of
from retina.services.core.config import CameraConfig, FeaturesConfig
from retina.services.core.features import (
    SEARCH_FAMILIES,
    Embedder,
    FeatureRecord,
    crop_of,
    crop_quality,
    dominant_colours,
    encode_crop,
    encode_embedding,
    track_key,
    utc,
)
from retina.services.worker import metrics
from retina.services.worker.plates import TrackPlates

log = logging.getLogger(__name__)


@dataclass
class FeatureJob:
    """A record waiting for its embedding (``crop`` is None when only the times changed)."""

    record: FeatureRecord
    crop: np.ndarray | None = None


@dataclass
class _Track:
    key: str
    track_id: int
    first_seen: float
    last_seen: float
    classes: Counter = field(default_factory=Counter)
    best_quality: float = 0.0
    best_crop: np.ndarray | None = None
    best_bbox: tuple[float, float, float, float] | None = None
    best_at: float = 0.0
    published_quality: float = 0.0
    published_at: float | None = None
    revision: int = -1
    crop_revision: int = -1
    plate_revision: int = -1  # of the plate the last record carried


class TrackFeatures:
    """Chooses when a camera's tracks are worth a feature record (see module doc)."""

    def __init__(
        self,
        camera: CameraConfig,
        config: FeaturesConfig,
        embedder_key: str | Mapping[str, str],
        lost_seconds: float,
        plates: TrackPlates | None = None,
    ):
        self.camera = camera
        self.plates = plates  # the camera's plate reader: records carry each vehicle track's plate
        self.config = config
        # One key for every family, or one per family (FeatureExtractor.embedder_keys).
        self.embedder_key = embedder_key
        self.lost_seconds = lost_seconds
        self._tracks: dict[int, _Track] = {}

    def observe(self, frame: AnalysedFrame) -> list[FeatureJob]:
        """Update the tracks with one analysed frame; return the records that are due."""
        now = frame.timestamp
        jobs: list[FeatureJob] = []
        searchable = [o for o in frame.objects if o.family in SEARCH_FAMILIES]
        for obj in searchable:
            track = self._tracks.get(obj.track_id)
            if track is None or now - track.last_seen > self.lost_seconds:
                if track is not None:
                    jobs.append(self._end(track))
                track = _Track(track_key(self.camera.id, now, obj.track_id), obj.track_id, now, now)
                self._tracks[obj.track_id] = track
            track.last_seen = now
            track.classes[obj.class_name] += 1
            x1, y1, x2, y2 = obj.bbox
            if min(x2 - x1, y2 - y1) < self.config.min_crop_pixels:
                continue
            others = [o.bbox for o in frame.objects if o is not obj]
            quality = crop_quality(frame.image, obj.bbox, others, obj.confidence)
            if quality > track.best_quality:
                track.best_quality = quality
                track.best_crop = crop_of(frame.image, obj.bbox)
                track.best_bbox = (x1 / frame.width, y1 / frame.height, x2 / frame.width, y2 / frame.height)
                track.best_at = now
        for track in self._tracks.values():
            job = self._due(track, now)
            if job is not None:
                jobs.append(job)
        for track_id in [t for t, tr in self._tracks.items() if now - tr.last_seen > self.lost_seconds]:
            jobs.append(self._end(self._tracks.pop(track_id)))
        return [j for j in jobs if j is not None]

    def track_key(self, track_id: int, seen_at: float) -> str | None:
        """The key (``FeatureRecord.id``) of the feature track of a tracker id that was seen at
        ``seen_at``; None if there is none (not searchable, ended, or that id is a later object)."""
        track = self._tracks.get(track_id)
        return track.key if track is not None and track.first_seen <= seen_at else None

    def finish(self) -> list[FeatureJob]:
        """End every open track (camera released or stream ended)."""
        jobs = [self._end(track) for track in self._tracks.values()]
        self._tracks.clear()
        return [j for j in jobs if j is not None]

    def _due(self, track: _Track, now: float) -> FeatureJob | None:
        if track.best_crop is None or now - track.first_seen < self.config.min_track_seconds:
            return None
        if track.published_at is None:
            return self._record(track, with_crop=True)
        since = now - track.published_at
        plate = self.plates.plate(track.track_id, track.first_seen) if self.plates is not None else None
        plate_changed = plate is not None and plate.revision != track.plate_revision
        better = track.best_quality >= self.config.improve_factor * track.published_quality
        if better and since >= self.config.min_republish_seconds:
            return self._record(track, with_crop=True)
        if since >= self.config.refresh_seconds or plate_changed:
            return self._record(track, with_crop=False)
        return None

    def _end(self, track: _Track) -> FeatureJob | None:
        if track.published_at is None:  # never established (too short or too small): nothing to end
            return None
        better = track.best_quality >= self.config.improve_factor * track.published_quality
        return self._record(track, with_crop=better, ended=True)

    def _record(self, track: _Track, *, with_crop: bool, ended: bool = False) -> FeatureJob:
        track.revision += 1
        track.published_at = track.last_seen
        class_name = track.classes.most_common(1)[0][0]
        family = family_of(class_name)
        keys = self.embedder_key
        record = FeatureRecord(
            id=track.key,
            revision=track.revision,
            crop_revision=max(track.crop_revision, 0),
            camera_id=self.camera.id,
            department=self.camera.department,
            shared_with=self.camera.shared_with,
            track_id=track.track_id,
            family=family,
            class_name=class_name,
            first_seen=utc(track.first_seen),
            last_seen=utc(track.last_seen),
            ended=ended,
            embedder=keys if isinstance(keys, str) else keys[family],
        )
        plate = self.plates.plate(track.track_id, track.first_seen) if self.plates is not None else None
        if plate is not None:
            record.plate, track.plate_revision = plate.facts, plate.revision
        if not with_crop or track.best_crop is None:
            return FeatureJob(record)
        track.crop_revision += 1
        track.published_quality = track.best_quality
        record.crop_revision = track.crop_revision
        record.crop_seen_at = utc(track.best_at)
        record.bbox = track.best_bbox
        record.crop_height, record.crop_width = track.best_crop.shape[:2]
        record.quality = round(track.best_quality, 3)
        return FeatureJob(record, track.best_crop)


FeatureSink = Callable[[list[FeatureRecord]], None]


class FeatureExtractor:
    """A thread that embeds queued crops in batches and passes finished records to ``sink``.

    The queue is bounded: if embedding falls behind, new jobs are dropped (and counted) instead of
    slowing detection; records already queued keep their order.
    """

    def __init__(
        self,
        embedder: Embedder | Mapping[str, Embedder],
        sink: FeatureSink,
        max_queue: int = 512,
        max_batch: int = 16,
    ):
        # One embedder for every family, or one per family (features.embedders): each record's crop
        # is embedded by its family's embedder, and the record names that embedder's key.
        if isinstance(embedder, Embedder):
            embedder = dict.fromkeys(SEARCH_FAMILIES, embedder)
        self.embedders: dict[str, Embedder] = dict(embedder)
        self.sink = sink
        self.max_batch = max_batch
        self._queue: queue.Queue[FeatureJob | None] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._run, name="features", daemon=True)

    @property
    def embedder_keys(self) -> dict[str, str]:
        """The embedder key of each family (what TrackFeatures writes into records)."""
        return {family: embedder.key for family, embedder in self.embedders.items()}

    def start(self) -> None:
        self._thread.start()

    def submit(self, jobs: list[FeatureJob]) -> None:
        """Queue jobs (any thread); never blocks."""
        for job in jobs:
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                metrics.FEATURES_DROPPED.labels(job.record.camera_id).inc()
                log.warning("feature queue full; record dropped", extra={"camera_id": job.record.camera_id})

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._process(batch)
                    return
                batch.append(job)
            self._process(batch)

    def _process(self, batch: list[FeatureJob]) -> None:
        groups: dict[int, tuple[Embedder, list[FeatureJob]]] = {}
        for job in batch:
            if job.crop is not None:
                embedder = self.embedders[job.record.family]
                groups.setdefault(id(embedder), (embedder, []))[1].append(job)
        embedded: list[tuple[FeatureJob, np.ndarray]] = []
        for embedder, jobs in groups.values():  # one batched call per embedder
            try:
                vectors = embedder.embed([job.crop for job in jobs])
            except Exception:
                log.exception(
                    "embedding failed; crops of this batch left out",
                    extra={"jobs": len(jobs), "embedder": embedder.key},
                )
                for job in jobs:
                    job.crop = None
                continue
            embedded.extend(zip(jobs, vectors, strict=True))
        for job, vector in embedded:
            job.record.embedding_base64 = encode_embedding(vector)
            job.record.crop_jpeg_base64 = base64.b64encode(encode_crop(job.crop)).decode()
            job.record.colours = dominant_colours(job.crop)
        records = [job.record for job in batch]  # a record whose crop was lost still carries its times
        for record in records:
            metrics.FEATURE_RECORDS.labels(record.camera_id).inc()
        try:
            self.sink(records)
        except Exception:
            log.exception("feature records could not be accepted", extra={"records": len(records)})
