"""Property-based tests (Hypothesis): the configuration loader and every gRPC request type of the
registry, scheduler, incident store and worker, fed generated garbage, answer clearly or succeed.

(a) The loader returns a configuration or raises ConfigError whose lines name a field — never any
    other exception, never a line that echoes a huge value.
(b) Each RPC, against real running services, answers OK or a clear status (never UNKNOWN or
    INTERNAL, always with details), for generated field values and for raw bytes; afterwards every
    service still answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retina.services.core.config import ConfigError, LoadedConfig, load_config, parse_config
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
from tests.conftest import EntitledChannel
from tests.test_input_hardening import METHODS, WATCH, RunningServices, address_of, running_services

FUZZ = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
MAX_LINE = 500  # an error line longer than this echoes what it was given
CLEAR_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
}

# ---------------------------------------------------------------------------------------------
# (a) The configuration loader
# ---------------------------------------------------------------------------------------------

CONFIG_KEYS = [
    "cameras", "detector", "ingest", "search", "defaults", "scheduler", "worker", "features", "id", "url",
    "name", "location", "lat", "lon", "timezone", "analysis_fps", "shared_with", "department",
    "algorithms", "zones", "polygon", "params", "active_hours", "start", "end", "days", "dwell_seconds",
    "stall_seconds", "retention_days", "confidence", "devices", "embedder",
]  # fmt: skip
NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 0.0, -0.0, 1e300, -1e300, 5e-324, 2**63, float("nan"), "nan", "inf", "1e999"]),
)
TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "cam-1", "../x", "cam\n1", "\x00", "Asia/Shanghai", "illegal_parking", "*"]),
    st.just("x" * 100_000),
)
LEAVES = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
KEYS = st.one_of(st.sampled_from(CONFIG_KEYS), st.text(max_size=8), st.integers(-3, 3), st.just("k" * 10_000))
GARBAGE = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=25,
)


def maybe(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly a plausible value, sometimes garbage: reaches the checks deep inside a camera."""
    return st.one_of(valid, valid, GARBAGE)


POINT = st.lists(maybe(NUMBERS), min_size=2, max_size=2)
ALGORITHM = st.fixed_dictionaries(
    {"name": maybe(st.sampled_from(["illegal_parking", "street_vending", "crowd_gathering", "nope"]))},
    optional={
        "zones": maybe(
            st.lists(
                st.fixed_dictionaries({"name": maybe(TEXT), "polygon": maybe(st.lists(POINT, max_size=5))}),
                max_size=2,
            )
        ),
        "params": maybe(st.dictionaries(st.sampled_from(["dwell_seconds", "grace_seconds", "x"]), NUMBERS)),
        "active_hours": maybe(st.fixed_dictionaries({"start": TEXT, "end": TEXT})),
    },
)
CAMERA = st.fixed_dictionaries(
    {"id": maybe(st.sampled_from(["cam-1", "cam-2"])), "url": maybe(st.just("rtsp://h/1"))},
    optional={
        "location": maybe(st.fixed_dictionaries({"lat": maybe(NUMBERS), "lon": maybe(NUMBERS)})),
        "analysis_fps": maybe(NUMBERS),
        "timezone": maybe(TEXT),
        "department": maybe(TEXT),
        "shared_with": maybe(st.lists(TEXT, max_size=3)),
        "algorithms": maybe(st.lists(ALGORITHM, max_size=2)),
    },
)
CONFIG = st.one_of(
    GARBAGE,
    st.fixed_dictionaries(
        {},
        optional={
            "cameras": maybe(st.lists(CAMERA, max_size=3)),
            "ingest": maybe(
                st.dictionaries(st.sampled_from(["stall_seconds", "open_timeout_seconds"]), NUMBERS)
            ),
            "search": maybe(st.dictionaries(st.sampled_from(["retention_days", "shard_hours"]), NUMBERS)),
            "detector": maybe(st.dictionaries(st.sampled_from(["confidence", "model", "imgsz"]), LEAVES)),
            "defaults": maybe(st.dictionaries(st.sampled_from(["analysis_fps", "timezone"]), LEAVES)),
        },
    ),
)


def assert_clear(lines: list[str]) -> None:
    for line in lines:
        path, separator, message = line.partition(": ")
        assert separator and path and message, f"not 'field: problem': {line[:200]!r}"
        assert len(line) <= MAX_LINE, f"error line of {len(line)} chars: {line[:200]!r}"


def load_or_explain(load: Callable[[], LoadedConfig]) -> None:
    try:
        loaded = load()
    except ConfigError as error:
        assert error.errors
        assert_clear(error.errors)
        return
    assert_clear(loaded.camera_errors)
    assert all(line.startswith("cameras[") for line in loaded.camera_errors)


@FUZZ
@given(CONFIG)
def test_the_config_loader_answers_garbage_clearly(data: Any):
    load_or_explain(lambda: parse_config(data))


@FUZZ
@given(st.one_of(st.text(max_size=200), CONFIG.map(lambda d: yaml.safe_dump(d, allow_unicode=True))))
def test_the_config_file_loader_answers_garbage_clearly(tmp_path: Path, text: str):
    path = tmp_path / "cameras.yaml"
    path.write_text(text, encoding="utf-8")
    load_or_explain(lambda: load_config(path))


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe not utf-8", b"cameras: " + b"[" * 5000 + b"]" * 5000, b"!!python/object:os.system {}", b""],
)
def test_the_config_file_loader_answers_odd_files_clearly(tmp_path: Path, content: bytes):
    path = tmp_path / "cameras.yaml"
    path.write_bytes(content)
    load_or_explain(lambda: load_config(path))


# ---------------------------------------------------------------------------------------------
# (b) Every gRPC request type, against the real services
# ---------------------------------------------------------------------------------------------

INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
STRINGS = st.one_of(
    st.text(max_size=10),
    st.sampled_from(["cam-1", "seed", "i-1", "illegal_parking", "", "../cam-1", "cam-1\n", "127.0.0.1:9"]),
    st.just("x" * 100_000),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
MAX_DEPTH = 3


def scalars(field: FieldDescriptor) -> st.SearchStrategy:
    """Any value the wire can carry for a scalar field, edge cases included."""
    if field.type == FieldDescriptor.TYPE_STRING:
        return STRINGS
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=20)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type == FieldDescriptor.TYPE_DOUBLE:
        return st.floats(allow_nan=True, allow_infinity=True)
    if field.type == FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32, allow_nan=True, allow_infinity=True)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return st.integers(-3, 10)  # proto3 enums are open: unknown values arrive too
    low, high = INT_RANGES[field.type]
    return st.one_of(st.integers(low, high), st.sampled_from([low, high, 0, 1]))


@st.composite
def messages(draw: st.DrawFn, descriptor: Descriptor, depth: int = 0) -> Message:
    """A message of ``descriptor`` with generated values in a random subset of its fields."""
    message = GetMessageClass(descriptor)()
    if descriptor.full_name == "google.protobuf.Struct":
        message.update(draw(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3)))
        return message
    for field in descriptor.fields:
        if depth >= MAX_DEPTH or not draw(st.booleans()):
            continue
        value = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key, item = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            for k in draw(st.lists(scalars(key), max_size=3)):
                if item.message_type is not None:
                    value[k].CopyFrom(draw(messages(item.message_type, depth + 1)))
                else:
                    value[k] = draw(scalars(item))
        elif field.is_repeated:
            for _ in range(draw(st.integers(0, 3))):
                if field.message_type is not None:
                    value.add().CopyFrom(draw(messages(field.message_type, depth + 1)))
                else:
                    value.append(draw(scalars(field)))
        elif field.message_type is not None:
            value.CopyFrom(draw(messages(field.message_type, depth + 1)))
        else:
            setattr(message, field.name, draw(scalars(field)))
    return message


def valid_camera() -> common_pb2.Camera:
    camera = common_pb2.Camera(id="cam-1", url="rtsp://127.0.0.1:9/none")
    corners = [common_pb2.Point(x=x, y=y) for x, y in ((0, 0.5), (1, 0.5), (1, 1))]
    spec = camera.algorithms.add(
        name="illegal_parking", zones=[common_pb2.Zone(name="kerb", polygon=corners)]
    )
    spec.params.update({"dwell_seconds": 30})
    return camera


# Valid requests the generated fields are merged onto, so that checks past the first field are reached.
TEMPLATES: dict[type[Message], Message] = {
    registry_pb2.CreateCameraRequest: registry_pb2.CreateCameraRequest(camera=valid_camera()),
    registry_pb2.UpdateCameraRequest: registry_pb2.UpdateCameraRequest(camera=valid_camera()),
    worker_pb2.AssignCameraRequest: worker_pb2.AssignCameraRequest(
        camera=valid_camera(),
        resume=[common_pb2.OpenIncident(id="i-1", algorithm="illegal_parking", zone="kerb", confidence=0.5)],
    ),
    scheduler_pb2.RegisterWorkerRequest: scheduler_pb2.RegisterWorkerRequest(
        worker_id="fuzz-worker", address="127.0.0.1:9", decode_capacity=100, model_key="m",
        devices=[scheduler_pb2.Device(device_id="cpu:0", capacity_fps={"m": 10})],
    ),
    scheduler_pb2.HeartbeatRequest: scheduler_pb2.HeartbeatRequest(
        worker_id="fuzz-worker", cameras=[worker_pb2.CameraStatus(camera_id="cam-1", state=2)]
    ),
}  # fmt: skip


def requests(request_class: type[Message]) -> st.SearchStrategy[Message]:
    """Generated requests, half of them merged onto a valid one (where there is a template)."""
    generated = messages(request_class.DESCRIPTOR)
    template = TEMPLATES.get(request_class)
    if template is None:
        return generated

    def onto_template(fields: Message) -> Message:
        request = request_class()
        request.CopyFrom(template)
        request.MergeFrom(fields)
        return request

    return st.one_of(generated, generated.map(onto_template))


def answer(call: Callable[[], Any], what: str, also_clear: frozenset[grpc.StatusCode] = frozenset()) -> None:
    """Make the call; it must succeed or fail with a clear status and short details."""
    try:
        call()
    except grpc.RpcError as error:
        assert error.code() in CLEAR_CODES | also_clear, f"{what}: {error.code().name}: {error.details()}"
        assert error.details(), f"{what}: {error.code().name} without details"
        assert len(error.details()) < 4000, f"{what}: {len(error.details())} chars of details"


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServices]:
    """The real services; afterwards they must still answer and have logged no traceback."""
    with running_services(tmp_path_factory.mktemp("fuzz")) as running:
        with running.channel(running.scheduler) as channel:  # so that a watch from 0 answers at once
            registry_pb2_grpc.RegistryServiceStub(channel).CreateCamera(
                registry_pb2.CreateCameraRequest(camera=common_pb2.Camera(id="seed", url="rtsp://h/seed")),
                timeout=10,
            )
        yield running
        still_answering(running)
    for log in sorted(running.logs.glob("*.log")):
        assert "Traceback" not in log.read_text(), f"{log.name} holds a traceback"


@pytest.fixture(scope="module")
def channels(services: RunningServices) -> Iterator[dict[str, EntitledChannel]]:
    """One channel per service for the whole module, allowed every RPC."""
    addresses = [services.scheduler, services.incidents] + ([services.worker] if services.worker else [])
    opened = {address: services.channel(address) for address in addresses}
    yield opened
    for channel in opened.values():
        channel.close()


def still_answering(services: RunningServices) -> None:
    with services.channel(services.scheduler) as channel:
        scheduler_pb2_grpc.SchedulerServiceStub(channel).GetClusterStatus(
            scheduler_pb2.GetClusterStatusRequest(), timeout=10
        )
        registry_pb2_grpc.RegistryServiceStub(channel).ListCameras(
            registry_pb2.ListCamerasRequest(), timeout=10
        )
    with services.channel(services.incidents) as channel:
        incidents_pb2_grpc.IncidentServiceStub(channel).ListIncidents(
            incidents_pb2.ListIncidentsRequest(), timeout=10
        )
    if services.worker is not None:
        with services.channel(services.worker) as channel:
            worker_pb2_grpc.WorkerServiceStub(channel).GetStatus(worker_pb2.GetStatusRequest(), timeout=10)


# A valid watch streams until the client stops it, and may find nothing new before then.
WATCH_CODES = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED})


def first_change(stream: Iterator[Any]) -> None:
    next(stream, None)


@pytest.mark.parametrize(("service", "method", "request_class"), METHODS, ids=[m for _, m, _ in METHODS])
@FUZZ
@given(data=st.data())
def test_every_rpc_answers_generated_requests_clearly(
    services: RunningServices,
    channels: dict[str, EntitledChannel],
    service: str,
    method: str,
    request_class: type[Message],
    data: st.DataObject,
):
    request = data.draw(requests(request_class))
    call = channels[address_of(services, service)].unary_unary(
        method, request_serializer=request_class.SerializeToString
    )
    answer(lambda: call(request, timeout=30), f"{method}({str(request)[:300]})")


@FUZZ
@given(request=messages(registry_pb2.WatchCamerasRequest.DESCRIPTOR))
def test_watch_answers_generated_requests_clearly(
    services: RunningServices, channels: dict[str, EntitledChannel], request: Message
):
    watch = registry_pb2_grpc.RegistryServiceStub(channels[services.scheduler]).WatchCameras
    answer(lambda: first_change(watch(request, timeout=1)), f"WatchCameras({request})", WATCH_CODES)


@pytest.mark.parametrize(("service", "method"), [(s, m) for s, m, _ in METHODS] + [("registry", WATCH)])
@FUZZ
@given(payload=st.one_of(st.binary(max_size=64), st.binary(min_size=1000, max_size=4000)))
def test_every_rpc_answers_raw_bytes_clearly(
    services: RunningServices, channels: dict[str, EntitledChannel], service: str, method: str, payload: bytes
):
    channel = channels[address_of(services, service)]
    if method == WATCH:
        stream = channel.unary_stream(method)
        answer(lambda: first_change(stream(payload, timeout=1)), f"{method}({payload[:100]!r})", WATCH_CODES)
    else:
        answer(lambda: channel.unary_unary(method)(payload, timeout=30), f"{method}({payload[:100]!r})")
