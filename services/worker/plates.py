"""Licence plates of a camera's vehicle tracks (车牌识别), read on their best crops.

:class:`TrackPlates` (one per camera, on the analysis thread) reads the plate of each vehicle track
from the full-resolution frame region of its box — plates are small, so never from a downscaled
crop — and only on the track's best few crops: when the crop is clearly better than the last one
read (``plates.reread_factor``), or ``plates.reread_seconds`` after it on a crop about as good, and
at most ``plates.max_reads_per_track`` times (and ``plates.max_reads_per_frame`` reads a frame,
so a busy frame never holds up the analysis loop for long). The reads are voted into the track's plate
(:func:`~retina.services.core.plate_text.vote`); its crop is that of the most confident read that
agrees with the vote. Feature records and incident events of the track carry it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import Counter, Histogram

from retina.algorithms.sdk import AnalysedFrame
from retina.services.core.features import crop_of, crop_quality
from retina.services.core.incident import encode_jpeg
from retina.services.core.plate_text import PlateFacts, PlateRead, plausible, vote
from retina.services.core.plates import Plate, PlateReader
from retina.services.core.plates_config import PlatesConfig

log = logging.getLogger(__name__)

PLATE_READS = Counter(
    "retina_plate_reads_total",
    "Plate reads on vehicle crops, by outcome (read, none, implausible)",
    ["camera_id", "outcome"],
)
PLATE_SECONDS = Histogram(
    "retina_plate_read_seconds",
    "Time of one plate read (detector and reader) on a vehicle crop",
    ["camera_id"],
    buckets=(0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64),
)
CROP_MARGIN = 0.2  # the plate crop grows by this share of the plate's size on each side
ABOUT_AS_GOOD = 0.9  # a timed re-read needs a crop at least this share of the best one read
VEHICLE = "vehicle"


@dataclass
class TrackPlate:
    """What is known of one track's plate."""

    track_id: int
    first_seen: float
    last_seen: float
    reads: list[PlateRead] = field(default_factory=list)
    attempts: int = 0
    read_quality: float = 0.0  # of the crop last read
    best_read_quality: float = 0.0
    read_at: float | None = None
    facts: PlateFacts | None = None
    revision: int = -1  # grows when the facts change
    crop_jpeg: bytes | None = None
    crop_confidence: float = -1.0
    crop_revision: int = -1  # grows when the crop changes


class TrackPlates:
    """Reads and votes the plates of one camera's vehicle tracks (see module doc)."""

    def __init__(self, camera_id: str, reader: PlateReader, config: PlatesConfig, lost_seconds: float):
        self.camera_id = camera_id
        self.reader = reader
        self.config = config
        self.lost_seconds = lost_seconds
        self._tracks: dict[int, TrackPlate] = {}

    def observe(self, frame: AnalysedFrame) -> None:
        """Read the plates due on this frame's vehicles; forget tracks lost for good."""
        now = frame.timestamp
        vehicles = [o for o in frame.objects if o.family == VEHICLE]
        reads = 0
        for obj in vehicles:
            track = self._tracks.get(obj.track_id)
            if track is None or now - track.last_seen > self.lost_seconds:
                track = self._tracks[obj.track_id] = TrackPlate(obj.track_id, now, now)
            track.last_seen = now
            width = obj.bbox[2] - obj.bbox[0]
            if (
                track.attempts >= self.config.max_reads_per_track
                or width < self.config.min_vehicle_width
                or reads >= self.config.max_reads_per_frame
            ):
                continue
            others = [o.bbox for o in frame.objects if o is not obj]
            quality = crop_quality(frame.image, obj.bbox, others, obj.confidence)
            if self._due(track, quality, now):
                self._read(track, crop_of(frame.image, obj.bbox), quality, now)
                reads += 1
        for track_id in [t for t, track in self._tracks.items() if now - track.last_seen > self.lost_seconds]:
            del self._tracks[track_id]

    def plate(self, track_id: int, seen_at: float) -> TrackPlate | None:
        """The plate of the track of ``track_id`` that was seen at ``seen_at``, once one is read."""
        track = self._tracks.get(track_id)
        if track is None or track.first_seen > seen_at or track.facts is None:
            return None
        return track

    def _due(self, track: TrackPlate, quality: float, now: float) -> bool:
        if quality <= 0:
            return False
        if track.read_at is None or quality >= self.config.reread_factor * track.read_quality:
            return True
        return (
            now - track.read_at >= self.config.reread_seconds
            and quality >= ABOUT_AS_GOOD * track.best_read_quality
        )

    def _read(self, track: TrackPlate, crop: np.ndarray, quality: float, now: float) -> None:
        started = time.perf_counter()
        plates = self.reader.read(crop)
        PLATE_SECONDS.labels(self.camera_id).observe(time.perf_counter() - started)
        track.attempts += 1
        track.read_at, track.read_quality = now, quality
        track.best_read_quality = max(track.best_read_quality, quality)
        if not plates:
            PLATE_READS.labels(self.camera_id, "none").inc()
            return
        best = max(plates, key=lambda p: p.confidence * p.detection.score)
        if not plausible(best.text):  # too short or long to be a plate: a partial or a misread
            PLATE_READS.labels(self.camera_id, "implausible").inc()
            return
        PLATE_READS.labels(self.camera_id, "read").inc()
        track.reads.append(PlateRead(best.text, best.colour, best.confidence))
        facts = vote(track.reads)
        if facts is None:
            return
        if facts != track.facts:
            track.facts = facts
            track.revision += 1
            log.info(
                "plate read",
                extra={"camera_id": self.camera_id, "track_id": track.track_id, "plate": facts.text,
                       "confidence": facts.confidence, "reads": facts.reads},
            )  # fmt: skip
        if best.text == facts.text and best.confidence > track.crop_confidence:
            track.crop_jpeg = encode_jpeg(plate_crop(crop, best), 90)
            track.crop_confidence = best.confidence
            track.crop_revision += 1


def plate_crop(image: np.ndarray, plate: Plate) -> np.ndarray:
    """The plate's box in ``image`` with a margin (full resolution)."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = plate.box
    grow_x, grow_y = round((x2 - x1) * CROP_MARGIN), round((y2 - y1) * CROP_MARGIN)
    return image[
        max(0, y1 - grow_y) : min(height, y2 + grow_y), max(0, x1 - grow_x) : min(width, x2 + grow_x)
    ]
