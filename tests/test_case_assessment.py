"""Assessment (综合评价) in the incident store, on SQLite and PostgreSQL: every figure of
``services/incidents/assessment.py`` checked against a hand-computed example.

Cases are built through the store's own API (``apply`` for incidents, ``cases.step`` and
``dispatch`` with fixed times, Shanghai office hours; 05-05 has one working hour). The example, all
assessed on Wednesday 12:00 (``NOW``):

======  ==============  =======  =============================================================
case    department      handler  what happened
======  ==============  =======  =============================================================
A       jianghan-st     team-1   dispatched Mon 09:00 (due 10:00), closed 09:30: on time;
                                 back at the same spot after closing → A2 is its recurrence (返工)
B       jianghan-st     team-1   dispatched 09:00, extension to 11:00 approved, closed 10:30: on time
C       jianghan-st     team-2   dispatched 09:00, its incident failed verification (reopened),
                                 closed 11:00: late, reworked
D       jianghan-st     team-2   dispatched 09:00, postponed to Tue 12:00 (approved), still open
E       jianghan-st     —        closed at once as a false alarm (never dispatched)
A2      jianghan-st     —        new (the recurrence of A)
F       sanitation      —        new (exposed trash elsewhere)
======  ==============  =======  =============================================================

jianghan-street: cases 6; closed 4 (A B C E) → 结案率 4/6; due 4 (A B C closed with a due time, D past
its Tuesday due time), postponed 1 (D), closed on time 2 (A B) → 按期结案率 2/(4−1); reworked 2 (A
recurred, C reopened) → 返工率 2/6; extended 1 (B) → 延期率 1/6.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from retina.services.core.cases import CasesConfig
from retina.services.incidents.assessment import AccuracyRow, AssessmentRow, assess_ai, assess_cases
from retina.services.incidents.service import refresh_assessment_metrics
from retina.services.incidents.store import IncidentStore
from tests.test_case_store import MONDAY_9, incident

HOUR = 3600.0
T0 = MONDAY_9.timestamp()
NOW = T0 + 2 * 24 * HOUR + 3 * HOUR  # Wednesday 12:00
PLACES = {"A": "420102001001", "B": "420102002001", "C": "420102003001", "D": "420102004001"}


@pytest.fixture
def store(tmp_path: Path, store_database: str):
    cases = CasesConfig.model_validate(
        {
            "merge_window_seconds": 1800,
            "recurrence_window_days": 7,
            "routing": [
                {"grid_prefix": "420102", "department": "jianghan-street"},
                {"categories": ["01-02"], "department": "sanitation"},
            ],
        }
    )
    opened = IncidentStore(store_database, tmp_path / "media", cases)
    build_example(opened)
    yield opened
    opened.close()


def case_of(store: IncidentStore, incident_id: str) -> str:
    (case,) = store.cases.list(incident_id=incident_id)
    return case.id


def build_example(store: IncidentStore) -> None:
    """The cases of the module's table, step by step at fixed times."""
    for name, grid in {**PLACES, "E": "420102005001"}.items():
        assert store.apply(incident(name.lower(), camera=f"cam-{name.lower()}", grid_code=grid), None)
    assert store.apply(
        incident("f", camera="cam-f", algorithm="exposed_trash", grid_code="330100", location=None), None
    )
    # uncoded incidents (no case), decided in the dispatch loop: one false alarm, one left open
    assert store.apply(incident("g", camera="cam-g", algorithm="crowd_gathering"), None)
    assert store.apply(incident("h", camera="cam-g", algorithm="crowd_gathering"), None)
    step = store.cases.step
    a, b, c, d, e = (case_of(store, name) for name in "abcde")
    for case_id, team in ((a, "team-1"), (b, "team-1"), (c, "team-2"), (d, "team-2")):
        step(case_id, "assign", "user:chief", assignee=team, now=T0)
    step(a, "close", "user:t1", reason="resolved", now=T0 + 0.5 * HOUR)
    step(b, "extend_request", "user:t1", due_at=T0 + 2 * HOUR, reason="tow truck", now=T0 + 0.5 * HOUR)
    step(b, "extend_approve", "user:boss", now=T0 + 0.6 * HOUR)
    step(b, "close", "user:t1", reason="resolved", now=T0 + 1.5 * HOUR)
    store.dispatch("c", "handle", "user:t2", now=T0 + 0.5 * HOUR)
    store.dispatch("c", "verify", "system:verifier", outcome="present", now=T0 + 0.7 * HOUR)
    step(c, "close", "user:t2", reason="duplicate", now=T0 + 2 * HOUR)
    tuesday_noon = T0 + 27 * HOUR
    step(d, "postpone_request", "user:t2", due_at=tuesday_noon, reason="permit", now=T0 + 0.5 * HOUR)
    step(d, "postpone_approve", "user:boss", now=T0 + 0.6 * HOUR)
    step(e, "close", "user:chief", reason="false_alarm", now=T0 + 0.2 * HOUR)
    store.dispatch("g", "close", "user:chief", reason="false_alarm", now=T0 + 0.2 * HOUR)
    # A's problem comes back 45 minutes after its start (after the 30-minute merge window)
    assert store.apply(incident("a2", camera="cam-a", start=MONDAY_9 + timedelta(minutes=45)), None)
    assert store.cases.get(a).recurrences == 1


def figures(row: AssessmentRow) -> tuple:
    return (
        row.key,
        row.cases,
        row.closed,
        row.due,
        row.postponed,
        row.closed_on_time,
        row.reworked,
        row.extended,
    )


def test_every_department_figure_matches_the_hand_computed_example(store: IncidentStore):
    rows = assess_cases(store.engine, "department", now=NOW)
    assert [figures(r) for r in rows] == [
        ("jianghan-street", 6, 4, 4, 1, 2, 2, 1),
        ("sanitation", 1, 0, 0, 0, 0, 0, 0),
    ]
    jianghan, sanitation = rows
    assert jianghan.on_time_rate == pytest.approx(2 / 3)
    assert jianghan.close_rate == pytest.approx(4 / 6)
    assert jianghan.rework_rate == pytest.approx(2 / 6)
    assert jianghan.extension_rate == pytest.approx(1 / 6)
    assert sanitation.on_time_rate is None and sanitation.close_rate == 0.0  # nothing due: no figure
    # one department sees its own row only
    assert [r.key for r in assess_cases(store.engine, "department", department="sanitation", now=NOW)] == [
        "sanitation"
    ]


def test_a_due_time_after_the_period_is_not_yet_due(store: IncidentStore):
    # On Monday 12:00 D's postponed due time (Tuesday 12:00) has not come: it is not due yet.
    (jianghan,) = assess_cases(store.engine, "department", department="jianghan-street", now=T0 + 3 * HOUR)
    assert (jianghan.due, jianghan.postponed, jianghan.on_time_rate) == (3, 0, pytest.approx(2 / 3))
    # a period that ends before the cases were opened holds none
    assert assess_cases(store.engine, "department", until=T0 - 365 * 24 * HOUR, now=NOW) == []


def test_handlers_and_areas(store: IncidentStore):
    handlers = {r.key: r for r in assess_cases(store.engine, "handler", now=NOW)}
    assert figures(handlers["team-1"]) == ("team-1", 2, 2, 2, 0, 2, 1, 1)
    assert figures(handlers["team-2"]) == ("team-2", 2, 1, 2, 1, 0, 1, 0)
    assert figures(handlers[""]) == ("", 3, 1, 0, 0, 0, 0, 0)  # E, A2, F: never dispatched
    assert handlers["team-1"].on_time_rate == 1.0 and handlers["team-2"].on_time_rate == 0.0
    assert handlers["team-2"].close_rate == 0.5 and handlers[""].on_time_rate is None
    areas = assess_cases(store.engine, "area", now=NOW)
    assert [(r.key, r.cases) for r in areas] == [("420102", 6), ("330100", 1)]
    fine = {r.key: r.cases for r in assess_cases(store.engine, "area", area_digits=9, now=NOW)}
    assert fine == {"420102001": 2, "420102002": 1, "420102003": 1, "420102004": 1, "420102005": 1,
                    "330100": 1}  # fmt: skip
    with pytest.raises(ValueError, match="by: use department, handler, area"):
        assess_cases(store.engine, "camera")


def test_the_ai_accuracy_per_rule_and_camera(store: IncidentStore):
    rules = {r.key: r for r in assess_ai(store.engine, "rule")}
    # illegal_parking: a b c d e a2; reviewed: a b c (closed resolved/duplicate) and e (false alarm)
    assert rules["illegal_parking"] == AccuracyRow("illegal_parking", 6, 4, 3, 1)
    assert rules["illegal_parking"].precision == pytest.approx(3 / 4)
    assert rules["exposed_trash"] == AccuracyRow("exposed_trash", 1, 0, 0, 0)
    assert rules["exposed_trash"].precision is None
    # uncoded: decided in the dispatch loop (g a false alarm; h not decided)
    assert rules["crowd_gathering"] == AccuracyRow("crowd_gathering", 2, 1, 0, 1)
    assert rules["crowd_gathering"].precision == 0.0
    cameras = {r.key: r for r in assess_ai(store.engine, "camera")}
    assert cameras["cam-a"] == AccuracyRow("cam-a", 2, 1, 1, 0)  # a closed; a2 still new
    assert cameras["cam-e"] == AccuracyRow("cam-e", 1, 1, 0, 1)
    # a department: the incidents it may see, or whose case it is responsible for
    sanitation = assess_ai(store.engine, "rule", department="sanitation")
    assert sanitation == [AccuracyRow("exposed_trash", 1, 0, 0, 0)]
    assert len(assess_ai(store.engine, "camera", department="urban-management")) == 7  # the owner: all


def test_the_prometheus_gauges_carry_each_departments_figures(store: IncidentStore):
    def sample(name: str, department: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"department": department})

    refresh_assessment_metrics(store, now=NOW)
    assert sample("retina_cases_assessed", "jianghan-street") == 6
    assert sample("retina_cases_on_time_rate", "jianghan-street") == pytest.approx(2 / 3)
    assert sample("retina_cases_close_rate", "jianghan-street") == pytest.approx(4 / 6)
    assert sample("retina_cases_rework_rate", "jianghan-street") == pytest.approx(2 / 6)
    assert sample("retina_cases_extension_rate", "jianghan-street") == pytest.approx(1 / 6)
    assert sample("retina_cases_on_time_rate", "sanitation") is None  # nothing due: no figure
    # 30 days later the cases are out of the window and their departments' series are gone
    refresh_assessment_metrics(store, now=NOW + 31 * 24 * HOUR)
    assert sample("retina_cases_assessed", "jianghan-street") is None
