"""Search by image without the networking: feature records in, ranked tracks out.

:class:`SearchEngine` ties the feature store, the sharded FAISS index and the embedder together.
Queries are restricted to the cameras the requesting department may search and to the filters;
results are grouped per track (one parked car is one result, not one per crop).
"""

from __future__ import annotations

import binascii
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from retina.services.core.config import ConfigError, RetinaConfig
from retina.services.core.features import FeatureRecord, make_family_embedders
from retina.services.core.images import image_header
from retina.services.core.plate_text import PlateQueryError, plate_query
from retina.services.core.validation import InvalidArgument, quote
from retina.services.search.index import LoadReport, ShardedIndex, Where
from retina.services.search.store import (
    AppliedRecord,
    FeatureStore,
    Filters,
    PlateHit,
    StoredTrack,
    UnsafeCropPathError,
)

log = logging.getLogger(__name__)

MAX_RESULTS = 100
IMAGE_FORMATS = frozenset({"JPEG", "PNG", "BMP", "TIFF", "WEBP", "MPO"})  # MPO: phones' multi-frame JPEG
ACCEPTED = "JPEG, PNG, BMP, TIFF or WebP"
JPEG_MAGIC = b"\xff\xd8\xff"


class SearchInputError(ValueError):
    """A bad query (names the field); maps to INVALID_ARGUMENT."""


class NotFoundError(LookupError):
    """An unknown incident or track; maps to NOT_FOUND."""


class UnavailableError(RuntimeError):
    """A service the query needs (the incident store) cannot be reached; maps to UNAVAILABLE."""


class EmptyIndexError(RuntimeError):
    """Nothing indexed yet; maps to FAILED_PRECONDITION."""


class RejectedRecordError(ValueError):
    """A feature record this index cannot take (another embedder, a malformed vector)."""


@dataclass(frozen=True)
class SearchHit:
    track: StoredTrack
    score: float


class SearchEngine:
    """The feature store, the index and the embedder of one search service."""

    def __init__(self, data_dir: Path, config: RetinaConfig):
        self.config = config
        embedders = make_family_embedders(config.features, config.detector)
        keys = sorted({embedder.key for embedder in embedders.values()})
        if len(keys) > 1:
            # One store and one index per service today: records of several embedders would be refused.
            raise ConfigError(
                [
                    "features.embedders: the search service indexes one embedder, but the families use"
                    f" {', '.join(keys)}; set features.embedder (e.g. osnet_colour) for every family"
                ]
            )
        self.embedder = embedders["person"]
        self.store = FeatureStore(
            data_dir / "features.sqlite", data_dir / "crops", config.search.shard_hours * 3600
        )
        stored_embedder = self.store.get_meta("embedder")
        if stored_embedder is None:
            self.store.set_meta("embedder", self.embedder.key)
        elif stored_embedder != self.embedder.key:
            raise ConfigError(
                [
                    f"features.embedder: the search store in {data_dir} holds {stored_embedder} vectors but"
                    f" the configuration gives {self.embedder.key}; set it back, or start with an empty"
                    " --data-dir to re-index the FEATURES stream"
                ]
            )
        self.index = ShardedIndex(data_dir / "index", self.embedder.dim, self.embedder.key, config.search)

    def load(self) -> LoadReport:
        """Load the index from disk, rebuilding any shard that is missing or does not match the store."""
        return self.index.load(self.store)

    def rebuild(self) -> int:
        """Rebuild every shard from the store (``retina search rebuild``); return the vector count."""
        for start in self.index.shard_starts():
            self.index.drop(start)
        total = sum(self.index.rebuild_shard(self.store, start) for start in self.store.shards())
        self.index.save()
        return total

    # -- ingest --------------------------------------------------------------------------------

    def apply(self, record: FeatureRecord) -> AppliedRecord:
        """Store one record and index its vector, if it brings one."""
        if record.embedder != self.embedder.key:
            raise RejectedRecordError(
                f"record {record.msg_id} was embedded with {record.embedder}, this index uses"
                f" {self.embedder.key} (set features.embedder the same on workers and search)"
            )
        try:
            vector = record.embedding()
        except (binascii.Error, ValueError):
            raise RejectedRecordError(
                f"record {record.msg_id}: embedding_base64 is not base64 of float32 values"
            ) from None
        if vector is not None and (len(vector) != self.embedder.dim or not np.isfinite(vector).all()):
            raise RejectedRecordError(
                f"record {record.msg_id}: embedding has {len(vector)} values (want {self.embedder.dim},"
                " all finite)"
            )
        try:
            crop = record.crop_jpeg()
        except (binascii.Error, ValueError):
            raise RejectedRecordError(f"record {record.msg_id}: crop_jpeg_base64 is not base64") from None
        if crop is not None and not crop.startswith(JPEG_MAGIC):
            raise RejectedRecordError(f"record {record.msg_id}: crop_jpeg_base64 is not a JPEG")
        try:
            applied = self.store.apply(record)
        except UnsafeCropPathError as exc:
            raise RejectedRecordError(f"record {record.msg_id}: {exc}") from None
        if applied.vector_id is not None:
            self.index.add(applied.shard, applied.vector_id, applied.vector, applied.meta)
        if applied.meta is not None and applied.other_vector_ids:
            self.index.update(applied.shard, applied.other_vector_ids, applied.meta)
        return applied

    def drop_expired(self, now: float | None = None) -> list[int]:
        """Retention: drop shards older than ``search.retention_days``."""
        cutoff = (now or time.time()) - self.config.search.retention_days * 86400
        dropped = self.store.drop_shards_before(cutoff)
        for start in dropped:
            self.index.drop(start)
        return dropped

    # -- queries -------------------------------------------------------------------------------

    def embed_image(self, data: bytes, region: tuple[float, float, float, float] | None) -> np.ndarray:
        """Validate and embed a query photo (or the ``region`` of it that shows the object)."""
        limits = self.config.search
        if not data:
            raise SearchInputError("image: empty")
        if len(data) > limits.max_image_bytes:
            raise SearchInputError(
                f"image: {len(data) / 2**20:.1f} MB is over the {limits.max_image_bytes / 2**20:.0f} MB limit"
            )
        try:  # the header alone: the size is checked before anything is decoded
            image_header(data, "image", IMAGE_FORMATS, accepted=ACCEPTED, max_side=limits.max_image_side)
        except InvalidArgument as exc:
            raise SearchInputError(str(exc)) from None
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise SearchInputError("image: the picture is damaged and cannot be decoded")
        h, w = image.shape[:2]  # after EXIF rotation, which the header size does not include
        if region is not None:
            x1, y1, x2, y2 = region
            if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
                raise SearchInputError("region: needs 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1")
            image = image[int(y1 * h) : max(int(y1 * h) + 1, round(y2 * h)),
                          int(x1 * w) : max(int(x1 * w) + 1, round(x2 * w))]  # fmt: skip
        if min(image.shape[:2]) < 8:
            raise SearchInputError("image: the object is too small (less than 8 px a side)")
        return self.embedder.embed([image])

    def visible_track(self, track_key: str, department: str) -> StoredTrack:
        """A stored track, if the department may search its camera; else NotFoundError, the same for
        a track that does not exist (so a department learns nothing of other departments' tracks)."""
        track = self.store.track(track_key)
        if track is None or not track.visible_to(department):
            raise NotFoundError(
                f"track_id: no track {quote(track_key)} visible to department {quote(department)}"
            )
        return track

    def track_query(self, track_key: str, department: str) -> tuple[np.ndarray, StoredTrack]:
        """The vectors of an indexed track, if the department may see its camera."""
        track = self.visible_track(track_key, department)
        vectors = self.store.track_vectors(track_key)
        if len(vectors) == 0:
            raise NotFoundError(f"track_id: track {quote(track_key)} has no appearance indexed yet")
        return vectors, track

    def crop(self, track_key: str, department: str) -> tuple[bytes, float]:
        """The best crop JPEG of a track the department may search, and when it was seen."""
        track = self.visible_track(track_key, department)
        jpeg = None
        if track.crop_path is not None:
            with contextlib.suppress(FileNotFoundError):  # its shard may expire meanwhile
                jpeg = (self.store.crop_dir / track.crop_path).read_bytes()
        if jpeg is None:
            raise NotFoundError(f"track_id: track {quote(track_key)} has no crop")
        return jpeg, track.crop_seen_at if track.crop_seen_at is not None else track.last_seen

    def search(
        self,
        queries: np.ndarray,
        k: int,
        department: str,
        filters: Filters,
        exclude_track: str | None = None,
    ) -> list[SearchHit]:
        """The ``k`` tracks most like the queries, one hit per track, within the department's scope."""
        if self.index.ntotal == 0:
            raise EmptyIndexError("the index is empty: no track features have been received yet")
        # The index selects rows by scope and filters itself; the hits are checked against the store
        # again. A track may have several vectors: widen until k distinct tracks (or all there is).
        shards, where = self._shards_for(filters), Where(department, filters)
        wanted = k * 4
        while True:
            ranked = self.index.search(queries, wanted, shards, where)
            hits = self._group(ranked, k, exclude_track, department, filters)
            if len(hits) >= k or len(ranked) < wanted:
                return hits
            wanted *= 4

    def search_plates(
        self, plate: str, k: int, department: str, filters: Filters, exact_only: bool = False
    ) -> list[PlateHit]:
        """The ``k`` tracks within the department's scope whose plate matches ``plate`` (a plate or
        a ``*``/``?`` pattern; the reader's confusions match unless ``exact_only``), exact first."""
        try:
            query = plate_query(plate)
        except PlateQueryError as exc:
            raise SearchInputError(str(exc)) from None
        return self.store.plate_tracks(department, query, filters, k, exact_only)

    def _shards_for(self, filters: Filters) -> list[int] | None:
        if filters.end is None:
            return None
        return [s for s in self.index.shard_starts() if s <= filters.end]

    def _group(
        self,
        ranked: list[tuple[int, float]],
        k: int,
        exclude_track: str | None,
        department: str,
        filters: Filters,
    ) -> list[SearchHit]:
        """One hit per track, best first; scope and filters re-checked against the store."""
        hits: list[SearchHit] = []
        seen: set[str] = set()
        for start in range(0, len(ranked), 512):
            chunk = ranked[start : start + 512]
            tracks = self.store.tracks_of_vectors([vector_id for vector_id, _ in chunk])
            for vector_id, score in chunk:
                track = tracks.get(vector_id)
                if track is None or track.key in seen or track.key == exclude_track:
                    continue
                if not _passes(track, department, filters):
                    continue
                seen.add(track.key)
                hits.append(SearchHit(track, score))
                if len(hits) >= k:
                    return hits
        return hits


def _passes(track: StoredTrack, department: str, filters: Filters) -> bool:
    if not track.visible_to(department):
        return False
    if filters.camera_ids and track.camera_id not in filters.camera_ids:
        return False
    if filters.start is not None and track.last_seen < filters.start:
        return False
    if filters.end is not None and track.first_seen > filters.end:
        return False
    if filters.families and track.family not in filters.families:
        return False
    return not filters.colours or bool(filters.colours & set(track.colours))
