"""The search service: FEATURES stream → feature store + FAISS index; gRPC Search, SearchPlates, GetCrop.

A feature record is acknowledged only after it is committed to the store, so the index is always
recoverable: at start each index shard is checked against the store and rebuilt if needed, and an
empty store replays the whole FEATURES stream. Crops leave only through GetCrop, within the asking
department's scope (the gateway serves them to its users).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2
from prometheus_client import Counter, Gauge, Histogram
from pydantic import ValidationError

from retina.services.core import bus, service_auth
from retina.services.core.config import RetinaConfig, format_validation_error
from retina.services.core.features import COLOUR_NAMES, TRACK_KEY_PATTERN, FeatureRecord
from retina.services.core.incident import IncidentMessage
from retina.services.core.metrics import serve_metrics
from retina.services.core.serving import pause, run_until_signalled, start_grpc_server, to_timestamp
from retina.services.core.settings import SearchSettings
from retina.services.core.validation import InvalidArgument, add_guarded, check_timestamp, check_token
from retina.services.core.validation import quote as short_repr
from retina.services.search.engine import (
    MAX_RESULTS,
    EmptyIndexError,
    NotFoundError,
    PlateHit,
    RejectedRecordError,
    SearchEngine,
    SearchHit,
    SearchInputError,
    UnavailableError,
)
from retina.services.search.store import Filters
from retina.v1 import common_pb2, incidents_pb2, incidents_pb2_grpc, search_pb2, search_pb2_grpc

log = logging.getLogger(__name__)
T = TypeVar("T")

CONSUMER = "search-index"  # the one shared consumer (retina up); a replica's: search-index-<replica id>
# A replica's own consumer outlives a restart or an upgrade, and goes (JetStream deletes it) once its
# replica has been gone this long; a replica back after that replays the stream (duplicates are skipped).
REPLICA_CONSUMER_INACTIVE_SECONDS = 24 * 3600.0
CATCH_UP_POLL_SECONDS = 1.0  # how often a new replica checks whether it has replayed the stream
SAVE_INTERVAL_SECONDS = 30.0
RETENTION_INTERVAL_SECONDS = 600.0
LOST_TRACK_SECONDS = 10.0  # an incident's vehicle may have been tracked a little before or after it

RECORDS = Counter("retina_search_records_total", "Feature records applied", ["camera_id", "result"])
INDEXED_VECTORS = Gauge("retina_search_indexed_vectors", "Vectors in the FAISS index")
QUERIES = Counter("retina_search_queries_total", "Search requests", ["query", "outcome"])
QUERY_SECONDS = Histogram(
    "retina_search_query_seconds", "Search latency", buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5)
)
SHARDS_DROPPED = Counter("retina_search_shards_dropped_total", "Index shards dropped by retention")

SERVICE_NAME = "retina.v1.SearchService"
# Requests up to this multiple of ``search.max_image_bytes`` are read, so that an oversized photo gets
# an answer naming its size; gRPC refuses larger ones unread (RESOURCE_EXHAUSTED).
RECEIVE_LIMIT_FACTOR = 2.5
IMAGE_DECODES_AT_ONCE = 2  # bounds the memory of decoding query photos (each up to MAX_IMAGE_PIXELS)
MAX_FILTER_VALUES = 1000  # camera ids, families or colours in one filter


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    def __init__(self, engine: SearchEngine, incidents_address: str | None):
        self.engine = engine
        self.incidents_address = incidents_address
        self.records_applied = 0
        self._decoding = asyncio.Semaphore(IMAGE_DECODES_AT_ONCE)

    async def Search(self, request, context) -> search_pb2.SearchResponse:
        kind = request.WhichOneof("query")
        started = time.perf_counter()
        response = await self._answer(context, "Search", kind or "none", self._search(request))
        QUERY_SECONDS.observe(time.perf_counter() - started)
        return response

    async def _answer(self, context, method: str, kind: str, work: Awaitable[T]) -> T:
        """Await ``work`` and map its failure to one clear status: bad input INVALID_ARGUMENT (the
        message names the field), anything unexpected INTERNAL with the details in the log. (The
        guard every method is registered with answers undecodable requests.)"""
        try:
            response = await work
        except (SearchInputError, InvalidArgument) as exc:
            outcome, code, details = "invalid", grpc.StatusCode.INVALID_ARGUMENT, str(exc)
        except NotFoundError as exc:
            outcome, code, details = "not_found", grpc.StatusCode.NOT_FOUND, str(exc)
        except EmptyIndexError as exc:
            outcome, code, details = "empty", grpc.StatusCode.FAILED_PRECONDITION, str(exc)
        except UnavailableError as exc:
            outcome, code, details = "unavailable", grpc.StatusCode.UNAVAILABLE, str(exc)
        except Exception:
            log.exception("request failed", extra={"method": method, "query": kind})
            outcome, code = "failed", grpc.StatusCode.INTERNAL
            details = "the search service failed on this request; its log has the details"
        else:
            outcome = "ok"
        if method in ("Search", "SearchPlates"):
            QUERIES.labels(kind, outcome).inc()
        if outcome != "ok":
            await context.abort(code, details)
        return response

    async def _search(self, request: search_pb2.SearchRequest) -> search_pb2.SearchResponse:
        department, filters = _scope(request)
        kind = request.WhichOneof("query")
        exclude = None
        if kind == "image":
            region = None
            if request.HasField("region"):
                r = request.region
                region = (r.x1, r.y1, r.x2, r.y2)
            async with self._decoding:
                queries = await asyncio.to_thread(self.engine.embed_image, request.image, region)
        elif kind == "track_id":
            queries, track = self.engine.track_query(_track_id(request.track_id), department)
            exclude = track.key
        elif kind == "incident_id":
            check_token(request.incident_id, "incident_id")  # the incident store's own rule
            track = await self._incident_track(request.incident_id)
            queries, _ = self.engine.track_query(track, department)
            exclude = track
        else:
            raise SearchInputError("query: give an image, an incident_id or a track_id")
        hits = await asyncio.to_thread(
            self.engine.search, queries, request.k or 10, department, filters, exclude
        )
        return search_pb2.SearchResponse(
            matches=[self._match(hit) for hit in hits], embedder=self.engine.embedder.key
        )

    async def _incident_track(self, incident_id: str) -> str:
        """The track key of an incident's object, through the incident store: the one the incident
        carries (``track_key``), or for an older incident the track of its camera's tracker id that
        overlaps the incident's time."""
        if not self.incidents_address:
            raise NotFoundError("incident_id: this search service was started without --incidents-address")
        async with service_auth.aio_channel(self.incidents_address, service_auth.own_token()) as channel:
            stub = incidents_pb2_grpc.IncidentServiceStub(channel)
            try:
                incident = await stub.GetIncident(
                    incidents_pb2.GetIncidentRequest(id=incident_id), timeout=10
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                    raise NotFoundError(f"incident_id: no incident {short_repr(incident_id)}") from None
                raise UnavailableError(
                    f"incident_id: the incident store cannot be reached ({exc.code().name})"
                ) from None
        message = IncidentMessage.model_validate_json(incident.message_json)
        if message.track_key:  # the worker named the object's feature track
            track = self.engine.store.track(message.track_key)
            track = track if track is not None and track.crop_path else None  # as find_track: with a crop
        else:  # an incident from before track keys: the camera's tracker id around the incident's time
            track = self.engine.store.find_track(
                message.camera_id,
                message.track_id,
                message.started_at.timestamp() - LOST_TRACK_SECONDS,
                message.last_seen_at.timestamp() + LOST_TRACK_SECONDS,
            )
        if track is None:
            raise NotFoundError(
                f"incident_id: the object of incident {incident_id!r} has no indexed appearance"
            )
        return track.key

    def _match(self, hit: SearchHit) -> search_pb2.Match:
        track = hit.track
        bbox = (
            common_pb2.BBox(**dict(zip(("x1", "y1", "x2", "y2"), track.bbox, strict=True)))
            if track.bbox
            else None
        )
        return search_pb2.Match(
            track_id=track.key,
            camera_id=track.camera_id,
            score=hit.score,
            first_seen=to_timestamp(track.first_seen),
            last_seen=to_timestamp(track.last_seen),
            family=track.family,
            class_name=track.class_name,
            colours=track.colours,
            has_crop=track.crop_path is not None,
            crop_seen_at=to_timestamp(track.crop_seen_at),
            bbox=bbox,
        )

    async def SearchPlates(self, request, context) -> search_pb2.PlateSearchResponse:
        started = time.perf_counter()
        response = await self._answer(context, "SearchPlates", "plate", self._search_plates(request))
        QUERY_SECONDS.observe(time.perf_counter() - started)
        return response

    async def _search_plates(self, request: search_pb2.PlateSearchRequest) -> search_pb2.PlateSearchResponse:
        department, filters = _scope(request)
        hits = await asyncio.to_thread(
            self.engine.search_plates, request.plate, request.k or 20, department, filters, request.exact_only
        )
        return search_pb2.PlateSearchResponse(matches=[self._plate_match(hit) for hit in hits])

    def _plate_match(self, hit: PlateHit) -> search_pb2.PlateMatch:
        plate = hit.plate
        return search_pb2.PlateMatch(
            match=self._match(SearchHit(hit.track, 1.0 if hit.exact else 0.5)),
            plate=plate.text,
            colour=plate.colour,
            confidence=plate.confidence,
            reads=plate.reads,
            exact=hit.exact,
        )

    async def GetCrop(self, request, context) -> search_pb2.Crop:
        return await self._answer(context, "GetCrop", "crop", self._crop(request))

    async def _crop(self, request: search_pb2.GetCropRequest) -> search_pb2.Crop:
        track_id, department = _track_id(request.track_id), _department(request.department)
        jpeg, seen_at = await asyncio.to_thread(self.engine.crop, track_id, department)
        return search_pb2.Crop(jpeg=jpeg, seen_at=to_timestamp(seen_at))

    async def GetIndexStats(self, request, context) -> search_pb2.IndexStats:
        return await self._answer(context, "GetIndexStats", "stats", self._index_stats())

    async def _index_stats(self) -> search_pb2.IndexStats:
        tracks, vectors = await asyncio.to_thread(self.engine.store.counts)
        return search_pb2.IndexStats(
            tracks=tracks,
            vectors=vectors,
            shards=[
                search_pb2.ShardStats(start=to_timestamp(start), kind=kind, vectors=count)
                for start, kind, count in self.engine.index.stats()
            ],
            embedder=self.engine.embedder.key,
            records_applied=self.records_applied,
        )


def _scope(request: search_pb2.SearchRequest | search_pb2.PlateSearchRequest) -> tuple[str, Filters]:
    """The requesting department and the filters of a search request, checked (``k`` too)."""
    department = _department(request.department)
    if request.k > MAX_RESULTS:
        raise SearchInputError(f"k: at most {MAX_RESULTS} (got {request.k})")
    return department, _filters(request.filters)


def _department(value: str) -> str:
    """The requesting department (its sharing scope decides what it may see)."""
    department = value.strip()
    if not department:
        raise SearchInputError("department: say which department searches (results follow its sharing scope)")
    return check_token(department, "department")


def _track_id(value: str) -> str:
    """A track id as search results give it (``<camera>:<first seen, ms>:<tracker id>``)."""
    if not TRACK_KEY_PATTERN.fullmatch(value):
        raise SearchInputError(
            f"track_id: {short_repr(value)} is not a track id (<camera>:<ms>:<tracker id>, as search results"
            " give it)"
        )
    return value


def _filters(message: search_pb2.SearchFilters) -> Filters:
    for field in ("camera_ids", "families", "colours"):
        if len(getattr(message, field)) > MAX_FILTER_VALUES:
            raise SearchInputError(f"filters.{field}: at most {MAX_FILTER_VALUES} values")
    for camera_id in message.camera_ids:
        check_token(camera_id, "filters.camera_ids")
    families = set(message.families)
    unknown = families - {"person", "vehicle", "non_motor"}
    if unknown:
        raise SearchInputError(
            f"filters.families: unknown {short_repr(sorted(unknown))} (use person, vehicle, non_motor)"
        )
    colours = set(message.colours)
    unknown = colours - set(COLOUR_NAMES)
    if unknown:
        raise SearchInputError(
            f"filters.colours: unknown {short_repr(sorted(unknown))} (use {', '.join(COLOUR_NAMES)})"
        )
    start = check_timestamp(message.start, "filters.start") if message.HasField("start") else None
    end = check_timestamp(message.end, "filters.end") if message.HasField("end") else None
    if start is not None and end is not None and end < start:
        raise SearchInputError("filters.end: before filters.start")
    return Filters(frozenset(message.camera_ids), start, end, frozenset(families), frozenset(colours))


def _validation_summary(exc: ValidationError, limit: int = 3) -> str:
    """``field: problem`` for the first few errors of a record, never echoing its values."""
    problems = format_validation_error(exc)
    more = len(problems) - limit
    return "; ".join(problems[:limit]) + (f" (and {more} more)" if more > 0 else "")


async def _apply_record(engine: SearchEngine, servicer: SearchServicer, msg) -> None:
    """Store and index one record; ack only once it is committed."""
    try:
        record = FeatureRecord.model_validate_json(msg.data)
    except ValidationError as exc:
        RECORDS.labels("unknown", "rejected").inc()
        log.error(
            "not a valid feature record; dropped",
            extra={"subject": short_repr(msg.subject, 120), "error": _validation_summary(exc)},
        )
        await msg.term()
        return
    extra = {"camera_id": record.camera_id, "track": record.id, "revision": record.revision}
    if msg.subject != record.subject:
        RECORDS.labels(record.camera_id, "rejected").inc()
        error = f"camera_id: a record of {record.camera_id} belongs on {record.subject}"
        log.error(
            "feature record on another camera's subject; dropped",
            extra={**extra, "subject": short_repr(msg.subject, 120), "error": error},
        )
        await msg.term()
        return
    try:
        applied = await asyncio.to_thread(engine.apply, record)
    except RejectedRecordError as exc:
        RECORDS.labels(record.camera_id, "rejected").inc()
        log.error(str(exc), extra=extra)
        await msg.term()
        return
    except Exception:
        if await bus.redeliver_or_give_up(msg, "feature record", extra):
            RECORDS.labels(record.camera_id, "failed").inc()
        return
    await msg.ack()
    servicer.records_applied += 1
    RECORDS.labels(record.camera_id, "duplicate" if applied.duplicate else "applied").inc()
    INDEXED_VECTORS.set(engine.index.ntotal)


def consumer_name(replica_id: str | None) -> str:
    """The durable FEATURES consumer of a replica: its own, ``search-index-<replica id>`` (default id:
    the host name), so every replica indexes every record; ``''``: the shared ``search-index``. A
    character a consumer name may not hold (a dot of a host's domain name, say) becomes ``-``."""
    if replica_id is None:
        replica_id = socket.gethostname()
    if not replica_id:
        return CONSUMER
    return f"{CONSUMER}-{re.sub(r'[^A-Za-z0-9_-]', '-', replica_id)}"


async def _consume(
    engine: SearchEngine,
    servicer: SearchServicer,
    nats_url: str,
    consumer: str,
    stop: asyncio.Event,
    when_caught_up: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Apply the FEATURES stream to the index until ``stop``; ``when_caught_up`` is awaited once the
    consumer has nothing left to deliver (a new replica becomes ready then, not before)."""
    nc = await bus.connect(nats_url, "retina-search", stop)
    js = nc.jetstream()
    replay = engine.store.counts()[0] == 0  # an empty store (new or lost) re-reads the whole stream
    inactive = None if consumer == CONSUMER else REPLICA_CONSUMER_INACTIVE_SECONDS
    watcher = (
        asyncio.create_task(_watch_catch_up(js, consumer, when_caught_up, stop)) if when_caught_up else None
    )
    await bus.consume(
        js, bus.FEATURE_STREAM, bus.FEATURE_SUBJECTS, consumer, bus.ensure_feature_stream,
        lambda msg: _apply_record(engine, servicer, msg), stop, replay=replay, inactive_threshold=inactive,
    )  # fmt: skip
    if watcher is not None:
        watcher.cancel()
    await nc.close()


async def _watch_catch_up(
    js, consumer: str, when_caught_up: Callable[[], Awaitable[None]], stop: asyncio.Event
) -> None:
    """Await ``when_caught_up`` once ``consumer`` has no record pending or unacknowledged."""
    while not stop.is_set():
        try:
            info = await js.consumer_info(bus.FEATURE_STREAM, consumer)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                await when_caught_up()
                return
        except Exception as exc:  # not bound yet, or NATS restarting: look again shortly
            log.debug("catch-up check failed", extra={"error": str(exc)})
        await pause(stop, CATCH_UP_POLL_SECONDS)


async def _every(interval: float, action, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await pause(stop, interval)
        try:
            await asyncio.to_thread(action)
        except Exception:
            log.exception("periodic task failed; retrying next time")


def receive_limit(config: RetinaConfig) -> int:
    """The largest request the gRPC server reads (bounded: a small multiple of the photo limit)."""
    return int(RECEIVE_LIMIT_FACTOR * config.search.max_image_bytes)


def run_search_service(settings: SearchSettings, config: RetinaConfig) -> None:
    """Entry point of ``retina search serve``: serve until SIGTERM/SIGINT.

    ``settings``: ports, address, data folder, NATS URL; ``config``: the cluster configuration (its
    ``features`` and ``search`` sections).
    """
    data_dir, listen, incidents_address = settings.data_dir, settings.listen, settings.incidents_address
    grpc_port, metrics_port = settings.grpc_port, settings.metrics_port
    consumer = consumer_name(settings.replica_id)
    auth = service_auth.configure(settings)

    async def main(stop: asyncio.Event) -> None:
        engine = SearchEngine(data_dir, config)
        report = await asyncio.to_thread(engine.load)
        INDEXED_VECTORS.set(engine.index.ntotal)
        log.info(
            "index loaded",
            extra={
                "vectors": engine.index.ntotal,
                "shards": len(report.loaded),
                "rebuilt": len(report.rebuilt),
            },
        )
        serve_metrics(metrics_port, listen)
        servicer = SearchServicer(engine, incidents_address)
        server, health, port = await start_grpc_server(
            listen, grpc_port,
            lambda s: add_guarded(s, search_pb2_grpc.add_SearchServiceServicer_to_server, servicer),
            SERVICE_NAME,
            max_message_bytes=receive_limit(config), auth=auth,
        )  # fmt: skip
        log.info(
            "search serving",
            extra={"grpc_port": port, "embedder": engine.embedder.key, "consumer": consumer},
        )

        when_caught_up = None
        if consumer != CONSUMER:
            # A replica added by the autoscaler replays the whole stream into its own index first:
            # it reports NOT_SERVING (its readiness probe fails) until it has, so no officer gets
            # half the results from it.
            for name in ("", SERVICE_NAME):
                await health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

            async def when_caught_up() -> None:
                for name in ("", SERVICE_NAME):
                    await health.set(name, health_pb2.HealthCheckResponse.SERVING)
                log.info("caught up with the feature stream; serving", extra={"consumer": consumer})

        def drop_expired() -> None:
            dropped = engine.drop_expired()
            if dropped:
                SHARDS_DROPPED.inc(len(dropped))
                log.info("retention dropped index shards", extra={"shards": dropped})

        tasks = [
            asyncio.create_task(
                _consume(engine, servicer, settings.nats_url, consumer, stop, when_caught_up)
            ),
            asyncio.create_task(_every(SAVE_INTERVAL_SECONDS, engine.index.save, stop)),
            asyncio.create_task(_every(RETENTION_INTERVAL_SECONDS, drop_expired, stop)),
        ]
        await stop.wait()
        log.info("search stopping")
        await server.stop(grace=2)
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
        except (TimeoutError, Exception) as exc:
            log.warning("background tasks did not stop cleanly", extra={"error": str(exc)})
        saved = await asyncio.to_thread(engine.index.save)
        engine.store.close()
        log.info("search stopped", extra={"shards_saved": saved})

    run_until_signalled(main)
