"""The endpoints the web console needs beyond the dispatch loop, with real services: a camera's
current frame (for the zone editor), the installed rules with their parameters' schema (for the
camera form), users and API tokens for admins, false alarms per camera and rule, and search
results exported as a ZIP.

The cluster is :mod:`tests.test_gateway_scope`'s (real NATS, incident store, search, scheduler,
gateway; no worker): ``um-kerb`` of urban-management shared with police, ``tr-junction`` of traffic,
``parks-gate`` of parks shared with everyone, an incident on each. A frame from a worker analysing
real footage is tested in :mod:`tests.test_gateway_loop`. Every endpoint is checked for success on
real data, the wrong role (403), another department (404), no credentials (401), and bad input
(422 naming the field).
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import subprocess
import time
import zipfile
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest

from retina.algorithms.sdk.plugins import available_algorithms
from retina.services.cli.cluster import LocalCluster
from retina.services.core import bus
from retina.services.core.features import FeatureRecord
from retina.services.gateway.accounts import AccountStore
from retina.services.incidents.store import IncidentStore
from tests.conftest import python_cli, wait_for
from tests.test_gateway_scope import PASSWORD, USERS, City, city, incident, login
from tests.test_search import COLOURS_BGR, patch, record

pytestmark = pytest.mark.slow
__all__ = ["city"]  # the cluster fixture of the scope tests (a cluster of this module's own)

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")
CLI_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$")


def accounts(city: City) -> AccountStore:
    return AccountStore(city.cluster.gateway_data_dir / "gateway.sqlite")


def last_audit(city: City, action: str, actor: str) -> dict:
    store = accounts(city)
    try:
        entry = next(e for e in store.audit_entries(action=action, limit=1000) if e.actor == actor)
    finally:
        store.close()
    return entry.__dict__


def same_as_unknown(city: City, user: str, path: str, key: str, unknown: str, **kwargs) -> None:
    """``path`` with ``key`` (outside the caller's scope) answers exactly as with an unknown id."""
    method = kwargs.pop("method", "GET")
    outside = city.call(user, method, path.format(key), **kwargs)
    missing = city.call(user, method, path.format(unknown), **kwargs)
    assert (outside.status_code, missing.status_code) == (404, 404), (outside.text, missing.text)
    assert outside.json()["detail"].replace(key, "X") == missing.json()["detail"].replace(unknown, "X")


# -- the camera's frame -----------------------------------------------------------------------------


def test_a_frame_is_only_for_those_who_manage_the_camera(city: City):
    frame = "/api/v1/cameras/{}/frame"
    assert city.call(None, "GET", frame.format("um-kerb")).status_code == 401
    wrong_role = city.call("um-dispatcher", "GET", frame.format("um-kerb"))
    assert wrong_role.status_code == 403 and "ops or admin" in wrong_role.text
    same_as_unknown(city, "tr-ops", frame, "um-kerb", "no-such-camera")  # not shared with traffic
    shared = city.call("um-ops", "GET", frame.format("parks-gate"))  # visible to all, owned by parks
    assert shared.status_code == 403 and "parks" in shared.text
    # in scope and managed, but no worker analyses it in this cluster: 503 saying why
    for user, camera_id in (("tr-ops", "tr-junction"), ("root", "parks-gate")):  # admin: any in scope
        answer = city.call(user, "GET", frame.format(camera_id))
        assert answer.status_code == 503, answer.text
        assert answer.json()["detail"] == (
            f"no frame of camera {camera_id!r} now: the camera is not analysed by a live worker"
        )
    assert city.call("um-ops", "GET", frame.format("bad id!")).status_code == 422


# -- the installed rules ----------------------------------------------------------------------------


def test_every_user_reads_the_installed_rules_with_their_parameters_schema(city: City):
    assert city.call(None, "GET", "/api/v1/algorithms").status_code == 401
    for user in ("um-dispatcher", "police-officer", "tr-ops", "root"):  # any role, any department
        answer = city.call(user, "GET", "/api/v1/algorithms")
        assert answer.status_code == 200, answer.text
        listed = answer.json()["algorithms"]
        installed = available_algorithms()
        assert [a["name"] for a in listed] == sorted(installed)
        for item in listed:
            manifest = installed[item["name"]].manifest
            assert set(item) == {"name", "version", "description", "params_schema"}
            assert (item["version"], item["description"]) == (manifest.version, manifest.description)
            assert item["params_schema"] == manifest.params_model.model_json_schema()
    parking = next(a for a in listed if a["name"] == "illegal_parking")
    assert "dwell_seconds" in parking["params_schema"]["properties"]


# -- users and tokens -------------------------------------------------------------------------------

ADMIN_ENDPOINTS = [
    ("GET", "/api/v1/users", {}),
    (
        "POST",
        "/api/v1/users",
        {"json": {"name": "x1", "department": "d", "roles": ["ops"], "password": PASSWORD}},
    ),
    ("POST", "/api/v1/users/um-ops/disable", {}),
    ("POST", "/api/v1/users/um-ops/enable", {}),
    ("GET", "/api/v1/tokens", {}),
    ("POST", "/api/v1/tokens", {"json": {"user": "um-ops", "days": 1}}),
    ("POST", "/api/v1/tokens/0123456789abcdef/revoke", {}),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ENDPOINTS)
def test_users_and_tokens_are_for_admins_only(city: City, method: str, path: str, body: dict):
    assert city.call(None, method, path, **body).status_code == 401
    for user in ("um-ops", "um-dispatcher", "police-officer"):  # every other role, of any department
        answer = city.call(user, method, path, **body)
        assert answer.status_code == 403 and "admin" in answer.text, (user, answer.text)
    store = accounts(city)
    assert store.get_user("x1") is None and not store.get_user("um-ops").disabled
    store.close()


def test_admins_add_disable_and_enable_users_audited_as_the_cli_does(city: City):
    listed = city.call("root", "GET", "/api/v1/users").json()["users"]
    by_name = {u["name"]: u for u in listed}
    assert set(USERS) <= set(by_name)
    assert by_name["um-ops"] == {
        "name": "um-ops", "department": "urban-management", "roles": ["ops"], "disabled": False,
        "source": "local", "created_at": by_name["um-ops"]["created_at"],
    }  # fmt: skip
    assert ISO.match(by_name["um-ops"]["created_at"])

    body = {
        "name": "kiosk-ana",
        "department": "parks",
        "roles": ["police", "dispatcher"],
        "password": PASSWORD,
    }
    created = city.call("root", "POST", "/api/v1/users", json=body)
    assert created.status_code == 201, created.text
    assert created.json() | {"created_at": None} == {
        "name": "kiosk-ana", "department": "parks", "roles": ["dispatcher", "police"], "disabled": False,
        "source": "local", "created_at": None,
    }  # fmt: skip
    assert login(city, "kiosk-ana").status_code == 200
    added = last_audit(city, "user.add", "root")
    assert (added["department"], added["target"], added["details"]) == (
        "platform", "kiosk-ana", {"user_department": "parks", "roles": ["dispatcher", "police"]}
    )  # fmt: skip

    disabled = city.call("root", "POST", "/api/v1/users/kiosk-ana/disable")
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert login(city, "kiosk-ana").status_code == 401
    enabled = city.call("root", "POST", "/api/v1/users/kiosk-ana/enable")
    assert enabled.status_code == 200 and enabled.json()["disabled"] is False
    assert login(city, "kiosk-ana").status_code == 200
    for action in ("user.disable", "user.enable"):
        entry = last_audit(city, action, "root")
        assert (entry["target"], entry["details"], entry["outcome"]) == ("kiosk-ana", {}, "ok")

    same_as_unknown(city, "root", "/api/v1/users/{}/disable", "nobody-here", "nobody-else", method="POST")
    assert city.call("root", "POST", "/api/v1/users/nobody-here/enable").status_code == 404
    myself = city.call("root", "POST", "/api/v1/users/root/disable")
    assert myself.status_code == 422 and myself.json()["detail"].startswith("name:")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "has space"}, "name:"),
        ({"name": "um-ops"}, "name:"),  # exists already
        ({"department": "a/b"}, "department:"),
        ({"roles": ["chief"]}, "roles:"),
        ({"roles": []}, "roles:"),
        ({"password": "short"}, "password:"),
    ],
)
def test_a_wrong_user_is_a_422_naming_the_field(city: City, change: dict, field: str):
    body = {"name": "new-one", "department": "parks", "roles": ["ops"], "password": PASSWORD} | change
    answer = city.call("root", "POST", "/api/v1/users", json=body)
    assert answer.status_code == 422 and answer.json()["detail"].startswith(field), answer.text
    store = accounts(city)
    assert store.get_user("new-one") is None
    store.close()


def test_admins_make_list_and_revoke_tokens_audited_as_the_cli_does(city: City):
    made = city.call("root", "POST", "/api/v1/tokens", json={"user": "um-ops", "days": 2, "label": "wall"})
    assert made.status_code == 201, made.text
    token, record = made.json()["token"], made.json()["record"]
    assert token.startswith(f"rtk_{record['id']}_")
    assert (record["user_name"], record["label"], record["revoked_at"], record["last_used_at"]) == (
        "um-ops", "wall", None, None,
    )  # fmt: skip
    lifetime = datetime.fromisoformat(record["expires_at"]) - datetime.fromisoformat(record["created_at"])
    assert abs(lifetime - timedelta(days=2)) < timedelta(milliseconds=1)
    with city.client(None) as client:
        me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["name"] == "um-ops"

    listed = city.call("root", "GET", "/api/v1/tokens")
    assert listed.status_code == 200
    assert token.split("_", 2)[2] not in listed.text and "hash" not in listed.text  # never the secret
    mine = next(t for t in listed.json()["tokens"] if t["id"] == record["id"])
    assert set(mine) == {"id", "user_name", "label", "created_at", "expires_at", "revoked_at", "last_used_at"}
    assert ISO.match(mine["last_used_at"])  # it was used above

    # the CLI makes the same audit entry (but for the actor)
    done = subprocess.run(
        python_cli("tokens", "create", "um-ops", "--days", "2", "--label", "wall",
                   "--data-dir", str(city.cluster.gateway_data_dir)),
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    by_api = last_audit(city, "token.create", "root")
    store = accounts(city)
    by_cli = next(e for e in store.audit_entries(action="token.create") if e.actor.startswith("cli:"))
    store.close()
    assert by_api["target"] == record["id"] and by_api["department"] == "platform"
    assert set(by_api["details"]) == set(by_cli.details) == {"user", "expires_at", "label"}
    assert CLI_TIME.match(by_api["details"]["expires_at"]) and CLI_TIME.match(by_cli.details["expires_at"])
    assert by_api["details"]["user"] == by_cli.details["user"] == "um-ops"

    revoked = city.call("root", "POST", f"/api/v1/tokens/{record['id']}/revoke")
    assert revoked.status_code == 200 and ISO.match(revoked.json()["revoked_at"])
    with city.client(None) as client:
        assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    entry = last_audit(city, "token.revoke", "root")
    assert (entry["target"], entry["details"]) == (record["id"], {"user": "um-ops"})
    again = city.call("root", "POST", f"/api/v1/tokens/{record['id']}/revoke")
    assert again.status_code == 409 and "already revoked" in again.text
    assert city.call("root", "POST", "/api/v1/tokens/0123456789abcdef/revoke").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user": "nobody-here", "days": 1}, "user:"),
        ({"user": "um-ops", "days": 0}, "days:"),
        ({"user": "um-ops", "days": 4000}, "days:"),
    ],
)
def test_a_wrong_token_request_is_a_422_naming_the_field(city: City, body: dict, field: str):
    answer = city.call("root", "POST", "/api/v1/tokens", json=body)
    assert answer.status_code == 422 and answer.json()["detail"].startswith(field), answer.text


# -- false alarms per camera and rule ---------------------------------------------------------------


def test_the_store_counts_false_alarms_per_camera_and_rule(tmp_path, store_database: str):
    store = IncidentStore(store_database, tmp_path / "media")
    messages = [incident("um-kerb", "a1"), incident("um-kerb", "a2"), incident("tr-junction", "b1")]
    messages.append(incident("parks-gate", "c1").model_copy(update={"algorithm": "exposed_trash"}))
    early = incident("um-kerb", "old").model_copy(
        update={
            "started_at": datetime(2020, 1, 1, tzinfo=UTC),
            "last_seen_at": datetime(2020, 1, 1, tzinfo=UTC),
        }
    )
    for message in [*messages, early]:
        assert store.apply(message, None)
    store.dispatch("a1", "close", "user:x", reason="false_alarm")
    store.dispatch("a2", "close", "user:x", reason="resolved")
    store.dispatch("old", "close", "user:x", reason="false_alarm")
    store.dispatch("b1", "close", "user:x", reason="false_alarm")
    store.dispatch("b1", "reopen", "user:x")  # no longer a false alarm

    def rows(**query) -> list[tuple]:
        found = store.dispatch_stats(**query)
        return [
            (r.camera_id, r.algorithm, r.incidents, r.closed, r.false_alarms, r.false_alarm_ratio)
            for r in found
        ]

    since = time.time() - 3600
    assert rows(since=since) == [
        ("um-kerb", "illegal_parking", 2, 2, 1, 0.5),  # most false alarms first
        ("parks-gate", "exposed_trash", 1, 0, 0, 0.0),
        ("tr-junction", "illegal_parking", 1, 0, 0, 0.0),
    ]
    assert rows()[0] == ("um-kerb", "illegal_parking", 3, 3, 2, 2 / 3)  # with the 2020 one
    assert [r[0] for r in rows(visible_to=["police"], since=since)] == ["um-kerb", "parks-gate"]
    assert [r[0] for r in rows(visible_to=["traffic"], since=since)] == ["parks-gate", "tr-junction"]
    assert rows(visible_to=["nobody"], until=since) == []
    assert rows(until=since) == [("um-kerb", "illegal_parking", 1, 1, 1, 1.0)]
    store.close()


def stats(city: City, user: str | None, **params: str) -> dict[str, dict]:
    answer = city.call(user, "GET", "/api/v1/stats/dispatch", params=params)
    assert answer.status_code == 200, answer.text
    return {row["camera_id"]: row for row in answer.json()["rows"]}


def test_dispatch_stats_show_false_alarms_in_the_callers_scope(city: City):
    closed = city.call(
        "um-dispatcher", "POST", "/api/v1/incidents/inc-um/close", json={"reason": "false_alarm"}
    )
    assert closed.status_code == 200, closed.text
    mine = stats(city, "um-dispatcher")
    assert set(mine) == {"um-kerb", "parks-gate"}  # not traffic's camera
    assert mine["um-kerb"] == {
        "camera_id": "um-kerb", "algorithm": "illegal_parking", "incidents": 1, "closed": 1,
        "false_alarms": 1, "false_alarm_ratio": 1.0,
    }  # fmt: skip
    assert list(mine) == ["um-kerb", "parks-gate"]  # most false alarms first
    assert stats(city, "um-ops") == mine
    assert set(stats(city, "tr-dispatcher")) == {"tr-junction", "parks-gate"}
    assert set(stats(city, "police-dispatcher")) == {"um-kerb", "parks-gate"}  # um-kerb is shared with police
    assert set(stats(city, "root")) == {"um-kerb", "tr-junction", "parks-gate"}  # admin: every department

    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    assert set(stats(city, "root", since=(now - hour).isoformat(), until=(now + hour).isoformat())) == {
        "um-kerb", "tr-junction", "parks-gate",
    }  # fmt: skip
    assert stats(city, "root", until=(now - hour).isoformat()) == {}
    assert stats(city, "root", since=(now + hour).isoformat()) == {}


def test_dispatch_stats_refuse_the_wrong_role_and_bad_periods(city: City):
    assert city.call(None, "GET", "/api/v1/stats/dispatch").status_code == 401
    refused = city.call("police-officer", "GET", "/api/v1/stats/dispatch")
    assert refused.status_code == 403 and "dispatcher or ops or admin" in refused.text
    bad = city.call("root", "GET", "/api/v1/stats/dispatch", params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "since"]
    backwards = {"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"}
    answer = city.call("root", "GET", "/api/v1/stats/dispatch", params=backwards)
    assert answer.status_code == 422 and answer.json()["detail"].startswith("until:")


# -- search results as a ZIP ------------------------------------------------------------------------


async def publish_features(cluster: LocalCluster, records: list[FeatureRecord]) -> None:
    nc = await bus.connect(cluster.nats_url, "test-worker", user="worker", password=cluster.token("worker"))
    js = nc.jetstream()
    await bus.ensure_feature_stream(js)
    for item in records:
        await js.publish(item.subject, item.to_json(), headers={"Nats-Msg-Id": item.msg_id})
    await nc.close()


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image)[1].tobytes()


def test_police_export_a_search_as_a_zip_of_results_and_crops(city: City):
    now = time.time()
    red = patch(COLOURS_BGR["red"], 11)
    ours = record("um-kerb", 41, patch(COLOURS_BGR["red"], 12), now - 120, department="urban-management")
    ours.shared_with = ["police"]
    theirs = record("tr-junction", 42, patch(COLOURS_BGR["red"], 13), now - 120, department="traffic")
    asyncio.run(publish_features(city.cluster, [ours, theirs]))
    form = {"files": {"image": ("red.jpg", jpeg(red), "image/jpeg")}, "data": {"k": "5"}}
    wait_for(
        lambda: bool(city.call("police-officer", "POST", "/api/v1/search", **form).json()["matches"]),
        30,
        "the features to be indexed",
    )
    searched = city.call("police-officer", "POST", "/api/v1/search", **form).json()["matches"]

    answer = city.call("police-officer", "POST", "/api/v1/search/export", **form)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    assert re.fullmatch(
        r'attachment; filename="retina-search-\d{8}T\d{6}Z\.zip"', answer.headers["content-disposition"]
    )
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    rows = list(csv.DictReader(io.StringIO(archive.read("results.csv").decode())))
    assert [r["track_id"] for r in rows] == [m["track_id"] for m in searched] == [ours.id]  # not traffic's
    crop_file = f"crops/1-{ours.id.replace(':', '_')}.jpg"
    row = rows[0]
    assert row | {"score": "", "first_seen": "", "last_seen": ""} == {
        "rank": "1", "track_id": ours.id, "camera_id": "um-kerb", "score": "", "family": "vehicle",
        "class_name": "car", "colours": "red", "first_seen": "", "last_seen": "", "crop_file": crop_file,
    }  # fmt: skip
    assert abs(float(row["score"]) - searched[0]["score"]) < 1e-3
    for name in ("first_seen", "last_seen"):
        assert abs(datetime.fromisoformat(row[name]) - getattr(ours, name)) < timedelta(milliseconds=1)
    assert sorted(archive.namelist()) == [crop_file, "results.csv"]
    assert archive.read(crop_file) == ours.crop_jpeg()
    entry = last_audit(city, "search.export", "police-officer")
    search_entry = last_audit(city, "search", "police-officer")
    assert entry["outcome"] == "ok" and entry["details"]["hits"] == 1
    assert entry["details"] == search_entry["details"]  # the same details as the search


def test_export_refuses_as_search_does(city: City):
    export = "/api/v1/search/export"
    assert city.call(None, "POST", export, data={"incident_id": "inc-um"}).status_code == 401
    wrong_role = city.call("um-dispatcher", "POST", export, data={"incident_id": "inc-um"})
    assert wrong_role.status_code == 403
    outside = city.call("police-officer", "POST", export, data={"incident_id": "inc-tr"})  # traffic's
    unknown = city.call("police-officer", "POST", export, data={"incident_id": "no-such-incident"})
    assert (outside.status_code, unknown.status_code) == (404, 404)
    assert outside.json()["detail"].replace("inc-tr", "X") == unknown.json()["detail"].replace(
        "no-such-incident", "X"
    )
    refused = last_audit(city, "search.export", "police-officer")
    assert (refused["target"], refused["outcome"]) == ("no-such-incident", "refused")
    none = city.call("police-officer", "POST", export, data={"k": "3"})
    assert none.status_code == 422 and none.json()["detail"].startswith("query:")
    too_many = city.call("police-officer", "POST", export, data={"track_id": "um-kerb:1:1", "k": "500"})
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["body", "k"]
    region = city.call(
        "police-officer", "POST", export, data={"region": "1,2"},
        files={"image": ("red.jpg", jpeg(patch(COLOURS_BGR["red"], 1)), "image/jpeg")},
    )  # fmt: skip
    assert region.status_code == 422 and region.json()["detail"].startswith("region:")
