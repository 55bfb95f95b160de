"""Plates on vehicle tracks (车牌识别) and search by plate, with real parts.

1. The worker pipeline (real detector, real plate models) on real footage: a real plate photo is
   composited, at a readable size, onto the car standing at the kerb of ``intersection.mp4``; the
   illegal-parking incident carries the plate and its crop as evidence, the feature record the plate.
2. Voting: reads with a wrong character across a track still give the right plate.
3. Search by plate (exact, wildcard, confusion-tolerant) through the running search service's gRPC
   API and ``retina search plate``, scoped to the caller's department.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import grpc
import httpx
import nats
import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from retina.algorithms.sdk import IncidentEvent
from retina.services.cli import main as retina
from retina.services.cli.clients import wait_until_serving
from retina.services.core import bus
from retina.services.core.config import CameraConfig, ConfigError, FeaturesConfig, RetinaConfig
from retina.services.core.features import ColourEmbedder, FeatureRecord
from retina.services.core.incident import IncidentMessage, build_message
from retina.services.core.outbox import Outbox
from retina.services.core.plate_text import PlateEvidence, PlateFacts, PlateRead, canonical, plate_query, vote
from retina.services.core.plates import PlateReader
from retina.services.core.plates_config import PlatesConfig
from retina.services.core.ports import free_port
from retina.services.core.processes import start_python, stop_process
from retina.services.gateway.accounts import AccountStore
from retina.services.incidents.store import IncidentStore
from retina.services.worker.detector import Detector
from retina.services.worker.features import FeatureExtractor
from retina.services.worker.pipeline import Analyzer
from retina.services.worker.sinks import JsonLinesSink, OutboxSink
from retina.v1 import search_pb2, search_pb2_grpc
from tests.conftest import MODEL, footage, wait_for
from tests.test_search import COLOURS_BGR, patch, record
from tests.test_search_hardening import RunningSearch, publish_and_wait, search_service

__all__ = ["search_service"]  # the running search service of the hardening tests (this module's own)

PLATES = Path("/work/shared/models/plates")
PLATE_PHOTO = Path("/work/shared/images/plates/single_green.jpg")
PLATE_TEXT = "沪AF71017"
KERB = [[0.0, 0.5], [0.3, 0.5], [0.3, 1.0], [0.0, 1.0]]  # the car standing at the lower-left corner
PLATE_AT = (18, 322, 56, 16)  # x, y, width, height in the 640×480 frame: on the car's front
SECONDS = 6.0


def plates_config() -> PlatesConfig:
    detector, reader = PLATES / "plate_detect_y5fu_320.onnx", PLATES / "plate_read_colour_crnn.onnx"
    if not detector.exists() or not reader.exists() or not PLATE_PHOTO.exists():
        pytest.skip("shared plate models or photos missing")
    return PlatesConfig(detector_model=str(detector), reader_model=str(reader))


def footage_with_plate(target: Path) -> None:
    """The first seconds of intersection.mp4 with the real plate photo warped onto the standing car."""
    photo = cv2.imread(str(PLATE_PHOTO))
    (plate,) = PlateReader(plates_config()).read(photo)
    x, y, width, height = PLATE_AT
    corners = np.array([[x, y], [x + width, y], [x + width, y + height], [x, y + height]], np.float32)
    warp = cv2.getPerspectiveTransform(np.array(plate.detection.corners, np.float32), corners)
    with av.open(str(footage("intersection.mp4"))) as source, av.open(str(target), "w") as out:
        stream_in = source.streams.video[0]
        stream = out.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = stream_in.width, stream_in.height, "yuv420p"
        stream.bit_rate = 4_000_000
        mask = np.zeros((stream_in.height, stream_in.width), np.uint8)
        cv2.fillConvexPoly(mask, corners.astype(np.int32), 255)
        for index, frame in enumerate(source.decode(video=0)):
            if index >= SECONDS * 30:
                break
            image = frame.to_ndarray(format="bgr24")
            warped = cv2.warpPerspective(photo, warp, (image.shape[1], image.shape[0]), flags=cv2.INTER_AREA)
            image[mask > 0] = warped[mask > 0]
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        out.mux(stream.encode())


def test_a_parking_incident_and_the_feature_record_carry_the_plate(tmp_path: Path):
    video = tmp_path / "kerb.mp4"
    footage_with_plate(video)
    camera = CameraConfig(
        id="kerb",
        url=str(video),
        department="traffic",
        analysis_fps=4,
        algorithms=[
            {
                "name": "illegal_parking",
                "zones": [{"name": "kerb", "polygon": KERB}],
                "params": {"dwell_seconds": 3},
            }
        ],
    )
    config = RetinaConfig(detector={"model": str(MODEL)}, plates=plates_config())
    out, media = io.StringIO(), tmp_path / "media"
    sink = JsonLinesSink(out, media)
    events: list[IncidentEvent] = []

    def deliver(camera: CameraConfig, batch: list[IncidentEvent]) -> None:
        events.extend(batch)
        sink.deliver(camera, batch)

    records: list[FeatureRecord] = []
    extractor = FeatureExtractor(ColourEmbedder(), records.extend)
    extractor.start()
    analyzer = Analyzer(
        Detector(config.detector),
        config.tracker,
        config.ingest,
        deliver,
        lambda *_: None,
        realtime=False,
        retry_files=False,
        max_batch=1,
        features=extractor,
        features_config=FeaturesConfig(),
        plates=config.plates,
    )
    stop = threading.Event()
    loop = threading.Thread(target=analyzer.run, args=(stop,))
    loop.start()
    started = time.monotonic()
    analyzer.assign(camera)
    while not analyzer.all_finished() and time.monotonic() - started < 60:
        time.sleep(0.1)
    analyzer.release("kerb")
    stop.set()
    loop.join()
    sink.close(timeout=None)
    extractor.stop()

    messages = [IncidentMessage.model_validate_json(line) for line in out.getvalue().splitlines()]
    assert messages and messages[0].event == "new", out.getvalue()
    plated = [m for m in messages if m.plate is not None]
    assert plated and plated[0].event == "new", [m.event for m in messages]
    plate = plated[0].plate
    assert (plate.text, plate.colour) == (PLATE_TEXT, "green") and plate.confidence > 0.8 and plate.reads >= 1
    assert plate.crop is not None and plate.crop.path.startswith(f"kerb/{messages[0].id}/plate-")
    crop = cv2.imread(str(media / plate.crop.path))
    assert crop is not None and crop.shape[1] >= PLATE_AT[2]  # the full-resolution plate, not a thumbnail
    assert PlateReader(plates_config()).read(cv2.resize(crop, None, fx=3, fy=3))[0].text == PLATE_TEXT
    assert all(m.plate.text == PLATE_TEXT for m in plated)  # later events keep it
    crops = [(e.plate.crop_revision, e.plate.crop_jpeg is not None) for e in events if e.plate is not None]
    assert sorted({r for r, _ in crops}) == sorted(r for r, sent in crops if sent)  # each crop sent once

    vehicle = [r for r in records if r.track_id == messages[0].track_id and r.plate is not None]
    assert vehicle and vehicle[-1].plate.text == PLATE_TEXT and vehicle[-1].plate.colour == "green"
    assert messages[0].track_key == vehicle[0].id
    assert all(r.plate is None for r in records if r.family != "vehicle")


def test_voting_across_a_tracks_reads_corrects_single_misreads():
    reads = [
        PlateRead("浙B2V9L7", "blue", 0.93),
        PlateRead("浙82V9L7", "blue", 0.81),  # B read as 8
        PlateRead("浙B2V9L1", "green", 0.64),  # 7 read as 1, colour wrong
        PlateRead("浙B2V9L", "blue", 0.5),  # a character lost
    ]
    facts = vote(reads)
    assert facts is not None and (facts.text, facts.colour, facts.reads) == ("浙B2V9L7", "blue", 4)
    assert 0.4 < facts.confidence < vote(reads[:1]).confidence  # disagreement costs confidence
    assert vote([PlateRead("", "blue", 0.9)]) is None
    assert canonical("浙B2V9L7") == canonical("浙82V9L7") == canonical("浙b·2v9l7")


# -- search by plate -----------------------------------------------------------------------------------

# (camera, tracker id, department, plate, colour): tracks with plates, published to the running service.
PLATED = [
    ("cam-a", 11, "urban", "浙B2V9L7", "blue"),
    ("cam-a", 12, "urban", "浙82V9L7", "blue"),  # the same plate misread: found by tolerant search
    ("cam-a", 13, "urban", "浙A12345", "blue"),
    ("cam-b", 14, "police", "浙B2V9L7", "blue"),  # another department's camera
    ("cam-a", 15, "urban", "沪AF71017", "green"),
]


def plated_records() -> list[FeatureRecord]:
    out = []
    for camera, track, department, text, colour in PLATED:
        item = record(camera, track, patch(COLOURS_BGR["red"], track), time.time() - 600, department)
        item.plate = PlateFacts(text=text, colour=colour, confidence=0.9, reads=3)
        out.append(item)
    return out


@pytest.fixture(scope="module")
def plated(search_service: RunningSearch) -> RunningSearch:
    items = plated_records()
    publish_and_wait(search_service, [(r.subject, r.to_json()) for r in items], len(items))
    return search_service


def search_plates(
    service: RunningSearch, plate: str, department: str, **kwargs
) -> list[search_pb2.PlateMatch]:
    with service.channel() as channel:
        stub = search_pb2_grpc.SearchServiceStub(channel)
        request = search_pb2.PlateSearchRequest(plate=plate, department=department, **kwargs)
        return list(stub.SearchPlates(request, timeout=30).matches)


def found(matches: list[search_pb2.PlateMatch]) -> list[tuple[int, str, bool]]:
    return [(int(m.match.track_id.rsplit(":", 1)[1]), m.plate, m.exact) for m in matches]


def test_search_by_plate_exact_wildcard_and_tolerant_within_the_department(plated: RunningSearch):
    # Exact first, then the plate read with a confusable character; never another department's track.
    assert found(search_plates(plated, "浙B2V9L7", "urban")) == [
        (11, "浙B2V9L7", True),
        (12, "浙82V9L7", False),
    ]
    assert found(search_plates(plated, "浙B2V9L7", "police")) == [(14, "浙B2V9L7", True)]
    assert found(search_plates(plated, "浙B2V9L7", "parks")) == []
    assert found(search_plates(plated, "浙b 2v9l7", "urban", exact_only=True)) == [(11, "浙B2V9L7", True)]
    # Wildcards: * any run, ? one character; the confusions hold inside a pattern too.
    assert {t for t, _, _ in found(search_plates(plated, "浙B*", "urban"))} == {11, 12}
    assert {t for t, _, _ in found(search_plates(plated, "浙*", "urban"))} == {11, 12, 13}
    assert found(search_plates(plated, "浙A1234?", "urban")) == [(13, "浙A12345", True)]
    assert found(search_plates(plated, "沪AF7IO1?", "urban")) == [(15, "沪AF71017", False)]  # I→1, O→0
    # Cameras and time filter as for image search.
    later = search_pb2.SearchFilters(start=Timestamp(seconds=int(time.time()) + 3600))
    assert found(search_plates(plated, "浙B*", "urban", filters=later)) == []
    cam_b = search_pb2.SearchFilters(camera_ids=["cam-b"])
    assert found(search_plates(plated, "浙B*", "urban", filters=cam_b)) == []  # not urban's camera
    assert found(search_plates(plated, "浙B*", "police", filters=cam_b)) == [(14, "浙B2V9L7", True)]
    match = search_plates(plated, "沪AF71017", "urban")[0]
    assert (match.colour, match.reads, match.match.camera_id) == ("green", 3, "cam-a")
    assert match.match.has_crop and 0.89 < match.confidence < 0.91
    with plated.channel() as channel, pytest.raises(grpc.RpcError) as refused:
        search_pb2_grpc.SearchServiceStub(channel).SearchPlates(
            search_pb2.PlateSearchRequest(plate="**", department="urban"), timeout=10
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "plate:" in refused.value.details()


def test_cli_search_plate(
    plated: RunningSearch, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("RETINA_TOKEN_FILE", str(plated.credentials.token_file("operator")))
    address = ("--address", plated.address)
    assert retina(["search", "plate", "浙B2V9L7", "--department", "urban", "--json", *address]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["plate"], r["exact"]) for r in rows] == [("浙B2V9L7", True), ("浙82V9L7", False)]
    assert rows[0]["camera_id"] == "cam-a" and rows[0]["colour"] == "blue"
    assert retina(["search", "plate", "浙B2V9L7", "--department", "parks", *address]) == 0
    assert "no plate" in capsys.readouterr().out
    assert retina(["search", "plate", "浙B?", "--department", "urban", "--since", "yesterday", *address]) == 2
    assert "--since" in capsys.readouterr().err
    assert retina(["search", "plate", "浙B#1", "--department", "urban", *address]) == 2
    assert "PLATE:" in capsys.readouterr().err
    assert plate_query("浙B**?").text == "浙B*?"


@dataclass
class Front:
    """The gateway (with the incident store and the search service behind it) and its users' tokens."""

    url: str
    tokens: dict[str, str]
    nats_url: str

    def get(self, user: str | None, path: str, **params) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.get(f"{self.url}/api/v1{path}", params=params, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def front(plated: RunningSearch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    """``retina gateway serve`` in front of the running search service and an incident store."""
    data = tmp_path_factory.mktemp("plate-gateway")
    users = {
        "urban-police": ("urban", ["police"]),
        "urban-officer": ("urban", ["dispatcher", "police"]),
        "urban-dispatcher": ("urban", ["dispatcher"]),
        "parks-police": ("parks", ["police", "dispatcher"]),
    }
    store = AccountStore(data / "gateway.sqlite")
    for name, (department, roles) in users.items():
        store.add_user(name, department, roles, "a long test password")
    tokens = {name: store.create_token(name, 1)[0] for name in users}
    store.close()
    port, incidents = free_port(), f"127.0.0.1:{free_port()}"
    incidents_args = [
        "incidents", "serve", "--data-dir", str(data / "incidents"), "--nats-url", plated.nats_url,
        "--grpc-port", incidents.rsplit(":", 1)[1], "--metrics-port", str(free_port()),
        *plated.credentials.flags("incidents"),
    ]  # fmt: skip
    gateway_args = [
        "gateway", "serve", "--data-dir", str(data), "--http-port", str(port),
        "--metrics-port", str(free_port()), "--search-address", plated.address, "--nats-url", plated.nats_url,
        "--incidents-address", incidents, "--scheduler-address", f"127.0.0.1:{free_port()}",
        *plated.credentials.flags("gateway"),
    ]  # fmt: skip
    processes = {
        "incidents": start_python(incidents_args, log_file=data / "incidents.log"),
        "gateway": start_python(gateway_args, log_file=data / "gateway.log"),
    }
    try:
        wait_until_serving(incidents, 60, processes["incidents"])
        front = Front(f"http://127.0.0.1:{port}", tokens, plated.nats_url)
        wait_for(lambda: _healthy(front.url), 60, "the gateway to answer")
        yield front
    finally:
        for name, process in processes.items():
            stop_process(process, name)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


def test_gateway_plate_search_is_for_police_within_their_department(front: Front):
    answer = front.get("urban-police", "/search/plates", q="浙B*")
    assert answer.status_code == 200, answer.text
    matches = answer.json()["matches"]
    assert [(m["plate"], m["exact"]) for m in matches] == [("浙B2V9L7", True), ("浙82V9L7", False)]
    assert matches[0]["camera_id"] == "cam-a" and matches[0]["crop_url"].startswith("/api/v1/search/crops/")
    assert front.get("parks-police", "/search/plates", q="浙B*").json()["matches"] == []  # other department
    refused = front.get("urban-dispatcher", "/search/plates", q="浙B*")
    assert refused.status_code == 403 and "police" in refused.json()["detail"]
    bad = front.get("urban-police", "/search/plates", q="浙B#")
    assert bad.status_code == 422 and "plate:" in bad.text
    assert front.get(None, "/search/plates", q="浙B*").status_code == 401


def publish_incident_with_plate(nats_url: str, message: IncidentMessage, crop: bytes) -> None:
    """As the worker's publisher does: the plate crop into the media bucket, then the event."""

    async def main() -> None:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        media = await bus.ensure_all(js)
        await media.put(message.plate.crop.path, crop)
        await js.publish(message.subject, message.to_json(), headers={"Nats-Msg-Id": message.msg_id})
        await nc.close()

    asyncio.run(main())


CAM_A = CameraConfig(id="cam-a", url="rtsp://127.0.0.1:9/a", department="urban")
STARTED = time.time() - 60
FACTS = PlateFacts(text="浙B2V9L7", colour="blue", confidence=0.93, reads=3)


def parking_event(incident_id: str, revision: int, plate: PlateEvidence | None) -> IncidentEvent:
    """An illegal-parking event of cam-a's car (track 3) as the worker's pipeline hands it to a sink."""
    return IncidentEvent(
        event="new" if revision == 0 else "update", incident_id=incident_id, revision=revision,
        algorithm="illegal_parking", algorithm_version="1", zone="kerb", started_at=STARTED,
        last_seen_at=STARTED + 60 + revision, ended_at=None, dwell_seconds=60.0 + revision,
        bbox=(0.1, 0.5, 0.3, 0.9), confidence=0.9, track_id=3, plate=plate,
    )  # fmt: skip


@pytest.fixture(scope="module")
def plate_incident(front: Front) -> bytes:
    """An illegal-parking incident of cam-a (urban) with a plate, its crop stored: the crop's bytes."""
    crop = cv2.imencode(".jpg", patch(COLOURS_BGR["blue"], 5))[1].tobytes()
    message, _ = build_message(
        parking_event("inc-plate", 0, PlateEvidence(FACTS, 0, crop)), CAM_A, bus.MEDIA_BUCKET
    )
    assert message.plate.crop.path == "cam-a/inc-plate/plate-0.jpg"
    publish_incident_with_plate(front.nats_url, message, crop)
    stored = "/incidents/inc-plate/plate"
    wait_for(lambda: front.get("urban-officer", stored).status_code == 200, 30, "the plate crop to be stored")
    return crop


def test_an_incidents_plate_and_its_crop_are_for_police_only(front: Front, plate_incident: bytes):
    crop, plate_url = plate_incident, "/incidents/inc-plate/plate"
    seen = front.get("urban-officer", "/incidents/inc-plate").json()
    assert seen["plate"] == {"text": "浙B2V9L7", "colour": "blue", "confidence": 0.93, "reads": 3}
    assert seen["plate_url"] == f"/api/v1{plate_url}"
    assert front.get("urban-officer", plate_url).content == crop  # the original, audited
    hidden = front.get("urban-dispatcher", "/incidents/inc-plate").json()
    assert "plate" not in hidden and "plate_url" not in hidden
    assert front.get("urban-dispatcher", plate_url).status_code == 403
    assert front.get("urban-dispatcher", "/incidents/inc-plate/media/plate-0.jpg").status_code == 403
    assert front.get("parks-police", plate_url).status_code == 404  # another department's incident


def test_the_worker_outbox_queues_each_plate_crop_once_beside_its_event(tmp_path: Path):
    outbox = Outbox(tmp_path / "outbox.sqlite")
    sink = OutboxSink(outbox, lambda: None, bus.MEDIA_BUCKET)
    first = parking_event("inc-1", 0, PlateEvidence(FACTS, 0, b"\xff\xd8\xffplate"))
    later = parking_event("inc-1", 1, PlateEvidence(FACTS, 0, None))  # the same crop: not sent again
    sink.deliver(CAM_A, [first, later])
    assert sink.wait_idle(10)
    items = outbox.peek()
    assert [(i.msg_id, i.media_name) for i in items] == [
        ("inc-1:new:0", None),
        ("inc-1:plate:0", "cam-a/inc-1/plate-0.jpg"),
        ("inc-1:update:1", None),
    ]
    assert items[1].media == b"\xff\xd8\xffplate"
    for item in (items[0], items[2]):
        plate = IncidentMessage.model_validate_json(item.payload).plate
        assert plate.text == "浙B2V9L7" and plate.crop.path == items[1].media_name
    sink.close()


def first_incident_event(front: Front, user: str) -> dict:
    """The first incident event of the gateway's live stream (replayed from the start) as ``user``."""
    headers = {"Authorization": f"Bearer {front.tokens[user]}", "Last-Event-ID": "0:0"}
    with httpx.stream("GET", f"{front.url}/api/v1/events", headers=headers, timeout=30) as answer:
        assert answer.status_code == 200, answer.read()
        kind = ""
        for line in answer.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: ") and kind == "incident":
                return json.loads(line.removeprefix("data: "))
    raise AssertionError("no incident event")


def test_live_events_carry_the_plate_only_to_those_who_see_originals(front: Front, plate_incident: bytes):
    assert first_incident_event(front, "urban-officer")["plate"]["text"] == "浙B2V9L7"
    event = first_incident_event(front, "urban-dispatcher")
    assert event["id"] == "inc-plate" and "plate" not in event


def test_live_events_carry_an_unredacted_thumbnail_only_to_those_who_see_originals():
    from retina.services.gateway.accounts import User
    from retina.services.gateway.auth import Principal
    from retina.services.gateway.events import visible_event

    def caller(department: str) -> Principal:
        return Principal(User("u", department, frozenset({"dispatcher"}), False, "local", 0.0), "token")

    snapshot = {"path": "cam-a/inc-1/s.jpg", "object": "o", "width": 640, "height": 480}
    message = {"id": "inc-1", "department": "urban", "plate": {"text": "浙B2V9L7"}}
    data = json.dumps(message | {"snapshot": snapshot | {"thumbnail_jpeg_base64": "/9j/AAAA"}}).encode()
    shown = visible_event(caller("urban"), data, originals=True)
    assert shown["snapshot"]["thumbnail_jpeg_base64"] == "/9j/AAAA" and shown["plate"]["text"] == "浙B2V9L7"
    redacted = visible_event(caller("urban"), data, originals=False)
    assert redacted["snapshot"] == snapshot | {"thumbnail_jpeg_base64": ""} and "plate" not in redacted
    assert visible_event(caller("parks"), data, originals=True) is None  # another department's incident


@settings(max_examples=80, deadline=None)
@given(plate=st.text(max_size=40), exact_only=st.booleans(), k=st.integers(0, 200))
def test_any_plate_query_gets_an_answer_or_invalid_argument(
    plated: RunningSearch, plate: str, exact_only: bool, k: int
):
    with plated.channel() as channel:
        stub = search_pb2_grpc.SearchServiceStub(channel)
        request = search_pb2.PlateSearchRequest(plate=plate, exact_only=exact_only, k=k, department="urban")
        try:
            matches = stub.SearchPlates(request, timeout=30).matches
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (exc.code(), exc.details())
            assert exc.details().split(":", 1)[0] in ("plate", "k"), exc.details()
            return
    assert len(matches) <= (k or 20) and all(m.match.camera_id == "cam-a" for m in matches)


def test_the_incident_store_keeps_the_plate_when_a_later_event_has_none(tmp_path: Path):
    store = IncidentStore(str(tmp_path / "db.sqlite"), tmp_path / "media")

    def event(revision: int, plate: PlateEvidence | None) -> IncidentMessage:
        return build_message(parking_event("inc-1", revision, plate), CAM_A, bus.MEDIA_BUCKET)[0]

    try:
        assert store.apply(event(0, None), None)  # not read yet
        assert IncidentMessage.model_validate_json(store.get("inc-1").message_json).plate is None
        assert store.apply(event(1, PlateEvidence(FACTS, 0, b"jpeg")), None)
        assert [path for path, *_ in store.pending_media()] == ["cam-a/inc-1/plate-0.jpg"]  # to fetch
        assert store.apply(event(2, None), None)  # moved to a worker that has not read it
        kept = IncidentMessage.model_validate_json(store.get("inc-1").message_json)
        assert kept.revision == 2 and kept.plate.text == "浙B2V9L7" and kept.plate.crop is not None
    finally:
        store.close()


def test_the_worker_reads_plates_only_with_both_models_and_names_a_missing_one(tmp_path: Path):
    config = RetinaConfig()

    def analyzer(plates: PlatesConfig) -> Analyzer:
        return Analyzer(
            None, config.tracker, config.ingest, lambda *_: None, lambda *_: None,
            realtime=False, retry_files=False, plates=plates,
        )  # fmt: skip

    models = plates_config()
    assert analyzer(models).plate_reader is not None
    assert analyzer(PlatesConfig(detector_model=models.detector_model)).plate_reader is None  # redaction only
    with pytest.raises(ConfigError, match=r"plates\.reader_model: .*missing\.onnx: no such file"):
        analyzer(models.model_copy(update={"reader_model": str(tmp_path / "missing.onnx")}))
