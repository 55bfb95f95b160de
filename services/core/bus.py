"""NATS JetStream plumbing shared by the services: connection, streams, subjects.

The bus heals itself: a stream, durable consumer or object-store bucket found missing (deleted by
hand, or lost with a JetStream store) is recreated by the service that needs it, with a warning in
the log and ``retina_bus_recreated_total{resource}`` counting it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BucketNotFoundError
from nats.js.object_store import ObjectStore
from prometheus_client import Counter

from retina.services.core import service_auth
from retina.services.core.backoff import Backoff

log = logging.getLogger(__name__)

RECREATED = Counter(
    "retina_bus_recreated_total", "JetStream streams, consumers and buckets found missing and recreated",
    ["resource"],
)  # fmt: skip

INCIDENT_STREAM = "INCIDENTS"
INCIDENT_SUBJECTS = "retina.incidents.>"
FEATURE_STREAM = "FEATURES"
FEATURE_SUBJECTS = "retina.features.>"
FEATURE_MAX_AGE_SECONDS = 31 * 24 * 3600  # the search index can be rebuilt from a month of features
# Steps of the dispatch loop (services/core/incident.py DispatchMessage), published by the incident store.
DISPATCH_STREAM = "DISPATCH"
DISPATCH_SUBJECTS = "retina.dispatch.>"
DISPATCH_MAX_AGE_SECONDS = 90 * 24 * 3600
# Transitions of city-management cases (services/core/cases.py CaseMessage), published by the incident
# store: kept a year, for cities' assessment periods and for integrations that replay them.
CASE_STREAM = "CASES"
CASE_SUBJECTS = "retina.cases.>"
CASE_MAX_AGE_SECONDS = 366 * 24 * 3600
MEDIA_BUCKET = "retina-media"
# Long enough that a worker re-sending after a NATS outage is still de-duplicated by the server.
DUPLICATE_WINDOW_SECONDS = 15 * 60
INCIDENT_MAX_AGE_SECONDS = 90 * 24 * 3600
MEDIA_TTL_SECONDS = 7 * 24 * 3600
GIVE_UP_AFTER_DELIVERIES = 5  # a message that keeps failing to be stored stops blocking the others


def camera_status_subject(camera_id: str) -> str:
    return f"retina.cameras.{camera_id}.status"


async def connect(
    url: str,
    name: str,
    stop: asyncio.Event | None = None,
    *,
    user: str | None = None,
    password: str | None = None,
) -> Client:
    """Connect to NATS, retrying with backoff until it answers (or ``stop`` is set).

    Logs in as ``user``/``password``, by default as this process's role with its token
    (:func:`~retina.services.core.service_auth.identity`; none: anonymous), with that role's own
    reply subjects. Once connected, the client reconnects by itself forever.
    """
    if user is None:
        own = service_auth.identity()
        user, password = (own.role, own.token) if own.token else (None, None)
    credentials = (
        {"user": user, "password": password, "inbox_prefix": service_auth.inbox_prefix(user)} if user else {}
    )
    backoff = Backoff(initial=0.5, maximum=10)
    while True:
        try:
            return await nats.connect(
                url,
                name=name,
                connect_timeout=3,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
                **credentials,
            )
        except (TimeoutError, OSError, nats.errors.NoServersError) as exc:
            if stop is not None and stop.is_set():
                raise
            log.warning("NATS not reachable, retrying", extra={"nats_url": url, "error": str(exc)})
            await asyncio.sleep(backoff.next_delay())


async def ensure_incident_stream(js: JetStreamContext) -> None:
    """Create (or update) the INCIDENTS stream: file storage, long de-duplication window."""
    await _ensure_stream(js, INCIDENT_STREAM, INCIDENT_SUBJECTS, INCIDENT_MAX_AGE_SECONDS)


async def ensure_feature_stream(js: JetStreamContext) -> None:
    """Create (or update) the FEATURES stream of per-track appearance records (search by image)."""
    await _ensure_stream(js, FEATURE_STREAM, FEATURE_SUBJECTS, FEATURE_MAX_AGE_SECONDS)


async def ensure_dispatch_stream(js: JetStreamContext) -> None:
    """Create (or update) the DISPATCH stream of dispatch-loop steps (assign, handle, verify, ...)."""
    await _ensure_stream(js, DISPATCH_STREAM, DISPATCH_SUBJECTS, DISPATCH_MAX_AGE_SECONDS)


async def ensure_dispatch(js: JetStreamContext) -> None:
    """Create the DISPATCH stream if it is missing (counted as recreated when it had been seen)."""
    await _recreate_stream_if_missing(js, DISPATCH_STREAM, ensure_dispatch_stream)


async def ensure_case_stream(js: JetStreamContext) -> None:
    """Create (or update) the CASES stream of case transitions (open, merge, assign, ..., close)."""
    await _ensure_stream(js, CASE_STREAM, CASE_SUBJECTS, CASE_MAX_AGE_SECONDS)


async def ensure_cases(js: JetStreamContext) -> None:
    """Create the CASES stream if it is missing (counted as recreated when it had been seen)."""
    await _recreate_stream_if_missing(js, CASE_STREAM, ensure_case_stream)


async def _ensure_stream(js: JetStreamContext, name: str, subjects: str, max_age: float) -> None:
    config = StreamConfig(
        name=name,
        subjects=[subjects],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=max_age,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError:  # it exists: update it, keeping the replicas ops gave it
        config.num_replicas = (await js.stream_info(name)).config.num_replicas
        await js.update_stream(config)


async def durable_subscription(
    js: JetStreamContext,
    stream: str,
    subjects: str,
    durable: str,
    ensure_stream: Callable[[JetStreamContext], Awaitable[None]],
    stop: asyncio.Event,
    *,
    replay: bool = False,
    inactive_threshold: float | None = None,
    config: ConsumerConfig | None = None,
) -> JetStreamContext.PullSubscription | None:
    """Bind a durable pull consumer, retrying until JetStream is ready; None if stopped first.

    A missing stream or consumer is (re)created and counted. ``replay`` deletes the consumer first,
    so the whole stream is delivered again (a consumer whose store was lost rebuilds it this way).
    ``inactive_threshold`` (seconds): JetStream deletes a consumer this long without a reader (one
    created so; an existing consumer keeps its configuration). ``config``: the consumer's own
    configuration instead of the default (explicit acks, from the first message, 30 s to ack); an
    existing consumer is updated to it, so a changed filter or limit applies on the next start.
    """
    if config is not None:
        config = config.evolve(name=durable, durable_name=durable)
    while not stop.is_set():
        try:
            await _recreate_stream_if_missing(js, stream, ensure_stream)
            if replay:
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await js.delete_consumer(stream, durable)
                replay = False
            else:
                try:
                    await js.consumer_info(stream, durable)
                    _exists(f"consumer {stream}/{durable}")
                    if config is not None:
                        await js.add_consumer(stream, config)  # the same name: an update
                except nats.js.errors.NotFoundError:
                    _recreated(f"consumer {stream}/{durable}")
            return await js.pull_subscribe(
                subjects,
                durable=durable,
                stream=stream,
                config=config
                or ConsumerConfig(
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=30,
                    inactive_threshold=inactive_threshold,
                ),
            )
        except Exception as exc:
            log.warning("JetStream not ready, retrying", extra={"stream": stream, "error": str(exc)})
            await asyncio.sleep(1)
    return None


async def _recreate_stream_if_missing(
    js: JetStreamContext, stream: str, ensure_stream: Callable[[JetStreamContext], Awaitable[None]]
) -> None:
    """Create or update ``stream``; count it as recreated when it was missing."""
    try:
        await js.stream_info(stream)
        missing = False
        _exists(f"stream {stream}")
    except nats.js.errors.NotFoundError:
        missing = True
    await ensure_stream(js)
    if missing:
        _recreated(f"stream {stream}")


_seen: set[str] = set()  # resources this process has seen exist: missing later means deleted


def _exists(resource: str) -> None:
    _seen.add(resource)


def _recreated(resource: str) -> None:
    """A missing resource was just created: count it when this process had seen it before."""
    if resource in _seen:
        RECREATED.labels(resource).inc()
        log.warning("JetStream resource was missing; recreated it", extra={"resource": resource})
    else:
        log.info("JetStream resource created", extra={"resource": resource})
        _seen.add(resource)


async def consume(
    js: JetStreamContext,
    stream: str,
    subjects: str,
    durable: str,
    ensure_stream: Callable[[JetStreamContext], Awaitable[None]],
    handle: Callable[[Msg], Awaitable[None]],
    stop: asyncio.Event,
    *,
    replay: bool = False,
    batch: int = 32,
    inactive_threshold: float | None = None,
    config: ConsumerConfig | None = None,
) -> None:
    """Bind the durable consumer (see :func:`durable_subscription`), fetch messages and hand each
    to ``handle`` (which acks, naks or terms it) until ``stop``.

    When the stream or consumer disappears, both are recreated and bound again: the bus heals.
    """

    async def subscribe(replay: bool) -> JetStreamContext.PullSubscription | None:
        return await durable_subscription(
            js, stream, subjects, durable, ensure_stream, stop,
            replay=replay, inactive_threshold=inactive_threshold, config=config,
        )  # fmt: skip

    subscription = await subscribe(replay)
    log.info("consuming", extra={"stream": stream, "consumer": durable, "replay": replay})
    while subscription is not None and not stop.is_set():
        try:
            messages = await subscription.fetch(batch, timeout=1)
        except TimeoutError:
            continue
        except (nats.js.errors.ServiceUnavailableError, nats.js.errors.NotFoundError) as exc:
            log.warning("stream or consumer gone; binding again", extra={"error": repr(exc)})
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
            subscription = await subscribe(False)
            continue
        except Exception as exc:  # NATS restarting: the client reconnects by itself
            log.warning("fetch failed, retrying", extra={"error": str(exc) or type(exc).__name__})
            await asyncio.sleep(1)
            continue
        for msg in messages:
            await handle(msg)


def resource_missing(exc: BaseException) -> bool:
    """True when a JetStream call failed because a stream or bucket does not exist."""
    return isinstance(exc, nats.js.errors.NoStreamResponseError | nats.js.errors.BucketNotFoundError) or (
        isinstance(exc, nats.js.errors.NotFoundError)
        and not isinstance(exc, nats.js.errors.ObjectNotFoundError)
    )


async def ensure_all(js: JetStreamContext) -> ObjectStore:
    """Create every stream and the media bucket a publisher needs (counting those that were missing);
    return the media bucket."""
    await _recreate_stream_if_missing(js, INCIDENT_STREAM, ensure_incident_stream)
    await _recreate_stream_if_missing(js, FEATURE_STREAM, ensure_feature_stream)
    await ensure_dispatch(js)
    return await media_store(js)


async def redeliver_or_give_up(msg: Msg, what: str, extra: dict) -> bool:
    """Call from an ``except`` block when storing ``msg`` failed: ask JetStream to redeliver it in
    5 s, or, after ``GIVE_UP_AFTER_DELIVERIES`` deliveries, terminate it (it stays in the stream for
    a later replay). Logs the error either way; returns True when it gave up."""
    if msg.metadata.num_delivered >= GIVE_UP_AFTER_DELIVERIES:
        log.exception(f"{what} failed repeatedly; left in the stream, not stored", extra=extra)
        await msg.term()
        return True
    log.exception(f"could not store {what}; it will be redelivered", extra=extra)
    await msg.nak(delay=5)
    return False


async def media_store(js: JetStreamContext) -> ObjectStore:
    """The object store bucket that carries snapshot JPEGs from workers to the incident store."""
    try:
        bucket = await js.object_store(MEDIA_BUCKET)
        _exists(f"bucket {MEDIA_BUCKET}")
        return bucket
    except BucketNotFoundError:
        _recreated(f"bucket {MEDIA_BUCKET}")
        return await js.create_object_store(
            MEDIA_BUCKET,
            config=ObjectStoreConfig(
                description="retina incident snapshots", ttl=MEDIA_TTL_SECONDS, storage=StorageType.FILE
            ),
        )
