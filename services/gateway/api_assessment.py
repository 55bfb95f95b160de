"""Assessment (综合评价) through the gateway: the case figures per department, handler or area, and
the AI's own accuracy per rule and camera, as the incident store computes them
(``services/incidents/assessment.py``, gRPC ``GetAssessment``).

Who: supervisors and admins. A supervisor's department sees its own rows only — the cases it is
responsible for (and, for the AI's accuracy, the incidents it may see or whose case it works); asking
for another department (``department=``) answers 404, as an unknown one would. An admin sees every
department's rows, or one department's with ``department=``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from google.protobuf.message import Message

from retina.services.core.serving import to_timestamp
from retina.services.gateway.auth import Principal, not_found, require
from retina.services.gateway.jsonify import Time
from retina.v1 import incidents_pb2

router = APIRouter(tags=["assessment"])
Assessor = Annotated[Principal, Depends(require("supervisor", "admin"))]
Department = Annotated[
    str | None,
    Query(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="one department (admin: any; else your own)"),
]
Since = Annotated[Time | None, Query(description="cases opened (incidents started) at or after this")]
Until = Annotated[Time | None, Query(description="and before this")]
RATES = ("on_time_rate", "close_rate", "rework_rate", "extension_rate")


def scope(caller: Principal, department: str | None) -> str:
    """The department whose rows the caller gets ("" for all: admins only); 404 for another's."""
    if caller.has("admin"):
        return department or ""
    if department not in (None, caller.department):
        raise not_found("department", department or "")
    return caller.department


async def fetch(request: Request, by: str, department: str, since: Any, until: Any, digits: int) -> Any:
    query = incidents_pb2.GetAssessmentRequest(by=by, department=department, area_digits=digits)
    for name, value in (("since", since), ("until", until)):
        if value is not None:
            getattr(query, name).CopyFrom(to_timestamp(value.timestamp()))
    return await request.app.state.backends.incidents.GetAssessment(query, timeout=30)


def row_json(row: Message, fields: tuple[str, ...], rates: tuple[str, ...]) -> dict[str, Any]:
    """A row with every count, and each rate as a number or null (nothing to divide by)."""
    data: dict[str, Any] = {name: getattr(row, name) for name in fields}
    data.update({name: getattr(row, name) if row.HasField(name) else None for name in rates})
    return data


@router.get("/assessment", summary="按期结案率, 结案率, 返工率, 延期率 per department, handler or area")
async def get_assessment(
    request: Request,
    caller: Assessor,
    by: Literal["department", "handler", "area"] = "department",
    since: Since = None,
    until: Until = None,
    department: Department = None,
    area_digits: Annotated[int, Query(ge=1, le=32, description="by=area: grid code characters")] = 6,
) -> dict[str, Any]:
    own = scope(caller, department)
    answer = await fetch(request, by, own, since, until, area_digits)
    fields = ("key", "cases", "closed", "due", "postponed", "closed_on_time", "reworked", "extended")
    return {
        "by": by,
        "department": own or None,
        "since": since,
        "until": until,
        "rows": [row_json(row, fields, RATES) for row in answer.rows],
    }


@router.get("/assessment/ai", summary="The AI's accuracy per rule and per camera, from reviewers' decisions")
async def get_ai_accuracy(
    request: Request,
    caller: Assessor,
    since: Since = None,
    until: Until = None,
    department: Department = None,
) -> dict[str, Any]:
    own = scope(caller, department)
    fields = ("key", "incidents", "reviewed", "confirmed", "false_alarms")
    result: dict[str, Any] = {"department": own or None, "since": since, "until": until}
    for by, name in (("rule", "rules"), ("camera", "cameras")):
        answer = await fetch(request, by, own, since, until, 0)
        result[name] = [row_json(row, fields, ("precision",)) for row in answer.accuracy]
    return result
