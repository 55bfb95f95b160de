"""An Open311 GeoReport v2 endpoint on the gateway, for an existing city system to read the cases
and push problems in (https://wiki.open311.org/GeoReport_v2; JSON only: the ``.json`` paths).

* ``GET /open311/v2/services.json`` — the category table: ``service_code`` is the subcategory code
  (05-05), ``group`` the major category's name (with an ``api_key`` too: nothing on the gateway but
  its health answers without credentials);
* ``GET /open311/v2/requests.json`` (``service_request_id`` comma-separated, ``service_code``,
  ``start_date``, ``end_date``, ``status`` open|closed) and ``GET /requests/{id}.json`` — the cases the
  key's department may see: ``service_request_id`` = the case id, ``status`` open or closed,
  ``lat``/``long`` from the camera, ``media_url`` the first evidence snapshot through the gateway
  (fetch it with the same token as ``Authorization: Bearer``), ``agency_responsible`` the routed
  department;
* ``POST /open311/v2/requests.json`` (form-encoded: ``api_key``, ``service_code``, ``lat``/``long`` or
  ``address_string``, ``description``, ``media_url``) — opens a case (source ``open311``), routed like
  any case; answers ``[{"service_request_id": …}]``. A retry is not a second case: the same key
  posting the same form again within 15 minutes gets the first one's ``service_request_id``.

``api_key`` is a gateway API token (``retina tokens create``): the caller acts as its user — reading
needs the dispatcher or supervisor role, posting the dispatcher role; a request id outside the
user's department answers 404 as an unknown one. Errors are GeoReport error arrays
(``[{"code": 404, "description": "…"}]``). Every post is audited (``open311.request``).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import JSONResponse

from retina.services.core.serving import to_timestamp
from retina.services.gateway.auth import Principal
from retina.v1 import incidents_pb2

router = APIRouter(prefix="/open311/v2", tags=["open311"])
READERS = ("dispatcher", "supervisor")
MAX_REQUESTS = 1000  # the most a list answers (GeoReport leaves the default to the server)


class Open311Error(Exception):
    """A GeoReport error: answered as ``[{"code": status, "description": text}]`` with that status."""

    def __init__(self, status: int, description: str):
        super().__init__(description)
        self.status = status
        self.description = description


def error_response(error: Open311Error) -> JSONResponse:
    return JSONResponse([{"code": error.status, "description": error.description}], status_code=error.status)


async def api_keys_of(request: Request) -> list[str]:
    """The credentials of a GeoReport request, in the order they are tried: the ``api_key`` query
    parameter or form field (of a form-encoded POST), then a bearer token."""
    keys = [request.query_params.get("api_key", "")]
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        value = (await request.form()).get("api_key")
        keys.append(value if isinstance(value, str) else "")
    keys.append(request.headers.get("authorization", "").removeprefix("Bearer ").strip())
    return [key for key in keys if key]


def caller_with(*roles: str) -> Any:
    """A dependency: the user the ``api_key`` acts for, with one of ``roles``; else a GeoReport 401
    or 403. It runs before the parameters are checked, so nothing is told to an unknown caller."""

    async def caller(request: Request) -> Principal:
        accounts = request.app.state.accounts
        found = next(filter(None, (accounts.token_user(key) for key in await api_keys_of(request))), None)
        if found is None:
            raise Open311Error(401, "api_key missing, unknown, expired or revoked (use a gateway API token)")
        user, token = found
        principal = Principal(user, "token", token.id)
        if not principal.has(*roles):
            raise Open311Error(403, f"the api_key's user needs one of the roles {', '.join(roles)}")
        return principal

    return caller


Reader = Annotated[Principal, Depends(caller_with(*READERS))]
Dispatcher = Annotated[Principal, Depends(caller_with("dispatcher"))]


def install(app: FastAPI) -> None:
    """Serve GeoReport v2 on ``app``: the routes, and errors as GeoReport error arrays."""
    app.include_router(router)

    async def handler(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, Open311Error)
        return error_response(error)

    app.add_exception_handler(Open311Error, handler)


def iso(stamp: Any) -> str | None:
    return stamp.ToDatetime(UTC).isoformat() if stamp.ByteSize() else None


async def service_request(request: Request, case: incidents_pb2.Case) -> dict[str, Any]:
    """One case as a GeoReport service request."""
    detail = await request.app.state.backends.incidents.GetCase(
        incidents_pb2.GetCaseRequest(id=case.id), timeout=10
    )
    photo = next((m.incident.id for m in detail.incidents if m.incident.snapshot_path), None)
    base = str(request.base_url).rstrip("/")
    media_url = f"{base}/api/v1/cases/{case.id}/incidents/{photo}/snapshot" if photo else None
    updated = case.closed_at if case.HasField("closed_at") else case.last_seen_at
    notes = case.close_note or case.close_reason if case.status == "closed" else case.status
    return {
        "service_request_id": case.id,
        "status": "closed" if case.status == "closed" else "open",
        "status_notes": notes,
        "service_name": case.category_name,
        "service_code": case.category_code,
        "description": f"{case.category_code} {case.category_name}",
        "agency_responsible": case.department,
        "service_notice": "",
        "requested_datetime": iso(case.opened_at),
        "updated_datetime": iso(updated),
        "expected_datetime": iso(case.due_at),
        "address": case.address,
        "address_id": case.grid_code,
        "zipcode": None,
        "lat": case.location.lat if case.HasField("location") else None,
        "long": case.location.lon if case.HasField("location") else None,
        "media_url": media_url,
    }


@router.get("/services.json", summary="GeoReport v2 service list: the category table")
async def services(request: Request, caller: Reader, api_key: str | None = None) -> list[dict[str, Any]]:
    table = request.app.state.settings.cluster.cases.categories
    return [
        {
            "service_code": category.code,
            "service_name": category.name,
            "description": f"{category.major_name} / {category.name} ({category.time_limit.describe()})",
            "metadata": False,
            "type": "realtime",
            "keywords": "",
            "group": category.major_name,
        }
        for category in table
    ]


@router.get("/requests.json", summary="GeoReport v2 service requests: the cases the key may see")
async def list_requests(
    request: Request,
    caller: Reader,
    api_key: str | None = None,
    service_request_id: Annotated[str | None, Query(max_length=4096)] = None,
    service_code: Annotated[str | None, Query(pattern=r"^[0-9A-Za-z]{1,8}(-[0-9A-Za-z]{1,8})?$")] = None,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    status: Annotated[str | None, Query(pattern="^(open|closed)(,(open|closed))?$")] = None,
) -> Any:
    try:
        wanted = {s for s in (status or "open,closed").split(",")}
        query = incidents_pb2.ListCasesRequest(
            visible_to=[caller.department], category=service_code or "", limit=MAX_REQUESTS
        )
        for name, value in (("since", start_date), ("until", end_date)):
            if value is not None:
                value = value if value.tzinfo else value.replace(tzinfo=UTC)
                getattr(query, name).CopyFrom(to_timestamp(value.timestamp()))
        if service_request_id:
            found = []
            for case_id in dict.fromkeys(i.strip() for i in service_request_id.split(",") if i.strip()):
                found += await visible_cases(request, caller, case_id)
        else:
            found = list((await request.app.state.backends.incidents.ListCases(query, timeout=10)).cases)
        selected = [c for c in found if ("closed" if c.status == "closed" else "open") in wanted]
        return [await service_request(request, case) for case in selected]
    except Open311Error as error:
        return error_response(error)


async def visible_cases(request: Request, caller: Principal, case_id: str) -> list[incidents_pb2.Case]:
    """The case as a one-item list if the caller may see it; empty for an unknown or hidden id."""
    try:
        detail = await request.app.state.backends.incidents.GetCase(
            incidents_pb2.GetCaseRequest(id=case_id), timeout=10
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
            return []
        raise
    return [detail.summary] if caller.may_see(list(detail.summary.visible_to)) else []


@router.get("/requests/{service_request_id}.json", summary="One GeoReport v2 service request (a case)")
async def get_request(
    request: Request, caller: Reader, service_request_id: str, api_key: str | None = None
) -> Any:
    try:
        found = await visible_cases(request, caller, service_request_id)
        if not found:
            raise Open311Error(404, f"no service request {service_request_id!r}")
        return [await service_request(request, found[0])]
    except Open311Error as error:
        return error_response(error)


@router.post("/requests.json", summary="Create a GeoReport v2 service request: open a case")
async def post_request(
    request: Request,
    caller: Dispatcher,
    api_key: Annotated[str | None, Form()] = None,
    service_code: Annotated[str, Form(pattern=r"^[0-9A-Za-z]{1,8}-[0-9A-Za-z]{1,8}$")] = "",
    lat: Annotated[float | None, Form(ge=-90, le=90)] = None,
    long: Annotated[float | None, Form(ge=-180, le=180)] = None,
    address_string: Annotated[str, Form(max_length=1024)] = "",
    address_id: Annotated[str, Form(pattern=r"^[0-9A-Za-z-]{0,32}$")] = "",
    description: Annotated[str, Form(max_length=4000)] = "",
    media_url: Annotated[str, Form(max_length=1024)] = "",
) -> Any:
    try:
        if not service_code:
            raise Open311Error(400, "service_code is required")
        if (lat is None or long is None) and not address_string:
            raise Open311Error(400, "give lat and long, or address_string")
        # A client's retry (the same key posting the same form) within 15 minutes is the same case.
        sent = (service_code, lat, long, address_string, address_id, description, media_url)
        key = hashlib.sha256(repr(sent).encode()).hexdigest()
        report = incidents_pb2.ReportCaseRequest(
            category_code=service_code, department=caller.department, actor=f"user:{caller.name}",
            description=description, address=address_string, grid_code=address_id, source="open311",
            media_url=media_url, request_key=key,
        )  # fmt: skip
        if lat is not None and long is not None:
            report.lat, report.lon = lat, long
        try:
            case = await request.app.state.backends.incidents.ReportCase(report, timeout=10)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise Open311Error(400, f"service_code {service_code!r} is not a service") from None
            raise
        request.app.state.accounts.audit(
            caller.name, caller.department, "open311.request", case.id, service_code=service_code
        )
        return [{"service_request_id": case.id, "service_notice": "", "account_id": None}]
    except Open311Error as error:
        return error_response(error)
