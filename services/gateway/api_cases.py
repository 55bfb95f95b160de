"""City-management cases (数字城管 案卷) through the gateway: list, detail with incidents and
evidence, and the steps — dispatch (派遣), extension (延期) and postponement (缓办) requests and
their approvals, return (回退) and close (结案).

Who sees a case: its responsible department, plus the owners and ``shared_with`` of its incidents'
cameras (the case's ``visible_to``); any other id answers 404, as an unknown one does. Who works
it — on top of the role (``dispatcher`` for the steps, ``supervisor`` for the decisions):

* ``assign``, ``close``: the responsible department or the camera's owner (the command centre,
  监督指挥中心, which also sends cases to another department: ``department`` in ``assign``);
* ``extension``, ``postponement`` requests and ``return``: the responsible department;
* approving or rejecting a request: a supervisor of the responsible department or of the camera's
  owner, never whoever asked (the incident store refuses that).

A step the case's department may not take answers 403; one its status does not allow, 409. Every
step is audited (``case.<action>``) and published by the incident store on
``retina.cases.<department>.<action>.<case_id>``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from retina.services.core.cases import CASE_STATUSES, allowed_case_actions
from retina.services.core.serving import to_timestamp
from retina.services.gateway.api_incidents import incident_json
from retina.services.gateway.auth import Principal, fetch_or_not_found, not_found, require
from retina.services.gateway.jsonify import Time, to_json
from retina.services.gateway.media import stream_media
from retina.v1 import incidents_pb2

router = APIRouter(tags=["cases"])
Reader = Annotated[Principal, Depends(require("dispatcher", "supervisor"))]
Dispatcher = Annotated[Principal, Depends(require("dispatcher"))]
Supervisor = Annotated[Principal, Depends(require("supervisor"))]
Token = r"^[A-Za-z0-9_-]{1,64}$"
CaseId = Annotated[str, Path(pattern=Token, description="the case's id")]
IncidentId = Annotated[str, Path(pattern=Token, description="one of the case's incidents")]
TIME_FIELDS = (
    "opened_at", "first_seen_at", "last_seen_at", "dispatched_at", "due_at", "pending_due_at", "pending_at",
    "closed_at",
)  # fmt: skip
# Which steps need which role, and which departments may take them (see the module's docstring).
WORKERS = "department"  # the responsible department
WORKERS_OR_OWNER = "department or owner"  # … or the camera's owning department
STEP_RULES: dict[str, tuple[str, str]] = {
    "assign": ("dispatcher", WORKERS_OR_OWNER),
    "close": ("dispatcher", WORKERS_OR_OWNER),
    "extend_request": ("dispatcher", WORKERS),
    "postpone_request": ("dispatcher", WORKERS),
    "return": ("dispatcher", WORKERS),
    "extend_approve": ("supervisor", WORKERS_OR_OWNER),
    "extend_reject": ("supervisor", WORKERS_OR_OWNER),
    "postpone_approve": ("supervisor", WORKERS_OR_OWNER),
    "postpone_reject": ("supervisor", WORKERS_OR_OWNER),
}


def may_take(caller: Principal, case: incidents_pb2.Case, action: str) -> bool:
    """Whether the caller's role and department let them take ``action`` on ``case`` (the store
    still decides whether the case's status allows it)."""
    role, who = STEP_RULES[action]
    departments = {case.department} | ({case.camera_department} if who == WORKERS_OR_OWNER else set())
    return caller.has(role) and caller.department in departments


def case_json(caller: Principal, case: incidents_pb2.Case) -> dict[str, Any]:
    """A case as the API returns it, with ``steps``: what the caller may do with it now."""
    data = to_json(case)
    data["visible_to"] = list(case.visible_to)
    data["working_seconds_left"] = (
        case.working_seconds_left if case.HasField("working_seconds_left") else None
    )
    for name in (*TIME_FIELDS, "location"):  # every key always there: null when unset
        data.setdefault(name, None)
    possible = allowed_case_actions(case.status, case.pending_request or None)
    data["steps"] = [action for action in possible if may_take(caller, case, action)]
    return data


def member_json(case_id: str, member: incidents_pb2.CaseIncident) -> dict[str, Any]:
    """An incident of a case, its evidence linked through the case (the case's departments may see
    it even when the incident's camera is not shared with them)."""
    incident = member.incident
    data = incident_json(incident)
    base = f"/api/v1/cases/{case_id}/incidents/{incident.id}"
    data["snapshot_url"] = f"{base}/snapshot" if incident.snapshot_path else None
    data["clip_url"] = f"{base}/clip" if incident.clip_path else None
    data["link"] = member.link
    data["linked_at"] = to_json(member)["linked_at"]
    return data


def history_json(entry: incidents_pb2.CaseHistoryEntry) -> dict[str, Any]:
    data = to_json(entry)
    data.pop("details_json", None)
    data["details"] = json.loads(entry.details_json) if entry.details_json else {}
    return data


async def visible_case(request: Request, caller: Principal, case_id: str) -> incidents_pb2.CaseDetail:
    """The case with its incidents, if the caller's department may see it; 404 otherwise (as for an
    unknown id)."""
    call = request.app.state.backends.incidents.GetCase(incidents_pb2.GetCaseRequest(id=case_id), timeout=10)
    detail = await fetch_or_not_found(call, "case", case_id)
    if not caller.may_see(list(detail.summary.visible_to)):
        raise not_found("case", case_id)
    return detail


@router.get("/cases", summary="Cases the caller's department may see, newest first")
async def list_cases(
    request: Request,
    caller: Reader,
    status: Literal[CASE_STATUSES] | None = None,  # type: ignore[valid-type]
    category: Annotated[
        str | None, Query(pattern=r"^[0-9A-Za-z]{1,8}(-[0-9A-Za-z]{1,8})?$", description="05-05, or 05")
    ] = None,
    camera: Annotated[str | None, Query(pattern=Token)] = None,
    department: Annotated[str | None, Query(pattern=Token, description="the responsible department")] = None,
    grid: Annotated[
        str | None, Query(pattern=r"^[0-9A-Za-z-]{1,32}$", description="grid code prefix")
    ] = None,
    overdue: Annotated[bool, Query(description="only cases past their due time, not closed")] = False,
    incident: Annotated[
        str | None, Query(pattern=Token, description="the case holding this incident")
    ] = None,
    assignee: Annotated[
        str | None, Query(min_length=1, max_length=256, description="dispatched to this team or person")
    ] = None,
    since: Annotated[Time | None, Query(description="opened at or after this")] = None,
    until: Annotated[Time | None, Query(description="and before this")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    query = incidents_pb2.ListCasesRequest(
        visible_to=[caller.department], status=status or "", category=category or "",
        camera_id=camera or "", department=department or "", grid_prefix=grid or "",
        overdue_only=overdue, incident_id=incident or "", assignee=assignee or "", limit=limit,
        offset=offset,
    )  # fmt: skip
    for name, value in (("since", since), ("until", until)):
        if value is not None:
            getattr(query, name).CopyFrom(to_timestamp(value.timestamp()))
    answer = await request.app.state.backends.incidents.ListCases(query, timeout=10)
    return {"cases": [case_json(caller, case) for case in answer.cases], "limit": limit, "offset": offset}


@router.get("/cases/{case_id}", summary="One case with its incidents (and their evidence) and its history")
async def get_case(request: Request, caller: Reader, case_id: CaseId) -> dict[str, Any]:
    detail = await visible_case(request, caller, case_id)
    history = await request.app.state.backends.incidents.GetCaseHistory(
        incidents_pb2.GetCaseRequest(id=case_id), timeout=10
    )
    return {
        **case_json(caller, detail.summary),
        "incidents": [member_json(case_id, member) for member in detail.incidents],
        "history": [history_json(entry) for entry in history.entries],
    }


async def case_evidence(
    request: Request, caller: Principal, case_id: str, incident_id: str, kind: str
) -> StreamingResponse:
    detail = await visible_case(request, caller, case_id)
    member = next((m.incident for m in detail.incidents if m.incident.id == incident_id), None)
    path = getattr(member, f"{kind}_path", "") if member is not None else ""
    if not path:
        raise not_found(f"{kind} of incident", incident_id)
    return await stream_media(request, caller, path, kind, incident_id)


@router.get(
    "/cases/{case_id}/incidents/{incident_id}/snapshot",
    summary="The snapshot of one of the case's incidents (JPEG)",
    response_class=StreamingResponse,
    responses={200: {"content": {"image/jpeg": {}}}},
)
async def snapshot(
    request: Request, caller: Reader, case_id: CaseId, incident_id: IncidentId
) -> StreamingResponse:
    return await case_evidence(request, caller, case_id, incident_id, "snapshot")


@router.get(
    "/cases/{case_id}/incidents/{incident_id}/clip",
    summary="The evidence clip of one of the case's incidents (MP4)",
    response_class=StreamingResponse,
    responses={200: {"content": {"video/mp4": {}}}},
)
async def clip(
    request: Request, caller: Reader, case_id: CaseId, incident_id: IncidentId
) -> StreamingResponse:
    return await case_evidence(request, caller, case_id, incident_id, "clip")


# -- the steps -------------------------------------------------------------------------------------


class AssignBody(BaseModel):
    assignee: str = Field(min_length=1, max_length=256, description="the team or person")
    department: str | None = Field(
        default=None,
        pattern=Token,
        description="send it to this department instead (the camera's owner only)",
    )
    note: str = Field(default="", max_length=4096)


class RequestBody(BaseModel):
    due_at: Time = Field(description="extension: the new due time; postponement: until when")
    reason: str = Field(min_length=1, max_length=1024, description="why")
    note: str = Field(default="", max_length=4096)


class DecisionBody(BaseModel):
    note: str = Field(default="", max_length=4096)


class ReturnBody(BaseModel):
    reason: str = Field(min_length=1, max_length=1024, description="why it is outside the department's remit")
    note: str = Field(default="", max_length=4096)


class CloseBody(BaseModel):
    reason: Literal["resolved", "false_alarm", "duplicate", "other"]
    note: str = Field(default="", max_length=4096)


async def take_step(
    request: Request, caller: Principal, case_id: str, action: str, **fields: Any
) -> dict[str, Any]:
    """One step on a case as the caller (after the scope and department checks); audited."""
    detail = await visible_case(request, caller, case_id)
    case = detail.summary
    accounts = request.app.state.accounts
    rerouting = action == "assign" and fields.get("department") not in (None, "", case.department)
    if not may_take(caller, case, action) or (rerouting and caller.department != case.camera_department):
        who = "the camera's owner" if rerouting else f"{case.department} (or {case.camera_department})"
        accounts.audit(
            caller.name, caller.department, f"case.{action}", case_id, "refused", error="department"
        )
        raise HTTPException(403, f"case {case_id}: {action} is for {who}, not {caller.department}")
    step = incidents_pb2.CaseStepRequest(id=case_id, action=action, actor=f"user:{caller.name}", **fields)
    try:
        updated = await request.app.state.backends.incidents.CaseStep(step, timeout=30)
    except Exception as exc:
        accounts.audit(
            caller.name, caller.department, f"case.{action}", case_id, "refused", error=str(exc)[:300]
        )
        raise
    audited = {name: value for name, value in fields.items() if name not in ("due_at", "department")}
    if "due_at" in fields:
        audited["due_at"] = fields["due_at"].ToJsonString()
    if fields.get("department"):
        audited["to_department"] = fields["department"]
    accounts.audit(
        caller.name, caller.department, f"case.{action}", case_id, camera_id=case.camera_id, **audited
    )
    return case_json(caller, updated)


@router.post(
    "/cases/{case_id}/assign", summary="Dispatch (派遣) to a team or person; the first starts the clock"
)
async def assign(request: Request, caller: Dispatcher, case_id: CaseId, body: AssignBody) -> dict[str, Any]:
    fields = {"assignee": body.assignee, "department": body.department or "", "note": body.note}
    return await take_step(request, caller, case_id, "assign", **fields)


def _request_fields(body: RequestBody) -> dict[str, Any]:
    return {"due_at": to_timestamp(body.due_at.timestamp()), "reason": body.reason, "note": body.note}


@router.post("/cases/{case_id}/extension", summary="Ask for an extension (延期): a later due time, and why")
async def request_extension(
    request: Request, caller: Dispatcher, case_id: CaseId, body: RequestBody
) -> dict[str, Any]:
    return await take_step(request, caller, case_id, "extend_request", **_request_fields(body))


@router.post("/cases/{case_id}/extension/approve", summary="Approve the pending extension (supervisor)")
async def approve_extension(
    request: Request, caller: Supervisor, case_id: CaseId, body: DecisionBody
) -> dict[str, Any]:
    return await take_step(request, caller, case_id, "extend_approve", note=body.note)


@router.post("/cases/{case_id}/extension/reject", summary="Reject the pending extension (supervisor)")
async def reject_extension(
    request: Request, caller: Supervisor, case_id: CaseId, body: DecisionBody
) -> dict[str, Any]:
    return await take_step(request, caller, case_id, "extend_reject", note=body.note)


@router.post("/cases/{case_id}/postponement", summary="Ask to postpone (缓办) until a time, and why")
async def request_postponement(
    request: Request, caller: Dispatcher, case_id: CaseId, body: RequestBody
) -> dict[str, Any]:
    return await take_step(request, caller, case_id, "postpone_request", **_request_fields(body))


@router.post("/cases/{case_id}/postponement/approve", summary="Approve the pending postponement (supervisor)")
async def approve_postponement(
    request: Request, caller: Supervisor, case_id: CaseId, body: DecisionBody
) -> dict[str, Any]:
    return await take_step(request, caller, case_id, "postpone_approve", note=body.note)


@router.post("/cases/{case_id}/postponement/reject", summary="Reject the pending postponement (supervisor)")
async def reject_postponement(
    request: Request, caller: Supervisor, case_id: CaseId, body: DecisionBody
) -> dict[str, Any]:
    return await take_step(request, caller, case_id, "postpone_reject", note=body.note)


@router.post(
    "/cases/{case_id}/return", summary="Return (回退) a case outside the department's remit, with why"
)
async def return_case(
    request: Request, caller: Dispatcher, case_id: CaseId, body: ReturnBody
) -> dict[str, Any]:
    return await take_step(request, caller, case_id, "return", reason=body.reason, note=body.note)


@router.post("/cases/{case_id}/close", summary="Close (结案), with a reason")
async def close_case(
    request: Request, caller: Dispatcher, case_id: CaseId, body: CloseBody
) -> dict[str, Any]:
    return await take_step(request, caller, case_id, "close", reason=body.reason, note=body.note)
