"""Search by image: the feature store and FAISS index, and the whole path with real parts
(nats-server, worker on real footage, search and incident store processes)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import signal
import time
from pathlib import Path

import cv2
import grpc
import nats
import numpy as np
import PIL.Image
import pytest
import yaml
from google.protobuf.timestamp_pb2 import Timestamp

from retina.services.cli.clients import assign_cameras, wait_until_serving
from retina.services.core import bus
from retina.services.core.config import RetinaConfig, SearchConfig, load_config
from retina.services.core.features import ColourEmbedder, FeatureRecord, encode_embedding, track_key, utc
from retina.services.core.ports import free_port
from retina.services.core.processes import start_python, stop_process
from retina.services.search import index as index_module
from retina.services.search.engine import EmptyIndexError, RejectedRecordError, SearchEngine, _passes
from retina.services.search.store import Filters
from retina.v1 import (
    incidents_pb2,
    incidents_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
    worker_pb2,
    worker_pb2_grpc,
)
from tests.conftest import MODEL, Credentials, footage

COLOURS_BGR = {"red": (0, 0, 220), "green": (0, 180, 0), "blue": (220, 0, 0), "yellow": (0, 220, 220)}


def patch(colour: tuple[int, int, int], seed: int) -> np.ndarray:
    """A textured patch of one dominant colour."""
    rng = np.random.default_rng(seed)
    image = np.clip(np.array(colour, np.int16) + rng.integers(-30, 30, (64, 48, 3)), 0, 255).astype(np.uint8)
    return image


def record(
    camera: str, track: int, image: np.ndarray, first_seen: float, department: str = "urban"
) -> FeatureRecord:
    """A feature record as a worker would publish it for a track whose best crop is ``image``."""
    vector = ColourEmbedder().embed([image])[0]
    jpeg = cv2.imencode(".jpg", image)[1]
    return FeatureRecord(
        id=track_key(camera, first_seen, track),
        revision=0,
        crop_revision=0,
        camera_id=camera,
        department=department,
        track_id=track,
        family="vehicle",
        class_name="car",
        first_seen=utc(first_seen),
        last_seen=utc(first_seen + 30),
        crop_seen_at=utc(first_seen + 5),
        embedder="colour@1",
        embedding_base64=encode_embedding(vector),
        crop_jpeg_base64=base64.b64encode(jpeg.tobytes()).decode(),
        colours=["red"],
    )


def engine_at(data_dir: Path, **search) -> SearchEngine:
    config = RetinaConfig(features={"embedder": "colour"}, search=SearchConfig(**search))
    return SearchEngine(data_dir, config)


def test_index_is_rebuilt_when_its_files_are_missing_or_corrupt(tmp_path: Path):
    engine = engine_at(tmp_path)
    with pytest.raises(EmptyIndexError):
        engine.search(ColourEmbedder().embed([patch(COLOURS_BGR["red"], 0)]), 5, "urban", Filters())
    day = 86400.0
    base = (time.time() // day - 3) * day + 3600  # an hour into a day, three days ago
    for i, colour in enumerate(COLOURS_BGR.values()):
        for day_index in range(3):  # three daily shards
            track = i * 10 + day_index
            engine.apply(record("cam-1", track, patch(colour, track), base + day_index * day))
    engine.index.save()
    query = ColourEmbedder().embed([patch(COLOURS_BGR["blue"], 99)])
    expected = [h.track.key for h in engine.search(query, 3, "urban", Filters())]
    assert all(key.startswith("cam-1:") for key in expected) and len(expected) == 3
    engine.store.close()

    for path in (tmp_path / "index").glob("shard-*.faiss"):
        path.unlink()
    engine = engine_at(tmp_path)
    report = engine.load()
    assert len(report.rebuilt) == 3 and set(report.rebuilt.values()) == {"index file missing"}
    assert [h.track.key for h in engine.search(query, 3, "urban", Filters())] == expected
    engine.store.close()

    corrupt = sorted((tmp_path / "index").glob("shard-*.faiss"))[0]
    corrupt.write_bytes(b"\x00garbage" * 100)
    engine = engine_at(tmp_path)
    report = engine.load()
    assert list(report.rebuilt.values()) == ["index file corrupt (checksum mismatch)"]
    assert len(report.loaded) == 2
    assert [h.track.key for h in engine.search(query, 3, "urban", Filters())] == expected

    # Retention drops whole shards, oldest first.
    assert engine.drop_expired(now=base + 3 * day) == []  # the default keeps 30 days
    engine.config.search.retention_days = 1.5
    assert engine.drop_expired(now=base + 3 * day) == [int(base - 3600)]
    assert engine.index.ntotal == 2 * len(COLOURS_BGR)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_big_shards_turn_approximate_and_still_find_the_track(tmp_path: Path, kind: str):
    engine = engine_at(tmp_path, exact_max_vectors=1000, approximate_index=kind)
    rng = np.random.default_rng(1)
    start = time.time()
    vectors = rng.normal(size=(1200, ColourEmbedder().dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for i, vector in enumerate(vectors):
        engine.index.add(engine.store.shard_of(start), i + 1, vector)
    engine.index.wait_for_conversions(60)  # built in the background while the exact index serves
    assert engine.index.stats() == [(engine.store.shard_of(start), kind, 1200)]
    for row in (17, 900, 1199):  # added before the switch, at the switch, after it
        (vector_id, score), *_ = engine.index.search(vectors[[row]], 3)
        assert vector_id == row + 1 and score == pytest.approx(1.0, abs=1e-4)


def test_filters_and_sharing_scope(tmp_path: Path):
    engine = engine_at(tmp_path)
    now = time.time()
    red = patch(COLOURS_BGR["red"], 1)
    engine.apply(record("cam-a", 1, red, now - 3600, department="urban"))
    shared = record("cam-b", 2, patch(COLOURS_BGR["red"], 2), now - 60, department="police")
    shared.shared_with = ["urban"]
    engine.apply(shared)
    engine.apply(record("cam-c", 3, patch(COLOURS_BGR["red"], 3), now - 60, department="police"))
    query = ColourEmbedder().embed([red])

    def cameras(department: str, **filters) -> list[str]:
        return [h.track.camera_id for h in engine.search(query, 10, department, Filters(**filters))]

    assert cameras("urban") == ["cam-a", "cam-b"]  # cam-c is not shared with urban
    assert sorted(cameras("police")) == ["cam-b", "cam-c"]
    assert cameras("traffic") == []
    assert cameras("urban", camera_ids=frozenset({"cam-b", "cam-c"})) == ["cam-b"]
    assert cameras("urban", start=now - 600) == ["cam-b"]
    assert cameras("urban", end=now - 600) == ["cam-a"]
    assert cameras("urban", colours=frozenset({"green"})) == []
    assert cameras("urban", families=frozenset({"person"})) == []


def exact_answer(engine: SearchEngine, query: np.ndarray, k: int, department: str, filters: Filters) -> list:
    """The reference: every track in the store checked against the filters, scored by its best vector."""
    keys = [key for (key,) in engine.store._db.execute("SELECT key FROM tracks")]
    scored = []
    for key in keys:
        track = engine.store.track(key)
        if track is not None and _passes(track, department, filters):
            scored.append((float((engine.store.track_vectors(key) @ query.T).max()), key))
    return [key for _, key in sorted(scored, reverse=True)[:k]]


def test_filtered_search_through_the_index_matches_exact_search(tmp_path: Path, monkeypatch):
    engine = engine_at(tmp_path, exact_max_vectors=1000, ivf_nprobe=64)
    rng = np.random.default_rng(3)
    jpeg = base64.b64encode(cv2.imencode(".jpg", patch(COLOURS_BGR["red"], 0))[1].tobytes()).decode()
    now = time.time() // 86400 * 86400 + 3600
    vectors = rng.normal(size=(1500, ColourEmbedder().dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for i, vector in enumerate(vectors):
        camera, seen = f"cam-{i % 7}", now + i
        engine.apply(
            FeatureRecord(
                id=track_key(camera, seen, i), revision=0, crop_revision=0, camera_id=camera,
                department=("urban", "police")[i % 2], shared_with=["traffic"] if i % 5 == 0 else [],
                track_id=i, family=("vehicle", "person", "non_motor")[i % 3], class_name="x",
                first_seen=utc(seen), last_seen=utc(seen + 30), embedder="colour@1",
                embedding_base64=encode_embedding(vector), crop_jpeg_base64=jpeg,
                colours=[("red", "blue", "green")[i % 3]],
            )
        )  # fmt: skip
    engine.index.wait_for_conversions(60)
    assert engine.index.stats()[0][1] == "ivf"
    # A track seen again later (a times-only record) and with a new colour: the index follows.
    late = engine.store.track(track_key("cam-0", now + 7, 7))
    engine.apply(
        FeatureRecord(
            id=late.key, revision=1, crop_revision=1, camera_id="cam-0", department="police", track_id=7,
            family="vehicle", class_name="x", first_seen=utc(now + 7), last_seen=utc(now + 5000),
            embedder="colour@1", embedding_base64=encode_embedding(vectors[7]), crop_jpeg_base64=jpeg,
            colours=["yellow"],
        )
    )  # fmt: skip
    cases = [
        ("police", Filters()),
        ("urban", Filters(camera_ids=frozenset({"cam-3"}))),
        ("police", Filters(camera_ids=frozenset({"cam-1", "cam-2"}), families=frozenset({"vehicle"}))),
        ("traffic", Filters()),
        ("police", Filters(start=now + 4000)),  # only the track seen again
        ("urban", Filters(start=now + 200, end=now + 400, colours=frozenset({"red", "green"}))),
        ("police", Filters(colours=frozenset({"yellow"}))),
    ]
    queries = vectors[[7, 100, 901]] + rng.normal(0, 0.05, (3, vectors.shape[1])).astype(np.float32)
    # Filtered rows scored exactly on one thread / split over the scoring threads / by IVF told which.
    for gather_max, exact_filtered in ((4096, 50_000), (0, 50_000), (0, 0)):
        monkeypatch.setattr(index_module, "GATHER_MAX_ROWS", gather_max)
        engine.config.search.exact_filtered_max_vectors = exact_filtered
        for query in queries:
            for department, filters in cases:
                want = exact_answer(engine, query[None], 10, department, filters)
                got = [h.track.key for h in engine.search(query[None], 10, department, filters)]
                assert want, (department, filters)
                if exact_filtered or filters == Filters():  # scored exactly: the very same answer
                    assert got == want, (department, filters)
                else:  # approximate, but never a track outside the filters
                    assert set(got) <= set(exact_answer(engine, query[None], 10_000, department, filters))
                    assert len(set(got) & set(want)) >= 0.8 * len(want), (department, filters)
    assert [h.track.key for h in engine.search(queries[:1], 1, "police", cases[4][1])] == [late.key]

    # After a restart the attributes come back from the store: the same answers.
    engine.index.save()
    engine.store.close()
    engine = engine_at(tmp_path, exact_max_vectors=1000, ivf_nprobe=64)
    assert engine.load().rebuilt == {}
    for department, filters in cases:
        want = exact_answer(engine, queries[1][None], 10, department, filters)
        got = [h.track.key for h in engine.search(queries[1][None], 10, department, filters)]
        assert got == want, (department, filters)


# -- the whole path ---------------------------------------------------------------------------------


def perturbed(jpeg: bytes) -> bytes:
    """The same object photographed again: cropped a little tighter, rescaled, brighter, recompressed."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    h, w = image.shape[:2]
    image = image[h // 12 : h - h // 12, w // 10 : w - w // 10]
    image = cv2.resize(image, None, fx=1.7, fy=1.7, interpolation=cv2.INTER_CUBIC)
    image = cv2.convertScaleAbs(image, alpha=1.08, beta=6)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 60])[1].tobytes()


def read_features(nats_url: str) -> list[FeatureRecord]:
    async def main() -> list[FeatureRecord]:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        subscription = await js.subscribe(
            bus.FEATURE_SUBJECTS, stream=bus.FEATURE_STREAM, ordered_consumer=True
        )
        records = []
        while True:
            try:
                msg = await subscription.next_msg(timeout=2)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            records.append(FeatureRecord.model_validate_json(msg.data))
        await nc.close()
        return records

    return asyncio.run(main())


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_police_search_by_photo_finds_the_vehicle_with_real_parts(
    tmp_path: Path, nats_server, service_credentials: Credentials
):
    clip = footage("intersection.mp4")
    config_path = tmp_path / "cluster.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "detector": {"model": str(MODEL)},
                "nats": {"url": nats_server.url},
                "evidence": {"clip_before_seconds": 0, "clip_after_seconds": 0},
                "features": {"embedder": "colour"},
                "cameras": [
                    {
                        "id": "cam-a",
                        "url": str(clip),
                        "department": "urban",
                        "shared_with": ["police"],
                        "algorithms": [
                            {
                                "name": "illegal_parking",
                                "params": {"dwell_seconds": 3},
                                "zones": [{"name": "all", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
                            }
                        ],
                    },
                    {"id": "cam-b", "url": str(clip), "department": "police"},
                ],
            }
        )
    )
    ports = {
        name: free_port() for name in ("search", "metrics", "worker", "wmetrics", "incidents", "imetrics")
    }
    search_args = [
        "search", "serve", "--config", str(config_path), "--data-dir", str(tmp_path / "search"),
        "--grpc-port", str(ports["search"]), "--metrics-port", str(ports["metrics"]),
        "--incidents-address", f"127.0.0.1:{ports['incidents']}", *service_credentials.flags("search"),
    ]  # fmt: skip
    incidents_args = [
        "incidents", "serve", "--data-dir", str(tmp_path / "incidents"), "--nats-url", nats_server.url,
        "--grpc-port", str(ports["incidents"]), "--metrics-port", str(ports["imetrics"]),
        *service_credentials.flags("incidents"),
    ]  # fmt: skip
    worker_args = [
        "worker", "--config", str(config_path), "--data-dir", str(tmp_path / "worker"),
        "--grpc-port", str(ports["worker"]), "--metrics-port", str(ports["wmetrics"]), "--worker-id", "w1",
        *service_credentials.flags("worker"),
    ]  # fmt: skip
    processes = {
        "incidents": start_python(incidents_args, log_file=tmp_path / "incidents.log"),
        "search": start_python(search_args, log_file=tmp_path / "search.log"),
        "worker": start_python(worker_args, log_file=tmp_path / "worker.log"),
    }
    search_address = f"127.0.0.1:{ports['search']}"
    try:
        wait_until_serving(search_address, 60, processes["search"])
        wait_until_serving(f"127.0.0.1:{ports['incidents']}", 60, processes["incidents"])
        channel = service_credentials.channel(
            search_address, options=[("grpc.max_send_message_length", 64 << 20)]
        )
        search = search_pb2_grpc.SearchServiceStub(channel)

        def rejected(request: search_pb2.SearchRequest) -> tuple[grpc.StatusCode, str]:
            with pytest.raises(grpc.RpcError) as info:
                search.Search(request, timeout=30)
            return info.value.code(), info.value.details()

        # Bad input and an empty index: clear errors, and the service keeps serving.
        ok_photo = png(64, 48)
        assert rejected(search_pb2.SearchRequest(image=ok_photo, department="police")) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "the index is empty: no track features have been received yet",
        )
        code, details = rejected(search_pb2.SearchRequest(image=b"%PDF-1.4 not a photo", department="police"))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("image: not a picture")
        code, details = rejected(
            search_pb2.SearchRequest(image=b"\xff\xd8\xff" + bytes(21 << 20), department="police")
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "over the 20 MB limit" in details
        code, details = rejected(search_pb2.SearchRequest(image=png(8001, 8), department="police"))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "8001x8 px is over the 8000 px limit" in details
        code, details = rejected(search_pb2.SearchRequest(image=ok_photo))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("department:")

        # Two cameras see the same street; analyse it to the end of the clip.
        wait_until_serving(f"127.0.0.1:{ports['worker']}", 120, processes["worker"])
        operator = service_credentials.token("operator")
        assign_cameras(
            f"127.0.0.1:{ports['worker']}", load_config(config_path).config.cameras, token=operator
        )
        worker = worker_pb2_grpc.WorkerServiceStub(
            service_credentials.channel(f"127.0.0.1:{ports['worker']}")
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = {c.state for c in worker.GetStatus(worker_pb2.GetStatusRequest(), timeout=10).cameras}
            if states == {worker_pb2.CAMERA_STATE_STOPPED}:
                break
            time.sleep(1)
        else:
            raise AssertionError("the cameras did not reach the end of the clip")
        records = read_features(nats_server.url)
        ended = {r.id for r in records if r.ended}
        with_crops = [
            r for r in records if r.crop_jpeg_base64 and r.camera_id == "cam-a" and r.family == "vehicle"
        ]
        assert ended and with_crops, "the worker published no vehicle features"
        deadline = time.monotonic() + 30
        while search.GetIndexStats(search_pb2.GetIndexStatsRequest()).records_applied < len(records):
            assert time.monotonic() < deadline, "the search service did not apply every record"
            time.sleep(0.5)
        # At most a few records per track, never one per frame.
        per_track = {}
        for r in records:
            per_track[r.id] = per_track.get(r.id, 0) + 1
        assert max(per_track.values()) <= 6

        # A new photo of the car cam-a saw best: that car's track comes first. (urban sees cam-a only;
        # cam-b shows the very same street, so its copy of the car is as good an answer for police.)
        target = max(with_crops, key=lambda r: r.quality)
        photo = perturbed(target.crop_jpeg())
        reply = search.Search(search_pb2.SearchRequest(image=photo, k=5, department="urban"), timeout=30)
        assert reply.matches[0].track_id == target.id
        assert reply.matches[0].camera_id == "cam-a" and reply.matches[0].family == "vehicle"
        assert len({m.track_id for m in reply.matches}) == len(reply.matches) > 1  # one result per track

        # Its crop comes through GetCrop: a JPEG of the car, taken when the match says.
        assert all(m.has_crop for m in reply.matches)
        crop = search.GetCrop(search_pb2.GetCropRequest(track_id=target.id, department="urban"), timeout=10)
        image = cv2.imdecode(np.frombuffer(crop.jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and min(image.shape[:2]) >= 8
        assert crop.seen_at == reply.matches[0].crop_seen_at

        # Filters: another camera only; a time range before anything was seen.
        only_b = search.Search(
            search_pb2.SearchRequest(image=photo, k=5, department="police", filters={"camera_ids": ["cam-b"]})
        )
        assert only_b.matches and {m.camera_id for m in only_b.matches} == {"cam-b"}
        twin_seen = only_b.matches[0].first_seen.ToNanoseconds() / 1e9
        assert abs(twin_seen - target.first_seen.timestamp()) < 2  # the same car, on the other camera
        # cam-b is police's alone: its crops are as unknown to urban as a track that never existed.
        twin = only_b.matches[0].track_id
        assert search.GetCrop(search_pb2.GetCropRequest(track_id=twin, department="police")).jpeg
        unknown = "cam-b:1:999999"
        answers = []
        for track_id in (twin, unknown):
            with pytest.raises(grpc.RpcError) as info:
                search.GetCrop(search_pb2.GetCropRequest(track_id=track_id, department="urban"), timeout=10)
            answers.append((info.value.code(), info.value.details().replace(track_id, "<id>")))
        assert answers[0] == answers[1] and answers[0][0] == grpc.StatusCode.NOT_FOUND

        before = Timestamp()
        before.FromSeconds(int(target.first_seen.timestamp()) - 3600)
        earlier = search.Search(
            search_pb2.SearchRequest(image=photo, k=5, department="police", filters={"end": before})
        )
        assert list(earlier.matches) == []

        # Sharing scope: urban sees only its own camera; traffic sees nothing.
        police = search.Search(search_pb2.SearchRequest(image=photo, k=10, department="police"))
        assert {m.camera_id for m in police.matches} == {"cam-a", "cam-b"}
        urban = search.Search(search_pb2.SearchRequest(image=photo, k=10, department="urban"))
        assert urban.matches and {m.camera_id for m in urban.matches} == {"cam-a"}
        assert list(search.Search(search_pb2.SearchRequest(image=photo, department="traffic")).matches) == []

        # A track as the query: where else did this car appear? (Itself is not a result.)
        by_track = search.Search(search_pb2.SearchRequest(track_id=target.id, k=5, department="police"))
        assert by_track.matches and target.id not in {m.track_id for m in by_track.matches}
        assert rejected(search_pb2.SearchRequest(track_id="cam-a:1:999999", department="police"))[0] == (
            grpc.StatusCode.NOT_FOUND
        )
        assert rejected(search_pb2.SearchRequest(track_id=target.id, department="traffic"))[0] == (
            grpc.StatusCode.NOT_FOUND
        )
        assert rejected(search_pb2.SearchRequest(incident_id="no-such-incident", department="police"))[0] == (
            grpc.StatusCode.NOT_FOUND
        )
        # An incident as the query: where else did the parked vehicle appear?
        with service_credentials.channel(f"127.0.0.1:{ports['incidents']}") as incidents_channel:
            stored = incidents_pb2_grpc.IncidentServiceStub(incidents_channel).ListIncidents(
                incidents_pb2.ListIncidentsRequest(camera_id="cam-a"), timeout=10
            )
        assert stored.incidents, "the parking rule opened no incident on the clip"
        # Each names its vehicle's feature track, which search by incident uses.
        assert all(i.track_key.startswith("cam-a:") for i in stored.incidents)
        answered = []
        for incident in stored.incidents:
            try:
                reply = search.Search(
                    search_pb2.SearchRequest(incident_id=incident.id, k=5, department="police")
                )
            except grpc.RpcError as exc:  # its vehicle may have been too briefly tracked to be indexed
                assert exc.code() == grpc.StatusCode.NOT_FOUND and "no indexed appearance" in exc.details()
                continue
            answered.append(reply)
        assert answered and all(r.matches for r in answered)
        stats = search.GetIndexStats(search_pb2.GetIndexStatsRequest())
        channel.close()

        # Restart with the index files deleted: rebuilt from the store, the same answer.
        for restart, damage in enumerate(("delete", "corrupt")):
            processes["search"].send_signal(signal.SIGTERM)
            assert processes["search"].wait(30) == 0
            files = sorted((tmp_path / "search" / "index").glob("shard-*.faiss"))
            assert files
            for path in files:
                if damage == "delete":
                    path.unlink()
                else:
                    path.write_bytes(b"garbage")
            processes["search"] = start_python(search_args, log_file=tmp_path / f"search-{restart}.log")
            wait_until_serving(search_address, 60, processes["search"])
            with service_credentials.channel(search_address) as channel:
                search = search_pb2_grpc.SearchServiceStub(channel)
                assert search.GetIndexStats(search_pb2.GetIndexStatsRequest()).vectors == stats.vectors
                again = search.Search(search_pb2.SearchRequest(image=photo, k=5, department="urban"))
                assert again.matches[0].track_id == target.id
            lines = (tmp_path / f"search-{restart}.log").read_text().splitlines()
            logged = [json.loads(line) for line in lines if line.startswith("{")]
            rebuilt = "index shard rebuilt from the feature store"
            reasons = {line.get("reason") for line in logged if line.get("msg") == rebuilt}
            expected = (
                "index file missing" if damage == "delete" else "index file corrupt (checksum mismatch)"
            )
            assert reasons == {expected}
    finally:
        for name, process in processes.items():
            stop_process(process, name)


def test_bad_records_are_refused_and_late_crops_still_count(tmp_path: Path):
    engine = engine_at(tmp_path)
    now = time.time()
    good = record("cam-1", 1, patch(COLOURS_BGR["green"], 1), now)
    short = good.model_copy(update={"id": "cam-1:1:2", "embedding_base64": encode_embedding(np.ones(255))})
    with pytest.raises(RejectedRecordError, match="embedding has 255 values"):
        engine.apply(short)
    nan = good.model_copy(
        update={"id": "cam-1:1:3", "embedding_base64": encode_embedding(np.full(256, np.nan))}
    )
    with pytest.raises(RejectedRecordError, match="all finite"):
        engine.apply(nan)
    assert engine.store.counts() == (0, 0)  # nothing half-stored
    with pytest.raises(ValueError, match="camera_id"):  # a camera id cannot leave the crop folder
        FeatureRecord.model_validate({**good.model_dump(by_alias=True), "camera_id": "../../escaped"})

    # The crop-carrying revision 0 comes back after a times-only revision 1: its crop still counts.
    times_only = good.model_copy(
        update={"revision": 1, "embedding_base64": None, "crop_jpeg_base64": None, "last_seen": utc(now + 60)}
    )
    engine.apply(times_only)
    assert engine.apply(good).vector_id is not None
    track = engine.store.track(good.id)
    assert track.crop_path and track.last_seen == pytest.approx(now + 60)
    # A better crop replaces the old file.
    better = good.model_copy(update={"revision": 2, "crop_revision": 1})
    engine.apply(better)
    files = sorted(p.name for p in (tmp_path / "crops" / "cam-1").iterdir())
    assert files == [f"{good.id.replace(':', '_')}-1.jpg"]

    # Scope is the one the track was recorded under: a camera changing hands does not hand over
    # its history.
    moved = record("cam-1", 9, patch(COLOURS_BGR["green"], 2), now + 120, department="police")
    engine.apply(moved)
    query = ColourEmbedder().embed([patch(COLOURS_BGR["green"], 3)])
    urban = {h.track.key for h in engine.search(query, 10, "urban", Filters())}
    police = {h.track.key for h in engine.search(query, 10, "police", Filters())}
    assert urban == {good.id} and police == {moved.id}
