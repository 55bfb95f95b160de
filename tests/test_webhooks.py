"""Signed webhooks on case transitions, with a real nats-server (per-role users) and real HTTP
receivers on local ports: the signature, retries until 2xx with one delivery id, a receiver that was
down, a gateway restarted mid-way (the real ``retina gateway serve`` as ``retina up`` starts it),
departments and actions kept apart, and configuration errors naming the field.

Transitions are published as the incident store publishes them (as the ``incidents`` user, on
``retina.cases.<department>.<action>.<case_id>`` with ``Nats-Msg-Id``); the deliverer runs as the
``gateway`` user, so its NATS permissions are those of the real gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nats
import pytest
import yaml
from prometheus_client import REGISTRY

from retina.services.cli.cluster import ClusterPorts, LocalCluster
from retina.services.core import bus, service_auth
from retina.services.core.cases import CaseMessage
from retina.services.core.config import ConfigError, load_config, parse_config
from retina.services.core.ports import free_port
from retina.services.core.webhooks_config import WebhookConfig
from retina.services.gateway.webhooks import load_webhooks, run_webhooks
from tests.conftest import Credentials, NatsServer, wait_for

SECRET = "a-webhook-secret-of-32-characters"


@dataclass
class Received:
    headers: Message
    body: bytes

    @property
    def delivery(self) -> str:
        return self.headers["X-Retina-Delivery"]

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """An HTTP server on a local port recording every POST; it answers ``answers`` in turn, then
    200, each after ``delay`` seconds. ``stop`` and ``start`` again keep the port."""

    def __init__(self, answers: tuple[int, ...] = (), delay: float = 0.0):
        self.port = free_port()
        self.answers = list(answers)
        self.delay = delay
        self.requests: list[Received] = []  # answered
        self.arrived = 0  # POSTs received, answered or not yet
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/retina/cases"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.arrived += 1
                time.sleep(receiver.delay)
                receiver.requests.append(Received(self.headers, body))
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def deliveries(self) -> list[str]:
        return [request.delivery for request in self.requests]


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(answers: tuple[int, ...] = (), delay: float = 0.0, start: bool = True) -> Receiver:
        receiver = Receiver(answers, delay)
        made.append(receiver)
        if start:
            receiver.start()
        return receiver

    yield make
    for receiver in made:
        receiver.stop()


def transition(case_id: str, seq: int, department: str, action: str = "open") -> CaseMessage:
    return CaseMessage(
        case_id=case_id, seq=seq, at=datetime.now(UTC), action=action, actor="system:cases",
        status="closed" if action == "close" else "new", department=department, visible_to=[department],
        category_code="05-05", category_name="机动车乱停放", camera_id="cam-1", zone="kerb",
        grid_code="420102001001", details={"incident_id": f"{case_id}-i{seq}"},
    )  # fmt: skip


async def publish(nats_url: str, token: str, messages: list[CaseMessage]) -> None:
    """Publish as the incident store does (its NATS user, its subjects, its message ids)."""
    nc = await bus.connect(nats_url, "test-incidents", user="incidents", password=token)
    try:
        js = nc.jetstream()
        await bus.ensure_case_stream(js)
        for message in messages:
            await js.publish(message.subject, message.to_json(), headers={"Nats-Msg-Id": message.msg_id})
    finally:
        await nc.close()


def webhook(tmp_path: Path, name: str, url: str, **more: object) -> WebhookConfig:
    secret_file = tmp_path / f"{name}.secret"
    secret_file.write_text(SECRET + "\n")
    retry = {"retry_initial_seconds": 0.1, "retry_max_seconds": 0.4, "timeout_seconds": 2}
    return WebhookConfig.model_validate(
        {"name": name, "url": url, "secret_file": str(secret_file), **retry, **more}
    )


@contextlib.asynccontextmanager
async def delivering(nats_url: str, *configs: WebhookConfig) -> AsyncIterator[None]:
    """The gateway's deliverer in this process, until the block ends (then stopped as on SIGTERM)."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_webhooks(load_webhooks(configs), nats_url, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def as_gateway(monkeypatch: pytest.MonkeyPatch, service_credentials: Credentials) -> None:
    """This process logs in to NATS as the gateway."""
    identity = service_auth.Identity("gateway", service_credentials.token("gateway"))
    monkeypatch.setattr(service_auth, "_identity", identity)


@pytest.fixture
def city_nats(tmp_path: Path, service_credentials: Credentials) -> Iterator[NatsServer]:
    """A nats-server with the roles' users; the gateway may use the consumers of these webhooks."""
    server = NatsServer(
        tmp_path / "nats", service_credentials.nats_config(["city", "a-only", "closes", "all"])
    )
    server.start()
    yield server
    server.stop()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_signature_verifies_with_the_secret_and_fails_with_another(
    tmp_path, receivers, city_nats, service_credentials, as_gateway
):
    receiver = receivers()
    config = webhook(tmp_path, "city", receiver.url)
    sent = transition("case-sig", 1, "jianghan-street")

    async def scenario() -> None:
        async with delivering(city_nats.url, config):
            await publish(city_nats.url, service_credentials.token("incidents"), [sent])
            await until(lambda: len(receiver.requests) == 1, 15, "the transition to be delivered")

    asyncio.run(scenario())
    (request,) = receiver.requests
    timestamp, signature = request.headers["X-Retina-Timestamp"], request.headers["X-Retina-Signature"]

    def expected(secret: bytes) -> str:
        return (
            "sha256=" + hmac.new(secret, f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
        )

    assert hmac.compare_digest(signature, expected(SECRET.encode()))
    assert not hmac.compare_digest(signature, expected(b"another-secret-of-some-length"))
    assert abs(int(timestamp) - time.time()) < 30
    assert request.headers["X-Retina-Event"] == "case.open"
    assert request.headers["X-Retina-Delivery"] == "case-sig:case:1"
    body = request.json
    assert (body["case_id"], body["action"], body["department"], body["sequence"]) == (
        "case-sig", "open", "jianghan-street", 1,
    )  # fmt: skip
    assert body["transition"] == json.loads(sent.to_json())  # the transition exactly as published


def test_a_failing_receiver_gets_the_same_delivery_until_it_answers_2xx_then_no_more(
    tmp_path, receivers, city_nats, service_credentials, as_gateway
):
    receiver = receivers(answers=(500, 500))
    config = webhook(tmp_path, "city", receiver.url)
    before_5xx = sample("retina_webhook_attempts_total", webhook="city", result="5xx")
    before_delivered = sample("retina_webhook_deliveries_total", webhook="city", outcome="delivered")

    async def scenario() -> None:
        async with delivering(city_nats.url, config):
            messages = [transition("case-r", 1, "traffic"), transition("case-r", 2, "traffic", "assign")]
            await publish(city_nats.url, service_credentials.token("incidents"), messages)
            await until(lambda: len(receiver.requests) >= 4, 20, "two failures and two deliveries")
            await asyncio.sleep(1.5)  # several retry intervals: nothing more may come

    asyncio.run(scenario())
    # The first transition three times (500, 500, 200) with one delivery id; the next one only after.
    assert receiver.deliveries() == ["case-r:case:1"] * 3 + ["case-r:case:2"]
    assert sample("retina_webhook_attempts_total", webhook="city", result="5xx") - before_5xx == 2
    assert (
        sample("retina_webhook_deliveries_total", webhook="city", outcome="delivered") - before_delivered == 2
    )


def test_a_receiver_that_was_down_receives_every_transition_once_it_is_up(
    tmp_path, receivers, city_nats, service_credentials, as_gateway
):
    receiver = receivers(start=False)
    config = webhook(tmp_path, "city", receiver.url)
    messages = [
        transition(f"case-{c}", seq, "parks", "open" if seq == 1 else "merge") for c in "xy" for seq in (1, 2)
    ]
    messages.append(transition("case-x", 3, "parks", "close"))

    async def scenario() -> None:
        async with delivering(city_nats.url, config):
            await publish(city_nats.url, service_credentials.token("incidents"), messages)
            await until(
                lambda: sample("retina_webhook_oldest_pending_seconds", webhook="city") > 0.5, 15,
                "the undelivered transition to age",
            )  # fmt: skip
            assert sample("retina_webhook_attempts_total", webhook="city", result="error") > 0
            receiver.start()
            await until(lambda: len(receiver.requests) >= len(messages), 20, "every transition")
            await asyncio.sleep(1)
            await until(
                lambda: sample("retina_webhook_oldest_pending_seconds", webhook="city") == 0, 10,
                "nothing pending",
            )  # fmt: skip

    asyncio.run(scenario())
    assert receiver.deliveries() == [message.msg_id for message in messages]  # all, once, in order


def test_a_webhook_limited_to_a_department_never_receives_another_departments_cases(
    tmp_path, receivers, city_nats, service_credentials, as_gateway
):
    only_a, closes, every = receivers(), receivers(), receivers()
    configs = [
        webhook(tmp_path, "a-only", only_a.url, departments=["dept-a"]),
        webhook(tmp_path, "closes", closes.url, actions=["close"]),
        webhook(tmp_path, "all", every.url),
    ]
    messages = [
        transition("case-a", 1, "dept-a"),
        transition("case-b", 1, "dept-b"),
        transition("case-b", 2, "dept-b", "close"),
        transition("case-a", 2, "dept-a", "close"),
    ]

    async def scenario() -> None:
        async with delivering(city_nats.url, *configs):
            await publish(city_nats.url, service_credentials.token("incidents"), messages)
            await until(lambda: len(every.requests) == 4 and len(closes.requests) == 2, 20, "the deliveries")
            await asyncio.sleep(1)

    asyncio.run(scenario())
    assert every.deliveries() == [m.msg_id for m in messages]
    assert only_a.deliveries() == ["case-a:case:1", "case-a:case:2"]
    assert {r.json["department"] for r in only_a.requests} == {"dept-a"}
    assert closes.deliveries() == ["case-b:case:2", "case-a:case:2"]


def test_a_post_cut_short_by_the_stop_is_handed_back_and_sent_again_at_once(
    tmp_path, receivers, city_nats, service_credentials, as_gateway
):
    """Past the shutdown grace the POST in hand is cancelled: the transition is NAKed, so the next
    deliverer gets it at once rather than after the consumer's ack wait (the time-out + 30 s)."""
    receiver = receivers(delay=3)
    config = webhook(tmp_path, "city", receiver.url, timeout_seconds=10)

    async def scenario() -> None:
        cut = asyncio.create_task(run_webhooks(load_webhooks([config]), city_nats.url, asyncio.Event()))
        await publish(city_nats.url, service_credentials.token("incidents"), [transition("cut", 1, "parks")])
        await until(lambda: receiver.arrived == 1, 15, "the POST to be in flight")
        cut.cancel()
        await asyncio.gather(cut, return_exceptions=True)
        receiver.delay = 0
        started = time.monotonic()
        async with delivering(city_nats.url, config):
            await until(
                lambda: receiver.arrived == 2 and len(receiver.requests) >= 2, 15, "the second attempt"
            )
            assert time.monotonic() - started < 10  # well before the ack wait (40 s) would redeliver it

    asyncio.run(scenario())
    assert receiver.deliveries()[-1] == "cut:case:1"


def test_a_changed_filter_applies_to_the_webhooks_existing_consumer(
    tmp_path, receivers, city_nats, service_credentials, as_gateway
):
    receiver = receivers()
    token = service_credentials.token("incidents")

    async def scenario() -> None:
        async with delivering(city_nats.url, webhook(tmp_path, "city", receiver.url, departments=["dept-a"])):
            await publish(
                city_nats.url, token, [transition("a1", 1, "dept-a"), transition("b1", 1, "dept-b")]
            )
            await until(lambda: len(receiver.requests) == 1, 15, "dept-a's transition")
        async with delivering(city_nats.url, webhook(tmp_path, "city", receiver.url, departments=["dept-b"])):
            await publish(
                city_nats.url, token, [transition("a2", 1, "dept-a"), transition("b2", 1, "dept-b")]
            )
            await until(lambda: len(receiver.requests) == 2, 15, "dept-b's transition")
            await asyncio.sleep(1)

    asyncio.run(scenario())
    assert receiver.deliveries() == ["a1:case:1", "b2:case:1"]


def test_the_gateway_may_use_only_its_webhooks_consumers(city_nats, service_credentials):
    async def scenario() -> None:
        await publish(city_nats.url, service_credentials.token("incidents"), [transition("c", 1, "dept-b")])
        nc = await nats.connect(
            city_nats.url,
            user="gateway",
            password=service_credentials.token("gateway"),
            inbox_prefix=service_auth.inbox_prefix("gateway"),
        )
        try:
            js = nc.jetstream(timeout=1)
            with pytest.raises((TimeoutError, nats.errors.Error)):  # refused: no answer comes
                await js.add_consumer(bus.CASE_STREAM, durable_name="everything", ack_policy="explicit")
            with pytest.raises((TimeoutError, nats.errors.Error)):
                sub = await js.pull_subscribe(
                    bus.CASE_SUBJECTS, durable="webhook-unknown", stream=bus.CASE_STREAM
                )
                await sub.fetch(1, timeout=1)
            direct = await nc.subscribe(bus.CASE_SUBJECTS)  # nor read the subjects directly
            await publish(
                city_nats.url, service_credentials.token("incidents"), [transition("d", 1, "dept-b")]
            )
            with pytest.raises(nats.errors.TimeoutError):
                await direct.next_msg(timeout=1)
            # Its own webhook's consumer it may create and read.
            sub = await js.pull_subscribe(bus.CASE_SUBJECTS, durable="webhook-city", stream=bus.CASE_STREAM)
            (message,) = await sub.fetch(1, timeout=5)
            assert message.subject == "retina.cases.dept-b.open.c"
        finally:
            await nc.close()

    asyncio.run(scenario())
    gateway = service_auth.nats_permissions(["city"])["gateway"]["publish"]["allow"]
    on_cases = [s for s in gateway if f".{bus.CASE_STREAM}." in s]
    assert on_cases and all(".webhook-city" in s for s in on_cases)
    assert not [s for s in service_auth.nats_permissions()["gateway"]["publish"]["allow"] if "CASES" in s]


def test_a_gateway_restarted_midway_loses_nothing(tmp_path, receivers):
    """The real gateway process as ``retina up`` runs it (webhooks from the cluster configuration,
    NATS users from the same), stopped with SIGTERM in the middle of the deliveries, then started
    again while more transitions happen."""
    receiver = receivers(delay=0.2)
    (tmp_path / "secrets-dir").mkdir()
    (tmp_path / "secrets-dir" / "city.secret").write_text(SECRET)
    config = tmp_path / "retina.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "webhooks": [
                    {
                        "name": "city",
                        "url": receiver.url,
                        "secret_file": "secrets-dir/city.secret",
                        "retry_initial_seconds": 0.2,
                        "retry_max_seconds": 1,
                    }
                ]
            }
        )
    )
    cluster = LocalCluster(config, tmp_path / "data", ClusterPorts.free(workers=0), workers=0)
    first = [transition(f"case-{n}", 1, "dept-a") for n in range(15)]
    later = [transition(f"case-{n}", 2, "dept-a", "assign") for n in range(6)]
    try:
        cluster.start_nats()
        cluster.start_gateway()
        asyncio.run(publish(cluster.nats_url, cluster.token("incidents"), first))
        wait_for(lambda: len(receiver.requests) >= 3, 30, "the first deliveries")
        cluster.stop_child("gateway")  # SIGTERM mid-way
        stopped_at = len(receiver.requests)
        assert stopped_at < len(first)
        asyncio.run(publish(cluster.nats_url, cluster.token("incidents"), later))
        time.sleep(0.5)
        assert len(receiver.requests) == stopped_at  # nothing is delivered while it is down
        cluster.start_gateway()
        wait_for(lambda: len(receiver.requests) >= len(first) + len(later), 40, "every transition")
        time.sleep(1)
    finally:
        cluster.stop()
    assert receiver.deliveries() == [m.msg_id for m in first + later]  # nothing lost, none twice
    signed = receiver.requests[-1]
    assert (
        signed.headers["X-Retina-Signature"]
        == "sha256="
        + hmac.new(
            SECRET.encode(), f"{signed.headers['X-Retina-Timestamp']}.".encode() + signed.body, hashlib.sha256
        ).hexdigest()
    )


def test_configuration_errors_name_the_field(tmp_path):
    def errors(webhooks: list[dict]) -> str:
        with pytest.raises(ConfigError) as caught:
            parse_config({"webhooks": webhooks})
        return "\n".join(caught.value.errors)

    good = {"name": "city", "url": "https://dcm.city.gov/in", "secret_file": "city.secret"}
    assert "webhooks[0].url" in errors([{**good, "url": "ftp://dcm.city.gov/in"}])
    assert "webhooks[0].url" in errors([{**good, "url": "https://user:pw@dcm.city.gov/in"}])
    assert "webhooks[1].name" in errors([good, {**good, "name": "two words"}])
    assert "webhooks[0].secret_file" in errors([{"name": "city", "url": "https://dcm.city.gov/in"}])
    assert "webhooks[0].departments" in errors([{**good, "departments": ["a.b"]}])
    assert "webhooks[0].actions" in errors([{**good, "actions": ["approve"]}])
    assert "webhooks[0]: retry_initial_seconds" in errors([{**good, "retry_initial_seconds": 600}])
    assert "used twice: city" in errors([good, good])
    assert "webhooks[0].secret" in errors([{**good, "secret": SECRET}])  # no secret in the text itself

    # The secret file is relative to the configuration file, and read when the gateway starts.
    config = tmp_path / "retina.yaml"
    config.write_text(yaml.safe_dump({"webhooks": [good, {**good, "name": "short"}]}))
    loaded = load_config(config).config.webhooks
    assert loaded[0].secret_file == str(tmp_path / "city.secret")
    with pytest.raises(ConfigError) as missing:
        load_webhooks(loaded)
    assert missing.value.errors == [
        f"webhooks[0].secret_file: {tmp_path / 'city.secret'}: no such file",
        f"webhooks[1].secret_file: {tmp_path / 'city.secret'}: no such file",
    ]
    (tmp_path / "city.secret").write_text("short\n")
    with pytest.raises(ConfigError, match=r"webhooks\[0\].secret_file: .* at least 16 bytes"):
        load_webhooks(loaded)
    (tmp_path / "city.secret").write_text(SECRET + "\n")
    assert [w.secret for w in load_webhooks(loaded)] == [SECRET.encode()] * 2
    assert SECRET not in repr(load_webhooks(loaded))
