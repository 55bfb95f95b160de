"""Live events for dispatchers: ``GET /api/v1/events`` as Server-Sent Events, from JetStream.

Each client reads the INCIDENTS and DISPATCH streams through its own ordered consumers and gets
only the events of incidents its department may see (the sharing recorded with each event). An
event's id is ``<incidents sequence>:<dispatch sequence>``; a client that reconnects with
``Last-Event-ID`` (browsers' EventSource do so by themselves) continues right after it, so a
disconnect loses nothing the streams still hold. Without it, the stream starts with events from
now on. A comment line every 15 s keeps proxies from closing an idle connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import StreamingResponse
from nats.aio.client import Client
from nats.js.api import ConsumerConfig, DeliverPolicy
from prometheus_client import Gauge

from retina.services.core import bus
from retina.services.gateway.auth import Principal, require
from retina.services.gateway.media import sees_originals

log = logging.getLogger(__name__)
router = APIRouter(tags=["events"])
KEEPALIVE_SECONDS = 15.0
POLL_SECONDS = 0.5  # how soon a stream notices the client left or the gateway stops
EVENT_ID = re.compile(r"^(\d{1,19}):(\d{1,19})$")
CLIENTS = Gauge("retina_gateway_event_clients", "Clients connected to the live event stream")
# (stream, its subjects, SSE event name) in the order of the event id's two numbers
STREAMS = (
    (bus.INCIDENT_STREAM, bus.INCIDENT_SUBJECTS, "incident"),
    (bus.DISPATCH_STREAM, bus.DISPATCH_SUBJECTS, "dispatch"),
)


class EventSource:
    """The gateway's NATS connection, shared by every live-event client."""

    def __init__(self) -> None:
        self.nc: Client | None = None
        self.stopping = asyncio.Event()  # set on shutdown: every stream ends

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def start(self, nats_url: str, stop: asyncio.Event) -> None:
        """Connect (retrying until NATS answers); the gateway only reads the streams the workers
        and the incident store create."""
        self.nc = await bus.connect(nats_url, "retina-gateway", stop)

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.close()

    async def last_sequences(self) -> list[int]:
        """The last sequence of each stream now (where a new client starts)."""
        js = self._js()
        out = []
        for stream, _, _ in STREAMS:
            try:
                out.append((await js.stream_info(stream)).state.last_seq)
            except Exception:  # a stream not made yet: nothing to skip
                out.append(0)
        return out

    def _js(self):
        if self.nc is None:
            raise HTTPException(503, "live events are not available yet (NATS not connected)")
        return self.nc.jetstream()

    async def stream(self, caller: Principal, after: list[int], request: Request) -> AsyncIterator[str]:
        """The caller's events after the sequences ``after``, as SSE text, until the client leaves."""
        js = self._js()
        queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue(maxsize=1000)
        subscriptions = []
        for index, (stream, subjects, _) in enumerate(STREAMS):

            async def deliver(msg: Any, index: int = index) -> None:
                await queue.put((index, msg))

            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after[index] + 1
            )
            subscriptions.append(
                await js.subscribe(subjects, stream=stream, cb=deliver, ordered_consumer=True, config=config)
            )
        cursor = list(after)
        originals = sees_originals(request, caller)  # plates and unredacted pictures are for them
        CLIENTS.inc()
        try:
            yield f"retry: 2000\nid: {cursor[0]}:{cursor[1]}\n: connected as {caller.name}\n\n"
            quiet_since = time.monotonic()
            while not (self.stopping.is_set() or await request.is_disconnected()):
                try:
                    index, msg = await asyncio.wait_for(queue.get(), timeout=POLL_SECONDS)
                except TimeoutError:
                    if time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                        quiet_since = time.monotonic()
                        yield ": keep-alive\n\n"
                    continue
                quiet_since = time.monotonic()
                cursor[index] = msg.metadata.sequence.stream
                event = visible_event(caller, msg.data, originals)
                if event is not None:
                    name = STREAMS[index][2]
                    yield f"id: {cursor[0]}:{cursor[1]}\nevent: {name}\ndata: {json.dumps(event)}\n\n"
        finally:
            CLIENTS.dec()
            for subscription in subscriptions:
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()


def visible_event(caller: Principal, data: bytes, originals: bool = False) -> dict[str, Any] | None:
    """The event as JSON if the caller's department may see it (None otherwise, or if malformed).
    Without ``originals`` (a caller whose evidence is redacted) an incident's licence plate is left
    out and its unredacted thumbnail emptied: the snapshot, redacted, is one request away."""
    try:
        event = json.loads(data)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    visible_to = event.get("visible_to") or [event.get("department")]
    if not originals:
        event.pop("plate", None)
        if isinstance(event.get("snapshot"), dict):  # kept valid against the schema: empty, not gone
            event["snapshot"]["thumbnail_jpeg_base64"] = ""
    return event if caller.may_see(visible_to) else None


def parse_event_id(value: str | None) -> list[int] | None:
    if not value:
        return None
    match = EVENT_ID.fullmatch(value.strip())
    if match is None:
        raise HTTPException(
            422, "Last-Event-ID: expected '<incidents seq>:<dispatch seq>' as sent in an event id"
        )
    return [int(match.group(1)), int(match.group(2))]


@router.get(
    "/events",
    summary="Live incident and dispatch events (Server-Sent Events, resumable with Last-Event-ID)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    request: Request,
    caller: Annotated[Principal, Depends(require("dispatcher"))],
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> StreamingResponse:
    source: EventSource = request.app.state.events
    after = parse_event_id(last_event_id) or await source.last_sequences()
    return StreamingResponse(
        source.stream(caller, after, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
