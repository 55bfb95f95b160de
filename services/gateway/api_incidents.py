"""Incidents and the dispatch loop (分拨-处置-核查) for dispatchers, scoped to their department.

A dispatcher sees an incident when its department is among those recorded with it (the camera's
owner and ``shared_with`` when it was recorded); any other id answers 404, as an unknown one does.
Each step of the loop goes to the incident store (which records it and publishes it on
``retina.dispatch.<department>.<action>.<camera>``) and into the audit trail. ``/stats/dispatch``
counts the false alarms per camera and rule over the same scope (``admin``: every department).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from retina.services.core.serving import to_timestamp
from retina.services.gateway.auth import Principal, fetch_or_not_found, not_found, require
from retina.services.gateway.jsonify import Time, to_json
from retina.services.gateway.media import read_upload, sees_originals, stream_media
from retina.services.gateway.redaction import ORIGINAL_ROLES
from retina.v1 import incidents_pb2

router = APIRouter(tags=["incidents"])
Dispatcher = Annotated[Principal, Depends(require("dispatcher"))]
PlateViewer = Annotated[Principal, Depends(require("dispatcher", *ORIGINAL_ROLES))]  # see refuse_plates
IncidentId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="the incident's id")]
# A media file of one incident (snapshot, clip, field photo, verification frame): a bare file name.
MEDIA_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")
DISPATCH_STATUSES = ("new", "assigned", "handled", "verifying", "verified", "reopened", "closed")
INTERNAL_FIELDS = ("message_json", "snapshot_path", "clip_path")


def incident_json(incident: incidents_pb2.Incident, plates: bool = False) -> dict[str, Any]:
    """An incident as the API returns it: the store's summary, the rule's details, and links to its
    evidence (relative to the API); with ``plates`` (the caller sees originals) its licence plate."""
    data = to_json(incident)
    for name in INTERNAL_FIELDS:
        data.pop(name, None)
    message = json.loads(incident.message_json) if incident.message_json else {}
    data["details"] = message.get("details", {})
    data["visible_to"] = list(incident.visible_to)
    base = f"/api/v1/incidents/{incident.id}"
    data["snapshot_url"] = f"{base}/snapshot" if incident.snapshot_path else None
    data["clip_url"] = f"{base}/clip" if incident.clip_path else None
    plate = message.get("plate") if plates else None
    if isinstance(plate, dict):
        data["plate"] = {key: plate.get(key) for key in ("text", "colour", "confidence", "reads")}
        data["plate_url"] = f"{base}/plate" if plate.get("crop") else None
    return data


def history_json(incident: incidents_pb2.Incident, entry: incidents_pb2.HistoryEntry) -> dict[str, Any]:
    data = to_json(entry)
    data.pop("details_json", None)
    data["details"] = json.loads(entry.details_json) if entry.details_json else {}
    name = entry.media_path.rsplit("/", 1)[-1] if entry.media_path else ""
    data.pop("media_path", None)
    data["media_url"] = f"/api/v1/incidents/{incident.id}/media/{name}" if name else None
    return data


async def visible_incident(request: Request, caller: Principal, incident_id: str) -> incidents_pb2.Incident:
    """The incident, if the caller's department may see it; 404 otherwise (as for an unknown id)."""
    query = incidents_pb2.GetIncidentRequest(id=incident_id)
    call = request.app.state.backends.incidents.GetIncident(query, timeout=10)
    incident = await fetch_or_not_found(call, "incident", incident_id)
    if not caller.may_see(list(incident.visible_to) or [incident.department]):
        raise not_found("incident", incident_id)
    return incident


@router.get("/incidents", summary="Incidents the caller's department may see, newest first")
async def list_incidents(
    request: Request,
    caller: Dispatcher,
    state: Literal["open", "ended"] | None = None,
    camera: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
    algorithm: Annotated[str | None, Query(max_length=128)] = None,
    zone: Annotated[str | None, Query(max_length=128)] = None,
    dispatch_status: Literal[DISPATCH_STATUSES] | None = None,  # type: ignore[valid-type]
    since: Time | None = None,
    until: Time | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    query = incidents_pb2.ListIncidentsRequest(
        camera_id=camera or "",
        algorithm=algorithm or "",
        zone=zone or "",
        state=state or "",
        dispatch_status=dispatch_status or "",
        limit=limit,
        offset=offset,
        visible_to=[caller.department],
    )
    for name, value in (("since", since), ("until", until)):
        if value is not None:
            getattr(query, name).CopyFrom(to_timestamp(value.timestamp()))
    answer = await request.app.state.backends.incidents.ListIncidents(query, timeout=10)
    plates = sees_originals(request, caller)
    incidents = [incident_json(i, plates) for i in answer.incidents]
    return {"incidents": incidents, "limit": limit, "offset": offset}


@router.get("/incidents/{incident_id}", summary="One incident with its whole history")
async def get_incident(request: Request, caller: Dispatcher, incident_id: IncidentId) -> dict[str, Any]:
    incident = await visible_incident(request, caller, incident_id)
    history = await request.app.state.backends.incidents.GetIncidentHistory(
        incidents_pb2.GetIncidentRequest(id=incident_id), timeout=10
    )
    history_entries = [history_json(incident, e) for e in history.entries]
    return {**incident_json(incident, sees_originals(request, caller)), "history": history_entries}


@router.get(
    "/incidents/{incident_id}/snapshot",
    summary="The incident's best snapshot (JPEG, zone and box drawn)",
    response_class=StreamingResponse,
    responses={200: {"content": {"image/jpeg": {}}}},
)
async def snapshot(request: Request, caller: Dispatcher, incident_id: IncidentId) -> StreamingResponse:
    incident = await visible_incident(request, caller, incident_id)
    if not incident.snapshot_path:
        raise not_found("snapshot of incident", incident_id)
    return await stream_media(request, caller, incident.snapshot_path, "snapshot", incident_id)


@router.get(
    "/incidents/{incident_id}/clip",
    summary="The incident's evidence clip (MP4)",
    response_class=StreamingResponse,
    responses={200: {"content": {"video/mp4": {}}}},
)
async def clip(request: Request, caller: Dispatcher, incident_id: IncidentId) -> StreamingResponse:
    incident = await visible_incident(request, caller, incident_id)
    if not incident.clip_path:
        raise not_found("clip of incident", incident_id)
    return await stream_media(request, caller, incident.clip_path, "clip", incident_id)


@router.get(
    "/incidents/{incident_id}/plate",
    summary="The crop the incident's licence plate was read on (JPEG; police and admin)",
    response_class=StreamingResponse,
    responses={200: {"content": {"image/jpeg": {}}}},
)
async def plate(request: Request, caller: PlateViewer, incident_id: IncidentId) -> StreamingResponse:
    incident = await visible_incident(request, caller, incident_id)
    refuse_plates(request, caller)
    message = json.loads(incident.message_json) if incident.message_json else {}
    crop = (message.get("plate") or {}).get("crop") or {}
    if not crop.get("path"):
        raise not_found("plate crop of incident", incident_id)
    return await stream_media(request, caller, crop["path"], "plate", incident_id)


def refuse_plates(request: Request, caller: Principal) -> None:
    """403 unless the caller sees evidence unredacted: a plate crop is all plate, nothing to blur."""
    if not sees_originals(request, caller):
        raise HTTPException(403, "licence plates are shown to police and admin only")


@router.get(
    "/incidents/{incident_id}/media/{name}",
    summary="A file of the incident's history: field photo or verification frame",
    response_class=StreamingResponse,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "video/mp4": {}}}},
)
async def media(
    request: Request, caller: Dispatcher, incident_id: IncidentId, name: Annotated[str, Path(max_length=128)]
) -> StreamingResponse:
    if not MEDIA_NAME.fullmatch(name) or ".." in name:
        raise not_found("file", name)
    incident = await visible_incident(request, caller, incident_id)
    if name.startswith("plate-"):
        refuse_plates(request, caller)
    return await stream_media(
        request, caller, f"{incident.camera_id}/{incident.id}/{name}", "media", incident_id
    )


# -- the dispatch loop -----------------------------------------------------------------------------


class AssignBody(BaseModel):
    assignee: str = Field(min_length=1, max_length=256, description="the team or person")
    due_at: Time | None = Field(default=None, description="when it must be handled")
    note: str = Field(default="", max_length=4096)


class CloseBody(BaseModel):
    reason: Literal["resolved", "false_alarm", "duplicate", "other"]
    note: str = Field(default="", max_length=4096)


class ReopenBody(BaseModel):
    note: str = Field(default="", max_length=4096)


async def dispatch(
    request: Request, caller: Principal, incident_id: str, action: str, **fields: Any
) -> dict[str, Any]:
    """Take one step of the loop as the caller (after the scope check), audit it, return the incident."""
    incident = await visible_incident(request, caller, incident_id)
    step = incidents_pb2.DispatchRequest(id=incident_id, action=action, actor=f"user:{caller.name}", **fields)
    accounts = request.app.state.accounts
    try:
        updated = await request.app.state.backends.incidents.Dispatch(step, timeout=30)
    except Exception as exc:
        accounts.audit(
            caller.name, caller.department, f"dispatch.{action}", incident_id, "refused", error=str(exc)[:300]
        )
        raise
    audited = {k: v for k, v in fields.items() if k not in ("photo",)}
    audited["photo"] = bool(fields.get("photo"))
    accounts.audit(
        caller.name,
        caller.department,
        f"dispatch.{action}",
        incident_id,
        camera_id=incident.camera_id,
        **audited,
    )
    return incident_json(updated)


@router.post("/incidents/{incident_id}/assign", summary="Assign to a team or person, with a due time")
async def assign(
    request: Request, caller: Dispatcher, incident_id: IncidentId, body: AssignBody
) -> dict[str, Any]:
    fields: dict[str, Any] = {"assignee": body.assignee, "note": body.note}
    if body.due_at is not None:
        fields["due_at"] = to_timestamp(body.due_at.timestamp())
    return await dispatch(request, caller, incident_id, "assign", **fields)


@router.post(
    "/incidents/{incident_id}/handle",
    summary="Record the handling (note, optional photo); the platform then verifies the scene",
)
async def handle(
    request: Request,
    caller: Dispatcher,
    incident_id: IncidentId,
    note: Annotated[str, Form(max_length=4096)] = "",
    photo: Annotated[UploadFile | None, File(description="a photo from the field (JPEG or PNG)")] = None,
) -> dict[str, Any]:
    data = await read_upload(request, photo, "photo")
    seconds = request.app.state.settings.verify_seconds
    return await dispatch(
        request, caller, incident_id, "handle", note=note, photo=data, verify_seconds=seconds
    )


@router.post(
    "/incidents/{incident_id}/verify", summary="Verify by hand: the violation is gone, or still there"
)
async def verify(
    request: Request,
    caller: Dispatcher,
    incident_id: IncidentId,
    outcome: Annotated[Literal["clear", "present"], Form()],
    note: Annotated[str, Form(max_length=4096)] = "",
    photo: Annotated[UploadFile | None, File(description="evidence (JPEG or PNG)")] = None,
) -> dict[str, Any]:
    data = await read_upload(request, photo, "photo")
    return await dispatch(request, caller, incident_id, "verify", outcome=outcome, note=note, photo=data)


@router.post(
    "/incidents/{incident_id}/close", summary="Close, with a reason (false_alarm is counted per rule)"
)
async def close(
    request: Request, caller: Dispatcher, incident_id: IncidentId, body: CloseBody
) -> dict[str, Any]:
    return await dispatch(request, caller, incident_id, "close", reason=body.reason, note=body.note)


@router.post("/incidents/{incident_id}/reopen", summary="Reopen a closed or verified incident")
async def reopen(
    request: Request, caller: Dispatcher, incident_id: IncidentId, body: ReopenBody
) -> dict[str, Any]:
    return await dispatch(request, caller, incident_id, "reopen", note=body.note)


# -- how the rules fare ----------------------------------------------------------------------------


@router.get(
    "/stats/dispatch",
    tags=["stats"],
    summary="False alarms per camera and rule, most first (admin: every department)",
)
async def dispatch_stats(
    request: Request,
    caller: Annotated[Principal, Depends(require("dispatcher", "ops", "admin"))],
    since: Annotated[Time | None, Query(description="incidents started at or after this")] = None,
    until: Annotated[Time | None, Query(description="and before this")] = None,
) -> dict[str, Any]:
    if since is not None and until is not None and until.timestamp() <= since.timestamp():
        raise HTTPException(422, "until: must be after since")
    scope = [] if caller.has("admin") else [caller.department]
    query = incidents_pb2.GetDispatchStatsRequest(visible_to=scope)
    for name, value in (("since", since), ("until", until)):
        if value is not None:
            getattr(query, name).CopyFrom(to_timestamp(value.timestamp()))
    answer = await request.app.state.backends.incidents.GetDispatchStats(query, timeout=30)
    return {"rows": [to_json(row) for row in answer.rows]}
