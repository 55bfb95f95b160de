"""Cameras (一机一档) through the gateway: everyone reads the cameras in their scope; ``ops`` manage
their own department's cameras, ``admin`` any camera. Those who may manage a camera may also see its
current frame (to draw zones on); everyone may read the installed rules and their parameters.

A camera is in a department's scope when the department owns it or it is shared with it
(``shared_with``, ``*``: everyone); any other id answers 404. Stream URLs carry passwords, so the
URL's credentials are shown only to ``ops``/``admin`` of the owning department.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import ValidationError

from retina.algorithms.sdk import error_message
from retina.algorithms.sdk.algorithm import AlgorithmManifest
from retina.algorithms.sdk.plugins import available_algorithms
from retina.services.core.config import CameraConfig
from retina.services.core.convert import camera_to_proto
from retina.services.gateway.auth import Principal, fetch_or_not_found, not_found, principal, require
from retina.services.gateway.jsonify import to_json
from retina.services.gateway.media import redacted_response, sees_originals
from retina.services.gateway.verifier import capture
from retina.v1 import common_pb2, registry_pb2

router = APIRouter(tags=["cameras"])
Caller = Annotated[Principal, Depends(principal)]
Operator = Annotated[Principal, Depends(require("ops", "admin"))]
CameraId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="the camera's id")]
PAGE_SIZE = 1000
CAMERA_EXAMPLE = {
    "id": "gate-east",
    "name": "East gate",
    "url": "rtsp://user:password@10.0.0.5/stream1",
    "department": "urban-management",
    "shared_with": ["police"],
    "algorithms": [
        {
            "name": "illegal_parking",
            "zones": [{"name": "kerb", "polygon": [[0.1, 0.6], [0.9, 0.6], [0.9, 0.95], [0.1, 0.95]]}],
        }
    ],
}


def camera_visible(caller: Principal, camera: common_pb2.Camera) -> bool:
    return caller.department == camera.department or caller.may_see(list(camera.shared_with))


def manages(caller: Principal, department: str) -> bool:
    """May the caller change a camera of ``department``? admin: any; ops: their own department's."""
    return caller.has("admin") or (caller.has("ops") and caller.department == department)


def hide_credentials(url: str) -> str:
    """The URL without its user name and password (``rtsp://***@host/...``)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def camera_json(caller: Principal, record: registry_pb2.CameraRecord) -> dict[str, Any]:
    data = to_json(record)
    if not manages(caller, record.camera.department):
        data["camera"]["url"] = hide_credentials(record.camera.url)
    return data


async def visible_camera(request: Request, caller: Principal, camera_id: str) -> registry_pb2.CameraRecord:
    """The camera's record if the caller's department may see it; 404 otherwise."""
    query = registry_pb2.GetCameraRequest(camera_id=camera_id)
    record = await fetch_or_not_found(
        request.app.state.backends.registry.GetCamera(query, timeout=10), "camera", camera_id
    )
    if not camera_visible(caller, record.camera):
        raise not_found("camera", camera_id)
    return record


async def visible_cameras(request: Request, caller: Principal) -> list[registry_pb2.CameraRecord]:
    """Every registered camera in the caller's scope, by id."""
    registry, records, token = request.app.state.backends.registry, [], ""
    while True:
        page = await registry.ListCameras(
            registry_pb2.ListCamerasRequest(page_size=PAGE_SIZE, page_token=token), timeout=10
        )
        records += [r for r in page.cameras if camera_visible(caller, r.camera)]
        token = page.next_page_token
        if not token:
            return records


def camera_message(body: dict[str, Any], caller: Principal) -> common_pb2.Camera:
    """The camera as the registry takes it; 422 naming the field the configuration gets wrong.

    Fields left out take the cluster's defaults in the registry, except the department: an ``ops``
    user's cameras belong to their own department.
    """
    body = dict(body)
    body.setdefault("department", caller.department)
    try:
        camera = CameraConfig.model_validate(body)
    except ValidationError as exc:
        problems = [f"camera.{'.'.join(str(p) for p in e['loc'])}: {error_message(e)}" for e in exc.errors()]
        raise HTTPException(422, "; ".join(problems)) from None
    if not manages(caller, camera.department):
        raise HTTPException(403, f"department: {caller.name} may manage only cameras of {caller.department}")
    return camera_to_proto(camera, only_set=True)


@router.get("/cameras", summary="Cameras in the caller's scope, with their health")
async def list_cameras(
    request: Request,
    caller: Caller,
    text: Annotated[str | None, Query(max_length=128, description="part of the id or name")] = None,
) -> dict[str, Any]:
    records = await visible_cameras(request, caller)
    if text:
        needle = text.lower()
        records = [r for r in records if needle in r.camera.id.lower() or needle in r.camera.name.lower()]
    return {"cameras": [camera_json(caller, r) for r in records]}


@router.get("/cameras/{camera_id}", summary="One camera with its health")
async def get_camera(request: Request, caller: Caller, camera_id: CameraId) -> dict[str, Any]:
    return camera_json(caller, await visible_camera(request, caller, camera_id))


@router.get(
    "/cameras/{camera_id}/frame",
    summary="The camera's latest frame (JPEG, no zone drawn), for drawing zones",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}},
        503: {"description": "no live worker analyses the camera, or it has no frame yet"},
    },
)
async def frame(request: Request, caller: Operator, camera_id: CameraId) -> Response:
    record = await visible_camera(request, caller, camera_id)
    if not manages(caller, record.camera.department):
        raise HTTPException(403, f"{caller.name} may not manage cameras of {record.camera.department}")
    jpeg, why_not = await capture(request.app.state.backends, camera_id, "")
    if not jpeg:
        raise HTTPException(503, f"no frame of camera {camera_id!r} now: {why_not}")
    if not sees_originals(request, caller):  # ops see the scene, not the passer-by (as evidence)
        path = f"{camera_id}/frame.jpg"
        return await redacted_response(
            request, caller, jpeg, path, "frame", camera_id, cache=False, of=f"camera {camera_id}"
        )
    request.app.state.accounts.audit(
        caller.name, caller.department, "media.view", camera_id, kind="frame", original=True
    )
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


def algorithm_json(manifest: AlgorithmManifest) -> dict[str, Any]:
    """A rule plug-in as the camera form needs it: its parameters as a JSON Schema."""
    return {
        "name": manifest.name,
        "version": manifest.version,
        "description": manifest.description,
        "params_schema": manifest.params_model.model_json_schema(),
    }


@router.get("/algorithms", tags=["algorithms"], summary="Every installed rule, with its parameters' schema")
async def algorithms(caller: Caller) -> dict[str, Any]:
    installed = await run_in_threadpool(available_algorithms)  # reads the installed packages' metadata
    return {"algorithms": [algorithm_json(installed[name].manifest) for name in sorted(installed)]}


@router.post("/cameras", status_code=201, summary="Register a camera (ops: of their own department)")
async def create_camera(
    request: Request,
    caller: Operator,
    camera: Annotated[
        dict[str, Any], Body(examples=[CAMERA_EXAMPLE], description="as in the YAML configuration")
    ],
    enabled: bool = True,
) -> dict[str, Any]:
    message = camera_message(camera, caller)
    record = await request.app.state.backends.registry.CreateCamera(
        registry_pb2.CreateCameraRequest(camera=message, enabled=enabled), timeout=10
    )
    request.app.state.accounts.audit(caller.name, caller.department, "camera.create", message.id)
    return camera_json(caller, record)


@router.put("/cameras/{camera_id}", summary="Replace a camera's configuration")
async def update_camera(
    request: Request,
    caller: Operator,
    camera_id: CameraId,
    camera: Annotated[
        dict[str, Any], Body(examples=[CAMERA_EXAMPLE], description="as in the YAML configuration")
    ],
    enabled: bool | None = None,
) -> dict[str, Any]:
    current = await visible_camera(request, caller, camera_id)
    if not manages(caller, current.camera.department):
        raise HTTPException(403, f"{caller.name} may not change cameras of {current.camera.department}")
    message = camera_message({**camera, "id": camera_id}, caller)
    update = registry_pb2.UpdateCameraRequest(camera=message)
    if enabled is not None:
        update.enabled = enabled
    record = await request.app.state.backends.registry.UpdateCamera(update, timeout=10)
    request.app.state.accounts.audit(caller.name, caller.department, "camera.update", camera_id)
    return camera_json(caller, record)


@router.delete("/cameras/{camera_id}", summary="Remove a camera (its open incidents end)")
async def delete_camera(request: Request, caller: Operator, camera_id: CameraId) -> dict[str, Any]:
    current = await visible_camera(request, caller, camera_id)
    if not manages(caller, current.camera.department):
        raise HTTPException(403, f"{caller.name} may not delete cameras of {current.camera.department}")
    answer = await request.app.state.backends.registry.DeleteCamera(
        registry_pb2.DeleteCameraRequest(camera_id=camera_id), timeout=10
    )
    request.app.state.accounts.audit(caller.name, caller.department, "camera.delete", camera_id)
    return {"deleted": camera_id, "revision": answer.revision}
