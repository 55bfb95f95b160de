"""Nothing inside the cluster answers without credentials (issue #11): every forged gRPC call and
NATS action of the issue is refused by real services and a real nats-server, while each role can
still do its own work (streams and consumers heal themselves with the permissions they have)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import nats
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from retina.services.cli.clients import wait_until_serving
from retina.services.core import bus, service_auth
from retina.services.core.ports import free_port
from retina.services.core.processes import nats_server_binary, start_python, stop_process
from retina.v1 import (
    common_pb2,
    incidents_pb2,
    incidents_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
)
from tests.conftest import Credentials, NatsServer, wait_for

# The access table, spelled out: a change to service_auth.ACCESS must change this too.
EVERYONE = {"worker", "gateway", "operator", "search", "incidents", "scheduler"}
ADMINS = {"gateway", "operator"}
EXPECTED_ACCESS = {
    "RegistryService/CreateCamera": ADMINS,
    "RegistryService/UpdateCamera": ADMINS,
    "RegistryService/DeleteCamera": ADMINS,
    "RegistryService/GetCamera": EVERYONE,
    "RegistryService/ListCameras": EVERYONE,
    "RegistryService/WatchCameras": EVERYONE,
    "RegistryService/ReportHealth": {"worker"},
    "RegistryService/CaptureReference": ADMINS,
    "RegistryService/SetReference": {"worker"},
    "SchedulerService/RegisterWorker": {"worker"},
    "SchedulerService/Heartbeat": {"worker"},
    "SchedulerService/DrainWorker": {"worker"},
    "SchedulerService/GetClusterStatus": ADMINS,
    "WorkerService/AssignCamera": {"scheduler", "operator"},  # operator: `retina assign`
    "WorkerService/ReleaseCamera": {"scheduler", "operator"},
    "WorkerService/GetStatus": {"scheduler", *ADMINS},
    "WorkerService/CaptureFrame": ADMINS,
    "WorkerService/CaptureReference": {"scheduler", *ADMINS},
    "IncidentService/ListIncidents": {"scheduler", "search", *ADMINS},
    "IncidentService/GetIncident": {"scheduler", "search", *ADMINS},
    "IncidentService/GetIncidentHistory": {"scheduler", "search", *ADMINS},
    "IncidentService/GetMedia": {"scheduler", "search", *ADMINS},
    "IncidentService/Dispatch": ADMINS,
    "IncidentService/GetDispatchStats": ADMINS,
    "IncidentService/ListCases": ADMINS,
    "IncidentService/GetCase": ADMINS,
    "IncidentService/GetCaseHistory": ADMINS,
    "IncidentService/CaseStep": ADMINS,
    "IncidentService/GetAssessment": ADMINS,
    "IncidentService/ReportCase": ADMINS,
    "SearchService/Search": ADMINS,
    "SearchService/GetIndexStats": ADMINS,
    "SearchService/GetCrop": ADMINS,
    "SearchService/SearchPlates": ADMINS,
}


def test_the_access_table_covers_every_rpc_of_the_protos():
    from retina.v1 import incidents_pb2, registry_pb2, scheduler_pb2, search_pb2, worker_pb2

    assert {m: set(r) for m, r in service_auth.ACCESS.items()} == {
        f"/retina.v1.{m}": r for m, r in EXPECTED_ACCESS.items()
    }
    rpcs = {
        f"/{service.full_name}/{method.name}"
        for module in (incidents_pb2, registry_pb2, scheduler_pb2, search_pb2, worker_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert rpcs == set(service_auth.ACCESS), "every RPC needs an entry (unlisted ones are refused to all)"


def test_each_role_may_call_exactly_what_the_table_allows(service_credentials: Credentials):
    auth = service_credentials.authenticator()
    for method, allowed in service_auth.ACCESS.items():
        for role in service_auth.ROLES:
            bearer = [("authorization", f"Bearer {service_credentials.token(role)}")]
            refusal = auth.refusal(method, bearer)
            if role in allowed:
                assert refusal is None, (role, method)
            else:
                assert refusal == (grpc.StatusCode.PERMISSION_DENIED, f"role {role} may not call {method}")
        assert auth.refusal(method, [])[0] == grpc.StatusCode.UNAUTHENTICATED
        assert (
            auth.refusal(method, [("authorization", "Bearer forged")])[0] == grpc.StatusCode.UNAUTHENTICATED
        )
    operator = [("authorization", f"Bearer {service_credentials.token('operator')}")]
    assert (
        auth.refusal("/retina.v1.SchedulerService/Unlisted", operator)[0] == grpc.StatusCode.PERMISSION_DENIED
    )
    assert auth.refusal("/grpc.health.v1.Health/Check", []) is None


def test_credentials_are_private_kept_and_only_digests_are_shared(tmp_path: Path):
    folder = tmp_path / "secrets"
    auth_file = service_auth.create_credentials(folder)
    tokens = {
        role: service_auth.read_token(service_auth.token_path(folder, role)) for role in service_auth.ROLES
    }
    assert len(set(tokens.values())) == len(service_auth.ROLES) and all(len(t) >= 43 for t in tokens.values())
    for role in service_auth.ROLES:
        assert stat.S_IMODE(service_auth.token_path(folder, role).stat().st_mode) == 0o600
    digests = json.loads(auth_file.read_text())
    assert digests == {role: service_auth.digest(token) for role, token in tokens.items()}
    assert not any(token in auth_file.read_text() for token in tokens.values())
    service_auth.create_credentials(folder)  # a second `retina up` keeps the tokens
    assert json.loads(auth_file.read_text()) == digests


def test_kubernetes_credentials_and_their_nats_users_are_valid(tmp_path: Path):
    """k8s/README.md's step: tokens, digests and the file k8s/nats.yaml includes, which nats-server takes."""
    module = [sys.executable, "-m", "retina.services.core.service_auth", str(tmp_path / "secrets")]
    subprocess.run(module, check=True, capture_output=True, timeout=60)
    (tmp_path / "auth").mkdir()
    (tmp_path / "auth" / "auth.conf").write_text((tmp_path / "secrets" / "nats-auth.conf").read_text())
    config = tmp_path / "nats.conf"
    config.write_text(
        f'port: 4222\ninclude "auth/auth.conf"\njetstream {{ store_dir: "{tmp_path / "js"}" }}\n'
    )
    checked = subprocess.run([nats_server_binary(), "-c", str(config), "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert json.loads((tmp_path / "secrets" / service_auth.AUTH_FILE).read_text()).keys() == set(
        service_auth.ROLES
    )


# -- real services --------------------------------------------------------------------------------


@dataclass
class Services:
    scheduler: str
    incidents: str
    nats_url: str
    credentials: Credentials
    logs: Path


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """A secured nats-server, the incident store and the scheduler, started as `retina up` starts them."""
    base = tmp_path_factory.mktemp("cluster")
    credentials = Credentials(base / "secrets")
    nats_server = NatsServer(base / "nats", credentials.nats_config())
    nats_server.start()
    ports = {
        name: free_port() for name in ("scheduler", "scheduler_metrics", "incidents", "incidents_metrics")
    }
    incidents = f"127.0.0.1:{ports['incidents']}"
    common = {
        "incidents": ["incidents", "serve", "--nats-url", nats_server.url],
        "scheduler": ["scheduler", "serve", "--incidents-address", incidents],
    }
    commands = {
        name: [*args, "--data-dir", str(base / name), "--grpc-port", str(ports[name]),
               "--metrics-port", str(ports[f"{name}_metrics"]), *credentials.flags(name)]
        for name, args in common.items()
    }  # fmt: skip
    processes = {name: start_python(args, log_file=base / f"{name}.log") for name, args in commands.items()}
    try:
        scheduler = f"127.0.0.1:{ports['scheduler']}"
        wait_until_serving(incidents, 60, processes["incidents"])
        wait_until_serving(scheduler, 60, processes["scheduler"])
        yield Services(scheduler, incidents, nats_server.url, credentials, base)
    finally:
        for name, process in processes.items():
            stop_process(process, name)
        nats_server.stop()


def refused(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, timeout=5, **kwargs)
    return caught.value


REGISTRATION = scheduler_pb2.RegisterWorkerRequest(
    worker_id="worker-forged", address="127.0.0.1:9", decode_capacity=100, model_key="m",
    devices=[scheduler_pb2.Device(device_id="cpu:0", capacity_fps={"m": 10})],
)  # fmt: skip


def test_a_forged_worker_cannot_register_or_heartbeat(services: Services):
    anonymous = scheduler_pb2_grpc.SchedulerServiceStub(grpc.insecure_channel(services.scheduler))
    for call, request in (
        (anonymous.RegisterWorker, REGISTRATION),
        (anonymous.Heartbeat, scheduler_pb2.HeartbeatRequest(worker_id="worker-forged")),
    ):
        error = refused(call, request)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED and "no credentials" in error.details()
    forged = scheduler_pb2_grpc.SchedulerServiceStub(service_auth.channel(services.scheduler, "not-a-token"))
    assert refused(forged.RegisterWorker, REGISTRATION).code() == grpc.StatusCode.UNAUTHENTICATED
    for role in ("gateway", "operator", "search", "incidents", "scheduler"):
        stub = scheduler_pb2_grpc.SchedulerServiceStub(services.credentials.channel(services.scheduler, role))
        for call, request in (
            (stub.RegisterWorker, REGISTRATION),
            (stub.Heartbeat, scheduler_pb2.HeartbeatRequest(worker_id="worker-forged")),
        ):
            error = refused(call, request)
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED
            assert error.details().startswith(f"role {role} may not call /retina.v1.SchedulerService/")
    operator = scheduler_pb2_grpc.SchedulerServiceStub(services.credentials.channel(services.scheduler))
    assert "worker-forged" not in {w.worker_id for w in operator.GetClusterStatus(
        scheduler_pb2.GetClusterStatusRequest(), timeout=5).workers}  # fmt: skip
    worker = scheduler_pb2_grpc.SchedulerServiceStub(
        services.credentials.channel(services.scheduler, "worker")
    )
    assert worker.RegisterWorker(REGISTRATION, timeout=5).heartbeat_seconds > 0  # the real role may


def test_only_the_gateway_and_operator_change_cameras(services: Services):
    camera = common_pb2.Camera(id="cam-auth", url="rtsp://127.0.0.1:9/x", algorithms=[])
    anonymous = registry_pb2_grpc.RegistryServiceStub(grpc.insecure_channel(services.scheduler))
    error = refused(anonymous.UpdateCamera, registry_pb2.UpdateCameraRequest(camera=camera))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    watch = anonymous.WatchCameras(registry_pb2.WatchCamerasRequest(), timeout=5)  # a stream is refused too
    with pytest.raises(grpc.RpcError) as caught:
        next(iter(watch))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    worker = registry_pb2_grpc.RegistryServiceStub(services.credentials.channel(services.scheduler, "worker"))
    error = refused(worker.UpdateCamera, registry_pb2.UpdateCameraRequest(camera=camera))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == "role worker may not call /retina.v1.RegistryService/UpdateCamera"
    assert worker.ListCameras(registry_pb2.ListCamerasRequest(), timeout=5) is not None  # reading is fine
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(services.scheduler))  # probes stay open
    assert (
        health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
        == health_pb2.HealthCheckResponse.SERVING
    )


def test_incidents_cannot_be_listed_anonymously(services: Services):
    request = incidents_pb2.ListIncidentsRequest(limit=10)
    anonymous = incidents_pb2_grpc.IncidentServiceStub(grpc.insecure_channel(services.incidents))
    assert refused(anonymous.ListIncidents, request).code() == grpc.StatusCode.UNAUTHENTICATED
    worker = incidents_pb2_grpc.IncidentServiceStub(
        services.credentials.channel(services.incidents, "worker")
    )
    assert refused(worker.ListIncidents, request).code() == grpc.StatusCode.PERMISSION_DENIED
    operator = incidents_pb2_grpc.IncidentServiceStub(services.credentials.channel(services.incidents))
    assert operator.ListIncidents(request, timeout=5).incidents is not None
    # the store logged in to NATS as `incidents` and consumes INCIDENTS with that role's permissions
    wait_for(
        lambda: '"msg": "consuming"' in (services.logs / "incidents.log").read_text(), 30, "the consumer"
    )


def _retina(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("RETINA_")}
    return subprocess.run(
        [sys.executable, "-m", "retina.services.cli", *args], env={**clean, **env}, cwd=cwd,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_client_commands_send_the_operator_token_or_say_where_it_is(services: Services, tmp_path: Path):
    run = _retina("status", "--scheduler", services.scheduler, cwd=tmp_path)  # no var/secrets here
    assert run.returncode == 2
    assert "no file var/secrets/operator.token: run retina up first, or pass --token-file" in run.stderr
    operator = str(services.credentials.token_file("operator"))
    run = _retina("--token-file", operator, "status", "--scheduler", services.scheduler, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    worker = str(services.credentials.token_file("worker"))
    run = _retina("status", "--scheduler", services.scheduler, RETINA_TOKEN_FILE=worker)
    assert run.returncode == 1
    assert (
        "error: PERMISSION_DENIED: role worker may not call /retina.v1.SchedulerService/GetClusterStatus"
        in run.stderr
    )


def test_a_service_without_auth_file_or_with_another_roles_token_refuses_to_start(
    tmp_path: Path, service_credentials: Credentials
):
    ports = ["--grpc-port", str(free_port()), "--metrics-port", str(free_port())]
    run = _retina("scheduler", "serve", "--data-dir", str(tmp_path / "s"), *ports)
    assert run.returncode == 2, run.stderr
    assert "config error: auth_file: retina scheduler serve needs the digests" in run.stderr
    assert "--allow-unauthenticated for development only" in run.stderr
    wrong = [
        "--auth-file",
        str(service_credentials.auth_file),
        "--token-file",
        str(service_credentials.token_file("worker")),
    ]
    run = _retina("scheduler", "serve", "--data-dir", str(tmp_path / "s"), *ports, *wrong)
    assert run.returncode == 2, run.stderr
    assert "is not the scheduler token of auth file" in run.stderr


def test_allow_unauthenticated_accepts_anonymous_calls_and_says_so(tmp_path: Path):
    port = free_port()
    log = tmp_path / "scheduler.log"
    args = ["scheduler", "serve", "--data-dir", str(tmp_path / "s"), "--grpc-port", str(port),
            "--metrics-port", str(free_port()), "--allow-unauthenticated"]  # fmt: skip
    process = start_python(args, log_file=log, env={"RETINA_LOG_LEVEL": "INFO"})
    try:
        wait_until_serving(f"127.0.0.1:{port}", 60, process)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = registry_pb2_grpc.RegistryServiceStub(channel)
            assert stub.ListCameras(registry_pb2.ListCamerasRequest(), timeout=5) is not None
    finally:
        stop_process(process, "scheduler")
    assert "UNAUTHENTICATED: every gRPC call is accepted from anyone" in log.read_text()


# -- NATS -----------------------------------------------------------------------------------------


class Login:
    """A NATS connection as one role, recording the permission errors the server sends it."""

    def __init__(self, url: str, credentials: Credentials):
        self.url, self.credentials = url, credentials
        self.errors: list[str] = []
        self.clients: list[nats.NATS] = []

    async def __call__(self, role: str) -> nats.NATS:
        async def on_error(exc: Exception) -> None:
            self.errors.append(str(exc))

        client = await nats.connect(
            self.url, user=role, password=self.credentials.token(role), error_cb=on_error,
            inbox_prefix=service_auth.inbox_prefix(role), allow_reconnect=False,
        )  # fmt: skip
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


def run_nats(secured_nats: NatsServer, service_credentials: Credentials, test) -> None:
    async def main() -> None:
        login = Login(secured_nats.url, service_credentials)
        try:
            await test(login)
        finally:
            await login.close()

    asyncio.run(main())


def test_nats_refuses_anonymous_and_wrong_passwords(
    secured_nats: NatsServer, service_credentials: Credentials
):
    async def attempt(**login: str) -> str:
        with pytest.raises(Exception) as caught:
            await nats.connect(secured_nats.url, allow_reconnect=False, connect_timeout=3, **login)
        return str(caught.value)

    async def main() -> None:
        assert "Authorization Violation" in await attempt()
        assert "Authorization Violation" in await attempt(
            user="worker", password=service_credentials.token("gateway")
        )
        assert "Authorization Violation" in await attempt(
            user="scheduler", password=service_credentials.token("scheduler")
        )

    asyncio.run(main())


def test_only_workers_publish_incidents_and_only_the_operator_deletes(
    secured_nats: NatsServer, service_credentials: Credentials
):
    async def test(login: Login) -> None:
        worker = await login("worker")
        js = worker.jetstream(timeout=2)
        await bus.ensure_all(js)
        await js.publish("retina.incidents.cam-1.new", b"{}", headers={"Nats-Msg-Id": "real"})
        operator = (await login("operator")).jetstream(timeout=2)
        for role in ("gateway", "incidents", "search", "operator"):  # a forged `end`, from each role
            client = await login(role)
            await client.publish("retina.incidents.cam-1.end", b"forged")
            await client.flush()
        await asyncio.sleep(0.5)
        violations = [
            e
            for e in login.errors
            if 'permissions violation for publish to "retina.incidents.cam-1.end"' in e
        ]
        assert len(violations) == 4, login.errors
        assert (await operator.stream_info(bus.INCIDENT_STREAM)).state.messages == 1

        for role in ("worker", "incidents", "search", "gateway"):
            js_role = (await login(role)).jetstream(timeout=2)
            with pytest.raises(nats.errors.TimeoutError):  # the server drops the request
                await js_role.delete_stream(bus.INCIDENT_STREAM)
            with pytest.raises(nats.errors.TimeoutError):
                await js_role.delete_consumer(bus.INCIDENT_STREAM, "incident-store")
        assert (await operator.stream_info(bus.INCIDENT_STREAM)).state.messages == 1
        assert any('"$js.api.stream.delete.incidents"' in e for e in login.errors)
        await operator.delete_stream(bus.INCIDENT_STREAM)  # the operator may
        await bus.ensure_all(js)  # and the worker heals it
        assert (await operator.stream_info(bus.INCIDENT_STREAM)).state.messages == 0

    run_nats(secured_nats, service_credentials, test)


def test_each_role_does_its_own_work_and_the_gateway_only_listens(
    secured_nats: NatsServer, service_credentials: Credentials
):
    async def test(login: Login) -> None:
        stop = asyncio.Event()
        worker = (await login("worker")).jetstream(timeout=2)
        media = await bus.ensure_all(worker)
        await media.put("cam-1/snapshot.jpg", b"jpeg" * 1000)
        await media.put("cam-1/snapshot.jpg", b"jpeg" * 1000)  # a retry replaces the object
        gateway = await login("gateway")
        live = await gateway.subscribe("retina.incidents.>")
        replayed: list[str] = []

        async def on_replay(msg) -> None:
            replayed.append(msg.subject)

        await gateway.jetstream(timeout=2).subscribe(
            "retina.incidents.>", ordered_consumer=True, cb=on_replay
        )
        await worker.publish("retina.incidents.cam-1.new", b"{}")
        await worker.publish("retina.features.cam-1", b"{}")
        assert (await live.next_msg(timeout=2)).subject == "retina.incidents.cam-1.new"

        incidents = (await login("incidents")).jetstream(timeout=2)
        subscription = await bus.durable_subscription(
            incidents,
            bus.INCIDENT_STREAM,
            bus.INCIDENT_SUBJECTS,
            "incident-store",
            bus.ensure_incident_stream,
            stop,
        )
        (msg,) = await subscription.fetch(1, timeout=2)
        await msg.ack()
        assert len((await (await bus.media_store(incidents)).get("cam-1/snapshot.jpg")).data) == 4000
        await bus.ensure_dispatch_stream(incidents)
        await incidents.publish("retina.dispatch.police.assign.cam-1", b"{}")

        search = (await login("search")).jetstream(timeout=2)
        subscription = await bus.durable_subscription(
            search, bus.FEATURE_STREAM, bus.FEATURE_SUBJECTS, "search-index", bus.ensure_feature_stream, stop,
            replay=True,
        )  # fmt: skip
        (msg,) = await subscription.fetch(1, timeout=2)
        await msg.ack()

        for role, subject in (("worker", "retina.incidents.>"), ("search", "retina.incidents.>"),
                              ("gateway", "retina.features.>"), ("gateway", "$JS.ACK.>")):  # fmt: skip
            await (await login(role)).subscribe(subject)
        await asyncio.sleep(0.5)
        assert len(replayed) == 1
        denied = [e for e in login.errors if "permissions violation for subscription" in e]
        assert len(denied) == 4, login.errors
        await gateway.publish("retina.dispatch.police.close.cam-1", b"forged")
        await gateway.flush()
        await asyncio.sleep(0.3)
        assert any('publish to "retina.dispatch.police.close.cam-1"' in e for e in login.errors)

    run_nats(secured_nats, service_credentials, test)
