"""NATS JetStream plumbing shared by the services: connection, streams, subjects."""

from __future__ import annotations

import asyncio
import logging
import random

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BucketNotFoundError
from nats.js.object_store import ObjectStore

log = logging.getLogger(__name__)

INCIDENT_STREAM = "INCIDENTS"
INCIDENT_SUBJECTS = "retina.incidents.>"
MEDIA_BUCKET = "retina-media"
# Long enough that a worker re-sending after a NATS outage is still de-duplicated by the server.
DUPLICATE_WINDOW_SECONDS = 15 * 60
INCIDENT_MAX_AGE_SECONDS = 90 * 24 * 3600
MEDIA_TTL_SECONDS = 7 * 24 * 3600


def camera_status_subject(camera_id: str) -> str:
    return f"retina.cameras.{camera_id}.status"


async def connect(url: str, name: str, stop: asyncio.Event | None = None) -> Client:
    """Connect to NATS, retrying with backoff until it answers (or ``stop`` is set).

    Once connected, the client reconnects by itself forever.
    """
    delay = 0.5
    while True:
        try:
            return await nats.connect(
                url,
                name=name,
                connect_timeout=3,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
            )
        except (TimeoutError, OSError, nats.errors.NoServersError) as exc:
            if stop is not None and stop.is_set():
                raise
            log.warning("NATS not reachable, retrying", extra={"nats_url": url, "error": str(exc)})
            await asyncio.sleep(delay + random.uniform(0, delay / 2))
            delay = min(delay * 2, 10)


async def ensure_incident_stream(js: JetStreamContext) -> None:
    """Create (or update) the INCIDENTS stream: file storage, long de-duplication window."""
    config = StreamConfig(
        name=INCIDENT_STREAM,
        subjects=[INCIDENT_SUBJECTS],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=INCIDENT_MAX_AGE_SECONDS,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError:
        await js.update_stream(config)


async def media_store(js: JetStreamContext) -> ObjectStore:
    """The object store bucket that carries snapshot JPEGs from workers to the incident store."""
    try:
        return await js.object_store(MEDIA_BUCKET)
    except BucketNotFoundError:
        return await js.create_object_store(
            MEDIA_BUCKET,
            config=ObjectStoreConfig(
                description="retina incident snapshots", ttl=MEDIA_TTL_SECONDS, storage=StorageType.FILE
            ),
        )
