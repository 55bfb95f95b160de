"""City-management cases (数字城管 案卷) in the incident store: one case per problem, not per alert.

When an incident is first stored, its rule's subcategory is looked up (``cases.mapping``; an
uncoded incident makes no case) and, in the same transaction:

* an open case of the same subcategory at the same place — same camera and zone, or a camera within
  ``cases.merge_distance_m`` — last seen within ``cases.merge_window_seconds`` takes the incident in
  (``merge``);
* otherwise a new case is opened (``open``, 立案), routed to its responsible department
  (:meth:`~retina.services.core.cases.CasesConfig.route`); when the same problem's case at that
  place was closed within ``cases.recurrence_window_days``, the new case is its recurrence
  (``recurrence_of``) and the earlier case counts it (``recur`` in its history).

Redelivered events change nothing: the incident store applies an event once (by message id), and a
case is made only with the incident's row. Later events of the incident keep its case's
``last_seen_at`` current.

People then work the case (:meth:`CaseBook.step`, the state machine
:data:`~retina.services.core.cases.CASE_TRANSITIONS`): ``assign`` dispatches it (派遣; the first one
starts the clock: the due time is the subcategory's time limit on the working calendar), extension
(延期) and postponement (缓办) are requested and then approved or rejected by someone else (who
asked, who decided, why and the new due time are recorded), ``return`` (回退) sends it back to the
camera's owner as outside the department's remit, with the reason, and ``close`` (结案) ends it.

Every transition is a ``case_history`` row, written with the case's new state and published later
by the incident store's outbox (``retina.cases.<department>.<action>.<case_id>``, stream CASES).

Tables:

* ``cases`` — one row per case: its code, place, routing, counts, the dispatch facts and the
  pending request, if any;
* ``case_incidents`` — which case each incident belongs to (one case per incident), and how it
  joined (``opened``, ``same_place``, ``nearby``);
* ``case_history`` — every transition, ``published_at`` set once JetStream has it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    Table,
    Text,
    func,
    insert,
    or_,
    select,
    update,
)

from retina.services.core.cases import (
    CASE_CLOSE_REASONS,
    CASE_TRANSITIONS,
    REQUEST_OF,
    CaseMessage,
    CasesConfig,
    TimeLimit,
    allowed_case_actions,
    distance_m,
)
from retina.services.core.database import write_transaction
from retina.services.core.incident import IncidentMessage
from retina.services.incidents.schema import (
    Float8,
    decode_departments,
    encode_departments,
    metadata,
    visible_clause,
)

SYSTEM_ACTOR = "system:cases"
# Case ids are derived from the incident that opened the case: the same incident always names the
# same case.
CASE_NAMESPACE = uuid.UUID("6f0e3c52-9d0b-4b7e-8c61-2a4d3b5e7f10")
CANDIDATES = 20  # recent cases at one place looked at when an incident arrives
METRES_PER_DEGREE = 111_320.0

cases = Table(
    "cases",
    metadata,
    Column("id", Text, primary_key=True),
    Column("category_code", Text, nullable=False),  # 小类 "05-05"
    Column("category_name", Text, nullable=False),
    Column("major_code", Text, nullable=False),  # 大类 "05"
    Column("major_name", Text, nullable=False),
    Column("limit_working_hours", Float8),  # the subcategory's time limit when the case opened
    Column("limit_working_days", Integer),
    Column("status", Text, nullable=False),  # CASE_STATUSES
    Column("department", Text, nullable=False),  # responsible now
    Column("routed_by", Text, nullable=False),  # why: "grid 4201*", "category 05-05", "camera owner", ...
    Column("camera_id", Text, nullable=False),  # of the incident that opened it
    Column("camera_department", Text, nullable=False),  # that camera's owner (回退 goes back to it)
    Column("zone", Text, nullable=False),
    Column("grid_code", Text, nullable=False),
    Column("address", Text, nullable=False),
    Column("lat", Float8),
    Column("lon", Float8),
    Column("incident_scope", Text, nullable=False),  # ",a,b,": who may see its incidents
    Column("visible_to", Text, nullable=False),  # incident_scope and the responsible department
    Column("opened_at", Float8, nullable=False),  # when the store made it (立案)
    Column("first_seen_at", Float8, nullable=False),  # its incidents' earliest start
    Column("last_seen_at", Float8, nullable=False),  # and latest sighting
    Column("incident_count", Integer, nullable=False),
    Column("recurrence_of", Text),  # the closed case this problem came back after
    Column("recurrences", Integer, nullable=False),  # how often it came back after this case closed
    Column("dispatched_at", Float8),  # when the clock started (assign)
    Column("assignee", Text),
    Column("due_at", Float8),
    Column("extensions", Integer, nullable=False),  # approved 延期
    Column("postponements", Integer, nullable=False),  # approved 缓办
    Column("returns", Integer, nullable=False),  # 回退
    Column("pending_request", Text),  # "extension" or "postponement" awaiting a decision
    Column("pending_due_at", Float8),
    Column("pending_reason", Text),
    Column("pending_by", Text),
    Column("pending_at", Float8),
    Column("return_reason", Text),  # the latest 回退: why, and which department sent it back
    Column("returned_by", Text),
    Column("closed_at", Float8),
    Column("closed_by", Text),
    Column("close_reason", Text),  # CASE_CLOSE_REASONS
    Column("close_note", Text),
    Index("cases_by_place", "category_code", "camera_id", "zone", "last_seen_at"),
    Index("cases_by_category", "category_code", "last_seen_at"),
    Index("cases_by_opening", "opened_at"),
    Index("cases_by_due", "status", "due_at"),
)

case_incidents = Table(
    "case_incidents",
    metadata,
    Column("incident_id", Text, primary_key=True),  # one case per incident
    Column("case_id", Text, nullable=False),
    Column("linked_at", Float8, nullable=False),
    Column("link", Text, nullable=False),  # "opened", "same_place" or "nearby"
    Index("case_incidents_by_case", "case_id", "linked_at"),
)

case_history = Table(
    "case_history",
    metadata,
    Column("case_id", Text, primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),  # 1 (open), 2, ... per case
    Column("at", Float8, nullable=False),  # never earlier than the case's previous transition
    Column("action", Text, nullable=False),  # SYSTEM_ACTIONS or CASE_ACTIONS
    Column("actor", Text, nullable=False),
    Column("note", Text, nullable=False),
    Column("status", Text, nullable=False),  # after the transition
    Column("department", Text, nullable=False),  # responsible after it: the subject it is published on
    Column("visible_to", Text, nullable=False),  # after it
    Column("due_at", Float8),  # after it
    Column("details_json", Text, nullable=False),
    Column("published_at", Float8),  # NULL until JetStream has acknowledged it
    Index("case_history_to_publish", "published_at", "at"),
)
_PENDING_CLEARED = {
    "pending_request": None,
    "pending_due_at": None,
    "pending_reason": None,
    "pending_by": None,
    "pending_at": None,
}


class UnknownCaseError(LookupError):
    """No case has this id."""


class CaseStepRefusedError(Exception):
    """The step is not allowed now (the case's status or pending request, or who takes it); the
    text says why and which steps are allowed."""

    def __init__(self, case_id: str, problem: str, status: str, pending_request: str | None):
        self.allowed = allowed_case_actions(status, pending_request)
        allowed = ", ".join(self.allowed) or "none"
        super().__init__(f"case {case_id}: {problem} (allowed now: {allowed})")


def _iso(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat() if epoch is not None else None


StoredCase = dataclasses.make_dataclass(
    "StoredCase",
    [(column.name, Any) for column in cases.columns] + [("working_seconds_left", Any), ("overdue", bool)],
    namespace={
        "__doc__": "One row of ``cases`` (an attribute per column, times as epoch seconds), with what "
        "is computed when it is read: ``working_seconds_left`` (working time until ``due_at``, "
        "negative once past it; None without a due time or once closed) and ``overdue`` (past "
        "``due_at`` and not closed, or closed after it).",
        "__module__": __name__,
    },
)


@dataclasses.dataclass(frozen=True)
class CaseHistoryItem:
    """One transition of a case, oldest first in :meth:`CaseBook.history`."""

    seq: int
    at: float
    action: str
    actor: str
    note: str
    status: str
    department: str
    details: dict[str, Any]


REPORT_REPEAT_SECONDS = 15 * 60  # a report repeated with the same key within this is the same case
_REPORT_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "retina:case-report")


def _report_id(source: str, actor: str, request_key: str, window: int) -> str:
    """The case id of a keyed report in its 15-minute window: the same for a repeat of it."""
    return str(uuid.uuid5(_REPORT_IDS, f"{source}\0{actor}\0{request_key}\0{window}"))


class CaseBook:
    """The cases of one incident store (same database, same writer lock)."""

    def __init__(self, engine: Engine, lock: threading.Lock, config: CasesConfig):
        self._engine = engine
        self._lock = lock
        self.config = config

    # -- as incidents arrive (inside the store's transaction) ---------------------------------------

    def on_incident_event(
        self, connection: Connection, message: IncidentMessage, created: bool, now: float
    ) -> str | None:
        """File one stored incident event: a new incident (``created``) joins or opens a case, a
        later event keeps its case's ``last_seen_at`` current. Returns the case id (None: none)."""
        if not created:
            case_id = connection.execute(
                select(case_incidents.c.case_id).where(case_incidents.c.incident_id == message.id)
            ).scalar()
            if case_id is not None:
                seen = message.last_seen_at.timestamp()
                connection.execute(
                    update(cases)
                    .where(cases.c.id == case_id, cases.c.last_seen_at < seen)
                    .values(last_seen_at=seen)
                )
            return case_id
        if not self.config.enabled:
            return None
        category = self.config.category_for(message.algorithm, message.camera_id, message.zone)
        if category is None:
            return None
        started = message.started_at.timestamp()
        candidates = self._cases_at_place(connection, category.code, message, started)
        window = self.config.merge_window_seconds
        open_cases = [c for c in candidates if c.status != "closed" and c.last_seen_at >= started - window]
        if open_cases:
            target = max(open_cases, key=lambda c: (c.last_seen_at, c.opened_at))
            return self._merge(connection, target.id, message, now)
        recurrence_window = self.config.recurrence_window_days * 24 * 3600
        closed = [
            c
            for c in candidates
            if c.status == "closed" and recurrence_window > 0 and c.closed_at >= started - recurrence_window
        ]
        earlier = max(closed, key=lambda c: c.closed_at) if closed else None
        return self._open(connection, category.code, message, now, earlier)

    def _cases_at_place(
        self, connection: Connection, code: str, message: IncidentMessage, started: float
    ) -> list[Any]:
        """Recent cases of subcategory ``code`` at the incident's place: its camera and zone, and
        (with ``merge_distance_m``) other cameras that close to its camera."""
        recent = or_(
            cases.c.last_seen_at >= started - self.config.merge_window_seconds,
            cases.c.closed_at >= started - self.config.recurrence_window_days * 24 * 3600,
        )
        same_place = (
            select(cases)
            .where(
                cases.c.category_code == code,
                cases.c.camera_id == message.camera_id,
                cases.c.zone == message.zone,
                recent,
            )
            .order_by(cases.c.last_seen_at.desc())
            .limit(CANDIDATES)
        )
        found = list(connection.execute(same_place).all())
        distance, location = self.config.merge_distance_m, message.location
        if distance > 0 and location is not None:
            dlat = distance / METRES_PER_DEGREE
            dlon = distance / (METRES_PER_DEGREE * max(0.01, math.cos(math.radians(location.lat))))
            nearby = (
                select(cases)
                .where(
                    cases.c.category_code == code,
                    cases.c.camera_id != message.camera_id,
                    cases.c.lat.between(location.lat - dlat, location.lat + dlat),
                    cases.c.lon.between(location.lon - dlon, location.lon + dlon),
                    recent,
                )
                .order_by(cases.c.last_seen_at.desc())
                .limit(CANDIDATES)
            )
            found += [
                row
                for row in connection.execute(nearby).all()
                if distance_m(location.lat, location.lon, row.lat, row.lon) <= distance
            ]
        return found

    def _merge(self, connection: Connection, case_id: str, message: IncidentMessage, now: float) -> str:
        row = connection.execute(select(cases).where(cases.c.id == case_id).with_for_update()).one()
        same_place = row.camera_id == message.camera_id and row.zone == message.zone
        link = "same_place" if same_place else "nearby"
        scope = _union(decode_departments(row.incident_scope), message.visible_to)
        values = {
            "incident_count": row.incident_count + 1,
            "first_seen_at": min(row.first_seen_at, message.started_at.timestamp()),
            "last_seen_at": max(row.last_seen_at, message.last_seen_at.timestamp()),
            "incident_scope": encode_departments(scope),
            "visible_to": encode_departments(_union([row.department], scope)),
        }
        connection.execute(update(cases).where(cases.c.id == case_id).values(**values))
        connection.execute(
            insert(case_incidents).values(incident_id=message.id, case_id=case_id, linked_at=now, link=link)
        )
        details = {
            "incident_id": message.id,
            "camera_id": message.camera_id,
            "zone": message.zone,
            "link": link,
        }
        self._record(connection, {**row._mapping, **values}, "merge", SYSTEM_ACTOR, "", now, details)
        return case_id

    def _open(
        self, connection: Connection, code: str, message: IncidentMessage, now: float, earlier: Any | None
    ) -> str:
        category = self.config.category(code)
        assert category is not None  # category_for only answers codes of the table
        department, routed_by = self.config.route(category, message.grid_code, message.department)
        case_id = str(uuid.uuid5(CASE_NAMESPACE, message.id))
        location = message.location
        values = {
            "id": case_id,
            "category_code": category.code,
            "category_name": category.name,
            "major_code": category.major_code,
            "major_name": category.major_name,
            "limit_working_hours": category.time_limit.working_hours,
            "limit_working_days": category.time_limit.working_days,
            "status": "new",
            "department": department,
            "routed_by": routed_by,
            "camera_id": message.camera_id,
            "camera_department": message.department,
            "zone": message.zone,
            "grid_code": message.grid_code,
            "address": message.address,
            "lat": location.lat if location is not None else None,
            "lon": location.lon if location is not None else None,
            "incident_scope": encode_departments(message.visible_to),
            "visible_to": encode_departments(_union([department], message.visible_to)),
            "opened_at": now,
            "first_seen_at": message.started_at.timestamp(),
            "last_seen_at": message.last_seen_at.timestamp(),
            "incident_count": 1,
            "recurrence_of": earlier.id if earlier is not None else None,
            "recurrences": 0,
            "extensions": 0,
            "postponements": 0,
            "returns": 0,
        }
        connection.execute(insert(cases).values(**values))
        connection.execute(
            insert(case_incidents).values(
                incident_id=message.id, case_id=case_id, linked_at=now, link="opened"
            )
        )
        details = {
            "incident_id": message.id,
            "category": f"{category.code} {category.name}",
            "routed_by": routed_by,
            "time_limit": category.time_limit.describe(),
        }
        if earlier is not None:
            details["recurrence_of"] = earlier.id
        self._record(connection, values, "open", SYSTEM_ACTOR, "", now, details)
        if earlier is not None:
            locked = connection.execute(select(cases).where(cases.c.id == earlier.id).with_for_update()).one()
            recurrences = locked.recurrences + 1
            connection.execute(update(cases).where(cases.c.id == earlier.id).values(recurrences=recurrences))
            self._record(
                connection,
                {**locked._mapping, "recurrences": recurrences},
                "recur",
                SYSTEM_ACTOR,
                "",
                now,
                {"recurrence": case_id, "incident_id": message.id},
            )
        return case_id

    def _record(
        self,
        connection: Connection,
        case: dict[str, Any] | Any,
        action: str,
        actor: str,
        note: str,
        at: float,
        details: dict[str, Any],
    ) -> None:
        """Append a transition to the case's history, as the case is after it (to be published)."""
        last = connection.execute(
            select(func.max(case_history.c.seq)).where(case_history.c.case_id == case["id"])
        ).scalar()
        connection.execute(
            insert(case_history).values(
                case_id=case["id"],
                seq=(last or 0) + 1,
                at=at,
                action=action,
                actor=actor,
                note=note,
                status=case["status"],
                department=case["department"],
                visible_to=case["visible_to"],
                due_at=case.get("due_at"),
                details_json=json.dumps(details, ensure_ascii=False),
            )
        )

    # -- reported from outside (Open311) ------------------------------------------------------------

    def report(
        self,
        code: str,
        reporter_department: str,
        actor: str,
        *,
        description: str = "",
        address: str = "",
        grid_code: str = "",
        lat: float | None = None,
        lon: float | None = None,
        source: str = "open311",
        media_url: str = "",
        request_key: str = "",
        now: float | None = None,
    ) -> Any:
        """Open a case for a problem another city system reports (no camera saw it), and return it
        (a StoredCase). It is routed like any case (by ``grid_code`` if given, then by subcategory,
        else to the reporter's department, which also sees it). With a ``request_key``, the same
        ``actor`` and ``source`` reporting with the same key within ``REPORT_REPEAT_SECONDS`` of the
        first report get its case back instead of a new one (a client's retry). Raises ValueError
        for a code the category table lacks."""
        category = self.config.category(code)
        if category is None:
            raise ValueError(f"{code!r} is not a code of the category table")
        now = time.time() if now is None else now
        department, routed_by = self.config.route(category, grid_code, reporter_department)
        scope = [reporter_department]
        values = {
            "id": str(uuid.uuid4()),
            "category_code": category.code,
            "category_name": category.name,
            "major_code": category.major_code,
            "major_name": category.major_name,
            "limit_working_hours": category.time_limit.working_hours,
            "limit_working_days": category.time_limit.working_days,
            "status": "new",
            "department": department,
            "routed_by": routed_by,
            "camera_id": "",
            "camera_department": reporter_department,
            "zone": "",
            "grid_code": grid_code,
            "address": address,
            "lat": lat,
            "lon": lon,
            "incident_scope": encode_departments(scope),
            "visible_to": encode_departments(_union([department], scope)),
            "opened_at": now,
            "first_seen_at": now,
            "last_seen_at": now,
            "incident_count": 0,
            "recurrence_of": None,
            "recurrences": 0,
            "extensions": 0,
            "postponements": 0,
            "returns": 0,
        }
        details = {
            "source": source,
            "category": f"{category.code} {category.name}",
            "routed_by": routed_by,
            "time_limit": category.time_limit.describe(),
            "description": description,
        }
        if media_url:
            details["media_url"] = media_url
        with self._lock, write_transaction(self._engine) as connection:
            if request_key:  # the id is the key's: a repeat within the window finds the first case
                window = math.floor(now / REPORT_REPEAT_SECONDS)
                ids = [_report_id(source, actor, request_key, w) for w in (window, window - 1)]
                for known in ids:
                    row = connection.execute(select(cases).where(cases.c.id == known)).first()
                    if row is not None and row.opened_at >= now - REPORT_REPEAT_SECONDS:
                        return self._view(row, now)
                values["id"] = ids[0]
            connection.execute(insert(cases).values(**values))
            self._record(connection, values, "open", actor, description[:4096], now, details)
            row = connection.execute(select(cases).where(cases.c.id == values["id"])).one()
        return self._view(row, now)

    # -- people's steps -----------------------------------------------------------------------------

    def step(
        self,
        case_id: str,
        action: str,
        actor: str,
        *,
        note: str = "",
        assignee: str = "",
        department: str = "",
        due_at: float | None = None,
        reason: str = "",
        now: float | None = None,
    ) -> Any:
        """Take one step on a case and return it after the step (a StoredCase).

        Raises UnknownCaseError; CaseStepRefusedError when the status or the pending request does
        not allow it, or an approval or rejection comes from whoever asked; ValueError for a step
        lacking its facts (assignee, reason, a due time later than the current one)."""
        if action not in CASE_TRANSITIONS:
            raise ValueError(f"unknown case step {action!r}")
        now = time.time() if now is None else now
        with self._lock, write_transaction(self._engine) as connection:
            row = connection.execute(select(cases).where(cases.c.id == case_id).with_for_update()).first()
            if row is None:
                raise UnknownCaseError(case_id)
            if action not in allowed_case_actions(row.status, row.pending_request):
                problem = f"cannot {action} a case whose status is {row.status!r}"
                if row.pending_request:
                    problem += f" with a pending {row.pending_request} request"
                raise CaseStepRefusedError(case_id, problem, row.status, row.pending_request)
            last_at = connection.execute(
                select(func.max(case_history.c.at)).where(case_history.c.case_id == case_id)
            ).scalar()
            at = max(now, last_at or now)
            values, details = self._step(row, action, actor, assignee, department, due_at, reason, note, at)
            connection.execute(update(cases).where(cases.c.id == case_id).values(**values))
            self._record(connection, {**row._mapping, **values}, action, actor, note, at, details)
            row = connection.execute(select(cases).where(cases.c.id == case_id)).one()
        return self._view(row, now)

    def _step(
        self,
        row: Any,
        action: str,
        actor: str,
        assignee: str,
        department: str,
        due_at: float | None,
        reason: str,
        note: str,
        at: float,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The case columns a step sets and the facts its history entry records."""
        if action == "assign":
            return self._assign(row, actor, assignee, department, at)
        if action in ("extend_request", "postpone_request"):
            return _request(row, action, actor, due_at, reason, at)
        if action == "return":
            return _return(row, reason)
        if action == "close":
            return _close(row, actor, reason, note, at)
        return _decide(row, action, actor)

    def _assign(
        self, row: Any, actor: str, assignee: str, department: str, at: float
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """派遣: to a team or person (and, with ``department``, to another department: 转派). The
        clock starts when a new, returned or rerouted case is dispatched; a postponed one resumes
        with its postponed due time; a reassignment within the department keeps it."""
        if not assignee.strip():
            raise ValueError("assign needs an assignee")
        target = department or row.department
        rerouted = target != row.department
        values: dict[str, Any] = {"status": "assigned", "assignee": assignee}
        details: dict[str, Any] = {"assignee": assignee}
        if rerouted:
            scope = decode_departments(row.incident_scope)
            values.update(
                _PENDING_CLEARED,
                department=target,
                routed_by=f"reassigned by {actor}",
                visible_to=encode_departments(_union([target], scope)),
            )
            details.update(department=target, previous_department=row.department)
        if rerouted or row.status in ("new", "returned"):
            limit = TimeLimit(working_hours=row.limit_working_hours, working_days=row.limit_working_days)
            values.update(dispatched_at=at, due_at=self.config.calendar.due(at, limit))
            details["clock"] = "started"
        elif row.status == "postponed":
            details["clock"] = "resumed"
        details["due_at"] = _iso(values.get("due_at", row.due_at))
        return values, details

    # -- reading --------------------------------------------------------------------------------------

    def _view(self, row: Any, now: float) -> Any:
        """A StoredCase: the row, with the time left and whether it is overdue, as of ``now``."""
        left, overdue = None, False
        if row.due_at is not None:
            if row.status == "closed":
                overdue = row.closed_at is not None and row.closed_at > row.due_at
            elif now <= row.due_at:
                left = self.config.calendar.working_seconds(now, row.due_at)
            else:
                left = -self.config.calendar.working_seconds(row.due_at, now)
                overdue = True
        return StoredCase(*row, left, overdue)

    def get(self, case_id: str, now: float | None = None) -> Any | None:
        """The case (a StoredCase), or None for an unknown id."""
        with self._engine.connect() as connection:
            row = connection.execute(select(cases).where(cases.c.id == case_id)).first()
        return self._view(row, time.time() if now is None else now) if row is not None else None

    def list(
        self,
        *,
        visible_to: Sequence[str] = (),
        status: str = "",
        category: str = "",
        camera_id: str = "",
        department: str = "",
        grid_prefix: str = "",
        overdue_only: bool = False,
        since: float | None = None,
        until: float | None = None,
        incident_id: str = "",
        assignee: str = "",
        limit: int = 100,
        offset: int = 0,
        now: float | None = None,
    ) -> list[Any]:
        """Cases matching every given filter, newest first: ``visible_to`` any of these departments,
        ``category`` a subcategory (05-05) or major (05) code, opened in [``since``, ``until``),
        ``overdue_only`` past their due time and not closed, ``incident_id`` the case holding it,
        ``assignee`` dispatched to that team or person."""
        now = time.time() if now is None else now
        query = select(cases)
        for column, value in (
            (cases.c.status, status),
            (cases.c.camera_id, camera_id),
            (cases.c.department, department),
            (cases.c.assignee, assignee),
            (cases.c.category_code if "-" in category else cases.c.major_code, category),
        ):
            if value:
                query = query.where(column == value)
        if visible_to:
            query = query.where(visible_clause(cases.c.visible_to, visible_to))
        if grid_prefix:
            query = query.where(cases.c.grid_code.startswith(grid_prefix, autoescape=True))
        if overdue_only:
            query = query.where(cases.c.status != "closed", cases.c.due_at < now)
        if since is not None:
            query = query.where(cases.c.opened_at >= since)
        if until is not None:
            query = query.where(cases.c.opened_at < until)
        if incident_id:
            holder = select(case_incidents.c.case_id).where(case_incidents.c.incident_id == incident_id)
            query = query.where(cases.c.id.in_(holder))
        query = query.order_by(cases.c.opened_at.desc(), cases.c.id.desc())
        query = query.limit(max(1, min(limit or 100, 1000))).offset(max(0, offset))
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [self._view(row, now) for row in rows]

    def history(self, case_id: str) -> list[CaseHistoryItem] | None:
        """Every transition of the case, oldest first; None for an unknown id."""
        with self._engine.connect() as connection:
            if connection.execute(select(cases.c.id).where(cases.c.id == case_id)).first() is None:
                return None
            rows = connection.execute(
                select(case_history).where(case_history.c.case_id == case_id).order_by(case_history.c.seq)
            ).all()
        return [
            CaseHistoryItem(
                seq=r.seq, at=r.at, action=r.action, actor=r.actor, note=r.note, status=r.status,
                department=r.department, details=json.loads(r.details_json),
            )
            for r in rows
        ]  # fmt: skip

    # -- the outbox -----------------------------------------------------------------------------------

    def unpublished(self, limit: int = 64) -> list[CaseMessage]:
        """Case transitions JetStream has not acknowledged yet, oldest first, as published."""
        query = (
            select(
                case_history,
                cases.c.category_code,
                cases.c.category_name,
                cases.c.camera_id,
                cases.c.zone,
                cases.c.grid_code,
            )
            .join(cases, cases.c.id == case_history.c.case_id)
            .where(case_history.c.published_at.is_(None))
            .order_by(case_history.c.at, case_history.c.case_id, case_history.c.seq)
            .limit(limit)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            CaseMessage(
                case_id=r.case_id, seq=r.seq, at=datetime.fromtimestamp(r.at, UTC), action=r.action,
                actor=r.actor, note=r.note, status=r.status, department=r.department,
                visible_to=decode_departments(r.visible_to), category_code=r.category_code,
                category_name=r.category_name, camera_id=r.camera_id, zone=r.zone, grid_code=r.grid_code,
                due_at=datetime.fromtimestamp(r.due_at, UTC) if r.due_at is not None else None,
                details=json.loads(r.details_json),
            )
            for r in rows
        ]  # fmt: skip

    def mark_published(self, case_id: str, seq: int) -> None:
        """JetStream has acknowledged this case transition."""
        where = (case_history.c.case_id == case_id) & (case_history.c.seq == seq)
        with self._lock, write_transaction(self._engine) as connection:
            connection.execute(update(case_history).where(where).values(published_at=time.time()))


def _request(
    row: Any, action: str, actor: str, due_at: float | None, reason: str, at: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """延期 or 缓办 asked for: pending until someone else decides it."""
    if not reason.strip():
        raise ValueError(f"{action} needs a reason")
    floor = (row.due_at or at) if action == "extend_request" else at
    if due_at is None or due_at <= floor:
        what = "the current due time" if action == "extend_request" else "now"
        raise ValueError(f"{action} needs a due_at later than {what}")
    values = {
        "pending_request": REQUEST_OF[action],
        "pending_due_at": due_at,
        "pending_reason": reason,
        "pending_by": actor,
        "pending_at": at,
    }
    return values, {"reason": reason, "requested_due_at": _iso(due_at), "due_at": _iso(row.due_at)}


def _decide(row: Any, action: str, actor: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pending request approved (an extension moves the due time; a postponement also sets the
    case aside, ``postponed``) or rejected — never by whoever asked."""
    if actor == row.pending_by:
        problem = f"the {row.pending_request} was requested by {actor}, who cannot also decide it"
        raise CaseStepRefusedError(row.id, problem, row.status, row.pending_request)
    approved = action.endswith("_approve")
    values: dict[str, Any] = dict(_PENDING_CLEARED)
    if approved and action == "extend_approve":
        values.update(due_at=row.pending_due_at, extensions=row.extensions + 1)
    elif approved:
        values.update(status="postponed", due_at=row.pending_due_at, postponements=row.postponements + 1)
    details = {
        "request": row.pending_request,
        "decision": "approved" if approved else "rejected",
        "requested_by": row.pending_by,
        "requested_at": _iso(row.pending_at),
        "reason": row.pending_reason,
        "requested_due_at": _iso(row.pending_due_at),
        "previous_due_at": _iso(row.due_at),
        "due_at": _iso(values.get("due_at", row.due_at)),
    }
    return values, details


def _return(row: Any, reason: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """回退: back to the camera's owner (the command centre), which dispatches it again."""
    if not reason.strip():
        raise ValueError("return needs a reason (why the case is outside the department's remit)")
    owner = row.camera_department
    values = {
        **_PENDING_CLEARED,
        "status": "returned",
        "returns": row.returns + 1,
        "return_reason": reason,
        "returned_by": row.department,
        "department": owner,
        "routed_by": f"returned by {row.department}",
        "visible_to": encode_departments(_union([owner], decode_departments(row.incident_scope))),
        "assignee": None,
        "due_at": None,
    }
    return values, {"reason": reason, "returned_by": row.department, "department": owner}


def _close(row: Any, actor: str, reason: str, note: str, at: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """结案, recording whether it was on time."""
    if reason not in CASE_CLOSE_REASONS:
        raise ValueError(f"close needs a reason in {CASE_CLOSE_REASONS}")
    values = {
        **_PENDING_CLEARED,
        "status": "closed",
        "closed_at": at,
        "closed_by": actor,
        "close_reason": reason,
        "close_note": note,
    }
    on_time = row.due_at is None or at <= row.due_at
    return values, {"reason": reason, "on_time": on_time, "due_at": _iso(row.due_at)}


def _union(first: Sequence[str], second: Sequence[str]) -> list[str]:
    """Both lists of departments, each once, in order."""
    return list(dict.fromkeys([*first, *second]))
