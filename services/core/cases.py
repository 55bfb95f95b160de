"""City-management cases (数字城管 案卷): how an incident becomes a coded case, which department it goes
to, and when it is due.

A Chinese city's digital city-management system (GB/T 30428; the older CJ/T 214 event table) keeps
*cases*, not alerts: each has a 大类/小类 code (major/subcategory: 05-05 机动车乱停放), the unit grid
(单元网格) and address of the place, the department responsible for it and a handling time limit in
working hours or working days. This module holds what the incident store needs to keep those books:

* :class:`CasesConfig` — the ``cases`` section of the cluster configuration: the category table
  (:data:`DEFAULT_CATEGORIES`, from CJ/T 214, unless the city gives its own list or a file), which
  rule's incidents become which subcategory (:class:`CategoryRule`, first match wins), routing
  (:class:`RoutingRule`: by place, i.e. grid code prefix, first; then by subcategory; then the
  camera's owner), merging and recurrence windows, and the working calendar;
* :class:`WorkCalendar` — working hours per weekday, holidays and make-up working days (调休), and
  the deadline arithmetic on them (:meth:`WorkCalendar.due`, :meth:`WorkCalendar.working_seconds`);
* :class:`CaseMessage` — one case transition as published on
  ``retina.cases.<department>.<action>.<case_id>`` (schema ``retina.case/1``, stream CASES);
* the case state machine (:data:`CASE_TRANSITIONS`).

The store side (tables, merging, the steps) is ``services/incidents/casebook.py``.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import re
import typing
from datetime import date, datetime, timedelta
from datetime import time as clock
from functools import cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from retina.algorithms.sdk import ConfigModel, error_location, error_message
from retina.services.core.validation import TOKEN_RULE, is_token, quote

# ---------------------------------------------------------------------------------------------
# The case lifecycle
# ---------------------------------------------------------------------------------------------

CaseStatus = Literal["new", "assigned", "returned", "postponed", "closed"]
CASE_STATUSES: tuple[str, ...] = typing.get_args(CaseStatus)
# Steps people take (REST and gRPC). The store also records its own transitions: "open" (the case is
# made, 立案), "merge" (another incident of the same problem joins it) and "recur" (on a closed case:
# the problem came back, as the case named in the details).
CaseAction = Literal[
    "assign",
    "extend_request",
    "extend_approve",
    "extend_reject",
    "postpone_request",
    "postpone_approve",
    "postpone_reject",
    "return",
    "close",
]
CASE_ACTIONS: tuple[str, ...] = typing.get_args(CaseAction)
SYSTEM_ACTIONS = ("open", "merge", "recur")
# Each step and the statuses it may be taken from (approvals and rejections also need a pending
# request of their kind; a request needs none pending).
CASE_TRANSITIONS: dict[str, frozenset[str]] = {
    "assign": frozenset({"new", "assigned", "returned", "postponed"}),
    "extend_request": frozenset({"assigned"}),
    "extend_approve": frozenset({"assigned"}),
    "extend_reject": frozenset({"assigned"}),
    "postpone_request": frozenset({"assigned"}),
    "postpone_approve": frozenset({"assigned"}),
    "postpone_reject": frozenset({"assigned"}),
    "return": frozenset({"new", "assigned"}),
    "close": frozenset(CASE_STATUSES) - {"closed"},
}
# The request an approval or rejection decides, and the request kind a request step opens.
REQUEST_OF = {
    "extend_request": "extension",
    "extend_approve": "extension",
    "extend_reject": "extension",
    "postpone_request": "postponement",
    "postpone_approve": "postponement",
    "postpone_reject": "postponement",
}
CASE_CLOSE_REASONS = ("resolved", "false_alarm", "duplicate", "other")


def allowed_case_actions(status: str, pending_request: str | None) -> list[str]:
    """The steps a person may take on a case in ``status`` with ``pending_request`` (None: none)."""
    allowed = []
    for action in CASE_ACTIONS:
        if status not in CASE_TRANSITIONS[action]:
            continue
        kind = REQUEST_OF.get(action)
        if kind is not None:
            is_request = action.endswith("_request")
            if is_request and pending_request is not None:
                continue
            if not is_request and pending_request != kind:
                continue
        allowed.append(action)
    return allowed


# ---------------------------------------------------------------------------------------------
# Categories (大类/小类) and which incidents they code
# ---------------------------------------------------------------------------------------------

CODE_PATTERN = re.compile(r"^[0-9A-Za-z]{1,8}-[0-9A-Za-z]{1,8}$")
MAJOR_PATTERN = re.compile(r"^[0-9A-Za-z]{1,8}$")
GRID_CODE_PATTERN = re.compile(r"^[0-9A-Za-z-]{1,32}$")
GRID_CODE_RULE = "use 1-32 letters, digits or '-' (the city's unit-grid code, e.g. 420102001001)"


class TimeLimit(ConfigModel):
    """A handling time limit (处置时限): ``working_hours`` or ``working_days``, exactly one.

    Working hours count only the calendar's working time. Working days count whole working days
    after the day the clock starts (that day itself does not count, as 期间开始之日不计算在内): the
    case is due when the last of them ends."""

    working_hours: float | None = Field(default=None, gt=0, le=24 * 366, description="Working hours")
    working_days: int | None = Field(default=None, ge=1, le=366, description="Working days")

    @model_validator(mode="after")
    def _exactly_one(self) -> TimeLimit:
        if (self.working_hours is None) == (self.working_days is None):
            raise ValueError("give working_hours or working_days (exactly one)")
        return self

    def describe(self) -> str:
        if self.working_hours is not None:
            return f"{self.working_hours:g} working hours"
        return f"{self.working_days} working days"


class Category(ConfigModel):
    """One subcategory (小类) of the city's event table, with its major category (大类)."""

    code: str = Field(description="'<major>-<minor>', e.g. 05-05")
    name: str = Field(min_length=1, max_length=64, description="The subcategory's name, e.g. 机动车乱停放")
    major_name: str = Field(default="", max_length=64, description="The major category's name, e.g. 街面秩序")
    time_limit: TimeLimit = Field(description="Handling time limit from dispatch")

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if not CODE_PATTERN.fullmatch(value):
            raise ValueError(
                f"{quote(value)}: use '<major>-<minor>' of 1-8 letters or digits each, e.g. 05-05"
            )
        return value

    @field_validator("name", "major_name")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if value and not value.isprintable():
            raise ValueError("must be printable text on one line")
        return value

    @property
    def major_code(self) -> str:
        return self.code.split("-", 1)[0]


def _hours(value: float) -> dict[str, float]:
    return {"working_hours": value}


# The defaults: CJ/T 214 event subcategories retina's rules detect. Time limits are a common choice
# among cities' standards (a city replaces them with its own 立案/结案 standard).
DEFAULT_CATEGORIES: tuple[dict[str, Any], ...] = (
    {"code": "01-02", "name": "暴露垃圾", "major_name": "市容环境", "time_limit": _hours(2)},
    {"code": "05-01", "name": "无照经营游商", "major_name": "街面秩序", "time_limit": _hours(1)},
    {"code": "05-04", "name": "店外经营", "major_name": "街面秩序", "time_limit": _hours(4)},
    {"code": "05-05", "name": "机动车乱停放", "major_name": "街面秩序", "time_limit": _hours(1)},
    {"code": "05-06", "name": "非机动车乱停放", "major_name": "街面秩序", "time_limit": _hours(2)},
)
# street_vending in a zone drawn in front of shops is a shop trading outside its door (店外经营);
# anywhere else an itinerant vendor (无照经营游商). crowd_gathering is left uncoded: a crowd is a
# public-safety matter, not a CJ/T 214 city-management event; its incidents stay incidents.
SHOPFRONT_ZONES = ("shopfront*", "storefront*", "店外*", "门前*")
DEFAULT_MAPPING: tuple[dict[str, Any], ...] = (
    {"algorithm": "illegal_parking", "category": "05-05"},
    {"algorithm": "non_motor_parking", "category": "05-06"},
    {"algorithm": "exposed_trash", "category": "01-02"},
    {"algorithm": "street_vending", "zones": list(SHOPFRONT_ZONES), "category": "05-04"},
    {"algorithm": "street_vending", "category": "05-01"},
    {"algorithm": "crowd_gathering", "category": None},
)


class CategoryRule(ConfigModel):
    """Which subcategory a rule's incidents are: the first rule in ``cases.mapping`` matching the
    incident's algorithm, zone and camera decides (``category: null``: no case, the incident stays
    an incident). An incident no rule matches is uncoded too."""

    algorithm: str = Field(description="The rule (algorithm name)")
    zones: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Zone name patterns (fnmatch, e.g. shopfront*); empty: any",
    )
    cameras: list[str] = Field(
        default_factory=list, max_length=256, description="Camera id patterns (fnmatch); empty: any"
    )
    category: str | None = Field(description="A subcategory code of the table, or null for no case")

    @field_validator("algorithm")
    @classmethod
    def _algorithm(cls, value: str) -> str:
        if not value or len(value) > 128 or not value.isprintable():
            raise ValueError("an algorithm name (printable, at most 128 characters)")
        return value

    def matches(self, algorithm: str, camera_id: str, zone: str) -> bool:
        return (
            algorithm == self.algorithm
            and (not self.zones or any(fnmatch.fnmatchcase(zone, p) for p in self.zones))
            and (not self.cameras or any(fnmatch.fnmatchcase(camera_id, p) for p in self.cameras))
        )


class RoutingRule(ConfigModel):
    """Which department a case goes to. A rule with ``grid_prefix`` routes by place (the camera's
    grid code starts with it), optionally only for ``categories``; a rule without routes by
    subcategory (``05-05``) or major category (``05``) alone. See :meth:`CasesConfig.route`."""

    department: str = Field(description="The responsible department")
    grid_prefix: str = Field(default="", max_length=32, description="Grid code prefix; empty: any place")
    categories: list[str] = Field(
        default_factory=list, max_length=256, description="Subcategory or major codes; empty: any"
    )

    @field_validator("department")
    @classmethod
    def _department(cls, value: str) -> str:
        if not is_token(value):
            raise ValueError(TOKEN_RULE)
        return value

    @field_validator("grid_prefix")
    @classmethod
    def _grid_prefix(cls, value: str) -> str:
        if value and not GRID_CODE_PATTERN.fullmatch(value):
            raise ValueError(GRID_CODE_RULE)
        return value

    @field_validator("categories")
    @classmethod
    def _codes(cls, value: list[str]) -> list[str]:
        for code in value:
            if not (CODE_PATTERN.fullmatch(code) or MAJOR_PATTERN.fullmatch(code)):
                raise ValueError(f"{quote(code)}: a subcategory code (05-05) or a major code (05)")
        return value

    @model_validator(mode="after")
    def _says_something(self) -> RoutingRule:
        if not self.grid_prefix and not self.categories:
            raise ValueError(
                "give grid_prefix, categories or both (a rule for everything is the camera owner)"
            )
        return self

    def matches(self, category: Category, grid_code: str) -> bool:
        if self.grid_prefix and not grid_code.startswith(self.grid_prefix):
            return False
        return (
            not self.categories or category.code in self.categories or category.major_code in self.categories
        )

    def rank(self, category: Category) -> tuple[int, int, int]:
        """Higher wins: place before subcategory; a longer prefix before a shorter one; a named
        subcategory before its major category before any."""
        named = 2 if category.code in self.categories else 1 if self.categories else 0
        return (1 if self.grid_prefix else 0, len(self.grid_prefix), named)


# ---------------------------------------------------------------------------------------------
# The working calendar
# ---------------------------------------------------------------------------------------------

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = typing.get_args(Weekday)
OFFICE_HOURS = ("08:30-12:00", "14:00-17:30")
INTERVAL_PATTERN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")
MAX_SEARCH_DAYS = 3 * 366  # a deadline further than this in working time is a configuration mistake


@cache
def _interval(text: str) -> tuple[int, int]:
    """``"08:30-12:00"`` as (start, end) minutes after midnight (``24:00`` ends the day)."""
    match = INTERVAL_PATTERN.fullmatch(text)
    if match is None:
        raise ValueError(f"{quote(text)}: use HH:MM-HH:MM, e.g. 08:30-12:00")
    start = int(match[1]) * 60 + int(match[2])
    end = int(match[3]) * 60 + int(match[4])
    if end > 24 * 60 or end <= start:
        raise ValueError(f"{quote(text)}: the end must be after the start, at most 24:00")
    return start, end


def _check_intervals(intervals: list[str]) -> list[str]:
    spans = sorted(_interval(text) for text in intervals)
    for (_, end), (start, _) in itertools.pairwise(spans):
        if start < end:
            raise ValueError(f"working hours overlap: {', '.join(intervals)}")
    return intervals


class WorkCalendar(ConfigModel):
    """When the city works: hours per weekday, public holidays, and make-up working days (调休: a
    weekend day worked in exchange for a holiday), all in ``timezone``."""

    timezone: str = Field(default="Asia/Shanghai", description="IANA time zone of the working hours")
    hours: dict[Weekday, list[str]] = Field(
        default_factory=lambda: {day: list(OFFICE_HOURS) for day in WEEKDAYS[:5]},
        description="Working hours per weekday as HH:MM-HH:MM; a day left out is not worked",
    )
    holidays: list[date] = Field(default_factory=list, max_length=4000, description="Dates not worked")
    workdays: list[date] = Field(
        default_factory=list, max_length=4000, description="Make-up working days (调休), e.g. a Saturday"
    )
    workday_hours: list[str] | None = Field(
        default=None, description="Working hours on make-up days; None: Monday's"
    )

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"unknown timezone {quote(value)} (use an IANA name such as Asia/Shanghai)"
            ) from None
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for day, intervals in value.items():
            try:
                _check_intervals(intervals)
            except ValueError as exc:
                raise ValueError(f"{day}: {exc}") from None
        if not any(value.values()):
            raise ValueError("no working hours on any weekday: nothing would ever fall due")
        return value

    @field_validator("workday_hours")
    @classmethod
    def _workday_hours(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_intervals(value)

    @model_validator(mode="after")
    def _disjoint_days(self) -> WorkCalendar:
        both = sorted(set(self.holidays) & set(self.workdays))
        if both:
            raise ValueError(f"workdays: {both[0].isoformat()} is also a holiday")
        return self

    # -- working time --------------------------------------------------------------------------

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def intervals_on(self, day: date) -> list[tuple[int, int]]:
        """The working intervals of ``day`` as (start, end) minutes after local midnight."""
        if day in self._holidays:
            return []
        if day in self._workdays:
            texts = self.workday_hours if self.workday_hours is not None else self.hours.get("mon", [])
        else:
            texts = self.hours.get(WEEKDAYS[day.weekday()], [])  # type: ignore[call-overload]
        return sorted(_interval(text) for text in texts)

    @property
    def _holidays(self) -> frozenset[date]:
        return _frozen(tuple(self.holidays))

    @property
    def _workdays(self) -> frozenset[date]:
        return _frozen(tuple(self.workdays))

    def spans_on(self, day: date) -> list[tuple[float, float]]:
        """The working intervals of ``day`` as (start, end) epoch seconds."""
        tz = self.tz
        return [(_local(day, start, tz), _local(day, end, tz)) for start, end in self.intervals_on(day)]

    def _day_of(self, epoch: float) -> date:
        return datetime.fromtimestamp(epoch, self.tz).date()

    def add_working_time(self, start: float, seconds: float) -> float:
        """The moment ``seconds`` of working time after ``start`` (epoch seconds) have passed. Time
        outside working hours does not count; a clock started outside them starts at the next
        working moment. Landing exactly on the end of an interval gives that end."""
        if seconds <= 0:
            raise ValueError("a time limit must be positive")
        remaining = seconds
        day = self._day_of(start)
        for _ in range(MAX_SEARCH_DAYS):
            for begin, end in self.spans_on(day):
                if end <= start:
                    continue
                begin = max(begin, start)
                if begin + remaining <= end:
                    return begin + remaining
                remaining -= end - begin
            day += timedelta(days=1)
        raise ValueError(f"no working time to reach within {MAX_SEARCH_DAYS} days: check cases.calendar")

    def end_of_working_days(self, start: float, days: int) -> float:
        """The end of the ``days``-th working day after the day of ``start`` (that day not counted)."""
        day = self._day_of(start)
        counted = 0
        for _ in range(MAX_SEARCH_DAYS):
            day += timedelta(days=1)
            spans = self.spans_on(day)
            if spans:
                counted += 1
                if counted == days:
                    return spans[-1][1]
        raise ValueError(
            f"fewer than {days} working days within {MAX_SEARCH_DAYS} days: check cases.calendar"
        )

    def due(self, start: float, limit: TimeLimit) -> float:
        """When a case whose clock starts at ``start`` (epoch seconds) is due under ``limit``."""
        if limit.working_hours is not None:
            return self.add_working_time(start, limit.working_hours * 3600)
        return self.end_of_working_days(start, int(limit.working_days or 0))

    def working_seconds(self, start: float, end: float) -> float:
        """Working time between two moments (0 when ``end`` is not after ``start``)."""
        if end <= start:
            return 0.0
        total = 0.0
        day, last = self._day_of(start), self._day_of(end)
        for _ in range(MAX_SEARCH_DAYS + 1):
            for begin, finish in self.spans_on(day):
                total += max(0.0, min(finish, end) - max(begin, start))
            if day >= last:
                return total
            day += timedelta(days=1)
        return total  # further apart than any deadline: the sum so far is already "a lot"


@cache
def _frozen(days: tuple[date, ...]) -> frozenset[date]:
    return frozenset(days)


def _local(day: date, minutes: int, tz: ZoneInfo) -> float:
    """Epoch seconds of the wall-clock time ``minutes`` after midnight of ``day`` in ``tz`` (24:00
    is the next midnight), so that a daylight-saving change moves the hours with the clock."""
    day += timedelta(days=minutes // (24 * 60))
    hour, minute = divmod(minutes % (24 * 60), 60)
    return datetime.combine(day, clock(hour, minute), tzinfo=tz).timestamp()


# ---------------------------------------------------------------------------------------------
# The section
# ---------------------------------------------------------------------------------------------

_CATEGORY_LIST = TypeAdapter(list[Category])


def read_categories_file(path: str | Path) -> list[Category]:
    """A city's category table from a YAML (or JSON) file: a list of categories, or a mapping with
    a ``categories`` list. Raises ValueError naming the file and the bad entry."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({exc.strerror})") from None
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path} is not valid YAML ({str(exc)[:200]})") from None
    if isinstance(data, dict) and set(data) == {"categories"}:
        data = data["categories"]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of categories (code, name, major_name, time_limit)")
    try:
        return _CATEGORY_LIST.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"{path}: {error_location(first['loc'], '')}: {error_message(first)}") from None


class CasesConfig(ConfigModel):
    """The ``cases`` section: how incidents become city-management cases (数字城管 案卷)."""

    enabled: bool = Field(default=True, description="Make cases of coded incidents")
    categories: list[Category] = Field(
        default_factory=lambda: [Category.model_validate(c) for c in DEFAULT_CATEGORIES],
        max_length=2000,
        description="The city's event table (subcategories); default: CJ/T 214 codes retina detects",
    )
    categories_file: str | None = Field(
        default=None, description="A YAML file holding the table instead (relative to the config file)"
    )
    mapping: list[CategoryRule] = Field(
        default_factory=lambda: [CategoryRule.model_validate(r) for r in DEFAULT_MAPPING],
        max_length=2000,
        description="Which subcategory a rule's incidents are; the first match wins",
    )
    routing: list[RoutingRule] = Field(
        default_factory=list, max_length=10000, description="Responsible departments; none: the camera owner"
    )
    calendar: WorkCalendar = Field(default_factory=WorkCalendar)
    merge_window_seconds: float = Field(
        default=3600,
        gt=0,
        description="An incident joins an open case of its subcategory at its place last seen this recently",
    )
    merge_distance_m: float = Field(
        default=0,
        ge=0,
        le=10_000,
        description="Also merge incidents of other cameras located this close (metres); 0: same camera"
        " and zone only",
    )
    recurrence_window_days: float = Field(
        default=7, ge=0, le=366, description="A problem back this soon after its case closed is a recurrence"
    )

    @model_validator(mode="before")
    @classmethod
    def _categories_from_file(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("categories_file"):
            return data
        if "categories" in data:
            raise ValueError("give categories or categories_file, not both")
        path = data["categories_file"]
        if not isinstance(path, str):
            return data  # the field's own validation names it
        try:
            table = read_categories_file(path)
        except ValueError as exc:
            raise ValueError(f"categories_file: {exc}") from None
        return {**data, "categories": table}

    @model_validator(mode="after")
    def _consistent(self) -> CasesConfig:
        codes = [category.code for category in self.categories]
        duplicates = sorted({code for code in codes if codes.count(code) > 1})
        if duplicates:
            raise ValueError(f"categories: code {duplicates[0]} is listed twice")
        known = set(codes)
        majors = {category.major_code for category in self.categories}
        for index, rule in enumerate(self.mapping):
            if rule.category is not None and rule.category not in known:
                raise ValueError(
                    f"mapping[{index}].category: {quote(rule.category)} is not a code of the category table"
                )
        for index, route in enumerate(self.routing):
            for code in route.categories:
                if code not in known and code not in majors:
                    raise ValueError(
                        f"routing[{index}].categories: {quote(code)} is neither a subcategory nor a major"
                        " code of the category table"
                    )
        return self

    def category(self, code: str) -> Category | None:
        return next((category for category in self.categories if category.code == code), None)

    def category_for(self, algorithm: str, camera_id: str, zone: str) -> Category | None:
        """The subcategory of an incident; None when it is uncoded (no case is made)."""
        for rule in self.mapping:
            if rule.matches(algorithm, camera_id, zone):
                return self.category(rule.category) if rule.category is not None else None
        return None

    def route(self, category: Category, grid_code: str, owner: str) -> tuple[str, str]:
        """The department responsible for a case, and why: the matching rule with a grid prefix
        (longest first, a rule naming the subcategory before one naming its major category before
        one for any), else a rule by subcategory (then major category), else the camera's owner."""
        matching = [rule for rule in self.routing if rule.matches(category, grid_code)]
        if not matching:
            return owner, "camera owner"
        best = max(matching, key=lambda rule: rule.rank(category))  # max keeps the first of equals
        reasons = []
        if best.grid_prefix:
            reasons.append(f"grid {best.grid_prefix}*")
        if best.categories:
            reasons.append(f"category {','.join(best.categories)}")
        return best.department, " + ".join(reasons)


# ---------------------------------------------------------------------------------------------
# What is published
# ---------------------------------------------------------------------------------------------

CASE_SCHEMA_ID = "retina.case/1"
CASE_SUBJECT_PREFIX = "retina.cases"


class CaseMessage(BaseModel):
    """One transition of a case, as the incident store recorded and published it."""

    model_config = ConfigDict(populate_by_name=True)

    schema_id: Literal["retina.case/1"] = Field(default=CASE_SCHEMA_ID, alias="schema")
    case_id: str
    seq: int = Field(ge=1, description="1 for the case's first transition (open), +1 for each later one")
    at: datetime
    action: str = Field(description="open, merge, recur, or a step: assign, extend_request, ... close")
    actor: str = Field(description='"user:<name>" for a step, "system:cases" for the store\'s own')
    note: str = ""
    status: CaseStatus = Field(description="The case's status after the transition")
    department: str = Field(description="The responsible department after the transition")
    visible_to: list[str] = Field(description="Departments that may see the case ('*': all)")
    category_code: str
    category_name: str
    camera_id: str
    zone: str
    grid_code: str
    due_at: datetime | None = Field(default=None, description="When the case is due, after the transition")
    details: dict[str, Any] = Field(default_factory=dict, description="Facts of the transition")

    @field_validator("action")
    @classmethod
    def _known_action(cls, value: str) -> str:
        if value not in SYSTEM_ACTIONS and value not in CASE_ACTIONS:
            raise ValueError(f"{quote(value)} is not a case transition")
        return value

    @property
    def msg_id(self) -> str:
        """The Nats-Msg-Id: ``<case_id>:case:<seq>`` (JetStream de-duplicates re-sends)."""
        return f"{self.case_id}:case:{self.seq}"

    @property
    def subject(self) -> str:
        return f"{CASE_SUBJECT_PREFIX}.{self.department}.{self.action}.{self.case_id}"

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


EARTH_RADIUS_M = 6_371_000.0


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two points (degrees), in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))
