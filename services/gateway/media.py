"""Evidence through the gateway: uploads read within the size limit, stored files streamed out.

Snapshots, clips, field photos and crops are served only here, after the caller's scope is
checked; every file shown is written to the audit trail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from fastapi import HTTPException, Request, UploadFile
from fastapi.responses import StreamingResponse

from retina.services.gateway.auth import Principal, not_found
from retina.v1 import incidents_pb2

IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")
READ_CHUNK = 1024 * 1024


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
) -> StreamingResponse:
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
    request.app.state.accounts.audit(
        caller.name, caller.department, "media.view", incident_id, kind=kind, file=path.rsplit("/", 1)[-1]
    )

    async def body() -> AsyncIterator[bytes]:
        yield first.data
        async for chunk in call:
            yield chunk.data

    headers = {"Content-Length": str(first.size)} if first.size else {}
    headers["Cache-Control"] = "private, no-store"
    return StreamingResponse(
        body(), media_type=first.content_type or "application/octet-stream", headers=headers
    )
