"""Redaction of evidence: dispatchers get heads and plates blurred, police and admin originals.

A real cluster (nats-server, incident store, gateway) with the real plate detector and the workers'
detector from ../shared; incidents are published as a worker publishes them, their snapshots (real
photos of plates, a real frame of a pedestrian crossing) put in the JetStream object store first.
The served images are checked with the real plate reader and the real person detector.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import yaml

from retina.services.cli.cluster import ClusterPorts, LocalCluster
from retina.services.cli.common import load
from retina.services.core import bus
from retina.services.core.config import ConfigError, DetectorConfig
from retina.services.core.incident import BBox, ClipRef, IncidentMessage, SnapshotRef
from retina.services.core.plates import PlateReader
from retina.services.core.plates_config import PlatesConfig
from retina.services.core.settings import GatewaySettings
from retina.services.gateway.accounts import AccountStore
from retina.services.gateway.redaction import (
    HEAD_MARGIN,
    PERSON_THRESHOLD,
    Redactor,
    blur_region,
    head_region,
    spans,
)
from retina.services.worker.detector import Detector
from tests.conftest import MODEL, SHARED, wait_for
from tests.gateway_users import add_users

pytestmark = pytest.mark.slow

PLATES = SHARED / "models" / "plates"
DETECTOR = PLATES / "plate_detect_y5fu_640.onnx"
READER = PLATES / "plate_read_colour_crnn.onnx"
PHOTO = SHARED / "images" / "plates" / "single_blue.jpg"  # 浙B2V9L7 near, 辽DU4356 far
PLATE_TEXTS = ["浙B2V9L7", "辽DU4356"]
FACES = Path(__import__("ultralytics").__file__).parent / "assets" / "zidane.jpg"
CROSSING = SHARED / "videos" / "crosswalk_people.mp4"  # many pedestrians, close range
CROWD_FRAME = 120  # ten people, six of them clearly (score > 0.8)
PASSWORD = "a long test password"
USERS = {
    "um-dispatcher": ("urban-management", ["dispatcher"]),
    "um-supervisor": ("urban-management", ["dispatcher", "supervisor"]),
    "officer": ("urban-management", ["dispatcher", "police"]),
    "root": ("urban-management", ["admin", "dispatcher"]),
    "tr-dispatcher": ("traffic", ["dispatcher"]),
    "tr-officer": ("traffic", ["dispatcher", "police"]),
}


def make_clip(photo: Path, frames: int = 12) -> bytes:
    """A real H.264 MP4 of the photo panning slowly (what a camera's evidence clip looks like)."""
    import io

    import av

    image = cv2.imread(str(photo))
    height, width = (image.shape[0] - 40) // 2 * 2, (image.shape[1] - 40) // 2 * 2
    output = io.BytesIO()
    with av.open(output, "w", format="mp4") as target:
        stream = target.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            view = np.ascontiguousarray(image[index * 2 : index * 2 + height, index * 3 : index * 3 + width])
            target.mux(stream.encode(av.VideoFrame.from_ndarray(view, format="bgr24")))
        target.mux(stream.encode(None))
    return output.getvalue()


def clip_frames(data: bytes) -> list[np.ndarray]:
    import io

    import av

    with av.open(io.BytesIO(data)) as source:
        return [frame.to_ndarray(format="bgr24") for frame in source.decode(video=0)]


def footage(video: Path, start: int, frames: int) -> list[np.ndarray]:
    """``frames`` real frames of ``video`` from frame ``start`` on."""
    capture = cv2.VideoCapture(str(video))
    capture.set(cv2.CAP_PROP_POS_FRAMES, start)
    images = [capture.read()[1] for _ in range(frames)]
    capture.release()
    assert all(image is not None for image in images)
    return images


def encode_clip(images: list[np.ndarray], fps: int = 10) -> bytes:
    """A real H.264 MP4 of ``images``."""
    import io

    import av

    output = io.BytesIO()
    with av.open(output, "w", format="mp4") as target:
        stream = target.add_stream("libx264", rate=fps)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for image in images:
            target.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        target.mux(stream.encode(None))
    return output.getvalue()


def require_models() -> None:
    needed = (DETECTOR, READER, PHOTO, MODEL, CROSSING)
    if not all(path.exists() for path in needed):
        pytest.skip(f"shared models, photos or footage missing ({SHARED})")


@pytest.fixture(scope="module")
def crowd() -> bytes:
    """A real frame of a busy pedestrian crossing, as a worker stores a snapshot (JPEG)."""
    require_models()
    return cv2.imencode(".jpg", footage(CROSSING, CROWD_FRAME, 1)[0])[1].tobytes()


@pytest.fixture(scope="module")
def people() -> Detector:
    """The workers' detector, run by the test itself to find where the people are."""
    require_models()
    return Detector(DetectorConfig(model=str(MODEL), confidence=PERSON_THRESHOLD))


def person_boxes(detector: Detector, image: np.ndarray, threshold: float) -> list[tuple[float, ...]]:
    found = detector.detect([image])[0]
    return [
        tuple(box)
        for box, cls, conf in zip(found.xyxy, found.cls, found.conf, strict=True)
        if cls == 0 and conf >= threshold
    ]


def sharpness(image: np.ndarray, box: tuple[float, ...]) -> float:
    """Variance of the Laplacian over ``box``: high on a face (edges), near zero on a blur."""
    x1, y1, x2, y2 = (int(v) for v in box[:4])
    return float(cv2.Laplacian(cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def detail_kept(original: np.ndarray, redacted: np.ndarray, box: tuple[float, ...]) -> float:
    """How much of the original's fine detail (its Laplacian) is left in ``box``: about 1 for the same
    picture re-encoded (0.9-0.99 measured on these clips), about 0 for a blurred one."""
    x1, y1, x2, y2 = (int(v) for v in box[:4])
    before, after = (
        cv2.Laplacian(cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY), cv2.CV_64F).ravel()
        for image in (original, redacted)
    )
    return float(np.corrcoef(before, after)[0, 1])


def top_of(box: tuple[float, ...], share: float) -> tuple[float, ...]:
    """The top ``share`` of a person's box: where a standing person's head is (about 1/7 of the box)."""
    x1, y1, x2, y2 = box[:4]
    return x1, y1, x2, y1 + (y2 - y1) * share


def outside(image: np.ndarray, boxes: list[tuple[float, ...]]) -> np.ndarray:
    """A mask of the pixels outside every head region of ``boxes``, grown by the redaction margin."""
    mask = np.ones(image.shape[:2], bool)
    for box in boxes:
        x1, y1, x2, y2 = head_region(box)
        grow_x, grow_y = (x2 - x1) * HEAD_MARGIN, (y2 - y1) * HEAD_MARGIN
        mask[
            max(0, int(y1 - grow_y)) : int(np.ceil(y2 + grow_y)),
            max(0, int(x1 - grow_x)) : int(np.ceil(x2 + grow_x)),
        ] = False
    return mask


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    require_models()
    return PlateReader(PlatesConfig(detector_model=str(DETECTOR), reader_model=str(READER)))


def readings(reader: PlateReader, jpeg: bytes) -> list[str]:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return [plate.text for plate in reader.read(image)]


def incident(incident_id: str, *, clip: bool = False) -> IncidentMessage:
    now = datetime.now(UTC)
    path = f"um-kerb/{incident_id}/0.jpg"
    return IncidentMessage(
        id=incident_id, event="new", revision=0, camera_id="um-kerb", camera_name="kerb",
        department="urban-management", visible_to=["urban-management"], location=None,
        algorithm="illegal_parking", algorithm_version="test", zone="kerb", started_at=now,
        last_seen_at=now, ended_at=None, dwell_seconds=60.0, bbox=BBox(x1=0.2, y1=0.6, x2=0.4, y2=0.9),
        confidence=0.9, track_id=7,
        snapshot=SnapshotRef(
            path=path, object=f"retina-media/{path}", width=1, height=1, thumbnail_jpeg_base64=""
        ),
        clip=ClipRef(
            path=f"um-kerb/{incident_id}/clip.mp4", object=f"retina-media/um-kerb/{incident_id}/clip.mp4",
            start=now - timedelta(seconds=20), end=now - timedelta(seconds=10),
        ) if clip else None,
    )  # fmt: skip


async def publish_as_worker(
    cluster: LocalCluster, evidence: dict[str, tuple[IncidentMessage, bytes]], clips: dict[str, bytes]
) -> None:
    """Upload each snapshot (and clip) to the object store, then publish the incident, as a worker does."""
    nc = await bus.connect(cluster.nats_url, "test-worker", user="worker", password=cluster.token("worker"))
    js = nc.jetstream()
    media = await bus.ensure_all(js)
    for message, jpeg in evidence.values():
        await media.put(message.snapshot.path, jpeg)
        if message.clip is not None:
            await media.put(message.clip.path, clips[message.id])
        await js.publish(message.subject, message.to_json(), headers={"Nats-Msg-Id": message.msg_id})
    await nc.close()


@dataclass
class City:
    cluster: LocalCluster
    tokens: dict[str, str]

    def get(self, user: str, path: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        with httpx.Client(base_url=self.cluster.gateway_url, headers=headers, timeout=60) as client:
            return client.get(path)

    def audit(self, actor: str) -> list:
        store = AccountStore(self.cluster.gateway_data_dir / "gateway.sqlite")
        try:
            return store.audit_entries(actor=actor, action="media.view")
        finally:
            store.close()


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory, crowd: bytes) -> Iterator[City]:
    require_models()
    root = tmp_path_factory.mktemp("redaction")
    config = root / "retina.yaml"
    zone = [[0.1, 0.5], [0.9, 0.5], [0.9, 0.95], [0.1, 0.95]]
    kerb = {
        "id": "um-kerb", "url": "rtsp://127.0.0.1:9/kerb", "department": "urban-management",
        "algorithms": [{"name": "illegal_parking", "zones": [{"name": "kerb", "polygon": zone}]}],
    }  # fmt: skip
    # retina up gives the gateway the config's plate detector and the workers' detector
    plates = {"detector_model": str(DETECTOR)}
    config.write_text(
        yaml.safe_dump({"detector": {"model": str(MODEL)}, "plates": plates, "cameras": [kerb]})
    )
    cluster = LocalCluster(config, root / "data", ClusterPorts.free(workers=0), workers=0)
    cluster.gateway_flags = ["--verify-seconds", "0"]
    try:
        cluster.start(load(str(config)).config.cameras)
        tokens = add_users(cluster, USERS, PASSWORD)
        evidence = {
            "plate-1": (incident("plate-1", clip=True), PHOTO.read_bytes()),
            "faces-1": (incident("faces-1"), FACES.read_bytes()),
            "crowd-1": (incident("crowd-1", clip=True), crowd),
        }
        clips = {"plate-1": make_clip(PHOTO), "crowd-1": encode_clip(footage(CROSSING, CROWD_FRAME, 8))}
        asyncio.run(publish_as_worker(cluster, evidence, clips))
        city = City(cluster, tokens)
        for incident_id in evidence:
            wait_for(
                lambda i=incident_id: city.get("root", f"/api/v1/incidents/{i}/snapshot").status_code == 200,
                30,
                f"the snapshot of {incident_id} to reach the store",
            )
        wait_for(
            lambda: city.get("root", "/api/v1/incidents/plate-1/clip").status_code == 200, 30, "the clip"
        )
        yield city
    finally:
        cluster.stop()


def test_dispatchers_get_no_readable_plate_police_the_original(city: City, reader: PlateReader) -> None:
    for user in ("um-dispatcher", "um-supervisor"):
        served = city.get(user, "/api/v1/incidents/plate-1/snapshot")
        assert served.status_code == 200, served.text
        assert served.headers["content-type"] == "image/jpeg"
        assert served.headers["X-Retina-Redacted"].endswith("plates=2")
        assert not set(readings(reader, served.content)) & set(PLATE_TEXTS)
        assert readings(reader, served.content) == []
    original = city.get("officer", "/api/v1/incidents/plate-1/snapshot")
    assert original.status_code == 200 and original.content == PHOTO.read_bytes()
    assert "X-Retina-Redacted" not in original.headers
    assert readings(reader, original.content) == PLATE_TEXTS
    (view,) = [e for e in city.audit("officer") if e.details.get("kind") == "snapshot"]
    assert (view.target, view.details["original"]) == ("plate-1", True)
    assert all(e.details["original"] is False for e in city.audit("um-dispatcher"))
    cached = list((city.cluster.gateway_data_dir / "redacted").rglob("*.jpg"))
    assert cached, "the redacted image is cached under the gateway's data dir"


def test_dispatchers_get_a_redacted_clip_police_the_original(city: City, reader: PlateReader) -> None:
    served = city.get("um-dispatcher", "/api/v1/incidents/plate-1/clip")
    assert served.status_code == 200, served.text
    assert served.headers["content-type"] == "video/mp4"
    frames = clip_frames(served.content)
    assert len(frames) == 12
    for frame in frames:
        assert [plate.text for plate in reader.read(frame)] == []
    original = city.get("root", "/api/v1/incidents/plate-1/clip")
    assert original.status_code == 200 and "X-Retina-Redacted" not in original.headers
    assert [p.text for p in reader.read(clip_frames(original.content)[0])] == PLATE_TEXTS
    views = [e for e in city.audit("root") if e.details.get("kind") == "clip"]
    assert views and all(e.details["original"] is True for e in views)
    assert city.get("um-dispatcher", "/api/v1/incidents/plate-1/clip").content == served.content  # cached


def test_dispatchers_see_no_head_of_a_crowd_police_the_original(
    city: City, crowd: bytes, people: Detector
) -> None:
    original = cv2.imdecode(np.frombuffer(crowd, np.uint8), cv2.IMREAD_COLOR)
    everyone = person_boxes(people, original, PERSON_THRESHOLD)
    clearly = person_boxes(people, original, 0.3)
    assert len(clearly) >= 6
    served = city.get("um-dispatcher", "/api/v1/incidents/crowd-1/snapshot")
    assert served.status_code == 200, served.text
    assert served.headers["X-Retina-Redacted"] == f"heads={len(everyone)}, plates=0"
    assert "X-Retina-Redaction-Incomplete" not in served.headers
    redacted = cv2.imdecode(np.frombuffer(served.content, np.uint8), cv2.IMREAD_COLOR)
    for box in clearly:  # where each head is, by the box alone: nothing sharp is left there
        before, after = sharpness(original, top_of(box, 1 / 6)), sharpness(redacted, top_of(box, 1 / 6))
        assert after < 40 and after < before / 4, (box, before, after)
        assert detail_kept(original, redacted, top_of(box, 1 / 6)) < 0.2, box
    assert person_boxes(people, redacted, 0.3), "the people are still there to see (only their heads went)"
    rest = outside(original, everyone)
    assert rest.mean() > 0.4  # the street, the legs and the crossing
    difference = np.abs(redacted.astype(int) - original.astype(int)).max(axis=2)
    assert np.percentile(difference[rest], 99) <= 8  # the JPEG re-encoding only
    (entry,) = [e for e in city.audit("um-dispatcher") if e.target == "crowd-1"]
    assert entry.details["original"] is False
    assert entry.details["redacted"] == {"heads": len(everyone), "plates": 0}

    for user in ("officer", "root"):
        shown = city.get(user, "/api/v1/incidents/crowd-1/snapshot")
        assert (
            shown.status_code == 200 and shown.content == crowd and "X-Retina-Redacted" not in shown.headers
        )
        views = [e for e in city.audit(user) if e.target == "crowd-1" and e.details["kind"] == "snapshot"]
        assert views and all(e.details["original"] is True for e in views)  # root's include the fixture's
    for user in ("tr-dispatcher", "tr-officer"):  # another department's police sees nothing either
        assert city.get(user, "/api/v1/incidents/crowd-1/snapshot").status_code == 404
        assert city.get(user, "/api/v1/incidents/crowd-1/clip").status_code == 404
        assert not [e for e in city.audit(user) if e.target == "crowd-1"]


def test_every_frame_of_a_dispatchers_clip_has_the_heads_blurred(city: City, people: Detector) -> None:
    served = city.get("um-dispatcher", "/api/v1/incidents/crowd-1/clip")
    assert served.status_code == 200, served.text
    assert int(served.headers["X-Retina-Redacted"].split("heads=")[1].split(",")[0]) >= 6
    original = city.get("root", "/api/v1/incidents/crowd-1/clip")
    pairs = list(zip(clip_frames(original.content), clip_frames(served.content), strict=True))
    assert len(pairs) == 8
    for before, after in pairs:
        clearly = person_boxes(people, before, 0.3)
        assert len(clearly) >= 5
        for box in clearly:
            assert detail_kept(before, after, top_of(box, 1 / 6)) < 0.2, box
    (entry,) = [
        e for e in city.audit("um-dispatcher") if e.details["kind"] == "clip" and e.target == "crowd-1"
    ]
    assert entry.details["original"] is False and entry.details["redacted"]["heads"] >= 6


def test_zidane_has_both_heads_blurred(city: City, people: Detector) -> None:
    original = cv2.imread(str(FACES))
    served = city.get("um-dispatcher", "/api/v1/incidents/faces-1/snapshot")
    assert served.status_code == 200
    redacted = cv2.imdecode(np.frombuffer(served.content, np.uint8), cv2.IMREAD_COLOR)
    clearly = person_boxes(people, original, 0.5)
    assert len(clearly) == 2  # Zidane and Ancelotti
    assert int(served.headers["X-Retina-Redacted"].split("heads=")[1].split(",")[0]) >= 2
    for box in clearly:
        assert detail_kept(original, redacted, top_of(box, 1 / 6)) < 0.2, box


def test_blurring_heads_leaves_the_rest_of_the_frame_untouched(tmp_path: Path, crowd: bytes) -> None:
    redactor = Redactor(
        GatewaySettings.load({"data_dir": str(tmp_path), "person_detector_model": str(MODEL)})
    )
    frame = cv2.imdecode(np.frombuffer(crowd, np.uint8), cv2.IMREAD_COLOR)
    boxes = redactor.people.detect(frame) if redactor.people else []
    blurred = frame.copy()
    assert redactor.blur(blurred) == (len(boxes), 0, 0) and len(boxes) >= 6
    rest = outside(frame, boxes)
    assert np.array_equal(blurred[rest], frame[rest])
    assert not np.array_equal(blurred, frame)
    headers = redactor.headers(redactor.redact("cam/x/0.jpg", crowd))
    assert headers["X-Retina-Redacted"] == f"heads={len(boxes)}"
    assert headers["X-Retina-Redaction-Incomplete"].startswith("plates not checked")
    assert (redactor.cache_path("cam/x/0.jpg").with_suffix(".counts")).read_text() == f"{len(boxes)} 0 0"


def test_head_region_covers_standing_and_sitting_people() -> None:
    assert head_region((100, 50, 140, 250)) == (100, 50, 140, 100)  # standing: a quarter of the height
    assert head_region((100, 50, 200, 150)) == (100, 50, 200, 100)  # cut off below: half the width
    assert head_region((0, 0, 300, 60)) == (0, 0, 300, 60)  # lying down: never below the box


def test_redactor_caches_by_stored_path(tmp_path: Path, reader: PlateReader) -> None:
    settings = GatewaySettings.load({"data_dir": str(tmp_path), "plate_detector_model": str(DETECTOR)})
    redactor = Redactor(settings)
    first = redactor.redact("cam/x/0.jpg", PHOTO.read_bytes())
    assert first.plates == 2 and readings(reader, first.data) == []
    assert redactor.cache_path("cam/x/0.jpg").is_file()
    again = redactor.redact("cam/x/0.jpg", b"not even an image: the cache answers")
    assert again == first
    with pytest.raises(ValueError, match=r"cam/y/0\.jpg: not a decodable image"):
        redactor.redact("cam/y/0.jpg", b"garbage")


def test_without_detectors_the_headers_say_what_was_not_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RETINA_MODEL", raising=False)
    redactor = Redactor(GatewaySettings.load({"data_dir": str(tmp_path)}))
    result = redactor.redact("cam/x/0.jpg", PHOTO.read_bytes() if PHOTO.exists() else FACES.read_bytes())
    headers = redactor.headers(result)
    assert headers["X-Retina-Redacted"] == "none"
    assert headers["X-Retina-Redaction-Incomplete"].startswith("heads not checked: no person detector")
    assert "plates not checked" in headers["X-Retina-Redaction-Incomplete"]


def test_the_person_detector_is_the_config_files_or_retina_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_models()
    config = tmp_path / "retina.yaml"
    config.write_text(yaml.safe_dump({"detector": {"model": str(MODEL)}}))
    settings = GatewaySettings.load({"data_dir": str(tmp_path), "config": str(config)})
    assert settings.person_detector_model == str(MODEL)
    monkeypatch.setenv("RETINA_MODEL", str(MODEL))
    assert Redactor(GatewaySettings.load({"data_dir": str(tmp_path)})).people is not None


@pytest.mark.parametrize("setting", ["plate_detector_model", "person_detector_model", "face_detector_model"])
def test_a_missing_model_file_is_a_config_error(tmp_path: Path, setting: str) -> None:
    with pytest.raises(ConfigError) as error:
        GatewaySettings.load({"data_dir": str(tmp_path), setting: str(tmp_path / "no.onnx")})
    assert any(line.startswith(setting) and "no such file" in line for line in error.value.errors), (
        error.value
    )


def test_a_face_model_opencv_cannot_load_is_a_config_error(tmp_path: Path) -> None:
    unreadable = tmp_path / "yunet.onnx"
    unreadable.write_bytes(b"not an ONNX model")
    with pytest.raises(ConfigError) as error:
        GatewaySettings.load({"data_dir": str(tmp_path), "face_detector_model": str(unreadable)})
    (line,) = error.value.errors
    assert (
        line.startswith("face_detector_model (from --face-detector-model)")
        and "not a YuNet face model" in line
    )


def test_blurring_changes_only_the_region() -> None:
    image = np.random.default_rng(1).integers(0, 255, (60, 100, 3), dtype=np.uint8)
    blurred = image.copy()
    blur_region(blurred, (40, 20, 70, 35), 0.0)
    assert np.array_equal(blurred[:, :40], image[:, :40]) and np.array_equal(blurred[:20], image[:20])
    assert blurred[20:35, 40:70].std() < image[20:35, 40:70].std() / 2


def test_a_gpu_only_detector_in_the_config_is_a_gateway_config_error(tmp_path: Path) -> None:
    engine = tmp_path / "yolov8n.engine"
    engine.write_bytes(b"a TensorRT engine")
    config = tmp_path / "retina.yaml"
    config.write_text(yaml.safe_dump({"detector": {"model": str(engine)}}))
    with pytest.raises(ConfigError) as error:
        GatewaySettings.load({"data_dir": str(tmp_path), "config": str(config)})
    (line,) = error.value.errors
    assert line.startswith("person_detector_model (from detector.model in") and "needs a GPU" in line


def test_an_object_that_moved_between_two_detected_frames_is_covered_along_its_path() -> None:
    """Clips are detected five times a second: the frames between are blurred from the head's place
    before to its place after, and a region with no counterpart nearby is kept as it was."""
    walker_before, walker_after = (100.0, 50.0, 130.0, 80.0), (140.0, 55.0, 170.0, 85.0)
    lone = (400.0, 300.0, 420.0, 310.0)
    far = (10.0, 400.0, 40.0, 430.0)
    joined = spans([walker_before, lone], [walker_after, far])
    assert joined == [(100.0, 50.0, 170.0, 85.0), lone]
