"""Search service input hardening (issue 9): every bad input gets one clear answer naming the field,
checked before any work is done, against a real running search service (and nats-server).

A Hypothesis test drives each SearchService request type with generated garbage.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import grpc
import nats
import pytest
import yaml
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from retina.services.cli import main as retina
from retina.services.cli.clients import wait_until_serving
from retina.services.core import bus
from retina.services.core.features import COLOUR_NAMES, FeatureRecord, track_key
from retina.services.core.ports import free_port
from retina.services.core.processes import start_python, stop_process
from retina.services.search.engine import MAX_RESULTS, RejectedRecordError
from retina.services.search.store import UnsafeCropPathError
from retina.v1 import common_pb2, search_pb2, search_pb2_grpc
from tests.conftest import Credentials, NatsServer, wait_for
from tests.test_search import COLOURS_BGR, engine_at, patch, png, record

SEARCH = "/retina.v1.SearchService/Search"
INDEX_STATS = "/retina.v1.SearchService/GetIndexStats"
GET_CROP = "/retina.v1.SearchService/GetCrop"
NOW = time.time()
# Seeded tracks: (camera, tracker id, colour); cam-b's crop is the one an attacker goes after.
SEED = [("cam-a", 1, "red"), ("cam-b", 2, "blue")]
# Clear answers a client can act on; UNKNOWN and INTERNAL never are.
CLEAR_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNAVAILABLE,  # only for incident ids: the incident store of this test is absent
}


@dataclass
class RunningSearch:
    address: str
    data_dir: Path
    nats_url: str
    log: Path
    pid: int
    seeded: list[FeatureRecord]
    credentials: Credentials

    def channel(self) -> grpc.Channel:
        """A client of the search service (with the operator token)."""
        return self.credentials.channel(self.address, options=[("grpc.max_send_message_length", 128 << 20)])

    def stats(self) -> search_pb2.IndexStats:
        with self.channel() as channel:
            return search_pb2_grpc.SearchServiceStub(channel).GetIndexStats(
                search_pb2.GetIndexStatsRequest(), timeout=10
            )

    def logged(self) -> list[dict]:
        lines = self.log.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


def publish(nats_url: str, messages: list[tuple[str, bytes]]) -> None:
    """Publish raw feature messages (subject, payload) to the FEATURES stream."""

    async def main() -> None:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        await bus.ensure_feature_stream(js)
        for subject, payload in messages:
            await js.publish(subject, payload)
        await nc.close()

    asyncio.run(main())


def publish_and_wait(service: RunningSearch, messages: list[tuple[str, bytes]], applied: int) -> None:
    """Publish, then wait until ``applied`` more records were applied (later good ones prove the
    earlier bad ones were consumed: one consumer takes them in order)."""
    before = service.stats().records_applied
    publish(service.nats_url, messages)
    wait_for(lambda: service.stats().records_applied >= before + applied, 30, "the records to be applied")


@pytest.fixture(scope="module")
def search_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSearch]:
    """``retina search serve`` on a real nats-server, with two tracks indexed."""
    tmp = tmp_path_factory.mktemp("search-hardening")
    credentials = Credentials(tmp / "secrets")
    nats_server = NatsServer(tmp / "nats")
    nats_server.start()
    config = tmp / "cluster.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "nats": {"url": nats_server.url},
                "features": {"embedder": "colour"},
                "cameras": [{"id": "cam-a", "url": "rtsp://127.0.0.1:8554/cam-a", "department": "urban"}],
            }
        )
    )
    grpc_port = free_port()
    log = tmp / "search.log"
    args = [
        "search", "serve", "--config", str(config), "--data-dir", str(tmp / "data"),
        "--grpc-port", str(grpc_port), "--metrics-port", str(free_port()),
        "--incidents-address", f"127.0.0.1:{free_port()}",  # nothing listens: incident ids → UNAVAILABLE
        *credentials.flags("search"),
    ]  # fmt: skip
    process = start_python(args, log_file=log)
    try:
        address = f"127.0.0.1:{grpc_port}"
        wait_until_serving(address, 60, process)
        seeded = [
            record(camera, track, patch(COLOURS_BGR[colour], track), NOW) for camera, track, colour in SEED
        ]
        service = RunningSearch(address, tmp / "data", nats_server.url, log, process.pid, seeded, credentials)
        publish_and_wait(service, [(r.subject, r.to_json()) for r in seeded], len(seeded))
        yield service
    finally:
        stop_process(process, "search")
        nats_server.stop()


def rejected(service: RunningSearch, request: search_pb2.SearchRequest) -> tuple[grpc.StatusCode, str]:
    with service.channel() as channel, pytest.raises(grpc.RpcError) as info:
        search_pb2_grpc.SearchServiceStub(channel).Search(request, timeout=60)
    return info.value.code(), info.value.details()


def peak_rss_mb(pid: int) -> float:
    """The highest resident memory the process has had (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc")


@cache
def blank_png(width: int, height: int) -> bytes:
    """A valid, fully decodable grey PNG that is tiny on disk however many pixels it declares."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + one byte per pixel
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


# -- 1. pixels are checked from the header, before decoding -------------------------------------------


def test_a_small_png_of_huge_dimensions_is_refused_before_decoding(search_service: RunningSearch):
    bomb = blank_png(7999, 7999)
    assert len(bomb) < 200_000  # 64 megapixels in a few tens of KB
    before = peak_rss_mb(search_service.pid)
    request = search_pb2.SearchRequest(image=bomb, department="urban")
    with ThreadPoolExecutor(6) as pool:  # six at once took the service from 0.57 to 2.13 GB
        answers = list(pool.map(lambda _: rejected(search_service, request), range(6)))
    for code, details in answers:
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details.startswith("image: 7999x7999 px is 64 megapixels, over the 50 megapixel limit")
    assert peak_rss_mb(search_service.pid) - before < 100, "the service decoded the pictures anyway"
    assert search_service.stats().tracks == len(SEED)  # and it keeps serving


# -- 2. upload size ----------------------------------------------------------------------------------


def test_an_oversized_upload_is_told_its_size_and_a_huge_one_stays_bounded(search_service: RunningSearch):
    code, details = rejected(
        search_service,
        search_pb2.SearchRequest(image=b"\xff\xd8\xff" + bytes(45 * 2**20 - 3), department="u"),
    )
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "image: 45.0 MB is over the 20 MB limit")
    # gRPC refuses, unread, what is far over the limit: memory stays bounded.
    code, _ = rejected(search_service, search_pb2.SearchRequest(image=bytes(80 * 2**20), department="u"))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert search_service.stats().tracks == len(SEED)


# -- 3. out-of-range numbers and undecodable requests: INVALID_ARGUMENT, never UNKNOWN -------------------


@pytest.mark.parametrize(
    ("field", "stamp"),
    [
        ("start", Timestamp(seconds=2**62)),
        ("end", Timestamp(seconds=-(2**62))),
        ("start", Timestamp(nanos=-1)),
    ],
)
def test_out_of_range_timestamps_name_the_filter(search_service: RunningSearch, field: str, stamp: Timestamp):
    filters = search_pb2.SearchFilters(**{field: stamp})
    request = search_pb2.SearchRequest(track_id="cam-a:1:1", department="urban", filters=filters)
    code, details = rejected(search_service, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith(f"filters.{field}:")


@pytest.mark.parametrize(
    ("method", "payload"),
    [
        (SEARCH, b"\x0a\xff\xff\xff\xff\x0f"),  # a length past the end
        (SEARCH, b"\x12\x01\xff"),  # incident_id that is not UTF-8
        (SEARCH, b"\xff"),
        (INDEX_STATS, b"\x0a\xff\xff\xff\xff\x0f"),
        (INDEX_STATS, b"\xff"),
        (GET_CROP, b"\x0a\xff\xff\xff\xff\x0f"),
    ],
)
def test_undecodable_requests_are_invalid_arguments(
    search_service: RunningSearch, method: str, payload: bytes
):
    with search_service.channel() as channel, pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(method)(payload, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("request:")


# -- 4. ids: checked, and never echoed in full --------------------------------------------------------


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"track_id": "x" * 2**20}, "track_id"),
        ({"track_id": "../cam-b/cam-b:1:2"}, "track_id"),
        ({"track_id": "cam-a:1:1\n"}, "track_id"),
        ({"incident_id": "y" * 2**20}, "incident_id"),
        ({"incident_id": "a/../b"}, "incident_id"),
        ({"track_id": "cam-a:1:1", "department": "z" * 2**20}, "department"),
        ({"track_id": "cam-a:1:1", "filters": {"camera_ids": ["c" * 2**20]}}, "filters.camera_ids"),
        ({"track_id": "cam-a:1:1", "filters": {"families": ["f" * 2**20]}}, "filters.families"),
        ({"track_id": "cam-a:1:1", "filters": {"colours": ["mauve"]}}, "filters.colours"),
    ],
)
def test_ids_are_checked_and_never_echoed_in_full(
    search_service: RunningSearch, request_fields: dict, field: str
):
    request = search_pb2.SearchRequest(**{"department": "urban", **request_fields})
    code, details = rejected(search_service, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"{field}:") and len(details) < 300


def crop_answer(service: RunningSearch, track_id: str, department: str) -> tuple[grpc.StatusCode, str]:
    with service.channel() as channel, pytest.raises(grpc.RpcError) as info:
        search_pb2_grpc.SearchServiceStub(channel).GetCrop(
            search_pb2.GetCropRequest(track_id=track_id, department=department), timeout=10
        )
    return info.value.code(), info.value.details()


def test_a_crop_is_given_only_within_the_departments_scope(search_service: RunningSearch):
    seeded = search_service.seeded[0]  # cam-a, urban's camera, shared with no one
    with search_service.channel() as channel:
        crop = search_pb2_grpc.SearchServiceStub(channel).GetCrop(
            search_pb2.GetCropRequest(track_id=seeded.id, department=" urban "), timeout=10
        )
    assert crop.jpeg == seeded.crop_jpeg()
    assert abs(crop.seen_at.ToNanoseconds() / 1e9 - seeded.crop_seen_at.timestamp()) < 1e-3
    # Another department: exactly the answer for a track that does not exist.
    unknown = track_key("cam-a", NOW, 999)
    code, details = crop_answer(search_service, seeded.id, "police")
    assert code == grpc.StatusCode.NOT_FOUND
    assert (code, details.replace(seeded.id, unknown)) == crop_answer(search_service, unknown, "police")
    for track_id, department, field in [
        ("../cam-b/cam-b_1_2-0", "urban", "track_id"),
        ("cam-a:1:1\n", "urban", "track_id"),
        ("x" * 2**20, "urban", "track_id"),
        (seeded.id, "", "department"),
        (seeded.id, "urban/../police", "department"),
    ]:
        code, details = crop_answer(search_service, track_id, department)
        assert (
            code == grpc.StatusCode.INVALID_ARGUMENT
            and details.startswith(f"{field}:")
            and len(details) < 300
        )


# -- 5. the CLI: one line naming the flag, never a traceback ------------------------------------------


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = retina(["search", "query", "--department", "urban", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_query_answers_bad_input_with_one_line_naming_the_flag(
    search_service: RunningSearch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("RETINA_TOKEN_FILE", str(search_service.credentials.token_file("operator")))
    photo = tmp_path / "photo.png"
    photo.write_bytes(png(64, 48))
    (tmp_path / "notes.txt").write_text("not a photo")
    big = tmp_path / "big.jpg"
    with open(big, "wb") as f:
        f.truncate(21 * 2**20)
    address = ("--address", search_service.address)
    cases = [
        (("--image", str(tmp_path / "missing.jpg")), 2, "error: --image: no such file"),
        (("--image", str(tmp_path / "notes.txt")), 2, "error: --image: "),
        (("--image", str(tmp_path)), 2, "error: --image: "),
        (("--image", "/dev/zero"), 2, "error: --image: '/dev/zero' is not a regular file"),
        (("--image", str(big)), 2, "error: --image: "),
        (("--image", str(photo), "--region", "0.5,0.5,0.1"), 2, "error: --region: "),
        (("--image", str(photo), "--region", "0.5,0.5,0.2,0.9"), 2, "error: --region: "),
        (("--image", str(photo), "--region", "nan,0,1,1"), 2, "error: --region: "),
        (("--track", "cam-a:1:1", "--region", "0,0,1,1"), 2, "error: --region: "),
        (("--image", str(photo), "--since", "yesterday"), 2, "error: --since: "),
        (("--image", str(photo), "--until", "2026-13-45T25:00"), 2, "error: --until: "),
        (("--image", str(photo), "-k", "0"), 2, "error: -k: "),
        (("--image", str(photo), "-k", "-5"), 2, "error: -k: "),
        (("--image", str(photo), "--colour", "mauve", *address), 2, "error: --colour: filters.colours: "),
        (("--track", "../x", *address), 2, "error: --track: track_id: "),
        (("--track", "cam-a:1:999", *address), 1, "error: NOT_FOUND: track_id: "),
        (("--image", str(photo), "--address", f"127.0.0.1:{free_port()}"), 1, "error: --address 127.0.0.1:"),
    ]
    for args, exit_code, message in cases:
        code, out, err = run_cli(capsys, *args)
        assert (code, out) == (exit_code, ""), (args, err)
        assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err, (args, err)
    assert "is not a picture" in run_cli(capsys, "--image", str(tmp_path / "notes.txt"))[2]
    assert "is a folder" in run_cli(capsys, "--image", str(tmp_path))[2]
    assert "21.0 MB" in run_cli(capsys, "--image", str(big))[2]

    code, out, err = run_cli(capsys, "--image", str(photo), "--since", "2020-01-01T00:00:00+08:00", *address)
    assert code == 0 and err == "" and "cam-a" in out  # the red track, seen after 2020

    # --save-crops: each match's crop, fetched with GetCrop, in a folder made for it.
    code, out, err = run_cli(capsys, "--image", str(photo), "--save-crops", str(tmp_path / "crops"), *address)
    saved = sorted((tmp_path / "crops").iterdir())
    assert code == 0 and err == "" and saved and all(f"crop: {path}" in out for path in saved)
    by_id = {r.id.replace(":", "_"): r for r in search_service.seeded}
    for path in saved:
        assert path.read_bytes() == by_id[path.stem.split("-", 1)[1]].crop_jpeg()
    code, out, err = run_cli(capsys, "--image", str(photo), "--save-crops", str(photo), *address)
    assert (code, out) == (2, "") and err.startswith("error: --save-crops: ") and "is a file" in err


# -- 6. feature records cannot write outside their camera's crops -------------------------------------


def traversal(victim: FeatureRecord) -> dict:
    """The fields of a cam-a record whose id points its crop file at ``victim``'s crop."""
    attacker = record("cam-a", 7, patch(COLOURS_BGR["yellow"], 7), NOW)
    data = attacker.model_dump()
    data["id"] = "../" + victim.camera_id + "/" + victim.id.replace(":", "_")
    data["crop_revision"] = victim.crop_revision
    return data


def test_a_record_id_cannot_reach_another_cameras_crop(tmp_path: Path):
    engine = engine_at(tmp_path)
    victim = record("cam-b", 2, patch(COLOURS_BGR["blue"], 2), NOW)
    engine.apply(victim)
    crop = tmp_path / "crops" / engine.store.track(victim.id).crop_path
    original = crop.read_bytes()
    with pytest.raises(ValidationError) as info:
        FeatureRecord.model_validate(traversal(victim))
    assert [error["loc"] for error in info.value.errors()] == [("id",)]
    # Whatever reaches the store unchecked, the path is built from checked parts only.
    unchecked = FeatureRecord.model_construct(**traversal(victim))
    with pytest.raises(RejectedRecordError, match="id: "):
        engine.apply(unchecked)
    with pytest.raises(UnsafeCropPathError):
        engine.store.crop_path("cam-a", "cam-b:1:2", 0)  # a track of another camera
    assert crop.read_bytes() == original and engine.store.counts() == (1, 1)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "cam-a:1:99"}, "id"),  # another track id than the record's track_id
        ({"shared_with": ["police", "../x"]}, "shared_with"),
        ({"colours": ["red", "x" * 10_000]}, "colours"),
        ({"class_name": "car/../../x"}, "class_name"),
        ({"revision": 2**63}, "revision"),
        ({"bbox": [0, 0, float("nan"), 1]}, "bbox"),
        ({"crop_jpeg_base64": "A" * (5 * 2**20)}, "crop_jpeg_base64"),
    ],
)
def test_feature_records_are_checked_field_by_field(change: dict, field: str):
    good = record("cam-a", 1, patch(COLOURS_BGR["red"], 1), NOW).model_dump(by_alias=True, mode="json")
    with pytest.raises(ValidationError) as info:
        FeatureRecord.model_validate({**good, **change})
    named = {  # the field in the error's location, or (checks across fields) leading its message
        str(error["loc"][0]) if error["loc"] else error["msg"].removeprefix("Value error, ").split(":")[0]
        for error in info.value.errors()
    }
    assert named == {field}


def test_records_that_are_not_jpeg_or_base64_are_refused(tmp_path: Path):
    engine = engine_at(tmp_path)
    good = record("cam-a", 1, patch(COLOURS_BGR["red"], 1), NOW)
    for change, problem in [
        ({"crop_jpeg_base64": base64.b64encode(b"<svg/>").decode()}, "crop_jpeg_base64 is not a JPEG"),
        ({"crop_jpeg_base64": "@@@"}, "crop_jpeg_base64 is not base64"),
        ({"embedding_base64": "abc"}, "embedding_base64 is not base64"),
    ]:
        with pytest.raises(RejectedRecordError, match=problem):
            engine.apply(good.model_copy(update=change))
    assert engine.store.counts() == (0, 0)


def test_the_running_service_drops_a_traversing_record_and_logs_the_field(search_service: RunningSearch):
    victim = search_service.seeded[1]
    crop = next((search_service.data_dir / "crops" / victim.camera_id).glob("*.jpg"))
    original = crop.read_bytes()
    attack = FeatureRecord.model_construct(**traversal(victim)).to_json()
    misfiled = record("cam-b", 8, patch(COLOURS_BGR["green"], 8), NOW)  # cam-b's record on cam-a's subject
    good = record("cam-a", 9, patch(COLOURS_BGR["red"], 9), NOW)
    publish_and_wait(
        search_service,
        [("retina.features.cam-a", attack), ("retina.features.cam-a", misfiled.to_json()),
         (good.subject, good.to_json())],
        applied=1,
    )  # fmt: skip
    assert crop.read_bytes() == original
    assert not (
        search_service.data_dir / "crops" / "cam-b" / f"{misfiled.id.replace(':', '_')}-0.jpg"
    ).exists()
    logged = search_service.logged()
    dropped = [line for line in logged if line.get("msg") == "not a valid feature record; dropped"]
    assert dropped and dropped[-1]["error"].startswith("id: ")
    misfiled_lines = [line for line in logged if line.get("msg", "").startswith("feature record on another")]
    assert misfiled_lines and misfiled_lines[-1]["error"].startswith("camera_id: ")


# -- 8. generated garbage: a clear answer or success, never a crash ------------------------------------


# Generated requests are valid ones with some fields replaced by garbage, so that each kind of
# garbage is met at every depth of the handler, not only by its first check.
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=80)
huge_text = st.integers(1000, 300_000).map(lambda n: "x" * n)
garbage_text = st.one_of(text, huge_text, st.sampled_from(["", " ", "a\nb", "../x", "*", "cam-a:1:1\n"]))
MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31
good_stamps = st.builds(Timestamp, seconds=st.integers(0, MAX_TIMESTAMP), nanos=st.integers(0, 999_999_999))
any_stamps = st.builds(
    Timestamp, seconds=st.integers(-(2**63), 2**63 - 1), nanos=st.integers(-(2**31), 2**31 - 1)
)
good_images = st.sampled_from([png(64, 48), png(200, 100), png(8, 8)])
any_images = st.one_of(
    st.binary(max_size=2048),
    st.sampled_from([png(8001, 4), png(3, 3), blank_png(4000, 4000), b"\x89PNG\r\n\x1a\n", b"GIF89a"]),
    st.integers(8, 600).map(lambda n: png(64, 48)[:n]),  # truncated
)
good_regions = st.builds(
    lambda x, y, w, h: common_pb2.BBox(x1=x, y1=y, x2=x + w, y2=y + h),
    st.floats(0, 0.5), st.floats(0, 0.5), st.floats(0.2, 0.5), st.floats(0.2, 0.5),
)  # fmt: skip
any_floats = st.floats(allow_nan=True, allow_infinity=True)
any_regions = st.builds(common_pb2.BBox, x1=any_floats, y1=any_floats, x2=any_floats, y2=any_floats)
GOOD = {
    "image": good_images,
    "track_id": st.sampled_from(["cam-a:1:1", *(track_key(camera, NOW, track) for camera, track, _ in SEED)]),
    "incident_id": st.sampled_from(["abc-123", "0b8e9c1e-6a4e-5a7c-9a51-2d5d6f0e8f11"]),
    "region": good_regions,
    "department": st.sampled_from(["urban", "police", " urban "]),
    "k": st.integers(0, MAX_RESULTS),
    "camera_ids": st.lists(st.sampled_from(["cam-a", "cam-b", "cam-z"]), max_size=2),
    "families": st.lists(st.sampled_from(["person", "vehicle", "non_motor"]), max_size=2),
    "colours": st.lists(st.sampled_from(COLOUR_NAMES), max_size=2),
    "start": good_stamps,
    "end": good_stamps,
}
GARBAGE_OF = {
    "image": any_images,
    "track_id": garbage_text,
    "incident_id": garbage_text,
    "region": any_regions,
    "department": garbage_text,
    "k": st.integers(0, 2**32 - 1),
    "camera_ids": st.lists(garbage_text, min_size=1, max_size=3),
    "families": st.lists(garbage_text, min_size=1, max_size=3),
    "colours": st.lists(garbage_text, min_size=1, max_size=3),
    "start": any_stamps,
    "end": any_stamps,
}
FILTER_FIELDS = ("camera_ids", "families", "colours", "start", "end")


@st.composite
def search_requests(draw: st.DrawFn) -> search_pb2.SearchRequest:
    """A SearchRequest with a query of some kind, some optional fields, and 0-2 garbage fields."""
    query = draw(st.sampled_from(["image", "track_id", "incident_id", None]))
    fields = [f for f in (query, "department") if f] + draw(
        st.lists(st.sampled_from(["k", "region", *FILTER_FIELDS]), unique=True, max_size=3)
    )
    spoiled = draw(st.lists(st.sampled_from(fields), unique=True, max_size=2)) if fields else []
    values = {f: draw(GARBAGE_OF[f] if f in spoiled else GOOD[f]) for f in fields}
    if "region" in values and query != "image":
        del values["region"]  # region goes with an image
    filters = search_pb2.SearchFilters(**{f: values.pop(f) for f in FILTER_FIELDS if f in values})
    return search_pb2.SearchRequest(filters=filters, **values)


GARBAGE = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def assert_clear(call) -> None:
    """The call succeeds or fails with a clear code and a short details string naming a field."""
    try:
        call()
    except grpc.RpcError as exc:
        event(f"{exc.code().name} {exc.details().split(':')[0][:30]}")
        assert exc.code() in CLEAR_CODES, (exc.code(), exc.details())
        assert exc.details() and len(exc.details()) < 500 and ":" in exc.details()
    else:
        event("OK")


@GARBAGE
@given(request=search_requests())
def test_generated_search_requests_get_clear_answers(search_service: RunningSearch, request):
    with search_service.channel() as channel:
        assert_clear(lambda: search_pb2_grpc.SearchServiceStub(channel).Search(request, timeout=30))


@GARBAGE
@given(method=st.sampled_from([SEARCH, INDEX_STATS, GET_CROP]), payload=st.binary(max_size=512))
def test_generated_raw_bytes_get_clear_answers(search_service: RunningSearch, method: str, payload: bytes):
    with search_service.channel() as channel:
        assert_clear(lambda: channel.unary_unary(method)(payload, timeout=30))


def test_the_service_still_answers_after_the_garbage(search_service: RunningSearch):
    assert search_service.stats().tracks >= len(SEED)
    assert not [line for line in search_service.logged() if line.get("msg") == "request failed"]
