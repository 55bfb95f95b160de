"""Assessment (综合评价) of city-management cases and of the AI's own accuracy, by SQL over the
incident store's tables — the one place these figures are computed (gRPC ``GetAssessment``, the
gateway's ``/api/v1/assessment`` and the Prometheus gauges all read them from here).

**Which cases.** Those opened (立案, ``cases.opened_at``) in [``since``, ``until``), optionally only
those of one responsible department. They are grouped by the responsible department, the handler
(``assignee``; "" for never dispatched) or the area (the first ``area_digits`` characters of the grid
code: 6 = district, 9 = street, 12 = community in the national grid coding).

**The figures** of a group (every count is of cases):

* ``cases``; ``closed`` (status closed, 结案); ``close_rate`` = closed / cases (结案率);
* ``due`` (应结案): dispatched cases (a due time) that are closed or whose due time passed before the
  period's end (``until``, or now if earlier); ``postponed``: of those, cases with an approved
  postponement (缓办); ``closed_on_time``: closed, never postponed, at or before their due time
  (extensions included: an approved 延期 moves the due time); ``on_time_rate`` = closed_on_time /
  (due − postponed) (按期结案率);
* ``reworked`` (返工): cases whose handling failed verification — one of their incidents was left
  ``reopened`` by a dispatch step (automatic or manual verification found the problem still there,
  or someone reopened it after it was closed or verified) — or whose problem came back after the
  case was closed (``recurrences`` > 0, a linked recurrence); ``rework_rate`` = reworked / cases (返工率);
* ``extended``: cases with an approved extension (延期); ``extension_rate`` = extended / cases (延期率).

A rate whose denominator is 0 is None (no figure, not 0 %).

**AI accuracy** per rule (algorithm) or per camera, over the incidents started in the period: an
incident is *reviewed* when a person decided on it — its case was closed (the case's close reason
counts for each of its incidents), or, for an incident without a case, it was closed in the dispatch
loop. ``false_alarms``: reviewed with reason ``false_alarm``; ``confirmed``: reviewed with any other
reason; ``precision`` = confirmed / reviewed.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Literal

from sqlalchemy import ColumnElement, Engine, and_, case, exists, func, literal, or_, select

from retina.services.incidents.casebook import case_incidents, cases
from retina.services.incidents.schema import visible_clause
from retina.services.incidents.store import FALSE_ALARM, dispatch_history, incidents

GroupBy = Literal["department", "handler", "area"]
AccuracyBy = Literal["rule", "camera"]
GROUPINGS: tuple[str, ...] = ("department", "handler", "area")
ACCURACY_GROUPINGS: tuple[str, ...] = ("rule", "camera")
DEFAULT_AREA_DIGITS = 6


def ratio(part: int, whole: int) -> float | None:
    """``part / whole``, or None when there is nothing to divide by."""
    return part / whole if whole > 0 else None


@dataclasses.dataclass(frozen=True)
class AssessmentRow:
    """The figures of one department, handler or area (see the module's docstring)."""

    key: str
    cases: int
    closed: int
    due: int
    postponed: int
    closed_on_time: int
    reworked: int
    extended: int

    @property
    def on_time_rate(self) -> float | None:
        return ratio(self.closed_on_time, self.due - self.postponed)

    @property
    def close_rate(self) -> float | None:
        return ratio(self.closed, self.cases)

    @property
    def rework_rate(self) -> float | None:
        return ratio(self.reworked, self.cases)

    @property
    def extension_rate(self) -> float | None:
        return ratio(self.extended, self.cases)


@dataclasses.dataclass(frozen=True)
class AccuracyRow:
    """The reviewers' decisions on one rule's or one camera's incidents."""

    key: str
    incidents: int
    reviewed: int
    confirmed: int
    false_alarms: int

    @property
    def precision(self) -> float | None:
        return ratio(self.confirmed, self.reviewed)


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def assess_cases(
    engine: Engine,
    by: str,
    *,
    department: str = "",
    since: float | None = None,
    until: float | None = None,
    area_digits: int = DEFAULT_AREA_DIGITS,
    now: float | None = None,
) -> list[AssessmentRow]:
    """The figures per ``by`` (department, handler or area) of the cases opened in [``since``,
    ``until``) — only those of ``department`` when given — most cases first. One ``GROUP BY``."""
    if by not in GROUPINGS:
        raise ValueError(f"by: use {', '.join(GROUPINGS)} (got {by!r})")
    if not 1 <= area_digits <= 32:
        raise ValueError(f"area_digits: use 1 to 32 (got {area_digits})")
    now = time.time() if now is None else now
    end = now if until is None else min(until, now)
    key = {
        "department": cases.c.department,
        "handler": func.coalesce(cases.c.assignee, literal("")),
        "area": func.substr(cases.c.grid_code, 1, area_digits),
    }[by].label("key")
    is_closed = cases.c.status == "closed"
    is_due = and_(cases.c.due_at.is_not(None), or_(is_closed, cases.c.due_at < end))
    reopened = exists(
        select(literal(1))
        .select_from(
            case_incidents.join(
                dispatch_history, dispatch_history.c.incident_id == case_incidents.c.incident_id
            )
        )
        .where(case_incidents.c.case_id == cases.c.id, dispatch_history.c.status == "reopened")
    )
    query = select(
        key,
        func.count().label("cases"),
        _count(is_closed).label("closed"),
        _count(is_due).label("due"),
        _count(and_(is_due, cases.c.postponements > 0)).label("postponed"),
        _count(
            and_(
                is_closed,
                cases.c.due_at.is_not(None),
                cases.c.closed_at <= cases.c.due_at,
                cases.c.postponements == 0,
            )
        ).label("closed_on_time"),
        _count(or_(cases.c.recurrences > 0, reopened)).label("reworked"),
        _count(cases.c.extensions > 0).label("extended"),
    )
    if department:
        query = query.where(cases.c.department == department)
    if since is not None:
        query = query.where(cases.c.opened_at >= since)
    if until is not None:
        query = query.where(cases.c.opened_at < until)
    query = query.group_by(key).order_by(func.count().desc(), key)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        AssessmentRow(
            key=row.key or "", cases=int(row.cases), closed=int(row.closed), due=int(row.due),
            postponed=int(row.postponed), closed_on_time=int(row.closed_on_time),
            reworked=int(row.reworked), extended=int(row.extended),
        )
        for row in rows
    ]  # fmt: skip


def assess_ai(
    engine: Engine,
    by: str,
    *,
    department: str = "",
    since: float | None = None,
    until: float | None = None,
) -> list[AccuracyRow]:
    """The reviewers' decisions per ``by`` (rule or camera) on the incidents started in
    [``since``, ``until``) — with ``department``, those it may see or whose case it is responsible
    for — most incidents first. One ``GROUP BY``."""
    if by not in ACCURACY_GROUPINGS:
        raise ValueError(f"by: use {', '.join(ACCURACY_GROUPINGS)} (got {by!r})")
    key = (incidents.c.algorithm if by == "rule" else incidents.c.camera_id).label("key")
    decision = case(
        (cases.c.status == "closed", cases.c.close_reason),
        (and_(cases.c.id.is_(None), incidents.c.dispatch_status == "closed"), incidents.c.close_reason),
        else_=None,
    )
    query = select(
        key,
        func.count().label("incidents"),
        _count(decision.is_not(None)).label("reviewed"),
        _count(and_(decision.is_not(None), decision != FALSE_ALARM)).label("confirmed"),
        _count(decision == FALSE_ALARM).label("false_alarms"),
    ).select_from(
        incidents.outerjoin(case_incidents, case_incidents.c.incident_id == incidents.c.id).outerjoin(
            cases, cases.c.id == case_incidents.c.case_id
        )
    )
    if department:
        query = query.where(
            or_(visible_clause(incidents.c.visible_to, [department]), cases.c.department == department)
        )
    if since is not None:
        query = query.where(incidents.c.started_at >= since)
    if until is not None:
        query = query.where(incidents.c.started_at < until)
    query = query.group_by(key).order_by(func.count().desc(), key)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        AccuracyRow(
            key=row.key, incidents=int(row.incidents), reviewed=int(row.reviewed),
            confirmed=int(row.confirmed), false_alarms=int(row.false_alarms),
        )
        for row in rows
    ]  # fmt: skip
