"""The cluster's state for ``ops`` and ``admin``, and the audit trail for ``admin``.

``ops`` see the workers and devices (shared by every department) but only the placement of the
cameras in their scope; ``admin`` see everything.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from retina.services.gateway.api_cameras import visible_cameras
from retina.services.gateway.auth import Principal, require
from retina.services.gateway.jsonify import Time, to_json
from retina.v1 import scheduler_pb2

router = APIRouter()
Operator = Annotated[Principal, Depends(require("ops", "admin"))]
Admin = Annotated[Principal, Depends(require("admin"))]


@router.get("/cluster", tags=["cluster"], summary="Workers, devices, load and cameras not placed")
async def cluster(request: Request, caller: Operator) -> dict[str, Any]:
    status = await request.app.state.backends.scheduler.GetClusterStatus(
        scheduler_pb2.GetClusterStatusRequest(), timeout=10
    )
    data = to_json(status)
    if caller.has("admin"):
        return data
    mine = {record.camera.id for record in await visible_cameras(request, caller)}
    data["assignments"] = [a for a in data.get("assignments", []) if a["camera_id"] in mine]
    data["unplaced"] = {k: v for k, v in data.get("unplaced", {}).items() if k in mine}
    for worker in data.get("workers", []):
        for device in worker.get("devices", []):
            device["camera_ids"] = [c for c in device.get("camera_ids", []) if c in mine]
    return data


@router.get("/audit", tags=["audit"], summary="The audit trail, newest first")
async def audit(
    request: Request,
    caller: Admin,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    department: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[
        str | None, Query(max_length=64, description="e.g. search, media.view, or dispatch.")
    ] = None,
    since: Time | None = None,
    until: Time | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    entries = request.app.state.accounts.audit_entries(
        actor=actor or "",
        department=department or "",
        action=action or "",
        since=since.timestamp() if since else None,
        until=until.timestamp() if until else None,
        limit=limit,
        offset=offset,
    )
    request.app.state.accounts.audit(caller.name, caller.department, "audit.read", "", results=len(entries))
    return {"entries": [entry.__dict__ for entry in entries]}
