"""The incident store service: a durable JetStream consumer into SQL, the gRPC API (queries, the
dispatch loop, evidence files) and the outbox that publishes dispatch steps.

A message is acknowledged only after its event (and snapshot) is committed, so a crash or SIGTERM
at any point means JetStream redelivers it, and the idempotent store ignores what it already has.

Each dispatch step is committed with the incident's new status and published afterwards by
:func:`publish_dispatches` on ``retina.dispatch.<department>.<action>.<camera_id>`` (stream
DISPATCH), in order, marked published only once JetStream has acknowledged it: a NATS outage
delays the steps, never loses them, and a re-send is de-duplicated by its Nats-Msg-Id. The same
outbox publishes every transition of a city-management case on
``retina.cases.<department>.<action>.<case_id>`` (stream CASES; see services/incidents/casebook.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from prometheus_client import Counter, Gauge
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from retina.services.core import bus, service_auth
from retina.services.core.backoff import Backoff
from retina.services.core.cases import CASE_ACTIONS, CASE_CLOSE_REASONS, CASE_STATUSES
from retina.services.core.images import check_picture
from retina.services.core.incident import (
    CLOSE_REASONS,
    DISPATCH_ACTIONS,
    DISPATCH_STATUSES,
    VERIFY_OUTCOMES,
    IncidentMessage,
)
from retina.services.core.metrics import serve_metrics
from retina.services.core.serving import pause, run_until_signalled, start_grpc_server, to_timestamp
from retina.services.core.settings import IncidentStoreSettings
from retina.services.core.validation import (
    InvalidArgument,
    add_guarded,
    check_number,
    check_text,
    check_timestamp,
    check_token,
    quote,
)
from retina.services.incidents import assessment
from retina.services.incidents.casebook import CaseHistoryItem, CaseStepRefusedError, UnknownCaseError
from retina.services.incidents.store import (
    STORE_COLUMNS,
    DispatchRefusedError,
    HistoryItem,
    IncidentStore,
    StoredIncident,
    UnknownIncidentError,
    decode_departments,
)
from retina.v1 import common_pb2, incidents_pb2, incidents_pb2_grpc

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
DISPATCH_STEPS = Counter("retina_store_dispatch_steps_total", "Dispatch steps taken", ["action"])
CASE_STEPS = Counter("retina_store_case_steps_total", "Steps taken on city-management cases", ["action"])
DISPATCH_PUBLISHED = Counter("retina_store_dispatch_published_total", "Dispatch steps JetStream acknowledged")
DISPATCH_PUBLISH_ERRORS = Counter(
    "retina_store_dispatch_publish_errors_total", "Dispatch steps not published yet (retried)"
)
# The assessment gauges: the cases opened in the last ASSESSMENT_METRICS_DAYS, per responsible
# department (at most ASSESSMENT_METRICS_DEPARTMENTS, those with most cases: the label stays bounded).
ASSESSMENT_METRICS_DAYS = 30
ASSESSMENT_METRICS_SECONDS = 60.0
ASSESSMENT_METRICS_DEPARTMENTS = 200
ASSESSMENT_CASES = Gauge(
    "retina_cases_assessed", "Cases opened in the last 30 days, per responsible department", ["department"]
)
ASSESSMENT_RATES = {
    name: Gauge(f"retina_cases_{name}", f"{title}, cases opened in the last 30 days", ["department"])
    for name, title in (
        ("on_time_rate", "按期结案率: closed on time / (due - postponed)"),
        ("close_rate", "结案率: closed / cases"),
        ("rework_rate", "返工率: reworked (failed verification or recurred) / cases"),
        ("extension_rate", "延期率: cases with an approved extension / cases"),
    )
}
MAX_LIST_LIMIT = 1000
MAX_LIST_OFFSET = 1_000_000
MAX_VISIBLE_TO = 256
MAX_ALGORITHM_LENGTH = 128
MAX_ZONE_LENGTH = 128
MAX_ACTOR_LENGTH = 256
MAX_ASSIGNEE_LENGTH = 256
MAX_NOTE_LENGTH = 4096
MAX_MEDIA_PATH_LENGTH = 1024
MAX_VERIFY_SECONDS = 7 * 24 * 3600
MAX_PHOTO_BYTES = 20 * 1024 * 1024
# Requests up to this size are read, so that an oversized photo gets an answer naming its size (gRPC
# refuses larger ones unread, RESOURCE_EXHAUSTED).
RECEIVE_LIMIT_BYTES = int(2.5 * MAX_PHOTO_BYTES)
PHOTO_CHECKS_AT_ONCE = 2  # bounds the memory of decoding photos (each up to MAX_IMAGE_PIXELS)
MEDIA_CHUNK_BYTES = 1024 * 1024
CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".mp4": "video/mp4"}
# Fields of DispatchRequest that belong to some actions only.
ACTION_FIELDS = {
    "assignee": ("assign",),
    "due_at": ("assign",),
    "reason": ("close",),
    "outcome": ("verify",),
    "verify_seconds": ("handle",),
    "photo": ("handle", "verify"),
}
# Fields of CaseStepRequest that belong to some case steps only (reason: each step checks its own).
CASE_STEP_FIELDS = {
    "assignee": ("assign",),
    "department": ("assign",),
    "due_at": ("extend_request", "postpone_request"),
    "reason": ("extend_request", "postpone_request", "return", "close"),
}
MAX_REASON_LENGTH = 1024
MAX_GRID_PREFIX_LENGTH = 32
MAX_CATEGORY_LENGTH = 17


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
        if isinstance(value, list):  # visible_to
            getattr(incident, field.name).extend(value)
        elif field.message_type is None:
            setattr(incident, field.name, value)
        elif field.message_type.full_name == "google.protobuf.Timestamp":  # datetime or epoch seconds
            epoch = value.timestamp() if hasattr(value, "timestamp") else value
            getattr(incident, field.name).CopyFrom(to_timestamp(epoch))
        else:  # BBox, GeoLocation: the message's model of the same shape
            target = getattr(incident, field.name)
            target.CopyFrom(type(target)(**value.model_dump()))
    return incident


def history_to_proto(item: HistoryItem) -> incidents_pb2.HistoryEntry:
    """One history entry as ``retina.v1.HistoryEntry`` (details as JSON)."""
    return incidents_pb2.HistoryEntry(
        at=to_timestamp(item.at), kind=item.kind, action=item.action, revision=item.revision,
        actor=item.actor, note=item.note, status=item.status, media_path=item.media_path or "",
        details_json=json.dumps(item.details, ensure_ascii=False) if item.details else "",
    )  # fmt: skip


def check_dispatch(request: incidents_pb2.DispatchRequest) -> float | None:
    """Check a DispatchRequest's fields (InvalidArgument naming the first bad one); return its
    ``due_at`` in epoch seconds (None when unset). The photo is checked separately (it decodes)."""
    check_token(request.id, "id")
    if request.action not in DISPATCH_ACTIONS:
        raise InvalidArgument("action", f"use {', '.join(DISPATCH_ACTIONS)} (got {quote(request.action)})")
    check_text(request.actor, "actor", max_length=MAX_ACTOR_LENGTH, required=True)
    check_text(request.note, "note", max_length=MAX_NOTE_LENGTH, single_line=False)
    if request.expected_status and request.expected_status not in DISPATCH_STATUSES:
        raise InvalidArgument(
            "expected_status", f"use {', '.join(DISPATCH_STATUSES)} or leave it empty"
            f" (got {quote(request.expected_status)})",
        )  # fmt: skip
    given = {
        "assignee": bool(request.assignee), "due_at": request.HasField("due_at"),
        "reason": bool(request.reason), "outcome": bool(request.outcome),
        "verify_seconds": request.verify_seconds != 0, "photo": bool(request.photo),
    }  # fmt: skip
    for field, actions in ACTION_FIELDS.items():
        if given[field] and request.action not in actions:
            raise InvalidArgument(field, f"only for {' or '.join(actions)}, not {request.action}")
    due_at = None
    if request.action == "assign":
        check_text(request.assignee, "assignee", max_length=MAX_ASSIGNEE_LENGTH, required=True)
        due_at = check_timestamp(request.due_at, "due_at") if request.HasField("due_at") else None
    elif request.action == "handle":
        check_number(request.verify_seconds, "verify_seconds", minimum=0, maximum=MAX_VERIFY_SECONDS)
    elif request.action == "verify" and request.outcome not in VERIFY_OUTCOMES:
        choices = " or ".join(repr(outcome) for outcome in VERIFY_OUTCOMES)
        raise InvalidArgument("outcome", f"use {choices} (got {quote(request.outcome)})")
    elif request.action == "close" and request.reason not in CLOSE_REASONS:
        raise InvalidArgument("reason", f"use {', '.join(CLOSE_REASONS)} (got {quote(request.reason)})")
    return due_at


def check_visible_to(visible_to: Sequence[str]) -> list[str]:
    """A request's ``visible_to`` departments (InvalidArgument naming the first bad one)."""
    if len(visible_to) > MAX_VISIBLE_TO:
        raise InvalidArgument("visible_to", f"at most {MAX_VISIBLE_TO} departments")
    for i, department in enumerate(visible_to):
        check_token(department, f"visible_to[{i}]")
    return list(visible_to)


# -- cases -------------------------------------------------------------------------------------------

_CASE_TEXT_FIELDS = (
    "id", "category_code", "category_name", "major_code", "major_name", "status", "department",
    "routed_by", "camera_id", "camera_department", "zone", "grid_code", "address", "recurrence_of",
    "assignee", "pending_request", "pending_reason", "pending_by", "return_reason", "returned_by",
    "closed_by", "close_reason", "close_note",
)  # fmt: skip
_CASE_COUNT_FIELDS = (
    "incident_count", "recurrences", "limit_working_days", "extensions", "postponements", "returns"
)  # fmt: skip
_CASE_TIME_FIELDS = (
    "opened_at", "first_seen_at", "last_seen_at", "dispatched_at", "due_at", "pending_due_at",
    "pending_at", "closed_at",
)  # fmt: skip


def case_to_proto(case: Any) -> incidents_pb2.Case:
    """A stored case (services/incidents/casebook.py StoredCase) as ``retina.v1.Case``."""
    message = incidents_pb2.Case(
        **{name: getattr(case, name) or "" for name in _CASE_TEXT_FIELDS},
        **{name: getattr(case, name) or 0 for name in _CASE_COUNT_FIELDS},
        limit_working_hours=case.limit_working_hours or 0.0,
        visible_to=decode_departments(case.visible_to),
        overdue=case.overdue,
    )
    for name in _CASE_TIME_FIELDS:
        if getattr(case, name) is not None:
            getattr(message, name).CopyFrom(to_timestamp(getattr(case, name)))
    if case.lat is not None and case.lon is not None:
        message.location.CopyFrom(common_pb2.GeoLocation(lat=case.lat, lon=case.lon))
    if case.working_seconds_left is not None:
        message.working_seconds_left = case.working_seconds_left
    return message


def case_history_to_proto(item: CaseHistoryItem) -> incidents_pb2.CaseHistoryEntry:
    """One transition of a case as ``retina.v1.CaseHistoryEntry`` (details as JSON)."""
    return incidents_pb2.CaseHistoryEntry(
        seq=item.seq, at=to_timestamp(item.at), action=item.action, actor=item.actor, note=item.note,
        status=item.status, department=item.department,
        details_json=json.dumps(item.details, ensure_ascii=False) if item.details else "",
    )  # fmt: skip


def check_case_step(request: incidents_pb2.CaseStepRequest) -> float | None:
    """Check a CaseStepRequest's fields (InvalidArgument naming the first bad one); return its
    ``due_at`` in epoch seconds (None when unset)."""
    check_token(request.id, "id")
    if request.action not in CASE_ACTIONS:
        raise InvalidArgument("action", f"use {', '.join(CASE_ACTIONS)} (got {quote(request.action)})")
    check_text(request.actor, "actor", max_length=MAX_ACTOR_LENGTH, required=True)
    check_text(request.note, "note", max_length=MAX_NOTE_LENGTH, single_line=False)
    given = {
        "assignee": bool(request.assignee), "department": bool(request.department),
        "due_at": request.HasField("due_at"), "reason": bool(request.reason),
    }  # fmt: skip
    for field, actions in CASE_STEP_FIELDS.items():
        if given[field] and request.action not in actions:
            raise InvalidArgument(field, f"only for {' or '.join(actions)}, not {request.action}")
    due_at = check_timestamp(request.due_at, "due_at") if request.HasField("due_at") else None
    if request.action == "assign":
        check_text(request.assignee, "assignee", max_length=MAX_ASSIGNEE_LENGTH, required=True)
        check_token(request.department, "department", required=False)
    elif request.action in ("extend_request", "postpone_request"):
        if due_at is None:
            raise InvalidArgument("due_at", f"required for {request.action}: the new due time")
        check_text(request.reason, "reason", max_length=MAX_REASON_LENGTH, required=True, single_line=False)
    elif request.action == "return":
        check_text(request.reason, "reason", max_length=MAX_REASON_LENGTH, required=True, single_line=False)
    elif request.action == "close" and request.reason not in CASE_CLOSE_REASONS:
        raise InvalidArgument("reason", f"use {', '.join(CASE_CLOSE_REASONS)} (got {quote(request.reason)})")
    return due_at


def check_list_cases(request: incidents_pb2.ListCasesRequest) -> tuple[float | None, float | None]:
    """Check a ListCasesRequest (InvalidArgument naming the first bad field); return since, until."""
    check_visible_to(request.visible_to)
    if request.status not in ("", *CASE_STATUSES):
        raise InvalidArgument(
            "status", f"use {', '.join(CASE_STATUSES)} or leave it empty (got {quote(request.status)})"
        )
    check_text(request.category, "category", max_length=MAX_CATEGORY_LENGTH)
    check_token(request.camera_id, "camera_id", required=False)
    check_token(request.department, "department", required=False)
    check_token(request.incident_id, "incident_id", required=False)
    check_text(request.assignee, "assignee", max_length=MAX_ASSIGNEE_LENGTH)
    check_text(request.grid_prefix, "grid_prefix", max_length=MAX_GRID_PREFIX_LENGTH)
    if not 0 <= request.limit <= MAX_LIST_LIMIT:
        raise InvalidArgument("limit", f"use 0 to {MAX_LIST_LIMIT} (0: 100), got {request.limit}")
    if not 0 <= request.offset <= MAX_LIST_OFFSET:
        raise InvalidArgument("offset", f"use 0 to {MAX_LIST_OFFSET}, got {request.offset}")
    since = check_timestamp(request.since, "since") if request.HasField("since") else None
    until = check_timestamp(request.until, "until") if request.HasField("until") else None
    return since, until


class IncidentServicer(incidents_pb2_grpc.IncidentServiceServicer):
    """``retina.v1.IncidentService``; register it with ``add_guarded`` (services.core.validation).

    ``dispatched`` is set after every dispatch step (it wakes :func:`publish_dispatches`)."""

    def __init__(self, store: IncidentStore):
        self.store = store
        self.dispatched = asyncio.Event()
        self._photo_checks = asyncio.Semaphore(PHOTO_CHECKS_AT_ONCE)

    async def ListIncidents(self, request, context):
        check_token(request.camera_id, "camera_id", required=False)
        check_token(request.department, "department", required=False)
        check_text(request.algorithm, "algorithm", max_length=MAX_ALGORITHM_LENGTH)
        check_text(request.zone, "zone", max_length=MAX_ZONE_LENGTH)
        if request.state not in ("", "open", "ended"):
            raise InvalidArgument("state", "use 'open', 'ended' or leave it empty")
        if request.dispatch_status not in ("", *DISPATCH_STATUSES):
            raise InvalidArgument(
                "dispatch_status", f"use {', '.join(DISPATCH_STATUSES)} or leave it empty"
                f" (got {quote(request.dispatch_status)})",
            )  # fmt: skip
        if not 0 <= request.limit <= MAX_LIST_LIMIT:
            raise InvalidArgument("limit", f"use 0 to {MAX_LIST_LIMIT} (0: 100), got {request.limit}")
        if not 0 <= request.offset <= MAX_LIST_OFFSET:
            raise InvalidArgument("offset", f"use 0 to {MAX_LIST_OFFSET}, got {request.offset}")
        check_visible_to(request.visible_to)
        since = check_timestamp(request.since, "since") if request.HasField("since") else None
        until = check_timestamp(request.until, "until") if request.HasField("until") else None
        rows = await asyncio.to_thread(
            self.store.list,
            camera_id=request.camera_id,
            department=request.department,
            algorithm=request.algorithm,
            state=request.state,
            since=since,
            limit=request.limit,
            visible_to=list(request.visible_to),
            zone=request.zone,
            until=until,
            offset=request.offset,
            dispatch_status=request.dispatch_status,
        )
        return incidents_pb2.ListIncidentsResponse(incidents=[incident_to_proto(r) for r in rows])

    async def GetDispatchStats(self, request, context):
        visible_to = check_visible_to(request.visible_to)
        since = check_timestamp(request.since, "since") if request.HasField("since") else None
        until = check_timestamp(request.until, "until") if request.HasField("until") else None
        rows = await asyncio.to_thread(
            self.store.dispatch_stats, visible_to=visible_to, since=since, until=until
        )
        fields = ("camera_id", "algorithm", "incidents", "closed", "false_alarms", "false_alarm_ratio")
        return incidents_pb2.DispatchStats(
            rows=[incidents_pb2.DispatchStatsRow(**{f: getattr(row, f) for f in fields}) for row in rows]
        )

    async def GetIncident(self, request, context):
        check_token(request.id, "id")
        row = self.store.get(request.id)
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no incident with id {request.id!r}")
        return incident_to_proto(row)

    async def GetIncidentHistory(self, request, context):
        check_token(request.id, "id")
        items = await asyncio.to_thread(self.store.history, request.id)
        if items is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no incident with id {request.id!r}")
        return incidents_pb2.IncidentHistory(entries=[history_to_proto(item) for item in items])

    async def Dispatch(self, request, context):
        due_at = check_dispatch(request)
        suffix = "jpg"
        if request.photo:
            async with self._photo_checks:
                suffix = await asyncio.to_thread(check_picture, request.photo, "photo", MAX_PHOTO_BYTES)
        try:
            row = await asyncio.to_thread(
                self.store.dispatch, request.id, request.action, request.actor,
                note=request.note, assignee=request.assignee, due_at=due_at, reason=request.reason,
                outcome=request.outcome, photo=request.photo or None, photo_suffix=suffix,
                expected_status=request.expected_status, verify_seconds=request.verify_seconds,
            )  # fmt: skip
        except UnknownIncidentError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no incident with id {request.id!r}")
        except DispatchRefusedError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        self.dispatched.set()
        DISPATCH_STEPS.labels(request.action).inc()
        log.info(
            f"incident {request.action}: {row.dispatch_status}",
            extra={"incident_id": row.id, "camera_id": row.camera_id, "actor": request.actor},
        )
        return incident_to_proto(row)

    async def ListCases(self, request, context):
        since, until = check_list_cases(request)
        rows = await asyncio.to_thread(
            self.store.cases.list,
            visible_to=list(request.visible_to), status=request.status, category=request.category,
            camera_id=request.camera_id, department=request.department, grid_prefix=request.grid_prefix,
            overdue_only=request.overdue_only, since=since, until=until, incident_id=request.incident_id,
            assignee=request.assignee, limit=request.limit, offset=request.offset,
        )  # fmt: skip
        return incidents_pb2.ListCasesResponse(cases=[case_to_proto(row) for row in rows])

    async def GetCase(self, request, context):
        check_token(request.id, "id")
        case = await asyncio.to_thread(self.store.cases.get, request.id)
        if case is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no case with id {request.id!r}")
        members = await asyncio.to_thread(self.store.incidents_of_case, request.id)
        return incidents_pb2.CaseDetail(
            summary=case_to_proto(case),
            incidents=[
                incidents_pb2.CaseIncident(
                    incident=incident_to_proto(incident), link=link, linked_at=to_timestamp(linked_at)
                )
                for incident, link, linked_at in members
            ],
        )

    async def GetCaseHistory(self, request, context):
        check_token(request.id, "id")
        items = await asyncio.to_thread(self.store.cases.history, request.id)
        if items is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no case with id {request.id!r}")
        return incidents_pb2.CaseHistory(entries=[case_history_to_proto(item) for item in items])

    async def CaseStep(self, request, context):
        due_at = check_case_step(request)
        try:
            case = await asyncio.to_thread(
                self.store.cases.step, request.id, request.action, request.actor, note=request.note,
                assignee=request.assignee, department=request.department, due_at=due_at,
                reason=request.reason,
            )  # fmt: skip
        except UnknownCaseError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no case with id {request.id!r}")
        except CaseStepRefusedError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except ValueError as exc:  # a step lacking its facts: a due time not later than the current one
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        self.dispatched.set()
        CASE_STEPS.labels(request.action).inc()
        log.info(
            f"case {request.action}: {case.status}",
            extra={"case_id": case.id, "camera_id": case.camera_id, "actor": request.actor},
        )
        return case_to_proto(case)

    async def GetAssessment(self, request, context):
        by = request.by
        if by not in (*assessment.GROUPINGS, *assessment.ACCURACY_GROUPINGS):
            choices = ", ".join((*assessment.GROUPINGS, *assessment.ACCURACY_GROUPINGS))
            raise InvalidArgument("by", f"use {choices} (got {quote(by)})")
        check_token(request.department, "department", required=False)
        if not 0 <= request.area_digits <= 32:
            raise InvalidArgument("area_digits", f"use 1 to 32 (0: 6), got {request.area_digits}")
        since = check_timestamp(request.since, "since") if request.HasField("since") else None
        until = check_timestamp(request.until, "until") if request.HasField("until") else None
        period = {"department": request.department, "since": since, "until": until}
        if by in assessment.ACCURACY_GROUPINGS:
            found = await asyncio.to_thread(assessment.assess_ai, self.store.engine, by, **period)
            fields = ("key", "incidents", "reviewed", "confirmed", "false_alarms", "precision")
            return incidents_pb2.Assessment(
                accuracy=[_row(incidents_pb2.AccuracyRow, r, fields) for r in found]
            )
        digits = request.area_digits or assessment.DEFAULT_AREA_DIGITS
        rows = await asyncio.to_thread(
            assessment.assess_cases, self.store.engine, by, area_digits=digits, **period
        )
        fields = (
            "key", "cases", "closed", "due", "postponed", "closed_on_time", "reworked", "extended",
            "on_time_rate", "close_rate", "rework_rate", "extension_rate",
        )  # fmt: skip
        return incidents_pb2.Assessment(rows=[_row(incidents_pb2.AssessmentRow, r, fields) for r in rows])

    async def ReportCase(self, request, context):
        check_text(request.category_code, "category_code", max_length=MAX_CATEGORY_LENGTH, required=True)
        check_token(request.department, "department")
        check_text(request.actor, "actor", max_length=MAX_ACTOR_LENGTH, required=True)
        check_text(request.description, "description", max_length=MAX_NOTE_LENGTH, single_line=False)
        check_text(request.address, "address", max_length=MAX_NOTE_LENGTH)
        check_text(request.grid_code, "grid_code", max_length=MAX_GRID_PREFIX_LENGTH)
        check_text(request.source, "source", max_length=MAX_ALGORITHM_LENGTH)
        check_text(request.media_url, "media_url", max_length=MAX_MEDIA_PATH_LENGTH)
        check_text(request.request_key, "request_key", max_length=MAX_NOTE_LENGTH)
        lat = request.lat if request.HasField("lat") else None
        lon = request.lon if request.HasField("lon") else None
        if (lat is None) != (lon is None) or (
            lat is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180)
        ):
            raise InvalidArgument("lat", "give both lat (-90..90) and lon (-180..180), or neither")
        try:
            case = await asyncio.to_thread(
                self.store.cases.report, request.category_code, request.department, request.actor,
                description=request.description, address=request.address, grid_code=request.grid_code,
                lat=lat, lon=lon, source=request.source or "open311", media_url=request.media_url,
                request_key=request.request_key,
            )  # fmt: skip
        except ValueError as exc:
            raise InvalidArgument("category_code", str(exc)) from None
        self.dispatched.set()
        log.info(
            "case reported", extra={"case_id": case.id, "actor": request.actor, "source": request.source}
        )
        return case_to_proto(case)

    async def GetMedia(self, request, context) -> AsyncIterator[incidents_pb2.MediaChunk]:
        check_text(request.path, "path", max_length=MAX_MEDIA_PATH_LENGTH, required=True)
        target = self.store.media_file(request.path)
        handle = None
        if target is not None:
            with contextlib.suppress(OSError):  # deleted by retention meanwhile
                handle = open(target, "rb")  # noqa: SIM115 - closed below, across the awaits
        if handle is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "path: no such media file")
        with handle:
            size = os.fstat(handle.fileno()).st_size
            content_type = CONTENT_TYPES.get(target.suffix.lower(), "application/octet-stream")
            data = await asyncio.to_thread(handle.read, MEDIA_CHUNK_BYTES)
            yield incidents_pb2.MediaChunk(data=data, content_type=content_type, size=size)
            while data:
                data = await asyncio.to_thread(handle.read, MEDIA_CHUNK_BYTES)
                if data:
                    yield incidents_pb2.MediaChunk(data=data)


def _row(message: Any, row: Any, fields: Sequence[str]) -> Any:
    """A proto row of ``message`` type from a dataclass row (a None rate stays unset)."""
    values = {name: getattr(row, name) for name in fields}
    return message(**{name: value for name, value in values.items() if value is not None})


def refresh_assessment_metrics(store: IncidentStore, now: float | None = None) -> None:
    """Set the assessment gauges from the cases opened in the last ``ASSESSMENT_METRICS_DAYS``; a
    department no longer among them loses its series, and a rate with nothing to divide is absent."""
    now = time.time() if now is None else now
    since = now - ASSESSMENT_METRICS_DAYS * 24 * 3600
    rows = assessment.assess_cases(store.engine, "department", since=since, now=now)
    rows = rows[:ASSESSMENT_METRICS_DEPARTMENTS]  # most cases first
    for gauge in (ASSESSMENT_CASES, *ASSESSMENT_RATES.values()):
        gauge.clear()
    for row in rows:
        ASSESSMENT_CASES.labels(row.key).set(row.cases)
        for name, gauge in ASSESSMENT_RATES.items():
            value = getattr(row, name)
            if value is not None:
                gauge.labels(row.key).set(value)


async def _refresh_assessment(store: IncidentStore, stop: asyncio.Event) -> None:
    """Refresh the assessment gauges every ``ASSESSMENT_METRICS_SECONDS`` until ``stop``."""
    while not stop.is_set():
        try:
            await asyncio.to_thread(refresh_assessment_metrics, store)
        except OperationalError as exc:
            log.warning("could not refresh the assessment metrics", extra={"error": str(exc)[:300]})
        await pause(stop, ASSESSMENT_METRICS_SECONDS)


async def publish_dispatches(
    store: IncidentStore, nats_url: str, stop: asyncio.Event, wake: asyncio.Event | None = None
) -> None:
    """The store's outbox: publish every dispatch step and case transition not yet acknowledged, in
    order, to the DISPATCH stream (Nats-Msg-Id ``<incident_id>:dispatch:<seq>``) and the CASES
    stream (``<case_id>:case:<seq>``), marking each published after JetStream acknowledges it;
    until ``stop``. ``wake`` (set after a step) ends the wait early.

    While NATS is down the messages wait in the database; a missing stream is recreated."""
    try:
        nc = await bus.connect(nats_url, "retina-incident-store-dispatch", stop)
    except Exception:
        if stop.is_set():
            return
        raise
    js = nc.jetstream()
    backoff = Backoff(initial=0.5, maximum=5.0)
    stream_ready = False
    try:
        while not stop.is_set():
            try:
                if not stream_ready:
                    await bus.ensure_dispatch(js)
                    await bus.ensure_cases(js)
                    stream_ready = True
                pending = await asyncio.to_thread(store.outbox)
            except Exception as exc:  # JetStream or the database not ready: try again
                log.warning("dispatch outbox not ready, retrying", extra={"error": str(exc) or repr(exc)})
                await pause(stop, backoff.next_delay())
                continue
            if not pending:
                if wake is not None:
                    wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), timeout=1.0)
                else:
                    await pause(stop, 1.0)
                continue
            for message in pending:
                extra = {"msg_id": message.msg_id}
                try:
                    await js.publish(
                        message.subject, message.to_json(), timeout=5, headers={"Nats-Msg-Id": message.msg_id}
                    )
                    await asyncio.to_thread(store.mark_sent, message)
                except Exception as exc:  # NATS down, stream deleted, database down: later, in order
                    DISPATCH_PUBLISH_ERRORS.inc()
                    log.warning(
                        "dispatch step or case transition not published yet; will retry",
                        extra={**extra, "error": str(exc) or type(exc).__name__},
                    )
                    stream_ready = stream_ready and not bus.resource_missing(exc)
                    await pause(stop, backoff.next_delay())
                    break
                DISPATCH_PUBLISHED.inc()
                backoff.reset()
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


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
    auth = service_auth.configure(settings)

    async def main(stop: asyncio.Event) -> None:
        store = IncidentStore(
            database_url or data_dir / "incidents.sqlite", data_dir / "media", settings.cluster.cases
        )
        serve_metrics(metrics_port, listen)
        servicer = IncidentServicer(store)
        server, _, port = await start_grpc_server(
            listen,
            grpc_port,
            lambda s: add_guarded(s, incidents_pb2_grpc.add_IncidentServiceServicer_to_server, servicer),
            "retina.v1.IncidentService",
            max_message_bytes=RECEIVE_LIMIT_BYTES,
            auth=auth,
        )
        database = make_url(store.database_url).render_as_string(hide_password=True)
        extra = {"grpc_port": port, "data_dir": str(data_dir), "database": database}
        log.info("incident store serving", extra=extra)
        consumer = asyncio.create_task(_consume(store, nats_url, stop))
        retention = asyncio.create_task(
            _enforce_retention(store, media_max_bytes, media_max_age_seconds, stop)
        )
        publisher = asyncio.create_task(publish_dispatches(store, nats_url, stop, servicer.dispatched))
        assessor = asyncio.create_task(_refresh_assessment(store, stop))
        await stop.wait()
        log.info("incident store stopping")
        await server.stop(grace=2)
        try:
            await asyncio.wait_for(asyncio.gather(consumer, retention, publisher, assessor), timeout=10)
        except (TimeoutError, Exception) as exc:
            log.warning("consumer did not stop cleanly", extra={"error": str(exc)})
        store.close()
        log.info("incident store stopped")

    run_until_signalled(main)
