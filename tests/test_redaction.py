"""Redaction of evidence: dispatchers get plates (and faces) blurred, police and admin originals.

A real cluster (nats-server, incident store, gateway) with the real plate detector from ../shared;
incidents are published as a worker publishes them, their snapshots (real photos of plates) put in
the JetStream object store first. The served images are checked with the real plate reader.
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
from retina.services.core.config import ConfigError
from retina.services.core.incident import BBox, ClipRef, IncidentMessage, SnapshotRef
from retina.services.core.plates import PlateReader
from retina.services.core.plates_config import PlatesConfig
from retina.services.core.settings import GatewaySettings
from retina.services.gateway.accounts import AccountStore
from retina.services.gateway.redaction import Redactor, blur_region, bundled_face_cascade
from tests.conftest import MODEL, SHARED, wait_for
from tests.gateway_users import add_users

pytestmark = pytest.mark.slow

PLATES = SHARED / "models" / "plates"
DETECTOR = PLATES / "plate_detect_y5fu_640.onnx"
READER = PLATES / "plate_read_colour_crnn.onnx"
PHOTO = SHARED / "images" / "plates" / "single_blue.jpg"  # 浙B2V9L7 near, 辽DU4356 far
PLATE_TEXTS = ["浙B2V9L7", "辽DU4356"]
FACES = Path(__import__("ultralytics").__file__).parent / "assets" / "zidane.jpg"
PASSWORD = "a long test password"
USERS = {
    "um-dispatcher": ("urban-management", ["dispatcher"]),
    "um-supervisor": ("urban-management", ["dispatcher", "supervisor"]),
    "officer": ("urban-management", ["dispatcher", "police"]),
    "root": ("urban-management", ["admin", "dispatcher"]),
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


def require_models() -> None:
    if not DETECTOR.exists() or not READER.exists() or not PHOTO.exists() or not MODEL.exists():
        pytest.skip(f"shared plate models or photos missing ({PLATES})")


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
    cluster: LocalCluster, evidence: dict[str, tuple[IncidentMessage, bytes]]
) -> None:
    """Upload each snapshot (and clip) to the object store, then publish the incident, as a worker does."""
    nc = await bus.connect(cluster.nats_url, "test-worker", user="worker", password=cluster.token("worker"))
    js = nc.jetstream()
    media = await bus.ensure_all(js)
    for message, jpeg in evidence.values():
        await media.put(message.snapshot.path, jpeg)
        if message.clip is not None:
            await media.put(message.clip.path, make_clip(PHOTO))
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
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    require_models()
    root = tmp_path_factory.mktemp("redaction")
    config = root / "retina.yaml"
    zone = [[0.1, 0.5], [0.9, 0.5], [0.9, 0.95], [0.1, 0.95]]
    kerb = {
        "id": "um-kerb", "url": "rtsp://127.0.0.1:9/kerb", "department": "urban-management",
        "algorithms": [{"name": "illegal_parking", "zones": [{"name": "kerb", "polygon": zone}]}],
    }  # fmt: skip
    plates = {"detector_model": str(DETECTOR)}  # retina up gives the gateway the config's plate detector
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
        }
        asyncio.run(publish_as_worker(cluster, evidence))
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


def test_faces_are_blurred_or_the_response_says_they_were_not_checked(city: City) -> None:
    served = city.get("um-dispatcher", "/api/v1/incidents/faces-1/snapshot")
    assert served.status_code == 200
    if bundled_face_cascade() is None:  # OpenCV 5 ships no cascade and none is configured here
        assert "faces not checked" in served.headers["X-Retina-Redaction-Incomplete"]
        assert "plates" not in served.headers["X-Retina-Redaction-Incomplete"]
    else:
        assert int(served.headers["X-Retina-Redacted"].split("faces=")[1].split(",")[0]) >= 1


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


def test_without_a_plate_model_the_headers_say_plates_were_not_checked(tmp_path: Path) -> None:
    redactor = Redactor(GatewaySettings.load({"data_dir": str(tmp_path)}))
    result = redactor.redact("cam/x/0.jpg", PHOTO.read_bytes() if PHOTO.exists() else FACES.read_bytes())
    assert "plates not checked" in redactor.headers(result)["X-Retina-Redaction-Incomplete"]


def test_a_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        GatewaySettings.load({"data_dir": str(tmp_path), "plate_detector_model": str(tmp_path / "no.onnx")})
    assert any("plate_detector_model" in line and "no such file" in line for line in error.value.errors)


def test_blurring_changes_only_the_region() -> None:
    image = np.random.default_rng(1).integers(0, 255, (60, 100, 3), dtype=np.uint8)
    blurred = image.copy()
    blur_region(blurred, (40, 20, 70, 35), 0.0)
    assert np.array_equal(blurred[:, :40], image[:, :40]) and np.array_equal(blurred[:20], image[:20])
    assert blurred[20:35, 40:70].std() < image[20:35, 40:70].std() / 2
