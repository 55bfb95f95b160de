"""Signed webhooks: every case transition POSTed to the city's own systems, retried until acknowledged.

The incident store publishes each transition of a case on ``retina.cases.<department>.<action>.
<case_id>`` (stream CASES, :class:`~retina.services.core.cases.CaseMessage`). For each configured
webhook (the ``webhooks`` section, :mod:`retina.services.core.webhooks_config`) the gateway reads
CASES through one durable consumer, ``webhook-<name>``, filtered to the webhook's departments and
actions. Every gateway replica binds the same consumer, so JetStream hands each transition to one of
them; the consumer lets one transition out at a time, so a receiver gets them in the order they
were published (per case and overall).

Each transition is one POST of a JSON body (:func:`envelope`) with the headers

* ``X-Retina-Event``: ``case.<action>`` (``case.open``, ``case.assign``, ...);
* ``X-Retina-Delivery``: the transition's idempotency key ``<case_id>:case:<sequence>``, the same on
  every attempt, from every replica;
* ``X-Retina-Timestamp``: Unix seconds when this attempt was signed;
* ``X-Retina-Signature``: ``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the secret>``.

A 2xx answer acknowledges the transition. Anything else — a time-out, a refused connection, a
redirect, 4xx, 5xx — is retried, waiting ``retry_initial_seconds`` doubling up to
``retry_max_seconds`` (JetStream redelivers it: a NAK with that delay), for as long as it takes.
A transition is acknowledged only after its receiver answered 2xx: when the gateway stops in the
middle of a POST, the transition is handed back (NAK) and sent again, by this or another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Gauge, Histogram
from pydantic import ValidationError

from retina.services.core import bus
from retina.services.core.backoff import Backoff
from retina.services.core.cases import CASE_SUBJECT_PREFIX, CaseMessage
from retina.services.core.errors import ConfigError
from retina.services.core.webhooks_config import WebhookConfig, read_secret

log = logging.getLogger(__name__)

SCHEMA = "retina.webhook/1"
USER_AGENT = "retina-webhooks/1"
ACK_WAIT_MARGIN_SECONDS = 30  # the consumer's ack wait is the POST time-out plus this
MONITOR_SECONDS = 5  # how often the consumer's backlog is read
NATS_ACK_TIMEOUT_SECONDS = 5

DELIVERIES = Counter(
    "retina_webhook_deliveries_total",
    "Case transitions by webhook and outcome: delivered (the receiver answered 2xx) or invalid (not a"
    " case transition; dropped)",
    ["webhook", "outcome"],
)
ATTEMPTS = Counter(
    "retina_webhook_attempts_total",
    "POSTs to webhook receivers by result: 2xx, 3xx, 4xx, 5xx, timeout, error (no answer)",
    ["webhook", "result"],
)
ATTEMPT_SECONDS = Histogram(
    "retina_webhook_attempt_seconds", "Time a webhook receiver took to answer a POST", ["webhook"]
)
OLDEST_PENDING = Gauge(
    "retina_webhook_oldest_pending_seconds",
    "Age of the oldest case transition this gateway is still trying to deliver to the webhook (0: none)",
    ["webhook"],
)
BACKLOG = Gauge(
    "retina_webhook_backlog",
    "Case transitions the webhook's receiver has not acknowledged yet (its consumer's pending ones)",
    ["webhook"],
)


@dataclass(frozen=True)
class Webhook:
    """A configured webhook with its signing secret (read once, at start; never logged)."""

    config: WebhookConfig
    secret: bytes = field(repr=False)

    @property
    def name(self) -> str:
        return self.config.name


def load_webhooks(configs: Sequence[WebhookConfig]) -> list[Webhook]:
    """Each webhook with its secret; one ConfigError naming every secret file that cannot be used."""
    webhooks, problems = [], []
    for index, config in enumerate(configs):
        try:
            webhooks.append(Webhook(config, read_secret(config, index)))
        except ConfigError as exc:
            problems += exc.errors
    if problems:
        raise ConfigError(problems)
    return webhooks


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Retina-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of ``timestamp.body``."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def filter_subjects(config: WebhookConfig) -> list[str]:
    """The CASES subjects a webhook's consumer is filtered to (its departments × its actions)."""
    departments = config.departments or ["*"]
    actions = config.actions or ["*"]
    return [f"{CASE_SUBJECT_PREFIX}.{d}.{a}.*" for d in departments for a in actions]


def consumer_config(config: WebhookConfig) -> ConsumerConfig:
    """The webhook's durable consumer: every transition CASES holds (oldest first), one in flight,
    redelivered until acknowledged."""
    return ConsumerConfig(
        durable_name=config.consumer,
        description=f"webhook {config.name}",
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=config.timeout_seconds + ACK_WAIT_MARGIN_SECONDS,
        max_deliver=-1,
        max_ack_pending=1,  # in order: the next transition waits until this one is acknowledged
        filter_subjects=filter_subjects(config),
    )


def envelope(webhook: str, delivery: str, message: CaseMessage, published: dict[str, Any]) -> bytes:
    """The POST body: what the receiver routes on, and the transition exactly as published."""
    return json.dumps(
        {
            "schema": SCHEMA,
            "webhook": webhook,
            "event": f"case.{message.action}",
            "delivery": delivery,
            "case_id": message.case_id,
            "action": message.action,
            "department": message.department,
            "sequence": message.seq,
            "transition": published,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


async def _case_stream_exists(js: JetStreamContext) -> None:
    """The gateway never creates CASES (the incident store does): until it exists, binding waits."""
    await js.stream_info(bus.CASE_STREAM)


def _result(status: int) -> str:
    return f"{status // 100}xx"


class Deliverer:
    """Delivers one webhook's transitions: POST, then ACK on 2xx or NAK with the backoff delay."""

    def __init__(self, webhook: Webhook, js: JetStreamContext, client: httpx.AsyncClient):
        self.webhook = webhook
        self.config = webhook.config
        self.js = js
        self.client = client
        # Stream sequence → publish time of the transitions this replica holds unacknowledged.
        self.holding: dict[int, float] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Consume the webhook's consumer until ``stop`` (the transition in hand is finished first)."""
        monitor = asyncio.create_task(self._monitor(stop))
        try:
            while not stop.is_set():
                try:
                    await bus.consume(
                        self.js, bus.CASE_STREAM, bus.CASE_SUBJECTS, self.config.consumer,
                        _case_stream_exists, self.handle, stop, batch=1, config=consumer_config(self.config),
                    )  # fmt: skip
                except Exception:  # never leave a webhook undelivered for the rest of the process
                    log.exception(
                        "webhook delivery failed; binding again", extra={"webhook": self.webhook.name}
                    )
                    await asyncio.sleep(1)
        finally:
            monitor.cancel()
            await asyncio.gather(monitor, return_exceptions=True)

    async def handle(self, msg: Msg) -> None:
        """One attempt at one transition."""
        name, meta = self.webhook.name, msg.metadata
        try:
            published = json.loads(msg.data)
            message = CaseMessage.model_validate(published)
        except (ValueError, ValidationError):
            log.error(
                "not a case transition; dropped",
                extra={"webhook": name, "subject": msg.subject, "stream_seq": meta.sequence.stream},
            )
            DELIVERIES.labels(name, "invalid").inc()
            with contextlib.suppress(Exception):
                await msg.term()
            return
        self.holding.setdefault(meta.sequence.stream, meta.timestamp.timestamp())
        self._update_oldest()
        delivery = message.msg_id
        timestamp = str(int(time.time()))
        body = envelope(name, delivery, message, published)
        headers = {
            "Content-Type": "application/json",
            "X-Retina-Event": f"case.{message.action}",
            "X-Retina-Delivery": delivery,
            "X-Retina-Timestamp": timestamp,
            "X-Retina-Signature": sign(self.webhook.secret, timestamp, body),
        }
        where = {
            "webhook": name,
            "case_id": message.case_id,
            "delivery": delivery,
            "attempt": meta.num_delivered,
        }
        status, result = None, "error"
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.config.timeout_seconds):  # the whole answer, not each read
                response = await self.client.post(
                    self.config.url, content=body, headers=headers, timeout=self.config.timeout_seconds
                )
            status, result = response.status_code, _result(response.status_code)
        except (TimeoutError, httpx.TimeoutException):
            result = "timeout"
        except httpx.HTTPError as exc:
            where["error"] = f"{type(exc).__name__}: {exc}"
        except asyncio.CancelledError:  # stopping mid-POST: hand it back to be sent again at once
            with contextlib.suppress(Exception):
                await msg.nak()
            raise
        ATTEMPT_SECONDS.labels(name).observe(time.monotonic() - started)
        ATTEMPTS.labels(name, result).inc()
        if status is not None and 200 <= status < 300:
            await self._acknowledge(msg, where)
            return
        delay = Backoff(
            self.config.retry_initial_seconds, self.config.retry_max_seconds, 0.1, meta.num_delivered - 1
        ).next_delay()
        log.warning(
            "webhook not acknowledged; will retry",
            extra={**where, "result": result, "status": status, "retry_in_seconds": round(delay, 2)},
        )
        with contextlib.suppress(Exception):  # NATS away: redelivered after the ack wait instead
            await msg.nak(delay=delay)

    async def _acknowledge(self, msg: Msg, where: dict[str, Any]) -> None:
        try:
            await msg.ack_sync(timeout=NATS_ACK_TIMEOUT_SECONDS)
        except Exception as exc:  # the receiver has it; NATS will offer it again (same delivery id)
            log.warning("delivered, but the ack did not reach NATS", extra={**where, "error": repr(exc)})
            return
        self.holding.pop(msg.metadata.sequence.stream, None)
        self._update_oldest()
        DELIVERIES.labels(self.webhook.name, "delivered").inc()
        log.info("webhook delivered", extra=where)

    def _update_oldest(self) -> None:
        oldest = min(self.holding.values(), default=None)
        OLDEST_PENDING.labels(self.webhook.name).set(0 if oldest is None else max(0.0, time.time() - oldest))

    async def _monitor(self, stop: asyncio.Event) -> None:
        """Every few seconds: the consumer's backlog, and forget what another replica delivered."""
        while not stop.is_set():
            with contextlib.suppress(Exception):  # not bound yet, or NATS away: try again later
                info = await self.js.consumer_info(bus.CASE_STREAM, self.config.consumer)
                BACKLOG.labels(self.webhook.name).set(info.num_pending + info.num_ack_pending)
                floor = info.ack_floor.stream_seq if info.ack_floor else 0
                for seq in [s for s in self.holding if s <= floor or not info.num_ack_pending]:
                    del self.holding[seq]
            self._update_oldest()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), MONITOR_SECONDS)


async def run_webhooks(webhooks: Sequence[Webhook], nats_url: str, stop: asyncio.Event) -> None:
    """Deliver every webhook's transitions until ``stop``; nothing to do without webhooks."""
    if not webhooks:
        return
    try:
        nc = await bus.connect(nats_url, "retina-gateway-webhooks", stop)
    except (TimeoutError, OSError, nats.errors.NoServersError):
        return  # stopped before NATS answered
    log.info("webhooks delivering", extra={"webhooks": [w.name for w in webhooks]})
    try:
        async with httpx.AsyncClient(headers={"User-Agent": USER_AGENT}, follow_redirects=False) as client:
            js = nc.jetstream()
            await asyncio.gather(*(Deliverer(webhook, js, client).run(stop) for webhook in webhooks))
    finally:
        with contextlib.suppress(Exception):
            await nc.flush(timeout=2)  # the last acks and NAKs reach the server
        with contextlib.suppress(Exception):
            await nc.close()
