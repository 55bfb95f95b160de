"""Search by image (以图搜图) for the police: a photo (with a box around the object), an incident's
object, or an earlier result; only over cameras the caller's department may search.

The department sent to the search service is the caller's own, from their account. Every search
and every crop viewed is written to the audit trail (who, department, query kind, filters, hits); a
search exported as a ZIP (``results.csv`` and the crops) is audited as ``search.export``.

Search by plate (车牌检索, ``GET /search/plates``) is for the roles that see evidence unredacted
(police, admin): plates are what redaction hides from everyone else. Audited as ``search.plate``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from retina.services.core.features import TRACK_KEY_PATTERN
from retina.services.core.serving import to_timestamp
from retina.services.gateway.api_incidents import visible_incident
from retina.services.gateway.auth import Principal, fetch_or_not_found, require
from retina.services.gateway.jsonify import Time, to_json
from retina.services.gateway.media import read_upload
from retina.services.gateway.redaction import ORIGINAL_ROLES
from retina.v1 import common_pb2, search_pb2

router = APIRouter(tags=["search"])
Police = Annotated[Principal, Depends(require("police"))]
# Plates are personal data: searched by the roles that see evidence unredacted (redaction.py).
PlateSearcher = Annotated[Principal, Depends(require(*ORIGINAL_ROLES))]
TRACK_ID = TRACK_KEY_PATTERN.pattern
EXPORT_COLUMNS = (
    "rank", "track_id", "camera_id", "score", "family", "class_name", "colours", "first_seen", "last_seen",
    "crop_file",
)  # fmt: skip


def parse_region(region: str) -> common_pb2.BBox:
    """``"x1,y1,x2,y2"`` in fractions of the image (0-1, x1 < x2, y1 < y2); 422 naming ``region``."""
    try:
        x1, y1, x2, y2 = (float(part) for part in region.split(","))
    except ValueError:
        raise HTTPException(
            422, "region: give x1,y1,x2,y2 as fractions of the image, e.g. 0.1,0.2,0.5,0.9"
        ) from None
    if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
        raise HTTPException(422, "region: need 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1")
    return common_pb2.BBox(x1=x1, y1=y1, x2=x2, y2=y2)


def match_json(match: search_pb2.Match) -> dict[str, Any]:
    data = to_json(match)
    data.pop("has_crop", None)
    data["crop_url"] = f"/api/v1/search/crops/{match.track_id}" if match.has_crop else None
    return data


@dataclass(frozen=True)
class SearchForm:
    """The fields of a search (``POST /search`` and ``POST /search/export`` take the same form)."""

    image: UploadFile | None
    region: str | None
    incident_id: str | None
    track_id: str | None
    k: int
    camera_ids: list[str]
    families: list[str]
    colours: list[str]
    start: datetime | None
    end: datetime | None


def search_form(
    image: Annotated[UploadFile | None, File(description="a photo (JPEG or PNG)")] = None,
    region: Annotated[
        str | None, Form(max_length=100, description="x1,y1,x2,y2: the object's box in the photo")
    ] = None,
    incident_id: Annotated[str | None, Form(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
    track_id: Annotated[str | None, Form(pattern=TRACK_ID)] = None,
    k: Annotated[int, Form(ge=1, le=100)] = 10,
    camera_ids: Annotated[list[str] | None, Form(max_length=1000)] = None,
    families: Annotated[list[str] | None, Form(max_length=3)] = None,
    colours: Annotated[list[str] | None, Form(max_length=12)] = None,
    start: Annotated[Time | None, Form()] = None,
    end: Annotated[Time | None, Form()] = None,
) -> SearchForm:
    """The search form (a dependency): a query (exactly one of image, incident_id, track_id) and filters."""
    return SearchForm(
        image, region, incident_id, track_id, k, camera_ids or [], families or [], colours or [], start, end
    )


SearchQuery = Annotated[SearchForm, Depends(search_form)]


async def run_search(
    request: Request, caller: Principal, form: SearchForm, action: str
) -> search_pb2.SearchResponse:
    """Search as the caller's department, audited as ``action`` (also when refused: 404 for an
    incident outside the caller's scope, 422 naming the field for bad input)."""
    data = await read_upload(request, form.image, "image")
    given = [
        name
        for name, value in (("image", data), ("incident_id", form.incident_id), ("track_id", form.track_id))
        if value
    ]
    if len(given) != 1:
        raise HTTPException(422, "query: give exactly one of image, incident_id or track_id")
    filters = {
        "camera_ids": form.camera_ids,
        "families": form.families,
        "colours": form.colours,
        "start": form.start.isoformat() if form.start else None,
        "end": form.end.isoformat() if form.end else None,
        "region": form.region,
        "k": form.k,
    }
    accounts = request.app.state.accounts
    target = form.incident_id or form.track_id or f"image:{len(data)}B"
    try:
        query = search_pb2.SearchRequest(k=form.k, department=caller.department)
        if data:
            query.image = data
            if form.region:
                query.region.CopyFrom(parse_region(form.region))
        elif form.incident_id:
            await visible_incident(request, caller, form.incident_id)  # 404 outside the caller's scope
            query.incident_id = form.incident_id
        else:
            query.track_id = form.track_id or ""
        query.filters.camera_ids.extend(form.camera_ids)
        query.filters.families.extend(form.families)
        query.filters.colours.extend(form.colours)
        for name, value in (("start", form.start), ("end", form.end)):
            if value is not None:
                getattr(query.filters, name).CopyFrom(to_timestamp(value.timestamp()))
        answer = await request.app.state.backends.search.Search(query, timeout=60)
    except (HTTPException, grpc.aio.AioRpcError) as exc:  # refused searches are audited too
        why = exc.detail if isinstance(exc, HTTPException) else exc.details()
        accounts.audit(
            caller.name,
            caller.department,
            action,
            target,
            "refused",
            kind=given[0],
            filters=filters,
            error=str(why)[:300],
        )
        raise
    accounts.audit(
        caller.name,
        caller.department,
        action,
        target,
        kind=given[0],
        filters=filters,
        hits=len(answer.matches),
    )
    return answer


@router.post("/search", summary="Tracks that look like the query, best first")
async def search(request: Request, caller: Police, form: SearchQuery) -> dict[str, Any]:
    answer = await run_search(request, caller, form, "search")
    return {"embedder": answer.embedder, "matches": [match_json(m) for m in answer.matches]}


def _iso(match: search_pb2.Match, field: str) -> str:
    """A time of the match in RFC 3339 (UTC); "" when unset."""
    return getattr(match, field).ToDatetime(tzinfo=UTC).isoformat() if match.HasField(field) else ""


async def _crop(request: Request, caller: Principal, match: search_pb2.Match) -> bytes:
    """The match's crop, as the caller's department may see it; b"" when it has none (any more)."""
    if not match.has_crop:
        return b""
    query = search_pb2.GetCropRequest(track_id=match.track_id, department=caller.department)
    try:
        return (await request.app.state.backends.search.GetCrop(query, timeout=10)).jpeg
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:  # dropped by retention since the search
            return b""
        raise


def export_zip(matches: list[search_pb2.Match], crops: list[bytes]) -> bytes:
    """``results.csv`` (one row per match, best first) and ``crops/<rank>-<track>.jpg``, zipped."""
    names = [
        f"crops/{rank}-{match.track_id.replace(':', '_')}.jpg" if crop else ""
        for rank, (match, crop) in enumerate(zip(matches, crops, strict=True), start=1)
    ]
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for rank, (match, name) in enumerate(zip(matches, names, strict=True), start=1):
        writer.writerow([
            rank, match.track_id, match.camera_id, f"{match.score:.4f}", match.family, match.class_name,
            " ".join(match.colours), _iso(match, "first_seen"), _iso(match, "last_seen"), name,
        ])  # fmt: skip
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("results.csv", table.getvalue())
        for name, crop in zip(names, crops, strict=True):
            if crop:
                archive.writestr(name, crop, compress_type=zipfile.ZIP_STORED)  # JPEG: compressed already
    return buffer.getvalue()


@router.post(
    "/search/export",
    summary="The same search, as a ZIP: results.csv and the crops",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
)
async def export(request: Request, caller: Police, form: SearchQuery) -> Response:
    answer = await run_search(request, caller, form, "search.export")
    matches = list(answer.matches)
    crops = await asyncio.gather(*(_crop(request, caller, m) for m in matches))
    body = await run_in_threadpool(export_zip, matches, list(crops))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "Content-Disposition": f'attachment; filename="retina-search-{stamp}.zip"',
        "Cache-Control": "private, no-store",
    }
    return Response(body, media_type="application/zip", headers=headers)


@router.get("/search/plates", summary="Vehicle tracks whose licence plate matches, exact matches first")
async def search_plates(
    request: Request,
    caller: PlateSearcher,
    q: Annotated[str, Query(min_length=1, max_length=64, description="a plate (浙B2V9L7) or pattern (浙B*)")],
    exact_only: Annotated[
        bool, Query(description="no confusable characters (0/D/Q/O, 8/B, 1/I, 5/S, 2/Z)")
    ] = False,
    k: Annotated[int, Query(ge=1, le=100)] = 20,
    camera_ids: Annotated[list[str] | None, Query(max_length=1000)] = None,
    start: Time | None = None,
    end: Time | None = None,
) -> dict[str, Any]:
    """For police and admin, within their department's scope; every search is audited, refused ones too."""
    accounts = request.app.state.accounts
    filters = {
        "exact_only": exact_only,
        "camera_ids": camera_ids or [],
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
        "k": k,
    }
    query = search_pb2.PlateSearchRequest(plate=q, exact_only=exact_only, k=k, department=caller.department)
    query.filters.camera_ids.extend(camera_ids or [])
    for name, value in (("start", start), ("end", end)):
        if value is not None:
            getattr(query.filters, name).CopyFrom(to_timestamp(value.timestamp()))
    try:
        answer = await request.app.state.backends.search.SearchPlates(query, timeout=30)
    except grpc.aio.AioRpcError as exc:
        accounts.audit(
            caller.name, caller.department, "search.plate", q, "refused", filters=filters,
            error=str(exc.details())[:300],
        )  # fmt: skip
        raise
    accounts.audit(
        caller.name, caller.department, "search.plate", q, filters=filters, hits=len(answer.matches)
    )
    return {
        "matches": [
            {
                **match_json(found.match),
                "plate": found.plate,
                "colour": found.colour,
                "confidence": round(found.confidence, 4),
                "reads": found.reads,
                "exact": found.exact,
            }
            for found in answer.matches
        ]
    }


@router.get(
    "/search/crops/{track_id}",
    summary="The best crop of a track in the caller's scope (JPEG)",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
async def crop(
    request: Request, caller: Police, track_id: Annotated[str, Path(pattern=TRACK_ID)]
) -> Response:
    query = search_pb2.GetCropRequest(track_id=track_id, department=caller.department)
    answer = await fetch_or_not_found(
        request.app.state.backends.search.GetCrop(query, timeout=10), "track", track_id
    )
    request.app.state.accounts.audit(caller.name, caller.department, "media.view", track_id, kind="crop")
    return Response(answer.jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})
