"""Publishes an outbox to JetStream: in order, removing each message only once it is acknowledged.

While NATS is unreachable every message waits; a stream or bucket found missing is recreated
(:func:`retina.services.core.bus.ensure_all`) and the message sent again. A message that JetStream itself
keeps rejecting while connected (after ``PARK_AFTER_REJECTIONS`` tries) is parked in the outbox's
``parked`` table with the reason, so it cannot hold back every later message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import datetime

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.object_store import ObjectStore

from retina.services.core import bus
from retina.services.core.backoff import Backoff
from retina.services.core.outbox import Outbox, OutboxItem
from retina.services.worker import metrics

log = logging.getLogger(__name__)

PARK_AFTER_REJECTIONS = 5
TIMED_EVENTS = ("new", "update")  # incident events whose alert latency is measured


def frame_time(payload: bytes) -> float | None:
    """When the frame behind an incident event was taken (its ``last_seen_at``, epoch seconds)."""
    try:
        return datetime.fromisoformat(json.loads(payload)["last_seen_at"]).timestamp()
    except (ValueError, KeyError, TypeError):
        return None


class OutboxPublisher:
    """One outbox (``name``: incidents or features) and the task that drains it into JetStream."""

    def __init__(self, outbox: Outbox, name: str):
        self.outbox = outbox
        self.name = name
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._media: ObjectStore | None = None
        metrics.OUTBOX_PENDING.labels(name).set(len(outbox))

    def connected(self, nc: Client, js: JetStreamContext, media: ObjectStore | None) -> None:
        """NATS is ready (streams exist): start publishing."""
        self._nc, self._js, self._media = nc, js, media
        self._wake.set()

    def wake(self) -> None:
        """New messages are in the outbox (callable from any thread)."""
        metrics.OUTBOX_PENDING.labels(self.name).set(len(self.outbox))
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set and the outbox is empty (or NATS is unreachable)."""
        self._loop = asyncio.get_running_loop()
        backoff = Backoff(initial=0.5, maximum=5.0)
        rejections: dict[int, int] = {}
        while True:
            items = self.outbox.peek(64)
            if not items or self._js is None:
                if stop.is_set():
                    return
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                continue
            for item in items:
                try:
                    if item.media is not None:
                        await self._media.put(item.media_name, item.media)
                    if item.subject:  # media-only items (evidence clips) have no message
                        await self._js.publish(
                            item.subject, item.payload, timeout=5, headers={"Nats-Msg-Id": item.msg_id}
                        )
                except Exception as exc:
                    metrics.PUBLISH_ERRORS.labels(self.name).inc()
                    reason = str(exc) or type(exc).__name__
                    log.warning("publish failed, will retry", extra={"msg_id": item.msg_id, "error": reason})
                    if bus.resource_missing(exc):  # a stream or bucket was deleted: recreate, retry
                        with contextlib.suppress(Exception):
                            self._media = await bus.ensure_all(self._js)
                    elif self._nc.is_connected and not isinstance(
                        exc, TimeoutError | nats.errors.TimeoutError
                    ):
                        rejections[item.seq] = rejections.get(item.seq, 0) + 1
                        if rejections[item.seq] >= PARK_AFTER_REJECTIONS:
                            self.outbox.park(item.seq, reason)
                            metrics.PARKED.labels(self.name).inc()
                            log.error(
                                "JetStream keeps rejecting a message; parked", extra={"msg_id": item.msg_id}
                            )
                            continue
                    if stop.is_set():
                        return
                    await asyncio.sleep(backoff.next_delay())
                    break
                self.outbox.remove(item.seq)
                metrics.PUBLISHED.labels(self.name).inc()
                if self.name == "incidents" and item.kind in TIMED_EVENTS:
                    self._observe_latency(item)
                metrics.OUTBOX_PENDING.labels(self.name).set(len(self.outbox))
                backoff.reset()

    def _observe_latency(self, item: OutboxItem) -> None:
        taken = frame_time(item.payload)
        if taken is not None:
            metrics.ALERT_LATENCY.labels(item.kind).observe(max(time.time() - taken, 0.0))
