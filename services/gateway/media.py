"""Evidence through the gateway: uploads read within the size limit, stored files streamed out.

Snapshots, clips, field photos and crops are served only here, after the caller's scope is
checked; every file shown is written to the audit trail. With ``redact_evidence`` (the default),
images are served with heads, faces and plates blurred (:mod:`retina.services.gateway.redaction`)
except to ``police`` and ``admin``, whose views of originals are audited with ``original: true``;
clips are re-encoded with every frame redacted (once, cached). A redacted view's audit entry says
what was blurred (``redacted: {"heads": 8, "plates": 1}``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import grpc
from fastapi import HTTPException, Request, UploadFile
from fastapi.responses import Response, StreamingResponse

from retina.services.gateway.auth import Principal, not_found
from retina.services.gateway.redaction import ORIGINAL_ROLES, Redactor
from retina.v1 import incidents_pb2

IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")
READ_CHUNK = 1024 * 1024


def sees_originals(request: Request, caller: Principal) -> bool:
    """Whether the caller sees evidence unredacted, and so licence plates (text and crops too)."""
    return not request.app.state.settings.redact_evidence or caller.has(*ORIGINAL_ROLES)


async def read_upload(
    request: Request, upload: UploadFile | None, field: str, *, image: bool = True
) -> bytes:
    """The uploaded file's bytes (b"" when none was sent): 413 over the gateway's upload limit,
    422 naming ``field`` when it is empty or not a JPEG/PNG image."""
    if upload is None:
        return b""
    limit = request.app.state.settings.max_upload_bytes
    data = bytearray()
    while chunk := await upload.read(READ_CHUNK):
        data += chunk
        if len(data) > limit:
            raise HTTPException(413, f"{field}: larger than {limit // (1024 * 1024)} MB")
    if not data:
        raise HTTPException(422, f"{field}: the file is empty")
    if image and not bytes(data[:8]).startswith(IMAGE_SIGNATURES):
        raise HTTPException(422, f"{field}: not a JPEG or PNG image")
    return bytes(data)


async def stream_media(
    request: Request, caller: Principal, path: str, kind: str, incident_id: str
) -> StreamingResponse | Response:
    """Stream a stored evidence file of an incident (already checked to be in the caller's scope)."""
    backends = request.app.state.backends
    call = backends.incidents.GetMedia(incidents_pb2.GetMediaRequest(path=path), timeout=120)
    try:
        first = await call.read()
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise not_found(kind, incident_id) from None
        raise
    if first is grpc.aio.EOF:
        raise not_found(kind, incident_id)
    original = sees_originals(request, caller)
    if not original:
        return await redacted_media(request, caller, call, first, path, kind, incident_id)
    request.app.state.accounts.audit(
        caller.name, caller.department, "media.view", incident_id,
        kind=kind, file=path.rsplit("/", 1)[-1], original=True,
    )  # fmt: skip

    async def body() -> AsyncIterator[bytes]:
        yield first.data
        async for chunk in call:
            yield chunk.data

    headers = {"Content-Length": str(first.size)} if first.size else {}
    headers["Cache-Control"] = "private, no-store"
    return StreamingResponse(
        body(), media_type=first.content_type or "application/octet-stream", headers=headers
    )


_MAKING_REDACTOR = threading.Lock()


def redactor(request: Request) -> Redactor:
    """The gateway's redactor, made once, on first use (it loads the detectors: seconds)."""
    state = request.app.state
    with _MAKING_REDACTOR:
        if getattr(state, "redactor", None) is None:
            state.redactor = Redactor(state.settings)
    return state.redactor


async def redacted_media(
    request: Request,
    caller: Principal,
    call: grpc.aio.UnaryStreamCall,
    first: incidents_pb2.MediaChunk,
    path: str,
    kind: str,
    incident_id: str,
) -> Response:
    """An image (JPEG) or clip (MP4, re-encoded) with heads, faces and plates blurred, cached; 403 for
    any other kind of file, which cannot be redacted."""
    content_type = first.content_type or "application/octet-stream"
    if not content_type.startswith(("image/", "video/")):
        call.cancel()
        allowed = " and ".join(ORIGINAL_ROLES)
        raise HTTPException(403, f"this {kind} cannot be redacted: only {allowed} may view it")
    data = bytearray(first.data)
    async for chunk in call:
        data += chunk.data
    image = content_type.startswith("image/")
    return await redacted_response(
        request, caller, bytes(data), path, kind, incident_id, clip=not image, of=f"incident {incident_id}"
    )


async def redacted_response(
    request: Request,
    caller: Principal,
    data: bytes,
    path: str,
    kind: str,
    target: str,
    *,
    clip: bool = False,
    cache: bool = True,
    of: str,
) -> Response:
    """``data`` (a JPEG, or an MP4 ``clip``) with heads, faces and plates blurred, its view audited
    on ``target`` as not original; 422 naming ``kind`` ``of`` what when it cannot be redacted.
    ``cache`` False: a live frame, redacted each time and never kept."""
    blurrer = await asyncio.to_thread(redactor, request)  # the first call loads the detectors
    try:
        if clip:
            result = await asyncio.to_thread(blurrer.redact_clip, path, data)
        else:
            result = await asyncio.to_thread(blurrer.redact, path, data, cache)
    except ValueError as exc:
        raise HTTPException(422, f"{kind} of {of} cannot be redacted: {exc}") from None
    request.app.state.accounts.audit(
        caller.name, caller.department, "media.view", target,
        kind=kind, file=path.rsplit("/", 1)[-1], original=False, redacted=blurrer.summary(result),
    )  # fmt: skip
    headers = {"Cache-Control": "private, no-store", **blurrer.headers(result)}
    return Response(result.data, media_type="video/mp4" if clip else "image/jpeg", headers=headers)
