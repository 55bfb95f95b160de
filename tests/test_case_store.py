"""City-management cases in the incident store, on SQLite and PostgreSQL: one case per problem,
recurrences, routing, the steps (dispatch, 延期 and 缓办 with approvals, 回退, 结案) with their
deadlines, and the outbox that publishes every transition.

Incidents come in as the store receives them from JetStream (``IncidentStore.apply``); times are
Shanghai office hours (the default calendar), so every due time is worked out by hand.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from sqlalchemy import text

from retina.services.core.cases import CasesConfig
from retina.services.core.database import alembic_config, write_transaction
from retina.services.core.database import create_engine as create_database_engine
from retina.services.core.incident import BBox, IncidentMessage, Location
from retina.services.incidents.casebook import CaseStepRefusedError, UnknownCaseError
from retina.services.incidents.store import MIGRATIONS_DIR, IncidentStore, database_url

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _a_coming_monday() -> datetime:
    """09:00 in Shanghai on a Monday two to three weeks ahead. The store stamps the transitions it
    makes itself (open, merge) with the real clock and keeps each case's history in time order, so
    the steps the tests take at given times must come after them."""
    day = datetime.now(SHANGHAI).date() + timedelta(days=14)
    day += timedelta(days=(7 - day.weekday()) % 7)
    return datetime(day.year, day.month, day.day, 9, 0, tzinfo=SHANGHAI)


MONDAY_9 = _a_coming_monday()


def local(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch, SHANGHAI).strftime("%a %H:%M") if epoch is not None else "-"


def incident(
    incident_id: str,
    *,
    start: datetime = MONDAY_9,
    seen_for: float = 60,
    event: str = "new",
    revision: int = 0,
    camera: str = "cam-1",
    zone: str = "kerb",
    algorithm: str = "illegal_parking",
    department: str = "urban-management",
    shared_with: tuple[str, ...] = ("police",),
    location: tuple[float, float] | None = (30.5800, 114.2700),
    grid_code: str = "420102001001",
) -> IncidentMessage:
    return IncidentMessage(
        id=incident_id, event=event, revision=revision, camera_id=camera, camera_name=camera,
        department=department, visible_to=[department, *shared_with],
        location=Location(lat=location[0], lon=location[1]) if location else None,
        algorithm=algorithm, algorithm_version="1.0.0", zone=zone, started_at=start,
        last_seen_at=start + timedelta(seconds=seen_for), ended_at=None, dwell_seconds=seen_for,
        bbox=BBox(x1=0.1, y1=0.5, x2=0.3, y2=0.8), confidence=0.4, track_id=3, grid_code=grid_code,
        address="解放大道 100 号",
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path, store_database: str):
    cases = CasesConfig.model_validate(
        {
            "merge_window_seconds": 1800,
            "merge_distance_m": 50,
            "recurrence_window_days": 7,
            "routing": [
                {"grid_prefix": "420102", "department": "jianghan-street"},
                {"categories": ["01-02"], "department": "sanitation"},
            ],
        }
    )
    opened = IncidentStore(store_database, tmp_path / "media", cases)
    yield opened
    opened.close()


def only_case(store: IncidentStore, **filters):
    (found,) = store.cases.list(**filters)
    return found


def test_incidents_of_one_problem_at_one_place_are_one_case(store: IncidentStore):
    assert store.apply(incident("a"), None)
    later = MONDAY_9 + timedelta(minutes=20)  # the same car again 19 minutes after it was last seen
    assert store.apply(incident("b", start=later), None)
    case = only_case(store)
    assert (case.incident_count, case.category_code, case.category_name) == (2, "05-05", "机动车乱停放")
    assert (case.grid_code, case.address, case.status) == ("420102001001", "解放大道 100 号", "new")
    members = store.incidents_of_case(case.id)
    assert [(i.id, link) for i, link, _ in members] == [("a", "opened"), ("b", "same_place")]
    assert case.first_seen_at == MONDAY_9.timestamp() and case.last_seen_at == (later.timestamp() + 60)

    # another zone of the same camera is another place; another rule another problem
    assert store.apply(incident("c", zone="bus-stop", start=later), None)
    assert store.apply(incident("d", algorithm="exposed_trash", start=later), None)
    assert len(store.cases.list()) == 3
    # more than the merge window (30 min) after the case was last seen: a new case, not linked
    assert store.apply(incident("e", start=later + timedelta(minutes=40)), None)
    newest = store.cases.list(camera_id="cam-1", category="05-05", limit=10)
    assert [c.incident_count for c in newest if c.zone == "kerb"] == [1, 2]
    assert newest[0].recurrence_of is None
    # and an uncoded rule makes no case at all
    assert store.apply(incident("f", algorithm="crowd_gathering"), None)
    assert store.cases.list(incident_id="f") == []
    assert store.cases.list(incident_id="b")[0].id == case.id


def test_redelivered_and_later_events_change_nothing_but_the_last_sighting(store: IncidentStore):
    assert store.apply(incident("a"), None)
    assert not store.apply(incident("a"), None)  # JetStream redelivers the same new event
    assert store.apply(incident("a", event="update", revision=1, seen_for=600), None)
    assert not store.apply(incident("a", event="update", revision=1, seen_for=600), None)
    case = only_case(store)
    assert case.incident_count == 1 and case.last_seen_at == MONDAY_9.timestamp() + 600
    assert [h.action for h in store.cases.history(case.id)] == ["open"]
    # an incident whose first event to arrive is an update (its new was lost) still opens a case
    assert store.apply(incident("late", event="update", revision=3, zone="gate"), None)
    assert store.cases.list(incident_id="late")[0].zone == "gate"


def test_a_nearby_camera_merges_within_the_configured_distance(store: IncidentStore):
    assert store.apply(incident("a", camera="north"), None)
    # 30 m north (1 degree of latitude is about 111 km), another zone name: the same spot seen twice
    assert store.apply(incident("b", camera="south", zone="pavement", location=(30.58027, 114.27)), None)
    # 200 m away is another place
    assert store.apply(incident("c", camera="far", location=(30.5818, 114.27)), None)
    near, far = sorted(store.cases.list(), key=lambda c: c.incident_count, reverse=True)
    assert [link for _, link, _ in store.incidents_of_case(near.id)] == ["opened", "nearby"]
    assert far.incident_count == 1


def test_a_problem_back_after_its_case_closed_is_a_linked_recurrence(store: IncidentStore):
    assert store.apply(incident("a"), None)
    first = only_case(store)
    store.cases.step(first.id, "close", "user:ana", reason="resolved", now=MONDAY_9.timestamp() + 600)
    assert store.apply(incident("b", start=MONDAY_9 + timedelta(minutes=15)), None)  # within the window
    again = store.cases.list(incident_id="b")[0]
    assert again.id != first.id and again.recurrence_of == first.id and again.status == "new"
    earlier = store.cases.get(first.id)
    assert earlier.recurrences == 1 and earlier.status == "closed"
    recur = store.cases.history(first.id)[-1]
    assert (recur.action, recur.details) == ("recur", {"recurrence": again.id, "incident_id": "b"})
    assert store.cases.history(again.id)[0].details["recurrence_of"] == first.id
    # back after the recurrence window: a fresh problem
    store.cases.step(again.id, "close", "user:ana", reason="resolved", now=MONDAY_9.timestamp() + 1200)
    assert store.apply(incident("c", start=MONDAY_9 + timedelta(days=8)), None)
    assert store.cases.list(incident_id="c")[0].recurrence_of is None


def test_cases_are_routed_by_place_then_subcategory_then_owner(store: IncidentStore):
    assert store.apply(incident("in-grid"), None)  # 420102… → the street office
    assert store.apply(incident("trash", algorithm="exposed_trash", grid_code="330100"), None)
    assert store.apply(incident("owner", grid_code="", camera="cam-2", location=None), None)
    routed = {c.camera_id + "/" + c.category_code: (c.department, c.routed_by) for c in store.cases.list()}
    assert routed == {
        "cam-1/05-05": ("jianghan-street", "grid 420102*"),
        "cam-1/01-02": ("sanitation", "category 01-02"),
        "cam-2/05-05": ("urban-management", "camera owner"),
    }
    # the case's department decides who sees it, with the camera's owner and shared_with
    case = store.cases.list(incident_id="in-grid")[0]
    assert case.visible_to == ",jianghan-street,urban-management,police,"
    assert [c.id for c in store.cases.list(visible_to=["jianghan-street"])] == [case.id]
    assert len(store.cases.list(visible_to=["police"])) == 3
    assert store.cases.list(visible_to=["traffic"]) == []
    assert [c.id for c in store.cases.list(grid_prefix="4201")] == [case.id]


def test_dispatch_starts_the_clock_and_approvals_are_recorded(store: IncidentStore):
    assert store.apply(incident("a", grid_code=""), None)
    case = only_case(store)
    t0 = MONDAY_9.timestamp() + 8 * 3600  # Monday 17:00
    with pytest.raises(CaseStepRefusedError, match="cannot extend_request a case whose status is 'new'"):
        store.cases.step(case.id, "extend_request", "user:ana", due_at=t0 + 86400, reason="x", now=t0)
    assigned = store.cases.step(case.id, "assign", "user:ana", assignee="team 3", now=t0)
    # 05-05 has one working hour: half an hour on Monday, half an hour on Tuesday morning
    assert (assigned.status, local(assigned.dispatched_at), local(assigned.due_at)) == (
        "assigned", "Mon 17:00", "Tue 09:00"
    )  # fmt: skip
    assert assigned.working_seconds_left == 3600 and not assigned.overdue
    at_night = store.cases.get(case.id, now=t0 + 4 * 3600)  # 21:00: no working time has passed
    assert at_night.working_seconds_left == 1800
    late = store.cases.get(case.id, now=MONDAY_9.timestamp() + 86400 + 3600)  # Tuesday 10:00
    assert late.overdue and late.working_seconds_left == -3600
    assert [c.id for c in store.cases.list(overdue_only=True, now=MONDAY_9.timestamp() + 90000)] == [case.id]
    assert store.cases.list(overdue_only=True, now=t0) == []

    # 延期: asked for by one person, decided by another; everything is recorded
    tuesday_noon = (MONDAY_9 + timedelta(days=1, hours=3)).timestamp()
    with pytest.raises(ValueError, match="later than the current due time"):
        store.cases.step(case.id, "extend_request", "user:ana", due_at=t0, reason="tow truck", now=t0 + 60)
    requested = store.cases.step(
        case.id,
        "extend_request",
        "user:ana",
        due_at=tuesday_noon,
        reason="waiting for a tow truck",
        now=t0 + 60,
    )
    assert (requested.pending_request, requested.pending_by, local(requested.due_at)) == (
        "extension", "user:ana", "Tue 09:00"
    )  # fmt: skip
    with pytest.raises(CaseStepRefusedError, match="requested by user:ana, who cannot also decide it"):
        store.cases.step(case.id, "extend_approve", "user:ana", now=t0 + 120)
    with pytest.raises(CaseStepRefusedError, match="pending extension"):
        store.cases.step(
            case.id, "postpone_request", "user:ana", due_at=tuesday_noon, reason="x", now=t0 + 120
        )
    approved = store.cases.step(case.id, "extend_approve", "user:lee", note="ok", now=t0 + 180)
    assert (approved.extensions, local(approved.due_at), approved.pending_request) == (1, "Tue 12:00", None)
    step = store.cases.history(case.id)[-1]
    assert (step.action, step.actor, step.note) == ("extend_approve", "user:lee", "ok")
    assert step.details["requested_by"] == "user:ana" and step.details["reason"] == "waiting for a tow truck"
    assert (
        step.details["decision"] == "approved" and step.details["requested_due_at"] == step.details["due_at"]
    )

    # 缓办: rejected once, then approved; the case waits, postponed, until its new due time
    next_week = (MONDAY_9 + timedelta(days=7)).timestamp()
    store.cases.step(
        case.id, "postpone_request", "user:ana", due_at=next_week, reason="needs a permit", now=t0 + 240
    )
    rejected = store.cases.step(case.id, "postpone_reject", "user:lee", note="not now", now=t0 + 300)
    assert (rejected.status, rejected.postponements, local(rejected.due_at)) == ("assigned", 0, "Tue 12:00")
    store.cases.step(
        case.id, "postpone_request", "user:ana", due_at=next_week, reason="needs a permit", now=t0 + 360
    )
    postponed = store.cases.step(case.id, "postpone_approve", "user:lee", now=t0 + 420)
    assert (postponed.status, postponed.postponements, postponed.due_at) == ("postponed", 1, next_week)
    resumed = store.cases.step(case.id, "assign", "user:ana", assignee="team 5", now=t0 + 480)
    assert (resumed.status, resumed.due_at, resumed.assignee) == ("assigned", next_week, "team 5")
    closed = store.cases.step(case.id, "close", "user:ana", reason="resolved", note="towed", now=t0 + 540)
    assert (closed.status, closed.closed_by, closed.close_reason, closed.overdue) == (
        "closed", "user:ana", "resolved", False
    )  # fmt: skip
    assert closed.working_seconds_left is None
    assert store.cases.history(case.id)[-1].details["on_time"] is True
    with pytest.raises(CaseStepRefusedError, match="allowed now: none"):
        store.cases.step(case.id, "assign", "user:ana", assignee="x")
    with pytest.raises(UnknownCaseError):
        store.cases.step("no-such-case", "close", "user:ana", reason="resolved")


def test_a_case_outside_the_departments_remit_is_returned_with_its_reason(store: IncidentStore):
    assert store.apply(incident("a"), None)  # routed by grid to the street office
    case = only_case(store)
    t0 = MONDAY_9.timestamp()
    store.cases.step(case.id, "assign", "user:street-1", assignee="patrol", now=t0)
    with pytest.raises(ValueError, match="return needs a reason"):
        store.cases.step(case.id, "return", "user:street-1", reason=" ", now=t0 + 60)
    returned = store.cases.step(
        case.id, "return", "user:street-1", reason="the car park is private land", now=t0 + 60
    )
    assert (returned.status, returned.returns, returned.return_reason, returned.returned_by) == (
        "returned", 1, "the car park is private land", "jianghan-street"
    )  # fmt: skip
    # back with the camera's owner (the command centre), who no longer shares it with the street office
    assert (returned.department, returned.due_at, returned.assignee) == ("urban-management", None, None)
    assert returned.visible_to == ",urban-management,police,"
    assert store.cases.list(visible_to=["jianghan-street"]) == []
    # …and sends it to the department that is responsible: its clock starts again
    rerouted = store.cases.step(
        case.id,
        "assign",
        "user:centre",
        assignee="duty officer",
        department="property-management",
        now=t0 + 120,
    )
    assert (rerouted.department, rerouted.routed_by, rerouted.status) == (
        "property-management", "reassigned by user:centre", "assigned"
    )  # fmt: skip
    assert (local(rerouted.dispatched_at), local(rerouted.due_at)) == ("Mon 09:02", "Mon 10:02")
    assert rerouted.visible_to == ",property-management,urban-management,police,"
    history = store.cases.history(case.id)
    assert [h.action for h in history] == ["open", "assign", "return", "assign"]
    assert history[2].details == {
        "reason": "the car park is private land",
        "returned_by": "jianghan-street",
        "department": "urban-management",
    }
    assert history[3].details["previous_department"] == "urban-management"


def test_every_transition_is_in_the_outbox_with_its_subject(store: IncidentStore):
    assert store.apply(incident("a", grid_code=""), None)
    assert store.apply(incident("b", start=MONDAY_9 + timedelta(minutes=5), grid_code=""), None)
    case = only_case(store)
    store.cases.step(case.id, "assign", "user:ana", assignee="team 3", now=MONDAY_9.timestamp() + 600)
    messages = [m for m in store.outbox() if hasattr(m, "case_id")]
    assert [(m.subject, m.msg_id) for m in messages] == [
        (f"retina.cases.urban-management.open.{case.id}", f"{case.id}:case:1"),
        (f"retina.cases.urban-management.merge.{case.id}", f"{case.id}:case:2"),
        (f"retina.cases.urban-management.assign.{case.id}", f"{case.id}:case:3"),
    ]
    published = json.loads(messages[2].to_json())
    assert published["schema"] == "retina.case/1" and published["category_code"] == "05-05"
    assert published["status"] == "assigned" and published["due_at"] is not None
    assert published["visible_to"] == ["urban-management", "police"]
    for message in messages:
        store.mark_sent(message)
    assert [m for m in store.outbox() if hasattr(m, "case_id")] == []
    # dispatch steps of incidents share the outbox, in time order
    store.dispatch("a", "assign", "user:ana", assignee="team 3", now=MONDAY_9.timestamp() + 700)
    assert [m.msg_id for m in store.outbox()] == ["a:dispatch:1"]


def test_a_store_at_0004_gains_cases(tmp_path: Path, store_database: str):
    url = database_url(store_database)
    engine = create_database_engine(url)
    config = alembic_config(url, MIGRATIONS_DIR)
    with write_transaction(engine) as connection:  # the schema of the release before cases
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
    old = incident("before")
    with write_transaction(engine) as connection:
        connection.execute(
            text(
                "INSERT INTO incidents (id, camera_id, camera_name, department, algorithm, zone, state,"
                " started_at, last_seen_at, dwell_seconds, confidence, revision, visible_to, message_json)"
                " VALUES ('before', 'cam-1', 'cam-1', 'urban-management', 'illegal_parking', 'kerb', 'open',"
                " :t, :t, 60, 0.4, 0, ',urban-management,police,', :json)"
            ),
            {"t": old.started_at.timestamp(), "json": old.model_dump_json(by_alias=True)},
        )
    engine.dispose()
    store = IncidentStore(store_database, tmp_path / "media")
    try:
        assert store.apply(incident("before", event="update", revision=1), None)
        assert store.cases.list() == []  # incidents from before cases belong to none
        assert store.apply(incident("after", start=datetime(2026, 11, 23, 2, tzinfo=UTC)), None)
        assert [c.incident_count for c in store.cases.list()] == [1]
    finally:
        store.close()


def test_a_repeated_report_with_the_same_key_is_the_first_case_for_15_minutes(store: IncidentStore):
    report = store.cases.report
    first = report("05-05", "traffic", "user:app", description="盲道", request_key="k1", now=1_000_000.0)
    again = report("05-05", "traffic", "user:app", description="盲道", request_key="k1", now=1_000_600.0)
    assert again.id == first.id  # a retry ten minutes later
    other_key = report("05-05", "traffic", "user:app", request_key="k2", now=1_000_600.0)
    other_actor = report("05-05", "traffic", "user:city-app", request_key="k1", now=1_000_600.0)
    later = report("05-05", "traffic", "user:app", request_key="k1", now=1_000_000.0 + 16 * 60)
    unkeyed = [report("05-05", "traffic", "user:app", now=1_000_000.0) for _ in range(2)]
    ids = {first.id, other_key.id, other_actor.id, later.id, *(c.id for c in unkeyed)}
    assert len(ids) == 6  # another key, another reporter, past the window, no key: each its own case
    history = store.cases.history(first.id)
    assert [entry.action for entry in history].count("open") == 1  # the retry added nothing
