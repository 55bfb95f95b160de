"""Deadlines of city-management cases on the working calendar, and the ``cases`` configuration.

The calendar is Shanghai office hours (08:30–12:00, 14:00–17:30, Monday to Friday) with the 2026
National Day holiday (1–7 October) and its two make-up working days (调休: Sunday 27 September and
Saturday 10 October). Every expected time below is worked out by hand.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from retina.services.core.cases import CasesConfig, TimeLimit, WorkCalendar
from retina.services.core.config import ConfigError, load_config, parse_config

SHANGHAI = ZoneInfo("Asia/Shanghai")
NATIONAL_DAY = [f"2026-10-0{day}" for day in range(1, 8)]
CALENDAR = WorkCalendar.model_validate({"holidays": NATIONAL_DAY, "workdays": ["2026-09-27", "2026-10-10"]})


def at(text: str) -> float:
    """Epoch seconds of a Shanghai wall-clock time ``YYYY-MM-DD HH:MM``."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp()


def shown(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, SHANGHAI).strftime("%Y-%m-%d %H:%M %a")


HOURS = [
    # (clock starts, working hours, due) — within a morning
    ("2026-11-23 09:00", 2, "2026-11-23 11:00 Mon"),
    # landing exactly on the end of the morning is the end of the morning, not the afternoon's start
    ("2026-11-23 10:00", 2, "2026-11-23 12:00 Mon"),
    # across lunch
    ("2026-11-23 11:30", 1, "2026-11-23 14:30 Mon"),
    # across a night: half an hour on Monday, an hour and a half on Tuesday
    ("2026-11-23 17:00", 2, "2026-11-24 10:00 Tue"),
    # started at night: the clock starts at 08:30
    ("2026-11-24 20:00", 1, "2026-11-25 09:30 Wed"),
    # across a weekend
    ("2026-11-20 17:00", 1, "2026-11-23 09:00 Mon"),
    # across the whole National Day holiday (Thursday 1 to Wednesday 7 October)
    ("2026-09-30 16:30", 2, "2026-10-08 09:30 Thu"),
    # into a make-up Saturday (调休)
    ("2026-10-09 17:00", 1, "2026-10-10 09:00 Sat"),
    # a plain Saturday is not worked, the make-up Sunday after it is
    ("2026-09-26 10:00", 1, "2026-09-27 09:30 Sun"),
    # fractions of an hour
    ("2026-11-23 08:30", 0.25, "2026-11-23 08:45 Mon"),
    # a long limit: 16 working hours from Friday's start are 7 on Friday, 7 on Monday, 2 on Tuesday
    ("2026-11-20 08:30", 16, "2026-11-24 10:30 Tue"),
]


@pytest.mark.parametrize(("start", "hours", "due"), HOURS)
def test_working_hours_deadlines(start: str, hours: float, due: str):
    assert shown(CALENDAR.due(at(start), TimeLimit(working_hours=hours))) == due


DAYS = [
    # the day the clock starts does not count; due at the close of the last working day
    ("2026-11-23 09:00", 1, "2026-11-24 17:30 Tue"),
    ("2026-11-20 10:00", 1, "2026-11-23 17:30 Mon"),  # over a weekend
    ("2026-11-21 10:00", 1, "2026-11-23 17:30 Mon"),  # dispatched on a Saturday
    ("2026-09-30 10:00", 1, "2026-10-08 17:30 Thu"),  # over the holiday
    ("2026-10-09 10:00", 2, "2026-10-12 17:30 Mon"),  # the make-up Saturday counts
    ("2026-09-25 18:00", 1, "2026-09-27 17:30 Sun"),  # Friday evening: the make-up Sunday is next
]


@pytest.mark.parametrize(("start", "days", "due"), DAYS)
def test_working_days_deadlines(start: str, days: int, due: str):
    assert shown(CALENDAR.due(at(start), TimeLimit(working_days=days))) == due


def test_working_time_between_two_moments():
    assert CALENDAR.working_seconds(at("2026-11-20 17:00"), at("2026-11-23 09:00")) == 3600
    assert CALENDAR.working_seconds(at("2026-09-30 17:00"), at("2026-10-08 09:00")) == 3600
    assert CALENDAR.working_seconds(at("2026-11-23 08:00"), at("2026-11-23 20:00")) == 7 * 3600
    assert CALENDAR.working_seconds(at("2026-10-10 12:00"), at("2026-10-10 14:00")) == 0  # lunch
    assert CALENDAR.working_seconds(at("2026-11-24 10:00"), at("2026-11-23 10:00")) == 0  # backwards
    start = at("2026-11-23 17:00")  # the limit's working time, exactly, between start and due
    assert CALENDAR.working_seconds(start, CALENDAR.due(start, TimeLimit(working_hours=9))) == 9 * 3600


def test_make_up_days_work_their_own_hours_when_given():
    calendar = CALENDAR.model_copy(update={"workday_hours": ["09:00-12:00"]})
    assert shown(calendar.due(at("2026-10-09 17:00"), TimeLimit(working_hours=1))) == "2026-10-10 09:30 Sat"
    assert calendar.intervals_on(datetime(2026, 10, 10).date()) == [(540, 720)]
    assert calendar.intervals_on(datetime(2026, 10, 5).date()) == []  # a holiday Monday


def test_a_twenty_four_hour_calendar_counts_every_hour():
    calendar = WorkCalendar.model_validate(
        {
            "timezone": "UTC",
            "hours": {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
        }
    )
    start = datetime(2026, 11, 21, 23, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    assert calendar.due(start, TimeLimit(working_hours=2)) == start + 7200


@pytest.mark.parametrize(
    ("calendar", "expected"),
    [
        ({"hours": {"mon": ["08:30-12:00", "11:00-13:00"]}}, "hours: mon: working hours overlap"),
        ({"hours": {"mon": ["8:30-12"]}}, "hours: mon: '8:30-12': use HH:MM-HH:MM"),
        ({"hours": {"mon": ["12:00-08:30"]}}, "the end must be after the start"),
        ({"hours": {"mon": []}}, "no working hours on any weekday"),
        ({"hours": {"monday": ["08:00-12:00"]}}, "cases.calendar.hours.monday"),
        ({"holidays": ["2026-10-10"], "workdays": ["2026-10-10"]}, "2026-10-10 is also a holiday"),
        ({"holidays": ["2026-13-01"]}, "cases.calendar.holidays[0]"),
        ({"timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
    ],
)
def test_calendar_mistakes_are_named(calendar: dict, expected: str):
    with pytest.raises(ConfigError) as error:
        parse_config({"cases": {"calendar": calendar}})
    assert expected in "\n".join(error.value.errors)
    assert all(line.startswith("cases") for line in error.value.errors)


# -- the category table, the mapping and routing -------------------------------------------------------


def test_default_table_codes_each_rule():
    cases = CasesConfig()
    coded = {
        algorithm: cases.category_for(algorithm, "cam-1", "kerb")
        for algorithm in (
            "illegal_parking",
            "non_motor_parking",
            "exposed_trash",
            "street_vending",
            "crowd_gathering",
        )
    }
    assert {name: category.code if category else None for name, category in coded.items()} == {
        "illegal_parking": "05-05",
        "non_motor_parking": "05-06",
        "exposed_trash": "01-02",
        "street_vending": "05-01",  # an itinerant vendor (无照经营游商) …
        "crowd_gathering": None,  # a public-safety matter: no case
    }
    assert cases.category_for("street_vending", "cam-1", "shopfront-north").code == "05-04"  # … or 店外经营
    assert cases.category_for("street_vending", "cam-1", "店外-东").code == "05-04"
    assert cases.category_for("some_plugin", "cam-1", "kerb") is None  # a rule no mapping names
    parking = cases.category("05-05")
    assert (parking.name, parking.major_code, parking.major_name) == ("机动车乱停放", "05", "街面秩序")
    assert parking.time_limit.describe() == "1 working hours"


def test_routing_by_place_first_then_subcategory_then_owner():
    cases = CasesConfig.model_validate(
        {
            "routing": [
                {"categories": ["05-05"], "department": "traffic-police"},
                {"categories": ["05"], "department": "street-order"},
                {"grid_prefix": "4201", "department": "district-a"},
                {"grid_prefix": "420102", "department": "street-b"},
                {"grid_prefix": "420102", "categories": ["01-02"], "department": "sanitation-b"},
            ]
        }
    )
    parking, vending, trash = cases.category("05-05"), cases.category("05-01"), cases.category("01-02")
    assert cases.route(parking, "420102001", "um") == ("street-b", "grid 420102*")  # longest prefix
    assert cases.route(trash, "420102001", "um") == ("sanitation-b", "grid 420102* + category 01-02")
    assert cases.route(trash, "420199", "um") == ("district-a", "grid 4201*")
    assert cases.route(parking, "330100", "um") == ("traffic-police", "category 05-05")  # subcategory
    assert cases.route(vending, "330100", "um") == ("street-order", "category 05")  # major category
    assert cases.route(trash, "", "um") == ("um", "camera owner")


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            {"mapping": [{"algorithm": "illegal_parking", "category": "05-99"}]},
            "mapping[0].category: '05-99'",
        ),
        ({"routing": [{"categories": ["07"], "department": "x"}]}, "routing[0].categories: '07'"),
        ({"routing": [{"department": "x"}]}, "give grid_prefix, categories or both"),
        ({"routing": [{"grid_prefix": "42 01", "department": "x"}]}, "cases.routing[0].grid_prefix"),
        ({"routing": [{"grid_prefix": "42", "department": "a b"}]}, "cases.routing[0].department"),
        (
            {"categories": [{"code": "5", "name": "x", "time_limit": {"working_hours": 1}}]},
            "categories[0].code",
        ),
        (
            {
                "categories": [
                    {"code": "05-05", "name": "x", "time_limit": {"working_hours": 1, "working_days": 1}}
                ]
            },
            "give working_hours or working_days (exactly one)",
        ),
        ({"merge_window_seconds": 8 * 24 * 3600}, "cases.merge_window_seconds: must be at most"),
        ({"merge_distance_m": -1}, "cases.merge_distance_m"),
    ],
)
def test_case_section_mistakes_are_named(section: dict, expected: str):
    with pytest.raises(ConfigError) as error:
        parse_config({"cases": section})
    assert expected in "\n".join(error.value.errors)


def test_a_city_replaces_the_table_with_its_own_file(tmp_path: Path):
    (tmp_path / "tables").mkdir()
    table = [
        {
            "code": "05-05",
            "name": "机动车乱停放",
            "major_name": "街面秩序",
            "time_limit": {"working_hours": 0.5},
        },
        {
            "code": "05-31",
            "name": "共享单车乱停放",
            "major_name": "街面秩序",
            "time_limit": {"working_days": 1},
        },
    ]
    (tmp_path / "tables" / "city.yaml").write_text(yaml.safe_dump({"categories": table}, allow_unicode=True))
    mapping = [
        {"algorithm": "illegal_parking", "category": "05-05"},
        {"algorithm": "non_motor_parking", "category": "05-31"},
    ]
    config = tmp_path / "retina.yaml"
    config.write_text(yaml.safe_dump({"cases": {"categories_file": "tables/city.yaml", "mapping": mapping}}))
    cases = load_config(config).config.cases  # the file is found next to the configuration
    assert [c.code for c in cases.categories] == ["05-05", "05-31"]
    assert cases.category_for("non_motor_parking", "cam", "z").name == "共享单车乱停放"

    (tmp_path / "tables" / "city.yaml").write_text(yaml.safe_dump([{"code": "05-05", "name": "x"}]))
    with pytest.raises(ConfigError) as error:
        load_config(config)
    assert (
        "cases: categories_file: " in error.value.errors[0]
        and "city.yaml: [0].time_limit" in error.value.errors[0]
    )
    config.write_text(yaml.safe_dump({"cases": {"categories_file": "missing.yaml"}}))
    with pytest.raises(ConfigError) as error:
        load_config(config)
    assert "categories_file: cannot read" in error.value.errors[0]
    config.write_text(yaml.safe_dump({"cases": {"categories_file": "tables/city.yaml", "categories": []}}))
    with pytest.raises(ConfigError) as error:
        load_config(config)
    assert "give categories or categories_file, not both" in error.value.errors[0]


def test_cameras_carry_a_grid_code_and_an_address():
    camera = {"id": "cam-1", "url": "rtsp://x/1", "grid_code": "420102001001", "address": "解放大道 100 号"}
    loaded = parse_config({"cameras": [camera, {**camera, "id": "cam-2", "grid_code": "42 01"}]})
    (good,) = loaded.config.cameras
    assert (good.grid_code, good.address) == ("420102001001", "解放大道 100 号")
    assert loaded.camera_errors == [
        "cameras[1].grid_code: Value error, use 1-32 letters, digits or '-' (the city's unit-grid code, e.g."
        " 420102001001)".replace("Value error, ", "")
    ]
