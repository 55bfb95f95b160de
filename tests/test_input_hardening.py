"""Issue #9, config, registry, ingest and store part: each finding, with the test that failed before its fix.

The gRPC checks run against real service processes (scheduler with the registry, incident store on a
real nats-server, worker), started once for the module; :func:`running_services` also serves
tests/test_fuzz.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import grpc
import numpy as np
import pytest
import yaml
from google.protobuf.timestamp_pb2 import Timestamp

from retina.services.cli import main as retina
from retina.services.core.config import (
    CameraConfig,
    CameraDefaults,
    ConfigError,
    IngestConfig,
    load_config,
    parse_config,
    validate_camera,
)
from retina.services.core.convert import camera_from_proto, camera_to_proto
from retina.services.core.database import sqlite_url
from retina.services.core.ports import free_port
from retina.services.core.processes import start_python, stop_process, wait_for_port
from retina.services.core.serving import start_grpc_server
from retina.services.core.validation import add_guarded
from retina.services.scheduler.cameras import CameraRegistry
from retina.services.scheduler.registry_api import RegistryServicer
from retina.services.worker.ingest import CameraSource, CameraState, FrameBuffer
from retina.v1 import (
    common_pb2,
    incidents_pb2,
    incidents_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
    worker_pb2,
    worker_pb2_grpc,
)
from tests.conftest import MODEL, Credentials, EntitledChannel, NatsServer, wait_for

CURB = {"name": "curb", "polygon": [[0.0, 0.6], [1.0, 0.6], [1.0, 1.0], [0.0, 1.0]]}
UNDECODABLE = b"\x0a\xff\xff\xff\xff\x0f"  # field 1, length-delimited, with a length past the end
MEGABYTE_ID = "x" * 2**20


# ---------------------------------------------------------------------------------------------
# Real services, shared with tests/test_fuzz.py
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunningServices:
    """Addresses of the real services; ``worker`` is None where the shared model is missing."""

    scheduler: str
    incidents: str
    worker: str | None
    logs: Path
    credentials: Credentials

    def channel(self, address: str) -> EntitledChannel:
        """A client with the token of a role allowed each method (input checks lie behind that)."""
        return self.credentials.entitled_channel(address)


@contextlib.contextmanager
def running_services(base: Path) -> Iterator[RunningServices]:
    """nats-server, then the scheduler (registry included), the incident store and, when the shared
    model is there, a worker — each a real ``retina`` process on free ports, with its role's token."""
    credentials = Credentials(base / "secrets")
    nats = NatsServer(base / "nats", credentials.nats_config())
    nats.start()
    processes = []
    ports = {name: free_port() for name in ("scheduler", "incidents", "worker")}
    commands = {
        "incidents": ["incidents", "serve", "--data-dir", str(base / "incidents"), "--nats-url", nats.url],
        "scheduler": [
            "scheduler", "serve", "--data-dir", str(base / "scheduler"),
            "--incidents-address", f"127.0.0.1:{ports['incidents']}",
        ],
    }  # fmt: skip
    if MODEL.exists():
        config = base / "worker.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "detector": {"model": str(MODEL)},
                    "features": {"enabled": False},
                    "evidence": {"clip_before_seconds": 0, "clip_after_seconds": 0},
                    "nats": {"url": nats.url},
                }
            )
        )
        commands["worker"] = [
            "worker", "--config", str(config), "--data-dir", str(base / "worker"), "--worker-id", "fuzz",
        ]  # fmt: skip
    try:
        for name, args in commands.items():
            args += ["--grpc-port", str(ports[name]), "--metrics-port", "0", *credentials.flags(name)]
            process = start_python(args, log_file=base / f"{name}.log")
            processes.append((name, process))
        for name, process in processes:
            wait_for_port(ports[name], 60, process=process)
        yield RunningServices(
            scheduler=f"127.0.0.1:{ports['scheduler']}",
            incidents=f"127.0.0.1:{ports['incidents']}",
            worker=f"127.0.0.1:{ports['worker']}" if "worker" in commands else None,
            logs=base,
            credentials=credentials,
        )
    finally:
        for name, process in reversed(processes):
            stop_process(process, name)
        nats.stop()


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServices]:
    with running_services(tmp_path_factory.mktemp("services")) as running:
        yield running


def rejected(call, request, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10, **kwargs)
    return caught.value


# ---------------------------------------------------------------------------------------------
# 1. A coordinate of exactly 0 is a coordinate
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("lat", "lon"), [(0.0, 9.45), (51.48, 0.0), (0.0, 0.0)])
def test_zero_coordinates_survive_the_camera_message(lat: float, lon: float):
    camera = validate_camera(
        {"id": "cam-0", "url": "rtsp://h/0", "location": {"lat": lat, "lon": lon}}, "camera", CameraDefaults()
    )
    message = camera_to_proto(camera)
    assert message.location.HasField("lat") and message.location.HasField("lon")
    again = validate_camera(camera_from_proto(message), "camera", CameraDefaults())
    assert (again.location.lat, again.location.lon) == (lat, lon)


def test_active_hours_weekdays_survive_the_camera_message():
    zone = {"name": "z", "polygon": [[0, 0], [1, 0], [1, 1]]}

    def days_after_round_trip(days: list[str] | None) -> list[str] | None:
        hours = {"start": "07:00", "end": "19:00", "days": days}
        algorithm = {"name": "illegal_parking", "zones": [zone], "active_hours": hours}
        camera = validate_camera(
            {"id": "c", "url": "rtsp://h/c", "algorithms": [algorithm]}, "camera", CameraDefaults()
        )
        again = validate_camera(camera_from_proto(camera_to_proto(camera)), "camera", CameraDefaults())
        return again.algorithms[0].active_hours.days

    assert days_after_round_trip(["mon", "tue", "sat"]) == ["mon", "tue", "sat"]
    assert days_after_round_trip(None) is None


def test_create_camera_with_lon_zero_on_the_registry(services: RunningServices):
    camera = common_pb2.Camera(
        id="greenwich", url="rtsp://h/greenwich", location=common_pb2.GeoLocation(lat=51.48, lon=0.0)
    )
    with services.channel(services.scheduler) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        created = stub.CreateCamera(registry_pb2.CreateCameraRequest(camera=camera), timeout=10)
        got = stub.GetCamera(registry_pb2.GetCameraRequest(camera_id="greenwich"), timeout=10)
    for record in (created, got):
        assert record.camera.location.HasField("lon")
        assert (record.camera.location.lat, record.camera.location.lon) == (51.48, 0.0)


# ---------------------------------------------------------------------------------------------
# 2. A frozen camera is stalled after stall_seconds, not twice that
# ---------------------------------------------------------------------------------------------


def write_clip(path: Path, seconds: int, fps: int = 25) -> Path:
    """An H.264 MP4 of a bar sweeping across the frame, one keyframe a second."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"g": str(fps), "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        for index in range(seconds * fps):
            image = np.zeros((240, 320, 3), dtype=np.uint8)
            image[:, (4 * index) % 320 :][:, :16] = 255
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def test_a_frozen_rtsp_camera_is_stalled_within_stall_seconds(tmp_path: Path, rtsp_server_factory):
    stall_seconds = 4.0
    rtsp = rtsp_server_factory({"cam": write_clip(tmp_path / "clip.mp4", seconds=30)})
    rtsp.start()
    changes: list[tuple[float, CameraState]] = []
    source = CameraSource(
        CameraConfig(id="cam-frozen", url=rtsp.url("cam")),
        IngestConfig(stall_seconds=stall_seconds, open_timeout_seconds=5),
        FrameBuffer("cam-frozen", 4, drop_oldest=True, ready=threading.Event()),
        lambda _camera, health: changes.append((time.monotonic(), health.state)),
        realtime=True,
        retry_files=False,
    )
    source.start()
    try:
        wait_for(lambda: source.health.frames_decoded >= 50, 30, "frames from the RTSP camera")
        frozen_at = time.monotonic()
        os.kill(rtsp.process.pid, signal.SIGSTOP)  # the connection stays open; nothing comes
        try:
            wait_for(
                lambda: any(state == CameraState.STALLED for _, state in changes),
                3 * stall_seconds,
                "the camera to be reported stalled",
            )
        finally:
            os.kill(rtsp.process.pid, signal.SIGCONT)
        stalled_at = next(at for at, state in changes if state == CameraState.STALLED)
        assert stalled_at - frozen_at <= stall_seconds + 1.5, f"stalled after {stalled_at - frozen_at:.1f} s"
        assert source.health.reason == f"no frame for {stall_seconds:.0f} s"
    finally:
        source.stop()
        source.join(10)


# ---------------------------------------------------------------------------------------------
# 3. Configuration: no cameras, non-finite numbers, durations without bound
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "lists none"),
        ("detector: {confidence: 0.2}\n", "lists none"),
        ("cameras: []\n", "lists none"),
        ("cameras: [{id: 'bad id', url: x.mp4}]\n", "was rejected"),
    ],
)
def test_validate_refuses_a_file_with_no_cameras(tmp_path: Path, capsys, content: str, problem: str):
    path = tmp_path / "cameras.yaml"
    path.write_text(content)
    assert retina(["validate", "--config", str(path)]) == 2
    errors = capsys.readouterr().err
    assert "config error: no cameras: " in errors and str(path) in errors and problem in errors


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path):
    path = tmp_path / "cameras.yaml"
    path.write_bytes(b"cameras: [{id: c\xff}]\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def camera_errors(**fields) -> list[str]:
    camera = {"id": "cam-1", "url": "rtsp://h/1", **fields}
    return parse_config({"cameras": [camera]}).camera_errors


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "nan", "-Infinity"])
def test_every_number_must_be_finite(value):
    assert camera_errors(location={"lat": value, "lon": 1}) == [
        "cameras[0].location.lat: must be a finite number (not NaN or infinity)"
    ]
    parking = {"name": "illegal_parking", "zones": [CURB], "params": {"dwell_seconds": value}}
    assert camera_errors(algorithms=[parking]) == [
        "cameras[0].algorithms[0].params.dwell_seconds: must be a finite number (not NaN or infinity)"
    ]
    with pytest.raises(ConfigError) as caught:
        parse_config({"ingest": {"stall_seconds": value}, "cameras": []})
    assert caught.value.errors == ["ingest.stall_seconds: must be a finite number (not NaN or infinity)"]


@pytest.mark.parametrize("algorithm", ["illegal_parking", "street_vending"])  # plain BaseModel / DwellParams
def test_durations_are_at_most_a_week(algorithm: str):
    spec = {"name": algorithm, "zones": [CURB], "params": {"dwell_seconds": 1e300}}
    assert camera_errors(algorithms=[spec]) == [
        "cameras[0].algorithms[0].params.dwell_seconds: must be at most 604800 s (7 days), got 1e+300"
    ]
    spec["params"]["dwell_seconds"] = 7 * 24 * 3600
    assert camera_errors(algorithms=[spec]) == []
    with pytest.raises(ConfigError) as caught:
        parse_config({"ingest": {"stall_seconds": 1e300}, "search": {"retention_days": 1e300}})
    assert caught.value.errors == [
        "ingest.stall_seconds: must be at most 604800 s (7 days), got 1e+300",
        "search.retention_days: Input should be less than or equal to 3650",
    ]


def test_a_huge_value_is_never_echoed_in_full():
    (error,) = camera_errors(timezone="Asia/" + "x" * 2**20)
    assert error.startswith("cameras[0].timezone: String should have at most 64 characters")
    (error,) = camera_errors(shared_with=["y" * 2**20])
    assert error.startswith("cameras[0].shared_with: 'yyy") and len(error) < 200
    (error,) = camera_errors(url="rtsp://h/\x00")
    assert error == "cameras[0].url: must be printable text on one line (no control characters)"


# ---------------------------------------------------------------------------------------------
# 4. gRPC: INVALID_ARGUMENT naming the field, never UNKNOWN, never a long echo; INTERNAL logged
# ---------------------------------------------------------------------------------------------

# (service, method, request class) of every unary RPC these services have.
METHODS = [
    ("registry", "/retina.v1.RegistryService/CreateCamera", registry_pb2.CreateCameraRequest),
    ("registry", "/retina.v1.RegistryService/UpdateCamera", registry_pb2.UpdateCameraRequest),
    ("registry", "/retina.v1.RegistryService/DeleteCamera", registry_pb2.DeleteCameraRequest),
    ("registry", "/retina.v1.RegistryService/GetCamera", registry_pb2.GetCameraRequest),
    ("registry", "/retina.v1.RegistryService/ListCameras", registry_pb2.ListCamerasRequest),
    ("registry", "/retina.v1.RegistryService/ReportHealth", registry_pb2.CameraHealth),
    ("registry", "/retina.v1.RegistryService/CaptureReference", worker_pb2.CaptureReferenceRequest),
    ("registry", "/retina.v1.RegistryService/SetReference", worker_pb2.QualityReference),
    ("registry", "/retina.v1.SchedulerService/RegisterWorker", scheduler_pb2.RegisterWorkerRequest),
    ("registry", "/retina.v1.SchedulerService/Heartbeat", scheduler_pb2.HeartbeatRequest),
    ("registry", "/retina.v1.SchedulerService/GetClusterStatus", scheduler_pb2.GetClusterStatusRequest),
    ("incidents", "/retina.v1.IncidentService/ListIncidents", incidents_pb2.ListIncidentsRequest),
    ("incidents", "/retina.v1.IncidentService/GetIncident", incidents_pb2.GetIncidentRequest),
    ("incidents", "/retina.v1.IncidentService/GetIncidentHistory", incidents_pb2.GetIncidentRequest),
    ("incidents", "/retina.v1.IncidentService/Dispatch", incidents_pb2.DispatchRequest),
    ("incidents", "/retina.v1.IncidentService/GetDispatchStats", incidents_pb2.GetDispatchStatsRequest),
    ("worker", "/retina.v1.WorkerService/AssignCamera", worker_pb2.AssignCameraRequest),
    ("worker", "/retina.v1.WorkerService/ReleaseCamera", worker_pb2.ReleaseCameraRequest),
    ("worker", "/retina.v1.WorkerService/GetStatus", worker_pb2.GetStatusRequest),
    ("worker", "/retina.v1.WorkerService/CaptureReference", worker_pb2.CaptureReferenceRequest),
]
WATCH = "/retina.v1.RegistryService/WatchCameras"
MEDIA = "/retina.v1.IncidentService/GetMedia"
STREAMS = {WATCH: "registry", MEDIA: "incidents"}  # the server-streaming methods


def address_of(services: RunningServices, service: str) -> str:
    if service == "worker":
        if services.worker is None:
            pytest.skip(f"shared model missing: {MODEL}")
        return services.worker
    return services.incidents if service == "incidents" else services.scheduler


@pytest.mark.parametrize(
    ("service", "method"), [(s, m) for s, m, _ in METHODS] + [(s, m) for m, s in STREAMS.items()]
)
def test_undecodable_requests_are_invalid_arguments(services: RunningServices, service: str, method: str):
    with services.channel(address_of(services, service)) as channel:
        call = channel.unary_stream(method) if method in STREAMS else channel.unary_unary(method)
        with pytest.raises(grpc.RpcError) as caught:
            reply = call(UNDECODABLE, timeout=10)
            if method in STREAMS:
                next(reply)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("request: does not decode")


def out_of_range(seconds: int = 10**15, nanos: int = 0) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=nanos)


def test_out_of_range_timestamps_name_the_field(services: RunningServices):
    cases = [
        (
            services.scheduler, registry_pb2_grpc.RegistryServiceStub, "ReportHealth",
            registry_pb2.CameraHealth(camera_id="cam-1", status=2, last_frame_at=out_of_range()),
            "last_frame_at: seconds out of range",
        ),
        (
            services.scheduler, scheduler_pb2_grpc.SchedulerServiceStub, "Heartbeat",
            scheduler_pb2.HeartbeatRequest(
                worker_id="w", cameras=[worker_pb2.CameraStatus(camera_id="c", state=2, since=out_of_range())]
            ),
            "cameras[0].since: seconds out of range",
        ),
        (
            services.incidents, incidents_pb2_grpc.IncidentServiceStub, "ListIncidents",
            incidents_pb2.ListIncidentsRequest(since=out_of_range(0, -1)),
            "since: nanos must be 0 to 999999999",
        ),
        (
            services.incidents, incidents_pb2_grpc.IncidentServiceStub, "GetDispatchStats",
            incidents_pb2.GetDispatchStatsRequest(until=out_of_range()),
            "until: seconds out of range",
        ),
    ]  # fmt: skip
    if services.worker is not None:
        camera = common_pb2.Camera(id="cam-1", url="rtsp://127.0.0.1:9/none")
        incident = common_pb2.OpenIncident(id="i-1", algorithm="illegal_parking", started_at=out_of_range())
        cases.append(
            (
                services.worker, worker_pb2_grpc.WorkerServiceStub, "AssignCamera",
                worker_pb2.AssignCameraRequest(camera=camera, resume=[incident]),
                "resume[0].started_at: seconds out of range",
            )
        )  # fmt: skip
    for address, stub_class, method, request, expected in cases:
        with services.channel(address) as channel:
            error = rejected(getattr(stub_class(channel), method), request)
        assert (error.code(), error.details().split(" (got")[0]) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            expected,
        )


def test_ids_are_checked_before_work_and_never_echoed_in_full(services: RunningServices):
    registry = (services.scheduler, registry_pb2_grpc.RegistryServiceStub)
    scheduler = (services.scheduler, scheduler_pb2_grpc.SchedulerServiceStub)
    incidents = (services.incidents, incidents_pb2_grpc.IncidentServiceStub)
    cases = [
        (registry, "GetCamera", registry_pb2.GetCameraRequest(camera_id=MEGABYTE_ID), "camera_id"),
        (registry, "GetCamera", registry_pb2.GetCameraRequest(camera_id="../cam-1"), "camera_id"),
        (registry, "GetCamera", registry_pb2.GetCameraRequest(camera_id="cam-1\n"), "camera_id"),
        (registry, "DeleteCamera", registry_pb2.DeleteCameraRequest(camera_id=MEGABYTE_ID), "camera_id"),
        (registry, "ListCameras", registry_pb2.ListCamerasRequest(department=MEGABYTE_ID), "department"),
        (registry, "ListCameras", registry_pb2.ListCamerasRequest(text=MEGABYTE_ID), "text"),
        (registry, "ReportHealth", registry_pb2.CameraHealth(camera_id=MEGABYTE_ID, status=2), "camera_id"),
        (registry, "CreateCamera", registry_pb2.CreateCameraRequest(
            camera=common_pb2.Camera(id=MEGABYTE_ID, url="rtsp://h/1")), "camera.id"),
        (scheduler, "Heartbeat", scheduler_pb2.HeartbeatRequest(worker_id=MEGABYTE_ID), "worker_id"),
        (scheduler, "RegisterWorker", scheduler_pb2.RegisterWorkerRequest(
            worker_id="w", address=MEGABYTE_ID, decode_capacity=1), "address"),
        (incidents, "GetIncident", incidents_pb2.GetIncidentRequest(id=MEGABYTE_ID), "id"),
        (incidents, "Dispatch", incidents_pb2.DispatchRequest(id="../x", action="close", actor="me"), "id"),
        (incidents, "Dispatch", incidents_pb2.DispatchRequest(
            id="i-1", action="close", actor=MEGABYTE_ID), "actor"),
        (incidents, "GetIncidentHistory", incidents_pb2.GetIncidentRequest(id=MEGABYTE_ID), "id"),
        (incidents, "ListIncidents", incidents_pb2.ListIncidentsRequest(camera_id=MEGABYTE_ID), "camera_id"),
        (incidents, "ListIncidents", incidents_pb2.ListIncidentsRequest(limit=-1), "limit"),
        (incidents, "GetDispatchStats", incidents_pb2.GetDispatchStatsRequest(
            visible_to=[MEGABYTE_ID]), "visible_to[0]"),
    ]  # fmt: skip
    if services.worker is not None:
        worker = (services.worker, worker_pb2_grpc.WorkerServiceStub)
        cases.append(
            (worker, "ReleaseCamera", worker_pb2.ReleaseCameraRequest(camera_id=MEGABYTE_ID), "camera_id")
        )
    for (address, stub_class), method, request, field in cases:
        with services.channel(address) as channel:
            error = rejected(getattr(stub_class(channel), method), request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, field, error)
        assert error.details().startswith(f"{field}:") and len(error.details()) < 300, error.details()


def test_non_finite_params_over_grpc_are_invalid_arguments(services: RunningServices):
    camera = common_pb2.Camera(id="cam-nan", url="rtsp://h/nan", analysis_fps=float("nan"))
    with services.channel(services.scheduler) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        error = rejected(stub.CreateCamera, registry_pb2.CreateCameraRequest(camera=camera))
        assert (error.code(), error.details()) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "camera.analysis_fps: must be a finite number (not NaN or infinity)",
        )
        camera = common_pb2.Camera(id="cam-inf", url="rtsp://h/inf")
        spec = camera.algorithms.add(name="illegal_parking")
        spec.params.update({"dwell_seconds": float("inf")})
        error = rejected(stub.CreateCamera, registry_pb2.CreateCameraRequest(camera=camera))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details().startswith("camera.algorithms: params must hold finite numbers")


def test_an_unexpected_error_is_internal_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, service_credentials: Credentials
):
    registry = CameraRegistry(sqlite_url(tmp_path / "registry.sqlite"))
    with sqlite3.connect(tmp_path / "registry.sqlite") as db:  # the database is damaged under the service
        db.execute("DROP TABLE camera_health")

    async def main() -> grpc.aio.AioRpcError:
        servicer = RegistryServicer(registry)
        server, _, port = await start_grpc_server(
            "127.0.0.1", 0,
            lambda s: add_guarded(s, registry_pb2_grpc.add_RegistryServiceServicer_to_server, servicer),
            "retina.v1.RegistryService", auth=service_credentials.authenticator(),
        )  # fmt: skip
        try:
            async with service_credentials.aio_channel(f"127.0.0.1:{port}") as channel:
                stub = registry_pb2_grpc.RegistryServiceStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.GetCamera(registry_pb2.GetCameraRequest(camera_id="cam-1"))
                return caught.value
        finally:
            servicer.close()
            await server.stop(grace=1)

    with caplog.at_level(logging.ERROR, logger="retina.services.core.validation"):
        error = asyncio.run(main())
    registry.close()
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == "internal error (OperationalError); see the service log"
    (record,) = [r for r in caplog.records if r.name == "retina.services.core.validation"]
    assert record.getMessage() == "unexpected error in /retina.v1.RegistryService/GetCamera"
    assert "no such table: camera_health" in str(record.exc_info[1])


# ---------------------------------------------------------------------------------------------
# 5. `retina cameras list` prints the health by name
# ---------------------------------------------------------------------------------------------


def test_cameras_list_prints_health_by_name(services: RunningServices, capsys):
    with services.channel(services.scheduler) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        for camera_id in ("listed-on", "listed-new"):
            camera = common_pb2.Camera(
                id=camera_id, name="Gate", url=f"rtsp://h/{camera_id}", department="listing"
            )
            stub.CreateCamera(registry_pb2.CreateCameraRequest(camera=camera), timeout=10)
        stub.ReportHealth(
            registry_pb2.CameraHealth(camera_id="listed-on", status=worker_pb2.CAMERA_STATE_STALLED),
            timeout=10,
        )
    operator = ["--token-file", str(services.credentials.token_file("operator"))]
    assert (
        retina([*operator, "cameras", "list", "--scheduler", services.scheduler, "--department", "listing"])
        == 0
    )
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert lines["listed-on"][4] == "stalled"
    assert lines["listed-new"][4] == "unknown"
