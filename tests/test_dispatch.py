"""The dispatch loop (分拨-处置-核查) in the incident store: its state machine, history, photos, media
access, department scope, and the DISPATCH stream it publishes to (a real nats-server)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import grpc
import nats
import numpy as np
import pytest

from retina.services.core import bus
from retina.services.core.incident import (
    BBox,
    DispatchMessage,
    IncidentMessage,
    SnapshotRef,
)
from retina.services.core.serving import start_grpc_server
from retina.services.core.validation import add_guarded
from retina.services.incidents.service import (
    RECEIVE_LIMIT_BYTES,
    IncidentServicer,
    publish_dispatches,
)
from retina.services.incidents.store import DispatchRefusedError, IncidentStore, UnknownIncidentError
from retina.v1 import incidents_pb2, incidents_pb2_grpc
from tests.conftest import NatsServer

START = datetime(2026, 11, 2, 4, 0, tzinfo=UTC)

# The loop as specified: from each status, the actions allowed and the status each leads to (verify:
# outcome "clear"; handle: without automatic verification). Anything else is refused.
EXPECTED = {
    "new": {"assign": "assigned", "handle": "handled", "close": "closed"},
    "assigned": {"assign": "assigned", "handle": "handled", "close": "closed"},
    "handled": {"assign": "assigned", "verify": "verified", "close": "closed"},
    "verifying": {"verify": "verified", "close": "closed"},
    "verified": {"reopen": "reopened", "close": "closed"},
    "reopened": {"assign": "assigned", "handle": "handled", "close": "closed"},
    "closed": {"reopen": "reopened"},
}
# How to reach each status from "new".
ROUTES = {
    "new": [],
    "assigned": [("assign", {"assignee": "team-1"})],
    "handled": [("handle", {})],
    "verifying": [("handle", {"verify_seconds": 60})],
    "verified": [("handle", {}), ("verify", {"outcome": "clear"})],
    "reopened": [("handle", {}), ("verify", {"outcome": "present"})],
    "closed": [("close", {"reason": "false_alarm"})],
}
STEP_FACTS = {
    "assign": {"assignee": "team-2"},
    "handle": {},
    "verify": {"outcome": "clear"},
    "close": {"reason": "resolved"},
    "reopen": {},
}


def message(
    incident_id: str,
    event: str = "new",
    revision: int = 0,
    *,
    department: str = "urban",
    visible_to: list[str] | None = None,
    zone: str = "curb",
    started: datetime = START,
    snapshot: bool = False,
) -> IncidentMessage:
    values = dict(
        id=incident_id, event=event, revision=revision, camera_id="cam-1", camera_name="Main St",
        department=department, location=None, algorithm="illegal_parking", algorithm_version="1.0.0",
        zone=zone, started_at=started, last_seen_at=started + timedelta(seconds=60 + revision),
        ended_at=started + timedelta(seconds=90) if event == "end" else None, dwell_seconds=60 + revision,
        bbox=BBox(x1=0.1, y1=0.5, x2=0.3, y2=0.8), confidence=0.4, track_id=3,
        end_reason="moved" if event == "end" else None,
        snapshot=SnapshotRef(
            path=f"cam-1/{incident_id}/{revision}.jpg", object="b", width=64, height=48,
            thumbnail_jpeg_base64="",
        ) if snapshot else None,
    )  # fmt: skip
    if visible_to is not None:
        values["visible_to"] = visible_to
    return IncidentMessage(**values)


def picture(suffix: str = ".png") -> bytes:
    image = np.full((48, 64, 3), 120, np.uint8)
    cv2.rectangle(image, (8, 8), (30, 30), (0, 0, 255), -1)
    return cv2.imencode(suffix, image)[1].tobytes()


def walk(store: IncidentStore, incident_id: str, route: list[tuple[str, dict]]) -> None:
    for action, facts in route:
        store.dispatch(incident_id, action, "user:ann", **facts)


# -- the state machine ---------------------------------------------------------------------------


def test_every_transition_is_allowed_or_refused_as_specified(tmp_path: Path, store_database: str):
    store = IncidentStore(store_database, tmp_path / "media")
    try:
        for status, route in ROUTES.items():
            for action, facts in STEP_FACTS.items():
                incident_id = f"{status}-{action}"
                store.apply(message(incident_id), None)
                walk(store, incident_id, route)
                assert store.get(incident_id).dispatch_status == status
                if action in EXPECTED[status]:
                    row = store.dispatch(incident_id, action, "user:bob", **facts)
                    assert row.dispatch_status == EXPECTED[status][action], (status, action)
                    continue
                with pytest.raises(DispatchRefusedError) as refused:
                    store.dispatch(incident_id, action, "user:bob", **facts)
                assert refused.value.status == status
                assert refused.value.allowed == [a for a in STEP_FACTS if a in EXPECTED[status]]
                assert f"{status!r}" in str(refused.value), str(refused.value)
                assert store.get(incident_id).dispatch_status == status  # nothing changed
                assert len(store.history(incident_id)) == 1 + len(route)  # nor was a step recorded
        with pytest.raises(UnknownIncidentError):
            store.dispatch("nope", "assign", "user:ann", assignee="x")
    finally:
        store.close()


def test_each_step_records_its_facts(tmp_path: Path, store_database: str):
    store = IncidentStore(store_database, tmp_path / "media")
    store.apply(message("inc-1"), None)
    t = 1_800_000_000.0
    row = store.dispatch("inc-1", "assign", "user:ann", assignee="team-3", due_at=t + 3600, now=t)
    assert (row.dispatch_status, row.assignee, row.due_at) == ("assigned", "team-3", t + 3600)
    row = store.dispatch("inc-1", "handle", "user:team-3", note="towed", verify_seconds=120, now=t + 10)
    assert (row.dispatch_status, row.verify_due_at) == ("verifying", t + 130)
    assert [r.id for r in store.list(dispatch_status="verifying")] == ["inc-1"]
    row = store.dispatch("inc-1", "verify", "system:verifier", outcome="present", now=t + 130)
    assert (row.dispatch_status, row.verify_due_at, row.assignee) == ("reopened", None, "team-3")
    row = store.dispatch(
        "inc-1", "close", "user:ann", note="duplicate of inc-0", reason="duplicate", now=t + 200
    )
    assert (row.dispatch_status, row.closed_by, row.close_note, row.closed_at, row.close_reason) == (
        "closed", "user:ann", "duplicate of inc-0", t + 200, "duplicate"
    )  # fmt: skip
    row = store.dispatch("inc-1", "reopen", "user:ann", note="it was not", now=t + 300)
    assert (row.dispatch_status, row.closed_by, row.closed_at, row.close_reason) == (
        "reopened",
        None,
        None,
        None,
    )
    steps = [item for item in store.history("inc-1") if item.kind == "dispatch"]
    assert [(s.action, s.status, s.actor) for s in steps] == [
        ("assign", "assigned", "user:ann"),
        ("handle", "verifying", "user:team-3"),
        ("verify", "reopened", "system:verifier"),
        ("close", "closed", "user:ann"),
        ("reopen", "reopened", "user:ann"),
    ]
    assert steps[0].details == {
        "seq": 1, "assignee": "team-3", "due_at": "2027-01-15T09:00:00+00:00", "previous_status": "new"
    }  # fmt: skip
    assert steps[1].details["verify_due_at"] == "2027-01-15T08:02:10+00:00"
    assert (steps[2].details["outcome"], steps[3].details["reason"]) == ("present", "duplicate")
    assert steps[1].note == "towed" and steps[1].at == t + 10
    store.close()


# -- gRPC: codes, history, photos, media -----------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(
    store: IncidentStore,
) -> AsyncIterator[tuple[incidents_pb2_grpc.IncidentServiceStub, IncidentServicer]]:
    servicer = IncidentServicer(store)
    register = incidents_pb2_grpc.add_IncidentServiceServicer_to_server
    server, _, port = await start_grpc_server(
        "127.0.0.1", 0, lambda s: add_guarded(s, register, servicer), "retina.v1.IncidentService",
        max_message_bytes=RECEIVE_LIMIT_BYTES, auth=None,
    )  # fmt: skip
    try:
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", RECEIVE_LIMIT_BYTES)]
        ) as channel:
            yield incidents_pb2_grpc.IncidentServiceStub(channel), servicer
    finally:
        await server.stop(None)


async def refused(call, request) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(request, timeout=30)
    return caught.value


def test_dispatch_answers_clear_status_codes(tmp_path: Path):
    store = IncidentStore(tmp_path / "incidents.sqlite", tmp_path / "media")
    store.apply(message("inc-1"), None)
    Req = incidents_pb2.DispatchRequest

    async def main():
        async with serving(store) as (stub, _):

            def step(action: str, **fields) -> incidents_pb2.DispatchRequest:
                return Req(**{"id": "inc-1", "action": action, "actor": "user:ann", **fields})

            bad = [
                (step("assign", actor="", assignee="t"), "actor"),
                (step("close", actor="a\nb", reason="other"), "actor"),
                (step("fly"), "action"),
                (step("close", id="../x", reason="resolved"), "id"),
                (step("assign"), "assignee"),
                (step("close", reason="bored"), "reason"),
                (step("close"), "reason"),
                (step("verify"), "outcome"),
                (step("assign", assignee="t", reason="resolved"), "reason"),
                (step("handle", verify_seconds=float("nan")), "verify_seconds"),
                (step("handle", verify_seconds=-1), "verify_seconds"),
                (step("handle", photo=b"%PDF-1.4 not a picture"), "photo"),
                (step("handle", photo=picture(".bmp")), "photo"),
                (step("close", reason="other", photo=picture()), "photo"),
                (step("handle", photo=b"\xff" * (20 * 2**20 + 1)), "photo"),
                (step("close", reason="other", expected_status="x"), "expected_status"),
            ]
            for request, field in bad:
                error = await refused(stub.Dispatch, request)
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, error.details())
                assert error.details().startswith(f"{field}:"), error.details()
            assert store.history("inc-1")[1:] == []  # nothing was recorded

            error = await refused(stub.Dispatch, Req(id="nope", action="reopen", actor="user:ann"))
            assert error.code() == grpc.StatusCode.NOT_FOUND
            error = await refused(stub.Dispatch, Req(id="inc-1", action="reopen", actor="user:ann"))
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "'new'" in error.details() and "allowed now: assign, handle, close" in error.details()

            # A person closes it while the automatic verifier is deciding: the verifier loses.
            await stub.Dispatch(Req(id="inc-1", action="handle", actor="user:team", verify_seconds=30))
            await stub.Dispatch(Req(id="inc-1", action="close", actor="user:ann", reason="resolved"))
            late = Req(id="inc-1", action="verify", actor="system:verifier", outcome="present",
                       expected_status="verifying")  # fmt: skip
            error = await refused(stub.Dispatch, late)
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "expected dispatch status 'verifying', but it is 'closed'" in error.details()
            assert "allowed now: reopen" in error.details()
            incident = await stub.GetIncident(incidents_pb2.GetIncidentRequest(id="inc-1"))
            assert (incident.dispatch_status, incident.closed_by, incident.close_reason) == (
                "closed", "user:ann", "resolved"
            )  # fmt: skip
            # expected_status that holds lets the step through.
            reopen = Req(id="inc-1", action="reopen", actor="user:ann", expected_status="closed")
            assert (await stub.Dispatch(reopen)).dispatch_status == "reopened"

    try:
        asyncio.run(main())
    finally:
        store.close()


def test_history_merges_events_and_steps_oldest_first_and_photos_are_stored(tmp_path: Path):
    media = tmp_path / "media"
    store = IncidentStore(tmp_path / "incidents.sqlite", media)
    store.apply(message("inc-1", snapshot=True), b"\xff\xd8snapshot")
    store.apply(message("inc-1", "update", 1), None)
    png, jpeg = picture(".png"), picture(".jpg")
    Req = incidents_pb2.DispatchRequest

    async def main():
        async with serving(store) as (stub, _):
            assigned = await stub.Dispatch(
                Req(id="inc-1", action="assign", actor="user:ann", assignee="team-3", note="kerb at no. 5")
            )
            assert (assigned.dispatch_status, assigned.assignee) == ("assigned", "team-3")
            await asyncio.to_thread(store.apply, message("inc-1", "end", 2), None)
            handled = await stub.Dispatch(
                Req(id="inc-1", action="handle", actor="user:team-3", photo=png, verify_seconds=90)
            )
            assert handled.dispatch_status == "verifying"
            assert handled.verify_due_at.ToSeconds() == pytest.approx(time.time() + 90, abs=5)
            listed = await stub.ListIncidents(incidents_pb2.ListIncidentsRequest(dispatch_status="verifying"))
            assert [(i.id, i.verify_due_at) for i in listed.incidents] == [("inc-1", handled.verify_due_at)]
            verified = await stub.Dispatch(
                Req(id="inc-1", action="verify", actor="system:verifier", outcome="clear", photo=jpeg,
                    expected_status="verifying")
            )  # fmt: skip
            assert verified.dispatch_status == "verified"
            history = await stub.GetIncidentHistory(incidents_pb2.GetIncidentRequest(id="inc-1"))
            error = await refused(stub.GetIncidentHistory, incidents_pb2.GetIncidentRequest(id="nope"))
            assert error.code() == grpc.StatusCode.NOT_FOUND
            return history.entries

    entries = asyncio.run(main())
    assert [(e.kind, e.action, e.status) for e in entries] == [
        ("incident", "new", ""),
        ("incident", "update", ""),
        ("dispatch", "assign", "assigned"),
        ("incident", "end", ""),
        ("dispatch", "handle", "verifying"),
        ("dispatch", "verify", "verified"),
    ]
    times = [e.at.ToNanoseconds() for e in entries]
    assert times == sorted(times)
    new, update, assign, end, handle, verify = entries
    assert (new.revision, new.media_path, update.revision, update.media_path) == (
        0,
        "cam-1/inc-1/0.jpg",
        1,
        "",
    )
    assert json.loads(end.details_json) == {"dwell_seconds": 62, "confidence": 0.4, "end_reason": "moved"}
    assert (assign.actor, assign.note, json.loads(assign.details_json)["assignee"]) == (
        "user:ann", "kerb at no. 5", "team-3"
    )  # fmt: skip
    assert (handle.media_path, verify.media_path) == (
        "cam-1/inc-1/dispatch-2.png",
        "cam-1/inc-1/dispatch-3.jpg",
    )
    assert json.loads(verify.details_json) == {"seq": 3, "outcome": "clear", "previous_status": "verifying"}
    assert (media / handle.media_path).read_bytes() == png and (
        media / verify.media_path
    ).read_bytes() == jpeg
    assert not list(media.rglob("*.tmp"))
    store.close()


def test_media_is_streamed_in_chunks_and_nothing_outside_the_folder_is_served(tmp_path: Path):
    media = tmp_path / "media"
    store = IncidentStore(tmp_path / "incidents.sqlite", media)
    clip = os.urandom(2 * 2**20 + 123)
    (media / "cam-1/inc-1").mkdir(parents=True)
    (media / "cam-1/inc-1/clip.mp4").write_bytes(clip)
    (media / "cam-1/inc-1/0.jpg").write_bytes(b"\xff\xd8jpeg")
    (media / "cam-1/inc-1/1.tmp").write_bytes(b"half")
    secret = tmp_path / "secret.txt"
    secret.write_text("not evidence")
    (media / "cam-1/inc-1/link.jpg").symlink_to(secret)
    (media / "cam-1/escape").symlink_to(tmp_path)

    async def main():
        async with serving(store) as (stub, _):
            chunks = [
                c async for c in stub.GetMedia(incidents_pb2.GetMediaRequest(path="cam-1/inc-1/clip.mp4"))
            ]
            assert [len(c.data) for c in chunks] == [2**20, 2**20, 123]
            assert (chunks[0].content_type, chunks[0].size) == ("video/mp4", len(clip))
            assert all(not c.content_type and not c.size for c in chunks[1:])
            assert b"".join(c.data for c in chunks) == clip
            (jpeg,) = [
                c async for c in stub.GetMedia(incidents_pb2.GetMediaRequest(path="cam-1/inc-1/0.jpg"))
            ]
            assert (jpeg.data, jpeg.content_type, jpeg.size) == (b"\xff\xd8jpeg", "image/jpeg", 6)
            for path in (
                "../secret.txt", str(secret), "/cam-1/inc-1/0.jpg", "cam-1/inc-1/../../../secret.txt",
                "cam-1/inc-1/link.jpg", "cam-1/escape/secret.txt", "cam-1/inc-1/1.tmp", "cam-1/inc-1",
                "cam-1/inc-1/none.jpg", "cam-1\\inc-1\\0.jpg",
            ):  # fmt: skip
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    [c async for c in stub.GetMedia(incidents_pb2.GetMediaRequest(path=path))]
                assert caught.value.code() == grpc.StatusCode.NOT_FOUND, path
                assert caught.value.details() == "path: no such media file"
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                [c async for c in stub.GetMedia(incidents_pb2.GetMediaRequest(path=""))]
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    try:
        asyncio.run(main())
    finally:
        store.close()


def test_retention_keeps_the_photos_of_incidents_still_in_the_loop(tmp_path: Path, store_database: str):
    media = tmp_path / "media"
    store = IncidentStore(store_database, media)
    for incident_id in ("in-loop", "closed"):
        store.apply(message(incident_id), None)
        store.apply(message(incident_id, "end", 1), None)
        store.dispatch(incident_id, "handle", "user:team", photo=picture(), photo_suffix="png")
    store.dispatch("closed", "close", "user:ann", reason="resolved")
    old = time.time() - 60 * 86400
    for path in media.rglob("*.png"):
        os.utime(path, (old, old))
    assert store.enforce_retention(max_bytes=10**9, max_age_seconds=30 * 86400) == [
        "cam-1/closed/dispatch-1.png"
    ]
    assert [i.media_path for i in store.history("closed") if i.kind == "dispatch"] == [None, None]
    assert [i.media_path for i in store.history("in-loop") if i.kind == "dispatch"] == [
        "cam-1/in-loop/dispatch-1.png"
    ]
    store.close()


# -- department scope ------------------------------------------------------------------------------


def test_list_filters_by_the_departments_recorded_with_each_incident(tmp_path: Path, store_database: str):
    store = IncidentStore(store_database, tmp_path / "media")
    hour = timedelta(hours=1)
    store.apply(message("shared", visible_to=["urban", "police"], started=START), None)
    store.apply(message("everyone", visible_to=["urban", "*"], started=START + hour, zone="market"), None)
    old = json.loads(message("old", started=START + 2 * hour).to_json())
    del old["visible_to"]  # a message from before the field: its owner only
    store.apply(IncidentMessage.model_validate(old), None)
    store.apply(message("police-own", department="police", started=START + 3 * hour), None)
    store.apply(
        message("wildcard", department="urxban", started=START + 4 * hour), None
    )  # '_' is no wildcard

    def ids(**filters) -> list[str]:
        return [row.id for row in store.list(**filters)]

    assert ids(visible_to=["police"]) == ["police-own", "everyone", "shared"]
    assert ids(visible_to=["parks"]) == ["everyone"]
    assert ids(visible_to=["urban"]) == ["old", "everyone", "shared"]
    assert ids(visible_to=["parks", "urban"]) == ["old", "everyone", "shared"]
    assert ids(visible_to=["ur_ban"]) == ["everyone"]
    assert ids() == ["wildcard", "police-own", "old", "everyone", "shared"]
    assert ids(department="urban", visible_to=["police"]) == ["everyone", "shared"]
    assert ids(zone="market") == ["everyone"]
    since, until = (START + hour).timestamp(), (START + 3 * hour).timestamp()
    assert ids(since=since, until=until) == ["old", "everyone"]
    assert ids(limit=2, offset=1) == ["police-own", "old"]
    store.dispatch("old", "close", "user:ann", reason="false_alarm")
    assert ids(dispatch_status="closed") == ["old"] and "old" not in ids(dispatch_status="new")
    assert store.get("old").message.visible_to == ["urban"]
    store.close()


def test_list_incidents_over_grpc_checks_and_applies_the_scope(tmp_path: Path):
    store = IncidentStore(tmp_path / "incidents.sqlite", tmp_path / "media")
    store.apply(message("shared", visible_to=["urban", "police"]), None)
    store.apply(message("own", started=START + timedelta(hours=1)), None)
    List = incidents_pb2.ListIncidentsRequest

    async def main():
        async with serving(store) as (stub, _):
            reply = await stub.ListIncidents(List(visible_to=["police"]))
            assert [(i.id, list(i.visible_to)) for i in reply.incidents] == [("shared", ["urban", "police"])]
            reply = await stub.ListIncidents(List(visible_to=["urban"], offset=1, limit=1))
            assert [i.id for i in reply.incidents] == ["shared"]
            for request, field in (
                (List(visible_to=["*"]), "visible_to[0]"),
                (List(visible_to=["ok", "a,b"]), "visible_to[1]"),
                (List(offset=-1), "offset"),
                (List(dispatch_status="done"), "dispatch_status"),
                (List(zone="x" * 1000), "zone"),
            ):
                error = await refused(stub.ListIncidents, request)
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert error.details().startswith(f"{field}:"), error.details()

    try:
        asyncio.run(main())
    finally:
        store.close()


# -- publishing on the DISPATCH stream ---------------------------------------------------------------


async def dispatch_stream(nats_url: str) -> list[tuple[str, str, DispatchMessage]]:
    """Every message in the DISPATCH stream: (subject, Nats-Msg-Id, message)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(bus.DISPATCH_STREAM)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(bus.DISPATCH_STREAM, seq)
            out.append(
                (msg.subject, msg.headers["Nats-Msg-Id"], DispatchMessage.model_validate_json(msg.data))
            )
        return out
    finally:
        await nc.close()


async def eventually(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def test_steps_are_published_in_order_and_survive_a_nats_outage(tmp_path: Path, nats_server: NatsServer):
    store = IncidentStore(tmp_path / "incidents.sqlite", tmp_path / "media")
    store.apply(message("inc-1", visible_to=["urban", "police"]), None)
    Req = incidents_pb2.DispatchRequest

    async def main():
        stop = asyncio.Event()
        async with serving(store) as (stub, servicer):
            publisher = asyncio.create_task(
                publish_dispatches(store, nats_server.url, stop, servicer.dispatched)
            )
            try:
                await stub.Dispatch(Req(id="inc-1", action="assign", actor="user:ann", assignee="team-3"))
                await stub.Dispatch(Req(id="inc-1", action="handle", actor="user:team-3", photo=picture()))
                await eventually(lambda: not store.unpublished_dispatches(), 15, "the first steps published")
                published = await dispatch_stream(nats_server.url)

                await asyncio.to_thread(nats_server.stop)
                await stub.Dispatch(Req(id="inc-1", action="close", actor="user:ann", reason="resolved"))
                await asyncio.sleep(2)
                assert [m.seq for m in store.unpublished_dispatches()] == [3]  # waits while NATS is down
                await asyncio.to_thread(nats_server.start)
                await eventually(lambda: not store.unpublished_dispatches(), 60, "the step after the outage")
            finally:
                stop.set()
                await asyncio.wait_for(publisher, 15)
        return published, await dispatch_stream(nats_server.url)

    try:
        before, after = asyncio.run(main())
    finally:
        store.close()
    assert [(subject, msg_id) for subject, msg_id, _ in after] == [
        ("retina.dispatch.urban.assign.cam-1", "inc-1:dispatch:1"),
        ("retina.dispatch.urban.handle.cam-1", "inc-1:dispatch:2"),
        ("retina.dispatch.urban.close.cam-1", "inc-1:dispatch:3"),  # once, although sent again
    ]
    assert after[:2] == before
    assign, handle, close = (m for _, _, m in after)
    assert (assign.action, assign.status, assign.actor, assign.details["assignee"]) == (
        "assign", "assigned", "user:ann", "team-3"
    )  # fmt: skip
    assert (handle.status, handle.media_path) == ("handled", "cam-1/inc-1/dispatch-2.png")
    assert (close.status, close.details["reason"], close.details["previous_status"]) == (
        "closed", "resolved", "handled"
    )  # fmt: skip
    for m in (assign, handle, close):
        assert (m.department, m.visible_to, m.camera_id, m.algorithm, m.zone) == (
            "urban", ["urban", "police"], "cam-1", "illegal_parking", "curb"
        )  # fmt: skip
    assert json.loads(close.to_json())["schema"] == "retina.dispatch/1"
