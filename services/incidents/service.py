"""The incident store service: a durable JetStream consumer into SQL, and the gRPC query API.

A message is acknowledged only after its event (and snapshot) is committed, so a crash or SIGTERM
at any point means JetStream redelivers it, and the idempotent store ignores what it already has.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time

import grpc
from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from retina.services.core import bus
from retina.services.core.incident import IncidentMessage
from retina.services.core.metrics import serve_metrics
from retina.services.core.serving import pause, run_until_signalled, start_grpc_server, to_timestamp
from retina.services.core.settings import IncidentStoreSettings
from retina.services.core.validation import (
    InvalidArgument,
    add_guarded,
    check_text,
    check_timestamp,
    check_token,
)
from retina.services.incidents.store import STORE_COLUMNS, IncidentStore, StoredIncident
from retina.v1 import incidents_pb2, incidents_pb2_grpc

log = logging.getLogger(__name__)

CONSUMER = "incident-store"
MEDIA_RETRY_SECONDS = 3.0
MEDIA_GIVE_UP_SECONDS = 15 * 60
RETENTION_INTERVAL_SECONDS = 60.0
MEDIA_MIN_FREE_RATIO = 0.05  # retention also deletes the oldest media while the disk is fuller than 95 %
EVENTS_STORED = Counter("retina_store_events_total", "Incident events stored", ["event"])
DUPLICATES = Counter("retina_store_duplicates_total", "Redelivered incident events ignored")
REJECTED = Counter("retina_store_rejected_total", "Messages that are not valid incidents")
FAILED = Counter("retina_store_failed_total", "Incident events that failed to store repeatedly")
STORAGE_ERRORS = Counter(
    "retina_store_storage_errors_total", "Incident events not stored yet because the disk failed (retried)"
)
MEDIA_DELETED = Counter("retina_store_media_deleted_total", "Media files deleted by the retention policy")
MAX_LIST_LIMIT = 1000
MAX_ALGORITHM_LENGTH = 128
MAX_CLOSED_BY_LENGTH = 256
MAX_NOTE_LENGTH = 4096


def incident_to_proto(row: StoredIncident) -> incidents_pb2.Incident:
    """The gRPC summary of a stored incident: each field is the store's column of that name where the
    store adds it (``STORE_COLUMNS``), else the latest message's field of that name (a test checks
    that every field is filled)."""
    message = row.message
    incident = incidents_pb2.Incident()
    for field in incident.DESCRIPTOR.fields:
        value = getattr(row, field.name) if field.name in STORE_COLUMNS else getattr(message, field.name)
        if value is None:
            continue
        if field.message_type is None:
            setattr(incident, field.name, value)
        elif field.message_type.full_name == "google.protobuf.Timestamp":  # datetime or epoch seconds
            epoch = value.timestamp() if hasattr(value, "timestamp") else value
            getattr(incident, field.name).CopyFrom(to_timestamp(epoch))
        else:  # BBox, GeoLocation: the message's model of the same shape
            target = getattr(incident, field.name)
            target.CopyFrom(type(target)(**value.model_dump()))
    return incident


class IncidentServicer(incidents_pb2_grpc.IncidentServiceServicer):
    """``retina.v1.IncidentService``; register it with ``add_guarded`` (services.core.validation)."""

    def __init__(self, store: IncidentStore):
        self.store = store

    async def ListIncidents(self, request, context):
        check_token(request.camera_id, "camera_id", required=False)
        check_token(request.department, "department", required=False)
        check_text(request.algorithm, "algorithm", max_length=MAX_ALGORITHM_LENGTH)
        if request.state not in ("", "open", "ended"):
            raise InvalidArgument("state", "use 'open', 'ended' or leave it empty")
        if not 0 <= request.limit <= MAX_LIST_LIMIT:
            raise InvalidArgument("limit", f"use 0 to {MAX_LIST_LIMIT} (0: 100), got {request.limit}")
        since = check_timestamp(request.since, "since") if request.HasField("since") else None
        rows = self.store.list(
            camera_id=request.camera_id,
            department=request.department,
            algorithm=request.algorithm,
            state=request.state,
            since=since,
            limit=request.limit,
        )
        return incidents_pb2.ListIncidentsResponse(incidents=[incident_to_proto(r) for r in rows])

    async def GetIncident(self, request, context):
        check_token(request.id, "id")
        row = self.store.get(request.id)
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no incident with id {request.id!r}")
        return incident_to_proto(row)

    async def CloseIncident(self, request, context):
        check_token(request.id, "id")
        if not request.closed_by.strip():
            raise InvalidArgument("closed_by", "say who closes the incident")
        check_text(request.closed_by, "closed_by", max_length=MAX_CLOSED_BY_LENGTH)
        check_text(request.note, "note", max_length=MAX_NOTE_LENGTH, single_line=False)
        row = self.store.close_out(request.id, request.closed_by, request.note)
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no incident with id {request.id!r}")
        log.info("incident closed out", extra={"incident_id": row.id, "camera_id": row.camera_id})
        return incident_to_proto(row)


async def _consume(store: IncidentStore, nats_url: str, stop: asyncio.Event) -> None:
    """Pull incident events from JetStream into the store until ``stop`` is set."""
    nc = await bus.connect(nats_url, "retina-incident-store", stop)
    js = nc.jetstream()
    media = None
    while media is None and not stop.is_set():
        try:
            media = await bus.media_store(js)
        except Exception as exc:  # JetStream restarting: keep trying, never lose the consumer
            log.warning("object store not ready, retrying", extra={"error": str(exc)})
            await asyncio.sleep(1)
    if media is None:  # stopped before JetStream was ever ready
        await nc.close()
        return

    fetcher = asyncio.create_task(_fetch_pending_media(store, media, stop))
    await bus.consume(
        js, bus.INCIDENT_STREAM, bus.INCIDENT_SUBJECTS, CONSUMER, bus.ensure_incident_stream,
        lambda msg: _store_one(store, media, msg), stop,
    )  # fmt: skip
    await fetcher
    await nc.close()  # every fetched message was acked or nak'ed above


async def _fetch_pending_media(store: IncidentStore, media, stop: asyncio.Event) -> None:
    """Fetch evidence announced by incidents: clips (workers upload them a few seconds later) and
    snapshots that could not be written when they came (media disk full)."""
    while not stop.is_set():
        try:
            pending = await asyncio.to_thread(store.pending_media)
        except Exception:  # database unreachable: the next pass tries again
            log.exception("could not read the pending evidence; will retry")
            pending = []
        for path, incident_id, first_try in pending:
            extra = {"incident_id": incident_id, "path": path}
            try:
                data = (await media.get(path)).data
            except Exception:
                if time.time() - first_try > MEDIA_GIVE_UP_SECONDS:
                    log.warning("evidence never arrived; giving up", extra=extra)
                    await asyncio.to_thread(store.attach_media, path, incident_id, None)
                continue
            try:
                await asyncio.to_thread(store.attach_media, path, incident_id, data)
            except Exception as exc:  # media disk full, database down: it stays pending
                log.error("could not store evidence; will retry", extra={**extra, "error": str(exc)})
                break
            log.info("evidence stored", extra=extra)
        await pause(stop, MEDIA_RETRY_SECONDS)


async def _enforce_retention(
    store: IncidentStore, max_bytes: int, max_age: float, stop: asyncio.Event
) -> None:
    """Keep the media folder within its size and age limits (oldest first, open incidents kept)."""
    while not stop.is_set():
        try:
            deleted = await asyncio.to_thread(
                store.enforce_retention, max_bytes, max_age, None, MEDIA_MIN_FREE_RATIO
            )
        except Exception:  # the next pass tries again; retention must never stop for good
            log.exception("media retention failed")
            deleted = []
        if deleted:
            MEDIA_DELETED.inc(len(deleted))
            log.info("media retention deleted files", extra={"files": len(deleted), "oldest": deleted[0]})
        await pause(stop, RETENTION_INTERVAL_SECONDS)


async def _store_one(store: IncidentStore, media, msg) -> None:
    try:
        incident = IncidentMessage.model_validate_json(msg.data)
    except ValidationError as exc:
        REJECTED.inc()
        log.error("not an incident message; dropped", extra={"subject": msg.subject, "error": str(exc)[:500]})
        await msg.term()
        return
    extra = {"camera_id": incident.camera_id, "incident_id": incident.id, "event": incident.event}
    snapshot = None
    if incident.snapshot is not None:
        try:
            snapshot = (await media.get(incident.snapshot.path)).data
        except Exception as exc:
            log.warning("snapshot missing from the object store", extra={**extra, "error": str(exc)})
    try:
        stored = await asyncio.to_thread(store.apply, incident, snapshot)
    except (OSError, sqlite3.OperationalError, OperationalError) as exc:  # disk full, locked, DB down: retry
        STORAGE_ERRORS.inc()
        log.error("storage failed; the event will be redelivered", extra={**extra, "error": str(exc)})
        await msg.nak(delay=5)
        return
    except Exception:
        if await bus.redeliver_or_give_up(msg, "incident event", extra):
            FAILED.inc()
        return
    await msg.ack()
    if stored:
        EVENTS_STORED.labels(incident.event).inc()
        log.info(f"stored incident {incident.event}", extra=extra)
    else:
        DUPLICATES.inc()


def run_incident_store(settings: IncidentStoreSettings) -> None:
    """Entry point of ``retina incidents serve``: serve until SIGTERM/SIGINT.

    ``settings.database_url``: a SQLAlchemy URL (``postgresql+psycopg://...``); default: SQLite in
    ``settings.data_dir``.
    """
    data_dir, nats_url, listen = settings.data_dir, settings.nats_url, settings.listen
    grpc_port, metrics_port, database_url = settings.grpc_port, settings.metrics_port, settings.database_url
    media_max_bytes, media_max_age_seconds = settings.media_max_bytes, settings.media_max_age_seconds

    async def main(stop: asyncio.Event) -> None:
        store = IncidentStore(database_url or data_dir / "incidents.sqlite", data_dir / "media")
        serve_metrics(metrics_port, listen)
        server, _, port = await start_grpc_server(
            listen,
            grpc_port,
            lambda s: add_guarded(
                s, incidents_pb2_grpc.add_IncidentServiceServicer_to_server, IncidentServicer(store)
            ),
            "retina.v1.IncidentService",
        )
        database = make_url(store.database_url).render_as_string(hide_password=True)
        extra = {"grpc_port": port, "data_dir": str(data_dir), "database": database}
        log.info("incident store serving", extra=extra)
        consumer = asyncio.create_task(_consume(store, nats_url, stop))
        retention = asyncio.create_task(
            _enforce_retention(store, media_max_bytes, media_max_age_seconds, stop)
        )
        await stop.wait()
        log.info("incident store stopping")
        await server.stop(grace=2)
        try:
            await asyncio.wait_for(asyncio.gather(consumer, retention), timeout=10)
        except (TimeoutError, Exception) as exc:
            log.warning("consumer did not stop cleanly", extra={"error": str(exc)})
        store.close()
        log.info("incident store stopped")

    run_until_signalled(main)
