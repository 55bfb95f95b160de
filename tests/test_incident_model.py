"""One definition of an incident: IncidentMessage is the source, and every other form follows it.

The SDK's IncidentEvent (what a rule emits) reaches the message whole; HandedOverIncident is a part
of an event; the incident store's queryable columns and the gRPC Incident summary are derived from
the message's fields; and the incident names its object's feature track (``track_key``), which
search by incident uses instead of guessing by time.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import typing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from google.protobuf import timestamp_pb2
from sqlalchemy import create_engine, inspect

from retina.algorithms.sdk import (
    AnalysedFrame,
    HandedOverIncident,
    IncidentEvent,
    IncidentLifecycle,
    Snapshot,
    TrackedObject,
    ended_handover,
)
from retina.services.core.config import CameraConfig, FeaturesConfig, RetinaConfig, SearchConfig
from retina.services.core.convert import open_incident_from_proto, open_incident_to_proto
from retina.services.core.database import sqlite_url
from retina.services.core.features import ColourEmbedder, FeatureRecord, encode_embedding, track_key, utc
from retina.services.core.incident import (
    BBox,
    IncidentMessage,
    Location,
    build_message,
    event_fields,
    handed_over,
)
from retina.services.core.plate_text import PlateEvidence, PlateFacts
from retina.services.core.serving import start_grpc_server
from retina.services.core.validation import add_guarded
from retina.services.incidents.service import IncidentServicer, incident_to_proto
from retina.services.incidents.store import (
    MESSAGE_COLUMNS,
    STORE_COLUMNS,
    IncidentStore,
    StoredIncident,
    incidents,
    message_values,
)
from retina.services.search.engine import SearchEngine
from retina.services.search.service import NotFoundError, SearchServicer
from retina.services.worker.features import TrackFeatures
from retina.services.worker.ingest import SampledFrame
from retina.services.worker.pipeline import CameraPipeline
from retina.v1 import common_pb2, incidents_pb2, incidents_pb2_grpc

CAMERA = CameraConfig.model_validate(
    {
        "id": "cam-1",
        "url": "x.mp4",
        "name": "Main St",
        "department": "urban",
        "shared_with": ["police"],
        "location": {"lat": 1, "lon": 2},
    }
)
T0 = 1_700_000_000.0
KEY = track_key("cam-1", T0 - 3, 7)


def full_event(**changes) -> IncidentEvent:
    """An event with every field set to something other than its default."""
    values = dict(
        event="end", incident_id="inc-1", revision=3, algorithm="illegal_parking", algorithm_version="1.2.0",
        zone="kerb", started_at=T0, last_seen_at=T0 + 40, ended_at=T0 + 45, dwell_seconds=45.0,
        bbox=(0.1, 0.2, 0.3, 0.4), confidence=0.8, track_id=7, end_reason="left_zone",
        details={"vehicle_class": "car"},
        snapshot=Snapshot(np.full((48, 64, 3), 90, np.uint8), (6, 10, 19, 19), [(0, 0), (1, 0), (1, 1)], T0),
        track_key=KEY, camera_quality=["blur"],
        plate=PlateEvidence(PlateFacts(text="浙B2V9L7", colour="blue", confidence=0.9, reads=2), 0, b"jpeg"),
    )  # fmt: skip
    values.update(changes)
    return IncidentEvent(**values)


def full_message(**changes) -> IncidentMessage:
    message, _ = build_message(full_event(), CAMERA, "retina-media")
    return message.model_copy(update=changes)


def defaults(cls) -> dict[str, object]:
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


# -- the rule's event → the message ---------------------------------------------------------------


def test_every_event_field_reaches_the_message():
    event = full_event()
    assert all(getattr(event, name) != default for name, default in defaults(IncidentEvent).items())
    values = event_fields(event)
    assert set(values) <= set(IncidentMessage.model_fields)  # pydantic would drop an unknown one silently
    named = {"id" if f.name == "incident_id" else f.name for f in dataclasses.fields(event)} - {
        "snapshot",
        "plate",
    }
    assert set(values) == named
    message, jpeg = build_message(event, CAMERA, "retina-media")
    assert (message.id, message.event, message.revision) == ("inc-1", "end", 3)
    assert (message.algorithm, message.algorithm_version, message.zone) == (
        "illegal_parking",
        "1.2.0",
        "kerb",
    )
    assert message.started_at == datetime.fromtimestamp(T0, UTC)
    assert message.last_seen_at.timestamp() == T0 + 40 and message.ended_at.timestamp() == T0 + 45
    assert (message.dwell_seconds, message.confidence, message.track_id) == (45.0, 0.8, 7)
    assert message.bbox == BBox(x1=0.1, y1=0.2, x2=0.3, y2=0.4)
    assert (message.end_reason, message.details, message.track_key) == (
        "left_zone",
        {"vehicle_class": "car"},
        KEY,
    )
    assert message.snapshot is not None and jpeg is not None
    # ... and the worker adds the camera's facts.
    assert (message.camera_id, message.camera_name, message.department) == ("cam-1", "Main St", "urban")
    assert message.location == Location(lat=1, lon=2)
    assert message.visible_to == ["urban", "police"]  # who may see it, as the camera said then
    assert message.camera_quality == ["blur"]  # the picture the worker judged the event on
    assert (message.plate.text, message.plate.reads) == ("浙B2V9L7", 2)  # and the plate its track read
    assert message.plate.crop.path == "cam-1/inc-1/plate-0.jpg"


def test_visible_to_is_recorded_and_older_messages_mean_the_owner_only():
    everyone = CAMERA.model_copy(update={"shared_with": ["*"]})
    assert build_message(full_event(), everyone, "retina-media")[0].visible_to == ["urban", "*"]
    old = json.loads(full_message().to_json())
    del old["visible_to"]
    assert IncidentMessage.model_validate(old).visible_to == ["urban"]
    with pytest.raises(ValueError, match="visible_to"):
        IncidentMessage.model_validate({**old, "visible_to": ["a,b"]})  # stored as ",a,b,": no commas


def test_track_key_is_optional_for_older_messages_and_checked_when_present():
    old = json.loads(full_message().to_json())
    del old["track_key"]
    assert IncidentMessage.model_validate(old).track_key is None
    with pytest.raises(ValueError, match="track_key"):
        IncidentMessage.model_validate({**old, "track_key": "../../etc/passwd"})


# -- handover: a part of an event ------------------------------------------------------------------


def test_a_handed_over_incident_is_part_of_an_event_and_ends_as_one():
    event_types = typing.get_type_hints(IncidentEvent)
    for name, kind in typing.get_type_hints(HandedOverIncident).items():
        assert event_types[name] == kind, name
    event = full_event(event="update", ended_at=None, end_reason=None)
    incident = HandedOverIncident.from_event(event)
    assert all(getattr(incident, f.name) == getattr(event, f.name) for f in dataclasses.fields(incident))
    ended = ended_handover(incident, "2.0.0", "lost")
    for f in dataclasses.fields(incident):
        carried = incident.revision + 1 if f.name == "revision" else getattr(incident, f.name)
        assert getattr(ended, f.name) == carried, f.name
    assert (ended.event, ended.algorithm_version, ended.ended_at, ended.end_reason) == (
        "end", "2.0.0", event.last_seen_at, "lost"
    )  # fmt: skip


def test_the_store_hands_over_every_field_of_the_latest_message():
    message = full_message(event="update", ended_at=None, end_reason=None)
    incident = handed_over(message)
    assert incident == HandedOverIncident(
        "inc-1", "illegal_parking", "kerb", 3, T0, T0 + 40, (0.1, 0.2, 0.3, 0.4), 0.8, 7, KEY
    )


def test_open_incident_proto_carries_every_handed_over_field_it_has():
    proto_names = {
        "incident_id" if f.name == "id" else f.name for f in common_pb2.OpenIncident.DESCRIPTOR.fields
    }
    handed_names = {f.name for f in dataclasses.fields(HandedOverIncident)}
    assert proto_names == handed_names
    incident = HandedOverIncident(
        "inc-1", "illegal_parking", "kerb", 3, T0, T0 + 40, (0.1, 0.2, 0.3, 0.4), 0.8, 7
    )
    assert open_incident_from_proto(open_incident_to_proto(incident)) == incident


# -- the store's columns and the gRPC summary ------------------------------------------------------


def test_the_store_columns_are_the_declared_message_fields(tmp_path: Path):
    assert set(MESSAGE_COLUMNS) <= set(IncidentMessage.model_fields)
    assert [c.name for c in incidents.columns] == [*MESSAGE_COLUMNS, *STORE_COLUMNS]
    assert not set(STORE_COLUMNS) & set(IncidentMessage.model_fields)
    assert [f.name for f in dataclasses.fields(StoredIncident)] == [c.name for c in incidents.columns]
    for name in MESSAGE_COLUMNS:  # NULL exactly where the message field may be None
        may_be_none = type(None) in typing.get_args(IncidentMessage.model_fields[name].annotation)
        assert incidents.c[name].nullable == may_be_none, name

    store = IncidentStore(tmp_path / "incidents.sqlite", tmp_path / "media")  # migrated at open
    engine = create_engine(sqlite_url(tmp_path / "incidents.sqlite"))
    migrated = {column["name"] for column in inspect(engine).get_columns("incidents")}
    engine.dispose()
    assert migrated == {*MESSAGE_COLUMNS, *STORE_COLUMNS}

    message = full_message()
    assert store.apply(message, None)
    row = store.get(message.id)
    assert {name: getattr(row, name) for name in MESSAGE_COLUMNS} == message_values(message)
    assert row.track_key == KEY and row.started_at == T0 and row.state == "ended"
    assert row.message == message
    store.close()


def test_every_field_of_the_grpc_incident_is_filled(tmp_path: Path):
    names = [f.name for f in incidents_pb2.Incident.DESCRIPTOR.fields]
    assert set(names) <= set(IncidentMessage.model_fields) | set(STORE_COLUMNS)
    store = IncidentStore(tmp_path / "incidents.sqlite", tmp_path / "media")
    message = full_message(snapshot=None)
    store.apply(message, None)
    store.dispatch(message.id, "assign", "user:ann", assignee="team-3", due_at=T0 + 3600)
    store.dispatch(message.id, "handle", "user:team-3", verify_seconds=60)  # verify_due_at while verifying
    row = store.dispatch(message.id, "close", "dispatcher-9", note="towed", reason="resolved")
    row.verify_due_at = T0 + 120  # as it was while verifying (closing clears it)
    store.close()
    row.snapshot_path, row.clip_path = "cam-1/inc-1/3.jpg", "cam-1/inc-1/clip.mp4"  # as once fetched
    incident = incident_to_proto(row)
    for field in incidents_pb2.Incident.DESCRIPTOR.fields:
        value = getattr(incident, field.name)
        if field.message_type is not None:
            assert incident.HasField(field.name), field.name
        else:
            assert value != field.default_value, field.name
        source = getattr(row, field.name) if field.name in STORE_COLUMNS else getattr(message, field.name)
        if isinstance(source, list):
            assert list(value) == source, field.name
        elif isinstance(value, timestamp_pb2.Timestamp):
            epoch = source.timestamp() if isinstance(source, datetime) else source
            assert value.ToNanoseconds() == int(epoch * 1e9), field.name
        elif field.message_type is not None:
            assert {k: getattr(value, k) for k in source.model_dump()} == source.model_dump(), field.name
        else:
            assert value == pytest.approx(source), field.name
    assert incident.track_key == KEY
    assert (incident.assignee, incident.close_reason, list(incident.visible_to)) == (
        "team-3", "resolved", ["urban", "police"]
    )  # fmt: skip


# -- track_key: the worker attaches it, search by incident uses it --------------------------------


class DwellStub:
    """A rule on IncidentLifecycle: one incident per car, opened at its second sighting."""

    def __init__(self):
        self.manifest = SimpleNamespace(name="stub", version="1")
        self.lifecycle = IncidentLifecycle("cam-1", self.manifest, update_interval_seconds=100)
        self.seen: set[int] = set()

    def process(self, frame: AnalysedFrame) -> list[IncidentEvent]:
        events = []
        for obj in frame.objects:
            bbox = frame.normalise(obj.bbox)
            if self.lifecycle.is_open(obj.track_id):
                self.lifecycle.observe(
                    obj.track_id, now=frame.timestamp, bbox=bbox, confidence=obj.confidence
                )
            elif obj.track_id in self.seen:
                snapshot = Snapshot(frame.image, obj.bbox, [(0, 0), (1, 0), (1, 1)], frame.timestamp)
                opened = self.lifecycle.open(
                    obj.track_id, zone="kerb", track_id=obj.track_id, started_at=frame.timestamp,
                    now=frame.timestamp, bbox=bbox, confidence=obj.confidence, snapshot=snapshot,
                )  # fmt: skip
                events.append(opened)
            self.seen.add(obj.track_id)
        return events

    def expire_handovers(self, timestamp: float) -> list[IncidentEvent]:
        return self.lifecycle.expire_handovers(timestamp)

    def hand_over(self) -> list[HandedOverIncident]:
        incidents = self.lifecycle.handover()
        self.lifecycle.drop_all()
        return incidents

    def resume(self, incidents: list[HandedOverIncident]) -> list[IncidentEvent]:
        self.lifecycle.resume(incidents, 5.0)
        return []

    def finish(self, timestamp: float, reason: str) -> list[IncidentEvent]:
        return self.lifecycle.close_all(ended_at=timestamp, reason=reason)


def pipeline(objects_at) -> CameraPipeline:
    """A camera pipeline whose tracker reports ``objects_at(timestamp)`` (no detector needed)."""
    camera = CameraConfig.model_validate({"id": "cam-1", "url": "x.mp4"})
    stage = CameraPipeline.__new__(CameraPipeline)
    rule = DwellStub()
    stage.camera, stage.algorithms, stage.last_timestamp, stage._track_keys = camera, [rule], None, {}
    stage.held, stage._held_incidents = "", []  # no video-quality hold
    stage.plates, stage._plates = None, {}  # no plate reading
    stage.quality = None  # no quality monitor
    stage.tracker = SimpleNamespace(update=objects_at)
    stage.features = TrackFeatures(camera, FeaturesConfig(), "colour@1", lost_seconds=2.0)
    return stage


def run(stage: CameraPipeline, timestamps) -> list[IncidentEvent]:
    image = np.full((480, 640, 3), 120, np.uint8)
    events = []
    for t in timestamps:
        events += stage.analyse(SampledFrame("cam-1", t, image), t)[0]
    return events


def test_the_worker_attaches_the_feature_track_of_the_incident_object():
    car = TrackedObject(7, "vehicle", "car", 0.9, (100, 200, 300, 330))
    sign = TrackedObject(8, "other", "stop sign", 0.9, (400, 100, 450, 150))  # no feature track
    stage = pipeline(lambda t: [car, sign] if t < T0 + 3 else [])
    events = run(stage, [T0, T0 + 1, T0 + 2, T0 + 5])
    by_track = {e.track_id: e for e in events if e.event == "new"}
    assert by_track[7].track_key == track_key("cam-1", T0, 7) and by_track[8].track_key is None
    # The car's feature track ends (lost) before its incident does: the end still names it.
    (end,) = stage.finish("end_of_stream")[0][:1]
    assert end.event == "end" and end.track_key == track_key("cam-1", T0, 7)

    stage = pipeline(lambda t: [car])
    run(stage, [T0, T0 + 1])
    handed, _ = stage.hand_over()
    assert [(i.track_id, i.track_key) for i in handed] == [(7, track_key("cam-1", T0, 7))]

    # The next worker: a handed-over incident keeps its key when it ends unconfirmed, although this
    # worker's tracker gives its own id 7 to another object (seen only later, elsewhere).
    other = TrackedObject(7, "vehicle", "car", 0.9, (450, 20, 600, 120))
    stage = pipeline(lambda t: [other])
    stage.resume(handed)
    events = run(stage, [T0 + 100, T0 + 101, T0 + 110])
    lost = [e for e in events if e.event == "end"]
    assert [(e.incident_id, e.end_reason, e.track_key) for e in lost] == [
        (handed[0].incident_id, "lost", track_key("cam-1", T0, 7))
    ]
    assert [e.track_key for e in events if e.event == "new"] == [track_key("cam-1", T0 + 100, 7)]


def feature_record(tracker_id: int, first_seen: float) -> FeatureRecord:
    crop = np.full((64, 48, 3), (0, 0, 200), np.uint8)
    return FeatureRecord(
        id=track_key("cam-1", first_seen, tracker_id), revision=0, crop_revision=0, camera_id="cam-1",
        department="urban", track_id=tracker_id, family="vehicle", class_name="car",
        first_seen=utc(first_seen), last_seen=utc(first_seen + 30), crop_seen_at=utc(first_seen + 5),
        embedder="colour@1", embedding_base64=encode_embedding(ColourEmbedder().embed([crop])[0]),
        crop_jpeg_base64=base64.b64encode(cv2.imencode(".jpg", crop)[1].tobytes()).decode(),
    )  # fmt: skip


def test_search_by_incident_uses_the_incident_track_key(tmp_path: Path):
    engine = SearchEngine(
        tmp_path / "search", RetinaConfig(features={"embedder": "colour"}, search=SearchConfig())
    )
    parked = feature_record(7, T0 - 3)
    engine.apply(parked)
    engine.apply(feature_record(7, T0 + 20))  # a later object under the same tracker id (worker restart)
    store = IncidentStore(tmp_path / "incidents.sqlite", tmp_path / "media")
    start = datetime.fromtimestamp(T0, UTC)
    with_key = full_message(id="with-key", snapshot=None, track_key=parked.id)
    without_key = full_message(id="old", snapshot=None, track_key=None)
    unknown_key = full_message(id="unindexed", snapshot=None, track_key=track_key("cam-1", T0 - 60, 3))
    for message in (with_key, without_key, unknown_key):
        assert message.started_at == start and message.last_seen_at == start + timedelta(seconds=40)
        store.apply(message, None)

    async def main():
        servicer = IncidentServicer(store)
        register = incidents_pb2_grpc.add_IncidentServiceServicer_to_server
        server, _, port = await start_grpc_server(
            "127.0.0.1",
            0,
            lambda s: add_guarded(s, register, servicer),
            "retina.v1.IncidentService",
            auth=None,
        )
        try:
            search = SearchServicer(engine, incidents_address=f"127.0.0.1:{port}")
            assert await search._incident_track("with-key") == parked.id
            # An incident from before track keys: the latest track of its tracker id around its time.
            assert await search._incident_track("old") == track_key("cam-1", T0 + 20, 7)
            with pytest.raises(NotFoundError, match="no indexed appearance"):
                await search._incident_track("unindexed")  # a named track is never swapped for a guess
        finally:
            await server.stop(None)

    try:
        asyncio.run(main())
    finally:
        store.close()
        engine.store.close()


def test_an_adopted_incident_keeps_the_track_key_it_was_handed_over_with():
    car = TrackedObject(7, "vehicle", "car", 0.9, (100, 200, 300, 330))
    stage = pipeline(lambda t: [car])
    run(stage, [T0, T0 + 1])
    handed, _ = stage.hand_over()
    original = track_key("cam-1", T0, 7)
    assert handed[0].track_key == original

    # The next worker sees the same car in the same place under its own tracker id 3.
    same_car = TrackedObject(3, "vehicle", "car", 0.9, (100, 200, 300, 330))
    stage = pipeline(lambda t: [same_car])
    stage.resume(handed)
    events = run(stage, [T0 + 100, T0 + 101, T0 + 102])
    continued = [e for e in events if e.incident_id == handed[0].incident_id]
    assert continued and all(e.track_key == original for e in continued)
    assert not [e for e in events if e.event == "new"], "adopted, not opened again"
