"""The client side of ``retina search query``: command-line values → a checked SearchRequest → reply.

Every value is checked before anything is sent, and every failure (a bad value, an unreachable or
refusing service) becomes one :class:`QueryError` line that names the flag to fix.
"""

from __future__ import annotations

import argparse
import io
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import grpc
import PIL.Image
from google.protobuf.timestamp_pb2 import Timestamp

from retina.services.core import service_auth
from retina.services.core.config import SearchConfig
from retina.services.core.validation import quote
from retina.services.search.engine import MAX_RESULTS
from retina.v1 import common_pb2, search_pb2, search_pb2_grpc

# The API's documented photo limit (search.proto); a service configured higher still takes more.
MAX_IMAGE_BYTES = SearchConfig().max_image_bytes
TIMEOUT_SECONDS = 30
# Request fields the service names in INVALID_ARGUMENT answers → the flag that sets each.
FLAG_OF_FIELD = {
    "image": "--image",
    "region": "--region",
    "incident_id": "--incident",
    "track_id": "--track",
    "department": "--department",
    "k": "-k",
    "filters.camera_ids": "--camera",
    "filters.families": "--family",
    "filters.colours": "--colour",
    "filters.start": "--since",
    "filters.end": "--until",
    "plate": "PLATE",
}


class QueryError(Exception):
    """One line for the user (it names the flag) and the exit code: 2 for a bad value, 1 otherwise."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def read_photo(path_text: str) -> bytes:
    """The bytes of ``--image``, checked to be a picture within the service's limit."""
    path = Path(path_text)
    try:
        if path.is_dir():
            raise QueryError(f"--image: {quote(path_text)} is a folder; give a photo file")
        if path.exists() and not path.is_file():
            raise QueryError(f"--image: {quote(path_text)} is not a regular file; give a photo file")
        with path.open("rb") as f:
            data = f.read(MAX_IMAGE_BYTES + 1)  # never more than the service would take
            size = max(len(data), path.stat().st_size)
        if size > MAX_IMAGE_BYTES:
            raise QueryError(
                f"--image: {quote(path_text)} is {size / 2**20:.1f} MB; the search service takes photos"
                f" up to {MAX_IMAGE_BYTES / 2**20:.0f} MB (crop or downscale it)"
            )
    except FileNotFoundError:
        raise QueryError(f"--image: no such file {quote(path_text)}") from None
    except OSError as exc:
        raise QueryError(f"--image: cannot read {quote(path_text)}: {exc.strerror or exc}") from None
    try:
        with PIL.Image.open(io.BytesIO(data)):  # the header only
            pass
    except Exception:
        raise QueryError(
            f"--image: {quote(path_text)} is not a picture (give a JPEG, PNG, BMP, TIFF or WebP file)"
        ) from None
    return data


def parse_region(text: str) -> common_pb2.BBox:
    """``--region x1,y1,x2,y2`` (fractions of the photo's width and height)."""
    usage = "--region: give x1,y1,x2,y2 as fractions 0-1 with x1 < x2 and y1 < y2, e.g. 0.4,0.5,0.7,0.9"
    try:
        x1, y1, x2, y2 = (float(part) for part in text.split(","))
    except ValueError:
        raise QueryError(f"{usage} (got {quote(text)})") from None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
        raise QueryError(f"{usage} (got {quote(text)})")
    return common_pb2.BBox(x1=x1, y1=y1, x2=x2, y2=y2)


def parse_time(flag: str, text: str) -> Timestamp:
    """``--since``/``--until``: an ISO time, UTC unless it carries an offset."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise QueryError(
            f"{flag}: {quote(text)} is not an ISO time such as 2026-11-22T08:00:00 (UTC unless it"
            " ends with an offset such as +08:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def build_request(args: argparse.Namespace) -> search_pb2.SearchRequest:
    """The SearchRequest of ``retina search query``'s arguments, every value checked."""
    if not 1 <= args.k <= MAX_RESULTS:
        raise QueryError(f"-k: give 1-{MAX_RESULTS} results (got {args.k})")
    request = search_pb2.SearchRequest(k=args.k, department=args.department)
    if args.region and not args.image:
        raise QueryError("--region: only with --image (it is the part of the photo showing the object)")
    if args.image:
        request.image = read_photo(args.image)
        if args.region:
            request.region.CopyFrom(parse_region(args.region))
    elif args.incident:
        request.incident_id = args.incident
    else:
        request.track_id = args.track
    request.filters.camera_ids.extend(args.camera)
    request.filters.families.extend(args.family)
    request.filters.colours.extend(args.colour)
    if args.since:
        request.filters.start.CopyFrom(parse_time("--since", args.since))
    if args.until:
        request.filters.end.CopyFrom(parse_time("--until", args.until))
    return request


def search(args: argparse.Namespace, token: Callable[[], str | None]) -> search_pb2.SearchResponse:
    """Send the query of ``args`` to ``--address`` with the service token ``token()`` gives (read
    once the query is known to be valid); QueryError for anything that goes wrong."""
    request = build_request(args)
    with service_auth.channel(args.address, token()) as channel:
        try:
            return search_pb2_grpc.SearchServiceStub(channel).Search(request, timeout=TIMEOUT_SECONDS)
        except grpc.RpcError as exc:
            raise _call_error(exc, args.address) from None


def search_plates(
    args: argparse.Namespace, token: Callable[[], str | None]
) -> search_pb2.PlateSearchResponse:
    """``retina search plate``: the plate query of ``args`` (checked here first, as the service
    would) sent to ``--address``; QueryError for anything that goes wrong."""
    from retina.services.core.plate_text import PlateQueryError, plate_query

    if not 1 <= args.k <= MAX_RESULTS:
        raise QueryError(f"-k: give 1-{MAX_RESULTS} results (got {args.k})")
    try:
        plate_query(args.plate, "PLATE")
    except PlateQueryError as exc:
        raise QueryError(str(exc)) from None
    request = search_pb2.PlateSearchRequest(
        plate=args.plate, exact_only=args.exact_only, k=args.k, department=args.department
    )
    request.filters.camera_ids.extend(args.camera)
    if args.since:
        request.filters.start.CopyFrom(parse_time("--since", args.since))
    if args.until:
        request.filters.end.CopyFrom(parse_time("--until", args.until))
    with service_auth.channel(args.address, token()) as channel:
        try:
            return search_pb2_grpc.SearchServiceStub(channel).SearchPlates(request, timeout=TIMEOUT_SECONDS)
        except grpc.RpcError as exc:
            raise _call_error(exc, args.address) from None


def crop_folder(path_text: str) -> Path:
    """``--save-crops``: a folder for the matches' crops, created if missing."""
    folder = Path(path_text)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise QueryError(f"--save-crops: {quote(path_text)} is a file; give a folder") from None
    except OSError as exc:
        raise QueryError(f"--save-crops: cannot create {quote(path_text)}: {exc.strerror or exc}") from None
    return folder


def save_crops(
    address: str, department: str, matches: list[search_pb2.Match], folder: Path, token: str | None
) -> dict[str, Path]:
    """Fetch each match's crop (GetCrop, in ``department``'s scope) into ``folder`` as
    ``<rank>-<track id>.jpg``; track id → file, for the matches that have a crop still stored."""
    saved: dict[str, Path] = {}
    with service_auth.channel(address, token) as channel:
        stub = search_pb2_grpc.SearchServiceStub(channel)
        for rank, match in enumerate(matches, 1):
            if not match.has_crop:
                continue
            request = search_pb2.GetCropRequest(track_id=match.track_id, department=department)
            try:
                crop = stub.GetCrop(request, timeout=TIMEOUT_SECONDS)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:  # expired since the search
                    continue
                raise _call_error(exc, address) from None
            path = folder / f"{rank:02d}-{match.track_id.replace(':', '_')}.jpg"
            try:
                path.write_bytes(crop.jpeg)
            except OSError as exc:
                raise QueryError(f"--save-crops: cannot write {path}: {exc.strerror or exc}", 1) from None
            saved[match.track_id] = path
    return saved


def _call_error(exc: grpc.RpcError, address: str) -> QueryError:
    """One line for a failed call, naming the flag where the service names a field."""
    code, details = exc.code(), " ".join((exc.details() or "").split())[:300]
    if code == grpc.StatusCode.UNAVAILABLE:
        return QueryError(f"--address {address}: the search service cannot be reached ({details})", 1)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return QueryError(f"--address {address}: no answer within {TIMEOUT_SECONDS} s", 1)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return QueryError(f"--image: the search service refused the photo as too large ({details})")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        field = details.split(":", 1)[0]
        flag = FLAG_OF_FIELD.get(field)
        return QueryError(f"{flag}: {details}" if flag else f"the search service refused it: {details}")
    return QueryError(f"{code.name}: {details}", 1)
